//! The container's stdio as the monitor sets it up: three pipes, or — for `-t` — a console
//! socket on which the runtime sends the pty master it made inside the container.

use nix::fcntl::OFlag;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;

use super::{io, MonitorArgs, MonitorError};

/// The monitor's ends: what the container reads and writes, seen from outside.
pub struct Ours {
    /// Written to by attached clients; `None` when the container has no stdin.
    pub stdin: Option<File>,
    /// The pty master, for resizes.
    pub master: Option<Arc<File>>,
    /// Each output with its stream name (for the log) and stdcopy stream number.
    pub outputs: Vec<(File, &'static str, u8)>,
}

pub struct Stdio {
    pub console_socket: Option<PathBuf>,
    listener: Option<UnixListener>,
    want_stdin: bool,
    container: Option<[std::process::Stdio; 3]>,
    ours: Ours,
}

// ANCHOR: pipe
fn pipe() -> Result<(OwnedFd, OwnedFd), MonitorError> {
    // CLOEXEC: our ends must not leak into the runtime and from there into the container,
    // or the container's exit would never show as EOF.
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| io("making a pipe")(e.into()))
}
// ANCHOR_END: pipe

impl Stdio {
    pub fn prepare(args: &MonitorArgs) -> Result<Self, MonitorError> {
        if args.tty {
            let path = crate::record::console_socket(&args.runtime_root, &args.id, "console");
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
            }
            let _ = std::fs::remove_file(&path);
            let listener = UnixListener::bind(&path).map_err(io(format!("listening on {}", path.display())))?;
            return Ok(Self {
                console_socket: Some(path),
                listener: Some(listener),
                want_stdin: args.stdin,
                container: Some([
                    std::process::Stdio::null(),
                    std::process::Stdio::null(),
                    std::process::Stdio::null(),
                ]),
                ours: Ours {
                    stdin: None,
                    master: None,
                    outputs: Vec::new(),
                },
            });
        }
        let (stdin, our_stdin) = if args.stdin {
            let (read, write) = pipe()?;
            (std::process::Stdio::from(read), Some(File::from(write)))
        } else {
            (std::process::Stdio::null(), None)
        };
        let (out_read, out_write) = pipe()?;
        let (err_read, err_write) = pipe()?;
        Ok(Self {
            console_socket: None,
            listener: None,
            want_stdin: args.stdin,
            container: Some([stdin, out_write.into(), err_write.into()]),
            ours: Ours {
                stdin: our_stdin,
                master: None,
                outputs: vec![(File::from(out_read), "stdout", 1), (File::from(err_read), "stderr", 2)],
            },
        })
    }

    /// The container's ends, for the runtime's `create` (which the container inherits).
    pub fn for_runtime(
        &mut self,
    ) -> Result<(std::process::Stdio, std::process::Stdio, std::process::Stdio), MonitorError> {
        let [stdin, stdout, stderr] = self
            .container
            .take()
            .ok_or_else(|| MonitorError::Runtime("the container's stdio was handed out twice".into()))?;
        Ok((stdin, stdout, stderr))
    }

    /// After `create`: our ends; for a terminal, the master the runtime sent (it is already
    /// queued on the socket, since create returns only after sending it).
    pub fn finish(mut self) -> Result<Ours, MonitorError> {
        let Some(listener) = self.listener.take() else {
            return Ok(self.ours);
        };
        listener
            .set_nonblocking(true)
            .map_err(io("reading the console socket"))?;
        let master = accept_master(&listener)?;
        if let Some(path) = &self.console_socket {
            let _ = std::fs::remove_file(path);
        }
        let reader = master.try_clone().map_err(io("duplicating the pty master"))?;
        let stdin = if self.want_stdin {
            Some(master.try_clone().map_err(io("duplicating the pty master"))?)
        } else {
            None
        };
        Ok(Ours {
            stdin,
            master: Some(Arc::new(master)),
            outputs: vec![(reader, "stdout", 1)],
        })
    }
}

/// The pty master a runtime sends on a console socket (its connection is already queued,
/// or comes soon: a blocking listener waits for it).
pub fn accept_master(listener: &UnixListener) -> Result<File, MonitorError> {
    let (connection, _) = listener
        .accept()
        .map_err(io("the runtime sent no pty master on the console socket"))?;
    connection
        .set_nonblocking(false)
        .map_err(io("reading the console socket"))?;
    Ok(File::from(receive_fd(&connection)?))
}

/// One descriptor received with SCM_RIGHTS (runc's console-socket protocol).
fn receive_fd(connection: &std::os::unix::net::UnixStream) -> Result<OwnedFd, MonitorError> {
    use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut ancillary = RecvAncillaryBuffer::new(&mut space);
    let mut name = [0u8; 4096];
    recvmsg(
        connection,
        &mut [std::io::IoSliceMut::new(&mut name)],
        &mut ancillary,
        RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(|e| io("receiving the pty master")(e.into()))?;
    for message in ancillary.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = message {
            if let Some(fd) = fds.next() {
                return Ok(fd);
            }
        }
    }
    Err(MonitorError::Runtime("the console socket carried no descriptor".into()))
}
