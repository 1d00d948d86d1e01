//! A stage is one kernel primitive's part in starting a container.
//!
//! Every step of keel adds exactly one stage. Step 01 brings the machinery that runs them
//! (see [`crate::launch`]) and its own stage, the UTS/IPC/network/user namespaces. Later steps
//! add a PID namespace and an init, a mount namespace and a root filesystem, cgroups... without
//! touching the code of the steps before them.

use nix::sched::CloneFlags;
use nix::sys::signal::SigSet;
use nix::unistd::Pid;
use std::os::fd::{OwnedFd, RawFd};

use crate::child_error::ChildError;

/// Where a stage's child-side work runs among the others. The kernel imposes an order: the
/// hostname can be set as soon as the UTS namespace exists, the root filesystem must be ready
/// before anything that runs inside it, and an init must fork only once everything is set up.
/// Each step defines the constant for its own stage, with the reason for its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct StageOrder(pub u16);

/// What the child knows about its own launch, for stages that need it (an init closes the
/// error pipe it does not own; a process about to exec restores the signal mask).
#[derive(Debug, Clone, Copy)]
pub struct ChildContext {
    /// The write end of the pipe that carries a [`ChildError`] to the parent (close-on-exec).
    pub error_fd: RawFd,
    /// The write end of the pipe on which a detached child says it is ready to be started.
    pub ready_fd: Option<RawFd>,
    /// The signal mask the tool had before it blocked the signals it forwards.
    pub original_mask: SigSet,
}

impl ChildContext {
    /// For a process that stays behind in the container without exec'ing (an init): the
    /// tool learns that the command started, or failed, when the last writer of these
    /// pipes is gone, so it must not hold them.
    pub fn close_launch_pipes(&self) {
        let _ = nix::unistd::close(self.error_fd);
        if let Some(ready) = self.ready_fd {
            let _ = nix::unistd::close(ready);
        }
    }
}

// ANCHOR: stage
/// One primitive's contribution to a container's start.
///
/// `in_child` runs between `clone` and `exec`: only async-signal-safe work belongs there
/// (syscalls on data prepared beforehand, no allocation, no locks, no logging). Prepare every
/// path as a `CString` when the stage is built, in the parent.
pub trait Stage {
    /// A short name for errors and the book: `namespaces`, `rootfs`, `init`.
    fn name(&self) -> &'static str;

    /// The namespaces this stage creates with `clone(2)`.
    fn clone_flags(&self) -> CloneFlags {
        CloneFlags::empty()
    }

    /// The namespaces of the spec this stage takes care of: those it clones, plus any it
    /// creates later itself (a cgroup namespace must wait until the child is in its cgroup).
    fn namespaces(&self) -> CloneFlags {
        self.clone_flags()
    }

    /// Where `in_child` runs among the other stages.
    fn order(&self) -> StageOrder;

    /// Runs in the parent before `clone`, always: work that must precede the child (step 04
    /// creates the cgroup here), and a cgroup v2 directory the child should be born in
    /// (`clone3` with `CLONE_INTO_CGROUP`, see [`crate::clone_into_cgroup`]), far cheaper
    /// than moving it there from `in_parent`. The directory is only a hint: on a kernel that
    /// cannot, the child is born where its parent is, and `in_parent` must still see to it.
    fn birth_cgroup(&self) -> Result<Option<OwnedFd>, StageError> {
        Ok(None)
    }

    /// Runs in the parent after `clone`, while the child still waits for the go-ahead:
    /// work the child cannot do for itself (user-id maps; a cgroup by pid when the child
    /// could not be born in it).
    fn in_parent(&self, _child: Pid) -> Result<(), StageError> {
        Ok(())
    }

    /// Runs in the child after the go-ahead, in [`StageOrder`], before the command is executed.
    fn in_child(&self, _ctx: &ChildContext) -> Result<(), ChildError> {
        Ok(())
    }

    /// Runs in the parent once the command has ended, before any cleanup: what the stage
    /// observed that the user should hear about (an OOM kill, resource usage), one line each.
    fn after_exit(&self) -> Vec<String> {
        Vec::new()
    }

    /// Runs in the parent once the container has ended, whatever happened, to remove what
    /// the stage created outside the container.
    fn cleanup(&self) {}
}
// ANCHOR_END: stage

/// A stage's parent-side failure.
#[derive(Debug, thiserror::Error)]
#[error("{stage}: {message}")]
pub struct StageError {
    pub stage: &'static str,
    pub message: String,
}

impl StageError {
    pub fn new(stage: &'static str, message: impl Into<String>) -> Self {
        Self {
            stage,
            message: message.into(),
        }
    }
}

/// A stage could not be built from the spec (each step has its own reasons).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct StageBuildError(Box<dyn std::error::Error + Send + Sync>);

impl StageBuildError {
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(error))
    }
}
