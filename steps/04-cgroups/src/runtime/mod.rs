//! # The runtime command line: step 04 as a drop-in for runc
//!
//! With cgroups, the chain of steps 01–04 can do what runc does for containerd, Docker and
//! Kubernetes: turn an OCI bundle (`config.json` + a root filesystem) into a running
//! container. What is left is runc's command line, which `containerd-shim-runc-v2` drives
//! (see the book's runtime chapter): `create` returns while the container waits on a FIFO,
//! `start` lets it go, `state`, `kill`, `delete`, `exec`, `ps`, and the cgroup operations
//! `pause`/`resume`/`update`. Its state lives in `--root/ID`, so it outlives each command.
//!
//! The binary is runc-like when its first argument is one of runc's global flags or
//! commands (`step04-cgroups --root /run/x create …`), or when it is called `runc` or
//! `keel-runc` (a symlink); otherwise it is the workshop's `run -- COMMAND`.

mod bundle;
mod cli;
mod control;
mod exec;
mod hooks;
mod inspect;
mod kill;
mod lifecycle;
mod log;
mod not_dumpable;
mod sealed_exe;
pub mod state;
mod terminal;
mod test_pause;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::cgroups::CgroupError;
use step03_mount_ns::step02_pid_ns::step01_unshare::launch::LaunchError;
use step03_mount_ns::step02_pid_ns::step01_unshare::path_error::PathError;
use step03_mount_ns::step02_pid_ns::step01_unshare::stage::StageBuildError;
use step03_mount_ns::step02_pid_ns::step01_unshare::start_gate::GateError;

/// Where container state lives when `--root` is not given (runc's is /run/runc).
pub const DEFAULT_ROOT: &str = "/run/keel";

/// The runtime's failures. The wording of `NotFound` and `NotRunning` is runc's: containerd
/// matches "does not exist" and "container not running" in it.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("container does not exist")]
    NotFound(String),
    #[error("container not running")]
    NotRunning(String),
    #[error("container with id exists: {0}")]
    Exists(String),
    #[error("invalid container id {0:?}: use letters, digits, '_', '+', '-' and '.'")]
    BadId(String),
    #[error("cannot {action} container {id} that is {status}{hint}")]
    WrongStatus {
        action: &'static str,
        id: String,
        status: state::Status,
        hint: &'static str,
    },
    #[error(transparent)]
    Io(#[from] PathError),
    #[error("{} is not a valid record: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("bundle {}: {reason}", path.display())]
    Bundle { path: PathBuf, reason: String },
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Launch(#[from] LaunchError),
    #[error(transparent)]
    Stages(#[from] StageBuildError),
    #[error(transparent)]
    Gate(#[from] GateError),
    #[error("{0}")]
    Usage(String),
    #[error("{action}: {}", errno.desc())]
    Sys {
        action: &'static str,
        errno: nix::errno::Errno,
    },
    #[error("hook {path}: {message}")]
    Hook { path: String, message: String },
}

impl RuntimeError {
    pub fn io(action: &'static str, path: &Path, error: std::io::Error) -> Self {
        Self::Io(PathError {
            action,
            path: path.to_owned(),
            error,
        })
    }
}

/// Whether these arguments ask for the runtime's command line rather than the workshop's.
pub fn invoked_as_runtime(args: &[OsString]) -> bool {
    let name = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned());
    if matches!(name.as_deref(), Some("runc" | "keel-runc")) {
        return true;
    }
    let Some(first) = args.get(1).and_then(|a| a.to_str()) else {
        return false;
    };
    let flag = first.split('=').next().unwrap_or(first);
    let runc_flags = [
        "--root",
        "--log",
        "--log-format",
        "--systemd-cgroup",
        "--debug",
        "--criu",
        "--rootless",
    ];
    let runc_only = [
        "create", "start", "state", "kill", "delete", "exec", "ps", "pause", "resume", "update", "list", "features",
    ];
    // `run` is both the workshop's (`run -- COMMAND`) and runc's (`run --bundle B ID`): runc's
    // form is recognised by its bundle flag.
    let runc_run = first == "run"
        && args
            .iter()
            .skip(2)
            .any(|a| matches!(a.to_str(), Some("--bundle" | "-b")));
    runc_flags.contains(&flag) || runc_only.contains(&first) || runc_run
}

/// The runtime's `main`: runc's exit statuses (0, or 1 with the error on stderr and in the
/// log), except where a command passes on its process's status (`run`, `exec`).
pub fn main(args: Vec<OsString>) -> ! {
    cli::main(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<OsString> {
        text.split(' ').map(OsString::from).collect()
    }

    #[test]
    fn runc_style_arguments_select_the_runtime() {
        for line in [
            "step04-cgroups --root /run/x --log /b/log.json --log-format json create --bundle /b id",
            "step04-cgroups --log=/b/log.json state id",
            "step04-cgroups delete --force id",
            "step04-cgroups run --bundle /b id",
            "/usr/local/bin/keel-runc run id",
        ] {
            assert!(invoked_as_runtime(&args(line)), "{line}");
        }
    }

    #[test]
    fn the_workshop_command_line_stays_the_workshops() {
        for line in [
            "step04-cgroups run -- sh",
            "step04-cgroups run --memory 32m sh",
            "step04-cgroups doctor",
            "step04-cgroups",
        ] {
            assert!(!invoked_as_runtime(&args(line)), "{line}");
        }
    }
}
