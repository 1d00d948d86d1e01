//! Step 02's primitive: a PID namespace.
//!
//! The first process created in a new PID namespace is its PID 1. It sees only its own
//! descendants, and when it ends the kernel kills every other process of the namespace.
//! PID 1 is special in one more way: the kernel delivers it only the signals it has a handler
//! for (SIGKILL and SIGSTOP from outside excepted), which is why a plain `sleep` as PID 1
//! ignores SIGTERM, and why `--init` exists.

use nix::sched::CloneFlags;
use step01_unshare::namespaces::{flags_for, NamespaceError};
use step01_unshare::oci_spec::runtime::{LinuxNamespaceType, Spec};
use step01_unshare::stage::{Stage, StageOrder};

/// The PID namespace does nothing in the child itself: `clone` creates it.
pub const ORDER: StageOrder = StageOrder(110);

pub struct PidNamespace {
    flags: CloneFlags,
}

impl PidNamespace {
    pub fn from_spec(spec: &Spec) -> Result<Self, NamespaceError> {
        let flags = flags_for(spec, &[LinuxNamespaceType::Pid])?;
        Ok(Self { flags })
    }
}

impl Stage for PidNamespace {
    fn name(&self) -> &'static str {
        "pid namespace"
    }

    fn clone_flags(&self) -> CloneFlags {
        self.flags
    }

    fn order(&self) -> StageOrder {
        ORDER
    }
}
