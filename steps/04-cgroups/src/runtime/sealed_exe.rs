//! CVE-2019-5736: the runtime runs from a sealed copy of itself, never from its file.
//!
//! A runtime that enters a container is, until it execs the container's command, a process of
//! the container whose `/proc/PID/exe` is the runtime's binary on the host. Worse, a container
//! whose command is `/proc/self/exe` (or a script starting `#!/proc/self/exe`) makes the
//! kernel execute *that* link as the runtime's exec resolves it: the runtime binary itself
//! then runs inside the container, as the container's process. Another process of the
//! container opens `/proc/PID/exe` while it runs, and once it has exited reopens that
//! descriptor for writing (`/proc/self/fd/N`): the host's runtime is overwritten, and the
//! next `docker exec` runs the attacker's program as root on the host. runc's fix is the one
//! here: before `create`, `run` or `exec` do anything, the binary copies itself into a memfd,
//! seals it against every change, and re-executes from it. `/proc/PID/exe` then names an
//! anonymous, unwritable file; the host's binary is never the process's executable.
//!
//! The price is a copy of the binary per command (it lives as long as the process does).

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use std::ffi::{CString, OsString};
use std::fs::File;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

/// **For tests only**: set, the runtime runs from its file as it did before this measure, so
/// a test can show the attack succeeding without it. Never set it otherwise.
pub const TEST_ONLY_SWITCH: &str = "KEEL_TEST_ONLY_UNSEALED_EXE";

/// `MFD_EXEC` (Linux 6.3): memfds may be refused execution otherwise (`vm.memfd_noexec`).
const MFD_EXEC: libc::c_uint = 0x0010;

#[derive(Debug, thiserror::Error)]
pub enum SealedExeError {
    #[error("protecting the runtime binary (CVE-2019-5736): {action}: {error}")]
    Io {
        action: &'static str,
        error: std::io::Error,
    },
    #[error("protecting the runtime binary (CVE-2019-5736): {action}: {}", .errno.desc())]
    Sys { action: &'static str, errno: Errno },
}

fn io(action: &'static str) -> impl FnOnce(std::io::Error) -> SealedExeError {
    move |error| SealedExeError::Io { action, error }
}

fn sys(action: &'static str) -> impl FnOnce(Errno) -> SealedExeError {
    move |errno| SealedExeError::Sys { action, errno }
}

/// The seals that make the copy unchangeable: no write, no resize, no removing a seal.
fn seals() -> SealFlag {
    SealFlag::F_SEAL_SEAL | SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_WRITE
}

/// Whether this process already runs from a sealed copy (after the re-exec below).
fn running_sealed(exe: &File) -> bool {
    match fcntl(exe.as_fd(), FcntlArg::F_GET_SEALS) {
        Ok(bits) => SealFlag::from_bits_truncate(bits).contains(seals()),
        // EINVAL: not a memfd at all.
        Err(_) => false,
    }
}

fn memfd() -> Result<OwnedFd, SealedExeError> {
    let name = c"keel-runtime";
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: memfd_create reads the NUL-terminated name and returns a new descriptor or -1.
    let mut fd = unsafe { libc::memfd_create(name.as_ptr(), flags | MFD_EXEC) };
    if fd < 0 && Errno::last() == Errno::EINVAL {
        // A kernel before 6.3 does not know MFD_EXEC (its memfds are executable anyway).
        // SAFETY: as above.
        fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    }
    if fd < 0 {
        return Err(sys("memfd_create")(Errno::last()));
    }
    // SAFETY: fd was just returned by memfd_create and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

// ANCHOR: ensure
/// Makes sure this process runs from a sealed memfd copy of its binary: returns at once
/// when it already does (or when the test-only switch is set); otherwise re-executes itself
/// with the same arguments and environment, and returns only on failure.
pub fn ensure(args: &[OsString]) -> Result<(), SealedExeError> {
    if std::env::var_os(TEST_ONLY_SWITCH).is_some() {
        return Ok(());
    }
    let mut exe = File::open("/proc/self/exe").map_err(io("opening /proc/self/exe"))?;
    if running_sealed(&exe) {
        return Ok(());
    }
    let mut copy = File::from(memfd()?);
    std::io::copy(&mut exe, &mut copy).map_err(io("copying the binary into a memfd"))?;
    fcntl(copy.as_fd(), FcntlArg::F_ADD_SEALS(seals())).map_err(sys("sealing the copy: fcntl(F_ADD_SEALS)"))?;
    let cstrings = |items: Vec<&[u8]>| -> Result<Vec<CString>, SealedExeError> {
        items
            .into_iter()
            .map(|bytes| CString::new(bytes).map_err(|_| sys("re-executing from the copy")(Errno::EINVAL)))
            .collect()
    };
    let argv = cstrings(args.iter().map(|a| a.as_bytes()).collect())?;
    let env: Vec<Vec<u8>> = std::env::vars_os()
        .map(|(key, value)| [key.as_bytes(), b"=", value.as_bytes()].concat())
        .collect();
    let envp = cstrings(env.iter().map(Vec::as_slice).collect())?;
    let Err(errno) = nix::unistd::fexecve(copy.as_fd(), &argv, &envp);
    Err(sys("re-executing from the copy: fexecve")(errno))
}
// ANCHOR_END: ensure
