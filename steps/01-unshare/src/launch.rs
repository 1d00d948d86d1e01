//! Starting a container: `clone` into new namespaces, let each stage do its part on both
//! sides, `exec` the command, then supervise it until it ends.
//!
//! ```text
//!  parent (the tool)                         child (the container's first process)
//!  ─────────────────                         ──────────────────────────────────────
//!  build stages, prepare every path
//!  block forwarded signals
//!  clone(flags of all stages) ─────────────▶ wait for the go-ahead on the sync pipe
//!  stage.in_parent(child) for each
//!  write "go" ─────────────────────────────▶ stage.in_child() for each, in order
//!                                            execve(command)
//!  read the error pipe: EOF = exec ok  ◀──── or: write errno + message, _exit
//!  forward signals, reap, until it ends
//!  stage.cleanup() for each
//! ```

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use crate::child_error::{ChildError, ReportedError};
use crate::exec::{ExecPlan, ExecPlanError};
use crate::namespaces::{clone_flag, requested};
use crate::signals;
use crate::stage::{ChildContext, Stage, StageError};

/// The child runs on its own stack until it calls `exec`; its work is small.
const CHILD_STACK_SIZE: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(transparent)]
    Exec(#[from] ExecPlanError),
    #[error("the spec asks for a {0} namespace, which this step does not create (a later step does)")]
    UnhandledNamespace(LinuxNamespaceType),
    #[error("creating a pipe: {0}")]
    Pipe(Errno),
    #[error("blocking signals: {0}")]
    BlockSignals(Errno),
    #[error("creating the container process: clone({flags:?}): {}{}", errno.desc(), clone_hint(*errno))]
    Clone { flags: CloneFlags, errno: Errno },
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error(transparent)]
    Child(#[from] ReportedError),
    #[error("waiting for the container: {0}")]
    Wait(Errno),
}

fn clone_hint(errno: Errno) -> &'static str {
    match errno {
        Errno::EPERM => " (run as root, or allow unprivileged user namespaces: run `doctor` to see how)",
        Errno::ENOSPC | Errno::EUSERS => " (the limit on namespaces is reached: see /proc/sys/user/max_*_namespaces)",
        _ => "",
    }
}

impl LaunchError {
    /// The exit status the tool should end with, as docker's: 127 for a command not found,
    /// 126 for one that cannot be executed, 125 for everything that is the tool's failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            LaunchError::Child(report) => report.exit_code(),
            _ => 125,
        }
    }
}

/// How a container ended, and what its stages observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub status: WaitStatus,
    /// Lines for the user from [`Stage::after_exit`], in stage order.
    pub notes: Vec<String>,
}

/// Runs `spec.process` with `stages` and returns how it ended.
pub fn run(spec: &Spec, mut stages: Vec<Box<dyn Stage>>) -> Result<Exit, LaunchError> {
    let exec = ExecPlan::from_spec(spec)?;
    let flags = stages
        .iter()
        .fold(CloneFlags::empty(), |flags, s| flags | s.clone_flags());
    let handled = stages
        .iter()
        .fold(CloneFlags::empty(), |handled, s| handled | s.namespaces());
    if let Some(missing) = requested(spec).into_iter().find(|t| !handled.contains(clone_flag(*t))) {
        return Err(LaunchError::UnhandledNamespace(missing));
    }
    stages.sort_by_key(|stage| stage.order());

    let (sync_read, sync_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(LaunchError::Pipe)?;
    let (error_read, error_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(LaunchError::Pipe)?;
    let original_mask = signals::block().map_err(LaunchError::BlockSignals)?;
    let container = Container {
        stages: &stages,
        original_mask,
        pid: None,
    };
    let ctx = ChildContext {
        error_fd: error_write.as_raw_fd(),
        original_mask,
    };

    // ANCHOR: clone
    let mut stack = vec![0u8; CHILD_STACK_SIZE];
    let child_main = Box::new(|| child(&sync_read, &error_write, &stages, &exec, &ctx));
    // SAFETY: the child gets a copy of this single-threaded process (no CLONE_VM), runs on
    // `stack`, which outlives the call, and ends in exec or _exit without returning here.
    let pid = unsafe { nix::sched::clone(child_main, &mut stack, flags, Some(Signal::SIGCHLD as i32)) }
        .map_err(|errno| LaunchError::Clone { flags, errno })?;
    // ANCHOR_END: clone
    let mut container = container;
    container.pid = Some(pid);
    drop(sync_read);
    drop(error_write);

    for stage in &stages {
        stage.in_parent(pid)?;
    }
    // The child may go on. Then the error pipe tells how far it got: it closes with nothing
    // written when `exec` succeeds (close-on-exec), or carries the child's error.
    let _ = nix::unistd::write(sync_write.as_fd(), b"go");
    drop(sync_write);
    if let Some(report) = ReportedError::receive(error_read) {
        return Err(report.into());
    }
    let status = signals::supervise(pid).map_err(LaunchError::Wait)?;
    container.pid = None;
    let notes = stages.iter().flat_map(|stage| stage.after_exit()).collect();
    Ok(Exit { status, notes })
}

/// What must be undone however `run` leaves: a child still alive is killed and reaped, every
/// stage cleans up (in reverse order), the signal mask is restored.
struct Container<'a> {
    stages: &'a [Box<dyn Stage>],
    original_mask: nix::sys::signal::SigSet,
    pid: Option<Pid>,
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
        for stage in self.stages.iter().rev() {
            stage.cleanup();
        }
        signals::restore(&self.original_mask);
    }
}

// ANCHOR: child
/// The child's whole life before `exec`. It never returns: it execs or exits.
fn child(sync: &OwnedFd, errors: &OwnedFd, stages: &[Box<dyn Stage>], exec: &ExecPlan, ctx: &ChildContext) -> isize {
    // If the tool is killed (even with SIGKILL), the container goes with it instead of
    // running on unsupervised. Set before waiting for the go-ahead: a parent that died
    // before this point has closed the sync pipe, so the read below sees EOF.
    if nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err() {
        exit_now(125);
    }
    // Wait for the parent: until it has written our id maps (and, later, placed us in a
    // cgroup) we must not run anything. EOF instead of "go" means the parent gave up.
    let mut go = [0u8; 2];
    if !matches!(nix::unistd::read(sync.as_fd(), &mut go), Ok(2)) {
        exit_now(125);
    }
    for stage in stages {
        if let Err(error) = stage.in_child(ctx) {
            fail(errors, &error);
        }
    }
    let error = exec.exec(ctx);
    fail(errors, &error)
}
// ANCHOR_END: child

fn fail(errors: &OwnedFd, error: &ChildError) -> ! {
    error.send(errors.as_fd());
    exit_now(125)
}

/// Ends the child at once with `code`: no atexit handlers, no flushing of buffers that are
/// copies of the parent's (they would print twice).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit only ends the calling process; it touches no memory of ours.
    unsafe { libc::_exit(code) }
}
