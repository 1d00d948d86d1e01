//! `create`, then `start`: a container set up completely, its command not yet running.
//!
//! An OCI runtime creates a container in one command and starts it in another, from other
//! processes (containerd's shim waits in between to wire up stdio and metrics). The first
//! process of the container does all its setup, then blocks opening a FIFO for writing;
//! `start` opens the same FIFO for reading, which lets that `open` return, and the process
//! goes on to `exec`. The FIFO lives in the runtime's state directory, outside the container:
//! the child reaches it through a file descriptor opened before `clone` (`O_PATH`, reopened
//! through `/proc/self/fd`), because after `pivot_root` the path no longer resolves.

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::child_error::ChildError;
use crate::path_error::{path_error, PathError};

/// How long `start` waits for a created container to take the go-ahead.
const START_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error(transparent)]
    Io(#[from] PathError),
    #[error("making the start fifo {}: {}", .0.display(), .1.desc())]
    Fifo(PathBuf, Errno),
    #[error("the container is not waiting to be started (its process has exited)")]
    NotWaiting,
    #[error("the container did not take the go-ahead within {0:?}")]
    Timeout(Duration),
}

/// The created container's side of the FIFO.
pub struct StartGate {
    /// Keeps the FIFO reachable after the child changed its root.
    _fifo: OwnedFd,
    /// `/proc/self/fd/N` for that descriptor, prepared before `clone`.
    reopen: CString,
}

impl StartGate {
    /// Makes the FIFO at `path` (which must not exist) and holds it open.
    pub fn new(path: &Path) -> Result<Self, GateError> {
        nix::unistd::mkfifo(path, Mode::from_bits_truncate(0o600))
            .map_err(|errno| GateError::Fifo(path.to_owned(), errno))?;
        // The child opens it as the container's user, after dropping its capabilities: anyone
        // may open it for writing (as runc's exec.fifo, 0622), which only waits for `start`;
        // opening it for reading, which lets the container go, stays the owner's.
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o622))
            .map_err(path_error("making the start fifo writable", path))?;
        let fifo = nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|errno| GateError::Fifo(path.to_owned(), errno))?;
        let reopen = CString::new(format!("/proc/self/fd/{}", fifo.as_raw_fd()))
            .map_err(|_| GateError::Fifo(path.to_owned(), Errno::EINVAL))?;
        Ok(Self { _fifo: fifo, reopen })
    }

    // ANCHOR: wait
    /// In the child, just before `exec`: blocks until `start` opens the other end.
    pub(crate) fn wait(&self) -> Result<(), ChildError> {
        let fail = |errno| {
            ChildError::setup(
                errno,
                &[b"waiting for start: opening the start fifo (is /proc mounted?)"],
            )
        };
        // Opening a FIFO for writing blocks until a reader opens it: that is the whole gate.
        let fd = nix::fcntl::open(
            self.reopen.as_c_str(),
            OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(fail)?;
        nix::unistd::write(fd.as_fd(), b"0").map_err(fail)?;
        Ok(())
    }
    // ANCHOR_END: wait
}

/// `start`: lets the container waiting on the FIFO at `path` go on, then removes the FIFO.
/// `alive` says whether the container's process still exists (it may have been killed
/// while waiting, and then nobody will ever write).
pub fn open(path: &Path, alive: impl Fn() -> bool) -> Result<(), GateError> {
    // Non-blocking, so a container that died cannot make `start` hang.
    let fifo = nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| path_error("opening the start fifo", path)(e.into()))?;
    let deadline = Instant::now() + START_TIMEOUT;
    let mut byte = [0u8; 1];
    loop {
        match nix::unistd::read(fifo.as_fd(), &mut byte) {
            Ok(1) => break,
            // No writer yet (the child's `open` has not returned), or nothing written yet.
            Ok(_) | Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
            Err(errno) => return Err(path_error("reading the start fifo", path)(errno.into()).into()),
        }
        if !alive() {
            return Err(GateError::NotWaiting);
        }
        if Instant::now() > deadline {
            return Err(GateError::Timeout(START_TIMEOUT));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    std::fs::remove_file(path).map_err(path_error("removing the start fifo", path))?;
    Ok(())
}
