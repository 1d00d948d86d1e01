//! How a failure in the child, between `clone` and `exec`, reaches the user as one clear line.
//!
//! The child cannot allocate or log safely, so it copies a few byte slices (a stage, a path,
//! a syscall name) into a fixed buffer and writes it, with the errno, to a close-on-exec pipe.
//! The parent reads the pipe: nothing before EOF means `exec` succeeded; otherwise it prints
//! `entering rootfs /x: pivot_root: Invalid argument`.

use nix::errno::Errno;
use std::os::fd::{AsFd, BorrowedFd};

const CAPACITY: usize = 512;

/// Which part of the launch failed: it decides the exit status, as docker does (125 for the
/// tool, 126 for a command that cannot be executed, 127 for one that is not found).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Setup = 1,
    Exec = 2,
}

/// A failure in the child, built without allocating.
pub struct ChildError {
    failure: Failure,
    errno: Errno,
    len: usize,
    message: [u8; CAPACITY],
}

impl ChildError {
    /// `parts` are concatenated into the message, e.g. `[b"entering rootfs ", path, b": pivot_root"]`.
    pub fn new(failure: Failure, errno: Errno, parts: &[&[u8]]) -> Self {
        let mut error = Self {
            failure,
            errno,
            len: 0,
            message: [0; CAPACITY],
        };
        for part in parts {
            let room = CAPACITY - error.len;
            let n = part.len().min(room);
            error.message[error.len..error.len + n].copy_from_slice(&part[..n]);
            error.len += n;
        }
        error
    }

    /// The status the child exits with after reporting this error (see [`ReportedError::exit_code`]).
    pub fn exit_code(&self) -> i32 {
        exit_code(self.failure, self.errno)
    }

    /// A failed setup step: exit status 125.
    pub fn setup(errno: Errno, parts: &[&[u8]]) -> Self {
        Self::new(Failure::Setup, errno, parts)
    }

    // ANCHOR: send
    /// Sends the error to the parent in one `write`, so it cannot be torn.
    pub fn send(&self, pipe: BorrowedFd<'_>) {
        let mut frame = [0u8; CAPACITY + 5];
        frame[0] = self.failure as u8;
        frame[1..5].copy_from_slice(&(self.errno as i32).to_le_bytes());
        frame[5..5 + self.len].copy_from_slice(&self.message[..self.len]);
        // Nothing is left to do if the parent is gone: the child exits right after.
        let _ = nix::unistd::write(pipe, &frame[..5 + self.len]);
    }
    // ANCHOR_END: send
}

/// The parent's view of a child failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}: {}", errno.desc())]
pub struct ReportedError {
    pub failure: Failure,
    pub errno: Errno,
    pub message: String,
}

impl ReportedError {
    /// Reads what the child wrote before the pipe closed: `None` when it wrote nothing, that
    /// is, when `exec` closed the pipe.
    pub fn receive(pipe: impl AsFd) -> Option<Self> {
        let mut frame = Vec::new();
        let mut chunk = [0u8; CAPACITY + 5];
        loop {
            match nix::unistd::read(pipe.as_fd(), &mut chunk) {
                Ok(0) => break,
                Ok(n) => frame.extend_from_slice(&chunk[..n]),
                Err(Errno::EINTR) => continue,
                Err(_) => break,
            }
        }
        Self::decode(&frame)
    }

    fn decode(frame: &[u8]) -> Option<Self> {
        if frame.len() < 5 {
            return None;
        }
        let failure = if frame[0] == Failure::Exec as u8 {
            Failure::Exec
        } else {
            Failure::Setup
        };
        let errno = Errno::from_raw(i32::from_le_bytes([frame[1], frame[2], frame[3], frame[4]]));
        let message = String::from_utf8_lossy(&frame[5..]).into_owned();
        Some(Self {
            failure,
            errno,
            message,
        })
    }

    /// The exit status docker would give: 127 for a command that is not found, 126 for one
    /// that cannot be executed, 125 when the tool itself failed.
    pub fn exit_code(&self) -> i32 {
        exit_code(self.failure, self.errno)
    }
}

fn exit_code(failure: Failure, errno: Errno) -> i32 {
    match (failure, errno) {
        (Failure::Exec, Errno::ENOENT | Errno::ENOTDIR) => 127,
        (Failure::Exec, Errno::EACCES | Errno::ENOEXEC | Errno::EPERM | Errno::EISDIR) => 126,
        _ => 125,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(error: &ChildError) -> ReportedError {
        let (read, write) = nix::unistd::pipe().expect("pipe");
        error.send(write.as_fd());
        drop(write);
        ReportedError::receive(read).expect("a report")
    }

    #[test]
    fn a_setup_failure_names_stage_path_and_errno() {
        let error = ChildError::setup(Errno::EINVAL, &[b"entering rootfs ", b"/x", b": pivot_root"]);
        let report = round_trip(&error);
        assert_eq!(report.to_string(), "entering rootfs /x: pivot_root: Invalid argument");
        assert_eq!(report.exit_code(), 125);
    }

    #[test]
    fn exec_failures_map_to_dockers_exit_codes() {
        let not_found = ChildError::new(Failure::Exec, Errno::ENOENT, &[b"exec \"nope\""]);
        assert_eq!(round_trip(&not_found).exit_code(), 127);
        let not_executable = ChildError::new(Failure::Exec, Errno::EACCES, &[b"exec \"/etc\""]);
        assert_eq!(round_trip(&not_executable).exit_code(), 126);
    }

    #[test]
    fn an_overlong_message_is_cut_not_overflowed() {
        let long = [b'a'; 2 * CAPACITY];
        let report = round_trip(&ChildError::setup(Errno::EIO, &[&long]));
        assert_eq!(report.message.len(), CAPACITY);
    }

    #[test]
    fn nothing_written_means_exec_succeeded() {
        let (read, write) = nix::unistd::pipe().expect("pipe");
        drop(write);
        assert_eq!(ReportedError::receive(read), None);
    }
}
