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
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use crate::child_error::{ChildError, ReportedError};
use crate::clone_into_cgroup::{clone_into_cgroup, Cloned};
use crate::exec::{ExecPlan, ExecPlanError};
use crate::namespaces::{clone_flag, requested, Joins, NamespaceError};
use crate::signals;
use crate::stage::{ChildContext, Stage, StageError};
use crate::start_gate::StartGate;

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
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    #[error("entering the PID namespace given by path: setns: {}", .0.desc())]
    JoinPid(Errno),
    #[error("the container's process exited before it was ready to start")]
    NotReady,
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

/// How a detached container is left when `create` returns (runc's `create` and `exec --detach`).
#[derive(Default)]
pub struct Detached<'a> {
    /// Hold the command before `exec` until `start` opens the gate; without one, `create`
    /// returns once the command is executing.
    pub gate: Option<&'a StartGate>,
    /// Descriptors 3 to 3+N-1 are passed on to the container (runc's `--preserve-fds`);
    /// every other one above 2 is closed at `exec`.
    pub preserve_fds: u32,
}

/// Runs `spec.process` with `stages` and returns how it ended.
pub fn run(spec: &Spec, stages: Vec<Box<dyn Stage>>) -> Result<Exit, LaunchError> {
    let mut launched = launch(spec, stages, None)?;
    if let Some(report) = ReportedError::receive(&launched.error_read) {
        return Err(report.into());
    }
    let pid = launched.container.pid.ok_or(LaunchError::Wait(Errno::ECHILD))?;
    let status = signals::supervise(pid).map_err(LaunchError::Wait)?;
    launched.container.pid = None;
    let notes = launched
        .container
        .stages
        .iter()
        .flat_map(|stage| stage.after_exit())
        .collect();
    Ok(Exit { status, notes })
}

/// Starts `spec.process` with `stages` and returns its pid without waiting for it: the
/// container outlives this process (runc's `create`). Nothing is cleaned up on success: that
/// is the job of whoever deletes the container later, with the same stages.
pub fn create(spec: &Spec, stages: Vec<Box<dyn Stage>>, detached: &Detached) -> Result<Pid, LaunchError> {
    let mut launched = launch(spec, stages, Some(detached))?;
    match &launched.ready_read {
        // With a gate, the child says "ready" just before it blocks on it; EOF instead means
        // it failed, and the error pipe says why.
        Some(ready) => {
            let mut byte = [0u8; 1];
            if !matches!(nix::unistd::read(ready.as_fd(), &mut byte), Ok(1)) {
                let report = ReportedError::receive(&launched.error_read);
                return Err(report.map_or(LaunchError::NotReady, LaunchError::from));
            }
        }
        None => {
            if let Some(report) = ReportedError::receive(&launched.error_read) {
                return Err(report.into());
            }
        }
    }
    let pid = launched.container.pid.ok_or(LaunchError::Wait(Errno::ECHILD))?;
    launched.container.pid = None;
    launched.container.keep = true;
    Ok(pid)
}

/// A child that has been let go, with what the parent still reads from it.
struct Launched {
    container: Container,
    error_read: OwnedFd,
    ready_read: Option<OwnedFd>,
}

/// Everything up to the go-ahead: clone, the parent's part of each stage, "go".
fn launch(spec: &Spec, mut stages: Vec<Box<dyn Stage>>, detached: Option<&Detached>) -> Result<Launched, LaunchError> {
    let exec = ExecPlan::from_spec(spec)?;
    let joins = Joins::open(spec)?;
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
    let gate = detached.and_then(|d| d.gate);
    let (ready_read, ready_write) = match gate {
        Some(_) => {
            let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(LaunchError::Pipe)?;
            (Some(read), Some(write))
        }
        None => (None, None),
    };
    let original_mask = signals::block().map_err(LaunchError::BlockSignals)?;
    let mut container = Container {
        stages,
        original_mask,
        pid: None,
        keep: false,
    };
    joins.enter_pid_namespace_for_children().map_err(LaunchError::JoinPid)?;
    let ctx = ChildContext {
        error_fd: error_write.as_raw_fd(),
        ready_fd: ready_write.as_ref().map(|fd| fd.as_raw_fd()),
        original_mask,
    };
    let plan = ChildPlan {
        sync: &sync_read,
        errors: &error_write,
        stages: &container.stages,
        joins: &joins,
        exec: &exec,
        ctx: &ctx,
        gate,
        // A foreground container dies with the tool; a detached one outlives it by design.
        die_with_parent: detached.is_none(),
        first_fd_to_close: 3 + detached.map_or(0, |d| d.preserve_fds),
        keep_inherited_fds: crate::leaked_fds::measures_off(),
    };

    let mut birth_cgroup = None;
    for stage in &container.stages {
        birth_cgroup = birth_cgroup.or(stage.birth_cgroup()?);
    }
    let born = match &birth_cgroup {
        // SAFETY: as for `clone` below; the child runs `child`, which never returns.
        Some(cgroup) => match unsafe { clone_into_cgroup(flags, cgroup.as_fd()) } {
            Ok(Cloned::Child) => exit_now(child(&plan) as i32),
            Ok(Cloned::Parent(pid)) => Some(pid),
            // No clone3 (before Linux 5.7, or a seccomp filter refusing it): a plain
            // clone, and the stage moves the child from `in_parent`.
            Err(_) => None,
        },
        None => None,
    };
    // ANCHOR: clone
    let pid = match born {
        Some(pid) => pid,
        None => {
            let mut stack = vec![0u8; CHILD_STACK_SIZE];
            let child_main = Box::new(|| child(&plan));
            // SAFETY: the child gets a copy of this single-threaded process (no CLONE_VM),
            // runs on `stack`, which outlives the call, and ends in exec or _exit without
            // returning here.
            unsafe { nix::sched::clone(child_main, &mut stack, flags, Some(Signal::SIGCHLD as i32)) }
                .map_err(|errno| LaunchError::Clone { flags, errno })?
        }
    };
    // ANCHOR_END: clone
    drop(birth_cgroup);
    container.pid = Some(pid);
    drop(sync_read);
    drop(error_write);
    drop(ready_write);

    for stage in &container.stages {
        stage.in_parent(pid)?;
    }
    // The child may go on. Then the error pipe tells how far it got: it closes with nothing
    // written when `exec` succeeds (close-on-exec), or carries the child's error.
    let _ = nix::unistd::write(sync_write.as_fd(), b"go");
    drop(sync_write);
    Ok(Launched {
        container,
        error_read,
        ready_read,
    })
}

/// What must be undone however `run` leaves: a child still alive is killed and reaped, every
/// stage cleans up (in reverse order), the signal mask is restored.
/// A detached container that was created successfully is kept: its stages clean up when
/// it is deleted, by another process.
struct Container {
    stages: Vec<Box<dyn Stage>>,
    original_mask: nix::sys::signal::SigSet,
    pid: Option<Pid>,
    keep: bool,
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
        if !self.keep {
            for stage in self.stages.iter().rev() {
                stage.cleanup();
            }
        }
        signals::restore(&self.original_mask);
    }
}

// ANCHOR: child
/// What the child needs, all prepared before `clone`.
struct ChildPlan<'a> {
    sync: &'a OwnedFd,
    errors: &'a OwnedFd,
    stages: &'a [Box<dyn Stage>],
    joins: &'a Joins,
    exec: &'a ExecPlan,
    ctx: &'a ChildContext,
    gate: Option<&'a StartGate>,
    die_with_parent: bool,
    first_fd_to_close: u32,
    /// Only with the test-only switch of [`crate::leaked_fds`].
    keep_inherited_fds: bool,
}

/// The child's whole life before `exec`. It never returns: it execs or exits.
fn child(plan: &ChildPlan) -> isize {
    // If the tool is killed (even with SIGKILL), the container goes with it instead of
    // running on unsupervised. Set before waiting for the go-ahead: a parent that died
    // before this point has closed the sync pipe, so the read below sees EOF.
    if plan.die_with_parent && nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err() {
        exit_now(125);
    }
    // Wait for the parent: until it has written our id maps (and, from step 04, made sure
    // we are in our cgroup, or opened the files we join it by) we must not run anything.
    // EOF instead of "go" means the parent gave up.
    let mut go = [0u8; 2];
    if !matches!(nix::unistd::read(plan.sync.as_fd(), &mut go), Ok(2)) {
        exit_now(125);
    }
    if let Err(error) = plan.joins.enter() {
        fail(plan.errors, &error);
    }
    for stage in plan.stages {
        if let Err(error) = stage.in_child(plan.ctx) {
            fail(plan.errors, &error);
        }
    }
    // No descriptor of the tool's (or of whoever started it) may reach the command: mark
    // them all close-on-exec (runc's CVE-2024-21626 was a leaked directory descriptor).
    if !plan.keep_inherited_fds {
        if let Err(error) = close_inherited_fds(plan.first_fd_to_close) {
            fail(plan.errors, &error);
        }
    }
    if let Some(gate) = plan.gate {
        // A missing command is `create`'s error, as with runc, not a surprise after `start`.
        if let Err(error) = plan.exec.find() {
            fail(plan.errors, &error);
        }
        if let Some(ready) = plan.ctx.ready_fd {
            // SAFETY: `ready` is the pipe's write end, open in this process until exec.
            let ready = unsafe { BorrowedFd::borrow_raw(ready) };
            let _ = nix::unistd::write(ready, b"r");
        }
        if let Err(error) = gate.wait() {
            fail(plan.errors, &error);
        }
    }
    let error = plan.exec.exec(plan.ctx);
    fail(plan.errors, &error)
}
// ANCHOR_END: child

fn fail(errors: &OwnedFd, error: &ChildError) -> ! {
    error.send(errors.as_fd());
    exit_now(error.exit_code())
}

/// `close_range(first, ~0, CLOSE_RANGE_CLOEXEC)`: every descriptor from `first` on closes at
/// `exec`, while the ones the launch still needs (the error pipe, the start gate) stay
/// usable until then.
fn close_inherited_fds(first: u32) -> Result<(), ChildError> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range only changes flags on this process's descriptor table.
    let result = unsafe { libc::syscall(libc::SYS_close_range, first, libc::c_uint::MAX, CLOSE_RANGE_CLOEXEC) };
    if result != 0 {
        return Err(ChildError::setup(
            Errno::last(),
            &[b"marking inherited descriptors close-on-exec: close_range"],
        ));
    }
    Ok(())
}

/// Ends the child at once with `code`: no atexit handlers, no flushing of buffers that are
/// copies of the parent's (they would print twice).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit only ends the calling process; it touches no memory of ours.
    unsafe { libc::_exit(code) }
}
