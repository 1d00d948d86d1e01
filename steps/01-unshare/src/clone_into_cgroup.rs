//! `clone3(2)` with `CLONE_INTO_CGROUP` (Linux 5.7): a child born in a cgroup v2 directory.
//!
//! Moving a running process into a cgroup (writing its pid to `cgroup.procs`, what step 04
//! does from [`crate::stage::Stage::in_parent`]) takes a kernel lock for writing, and taking
//! it waits for an RCU grace period: several milliseconds, the largest single cost of starting
//! a container. A child born in the cgroup only takes that lock for reading. A stage asks for
//! it with [`crate::stage::Stage::birth_cgroup`]; step 01 has no cgroup of its own.
//!
//! `clone3` returns twice, like `fork`: 0 in the child, which goes on from here on a copy of
//! the parent's stack (no separate stack, unlike `nix::sched::clone`'s closure).

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `CLONE_INTO_CGROUP`: the `cgroup` field of the arguments is a cgroup2 directory.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` as of Linux 5.7 (`CLONE_ARGS_SIZE_VER2`, 88 bytes): the kernel reads
/// as many fields as the size passed says.
#[repr(C)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Which side of the clone this is.
pub enum Cloned {
    Parent(Pid),
    Child,
}

/// Clones this process into new namespaces (`flags`) and into `cgroup`, with SIGCHLD on exit.
///
/// # Safety
///
/// The same as `fork`'s: the caller is single-threaded (the child gets only the calling
/// thread, and any lock another thread held stays locked), and on [`Cloned::Child`] it does
/// only async-signal-safe work and ends in `exec` or `_exit`, never returning to code that
/// expects to run once.
pub unsafe fn clone_into_cgroup(flags: CloneFlags, cgroup: BorrowedFd) -> Result<Cloned, Errno> {
    let args = CloneArgs {
        flags: flags.bits() as u32 as u64 | CLONE_INTO_CGROUP,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: Signal::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: cgroup.as_raw_fd() as u64,
    };
    // SAFETY: the kernel reads `size_of::<CloneArgs>()` bytes of `args`, which lives until
    // the call returns (in both processes); without CLONE_VM or a stack the child runs on a
    // copy of this stack, as after fork. The caller upholds the rest (see above).
    let result = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match result {
        -1 => Err(Errno::last()),
        0 => Ok(Cloned::Child),
        pid => Ok(Cloned::Parent(Pid::from_raw(pid as i32))),
    }
}
