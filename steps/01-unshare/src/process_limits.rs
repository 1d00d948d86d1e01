//! `process.rlimits` and `process.oomScoreAdj`: per-process limits that a container's command
//! inherits and cannot raise (rlimits, set in the child just before exec), and how eagerly the
//! OOM killer picks it (written by the parent to `/proc/PID/oom_score_adj`; lowering it needs
//! CAP_SYS_RESOURCE, which is why the parent, not the child, does it).

use nix::sys::resource::{setrlimit, Resource};
use nix::unistd::Pid;
use oci_spec::runtime::{PosixRlimitType, Spec};

use crate::child_error::ChildError;
use crate::stage::{ChildContext, Stage, StageError, StageOrder};

/// Last before the init (900) forks and the command execs: nothing of the launch itself
/// should be limited by the container's rlimits (a low RLIMIT_NOFILE, say).
pub const ORDER: StageOrder = StageOrder(890);

#[derive(Debug, thiserror::Error)]
pub enum ProcessLimitError {
    #[error("oomScoreAdj {0} is out of range: use -1000 to 1000")]
    OomScoreAdj(i32),
}

pub struct ProcessLimits {
    rlimits: Vec<(Resource, u64, u64)>,
    oom_score_adj: Option<i32>,
}

fn resource(typ: PosixRlimitType) -> Resource {
    match typ {
        PosixRlimitType::RlimitAs => Resource::RLIMIT_AS,
        PosixRlimitType::RlimitCore => Resource::RLIMIT_CORE,
        PosixRlimitType::RlimitCpu => Resource::RLIMIT_CPU,
        PosixRlimitType::RlimitData => Resource::RLIMIT_DATA,
        PosixRlimitType::RlimitFsize => Resource::RLIMIT_FSIZE,
        PosixRlimitType::RlimitLocks => Resource::RLIMIT_LOCKS,
        PosixRlimitType::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => Resource::RLIMIT_NICE,
        PosixRlimitType::RlimitNofile => Resource::RLIMIT_NOFILE,
        PosixRlimitType::RlimitNproc => Resource::RLIMIT_NPROC,
        PosixRlimitType::RlimitRss => Resource::RLIMIT_RSS,
        PosixRlimitType::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => Resource::RLIMIT_RTTIME,
        PosixRlimitType::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitStack => Resource::RLIMIT_STACK,
    }
}

impl ProcessLimits {
    /// The stage, when the spec sets any of these.
    pub fn from_spec(spec: &Spec) -> Result<Option<Self>, ProcessLimitError> {
        let Some(process) = spec.process().as_ref() else {
            return Ok(None);
        };
        let rlimits = process
            .rlimits()
            .iter()
            .flatten()
            .map(|r| (resource(r.typ()), r.soft(), r.hard()))
            .collect::<Vec<_>>();
        let oom_score_adj = process.oom_score_adj();
        if let Some(adj) = oom_score_adj.filter(|a| !(-1000..=1000).contains(a)) {
            return Err(ProcessLimitError::OomScoreAdj(adj));
        }
        if rlimits.is_empty() && oom_score_adj.is_none() {
            return Ok(None);
        }
        Ok(Some(Self { rlimits, oom_score_adj }))
    }
}

impl Stage for ProcessLimits {
    fn name(&self) -> &'static str {
        "process limits"
    }

    fn order(&self) -> StageOrder {
        ORDER
    }

    fn in_parent(&self, child: Pid) -> Result<(), StageError> {
        if let Some(adj) = self.oom_score_adj {
            let path = format!("/proc/{child}/oom_score_adj");
            std::fs::write(&path, adj.to_string()).map_err(|e| {
                StageError::new(
                    "process limits",
                    format!("writing oomScoreAdj {adj} to {path}: {e} (lowering it needs CAP_SYS_RESOURCE)"),
                )
            })?;
        }
        Ok(())
    }

    fn in_child(&self, _ctx: &ChildContext) -> Result<(), ChildError> {
        for (resource, soft, hard) in &self.rlimits {
            setrlimit(*resource, *soft, *hard)
                .map_err(|errno| ChildError::setup(errno, &[b"setting process.rlimits: setrlimit"]))?;
        }
        Ok(())
    }
}
