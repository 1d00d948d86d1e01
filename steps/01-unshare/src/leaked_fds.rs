//! CVE-2024-21626 ("Leaky Vessels"): no descriptor of the host's reaches the container.
//!
//! runc held a directory descriptor of the host's `/sys/fs/cgroup` open when it started the
//! container's process. An image whose working directory was `/proc/self/fd/7` then put the
//! process's working directory *on the host* (the `chdir` happens before `exec`, while the
//! descriptor is still open), and `..` from there walked up to the host's `/`; a descriptor
//! still open after `exec` does the same from the command (`cd /proc/self/fd/7/..`). Two
//! measures, both in the child:
//!
//! 1. every descriptor from 3 on, except those passed on on purpose (runc's
//!    `--preserve-fds`), is marked close-on-exec (`launch::close_inherited_fds`);
//! 2. after the `chdir`, the working directory must be reachable from the container's root
//!    ([`check_cwd`]): the kernel's `getcwd` answers `(unreachable)/…` for one that is not.

use nix::errno::Errno;

use crate::child_error::ChildError;

/// **For tests only**: set, both measures are off, so a test can show the attack they stop
/// succeeding. Never set it otherwise.
pub const TEST_ONLY_SWITCH: &str = "KEEL_TEST_ONLY_LEAK_FDS";

/// Read in the parent (the child may not look at the environment).
pub fn measures_off() -> bool {
    std::env::var_os(TEST_ONLY_SWITCH).is_some()
}

// ANCHOR: check_cwd
/// In the child, right after `chdir`: fails unless the working directory is inside the
/// process's root. No allocation: the path goes into a buffer on the stack.
pub fn check_cwd(cwd: &[u8]) -> Result<(), ChildError> {
    let mut path = [0u8; libc::PATH_MAX as usize];
    // SAFETY: getcwd writes at most `path.len()` bytes into the buffer we own.
    let length = unsafe { libc::syscall(libc::SYS_getcwd, path.as_mut_ptr(), path.len()) };
    let fail = |errno| {
        ChildError::setup(
            errno,
            &[
                b"working directory ",
                cwd,
                b" is outside the container's root (a descriptor of the host's?)",
            ],
        )
    };
    if length < 0 {
        return Err(fail(Errno::last()));
    }
    if path[0] != b'/' {
        return Err(fail(Errno::EPERM));
    }
    Ok(())
}
// ANCHOR_END: check_cwd
