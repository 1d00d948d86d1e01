//! `process.terminal` with `--console-socket`: the container's process gets a pseudo-terminal
//! as its stdin, stdout and stderr, and its controlling terminal; the other end, the master,
//! is sent to whoever listens on the console socket (containerd's shim), which copies it to
//! the user's terminal and resizes it. The pty is opened inside the container, from its own
//! devpts instance, so the process sees `/dev/pts/0` of its own.

use nix::errno::Errno;
use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use step03_mount_ns::step02_pid_ns::step01_unshare::child_error::ChildError;
use step03_mount_ns::step02_pid_ns::step01_unshare::stage::{ChildContext, Stage, StageOrder};

use super::RuntimeError;

/// After the root filesystem (its /dev/pts) and the cgroup namespace, before an init forks:
/// the init and the command then share the terminal.
pub const ORDER: StageOrder = StageOrder(850);

pub struct Terminal {
    /// Connected before `clone`: the shim accepts only after `create` returns, and a
    /// connection waits in its listen backlog until then.
    socket: OwnedFd,
}

impl Terminal {
    pub fn connect(path: &Path) -> Result<Self, RuntimeError> {
        let io = |errno: Errno| RuntimeError::io("connecting to the console socket", path, errno.into());
        let socket = socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).map_err(io)?;
        let address = UnixAddr::new(path).map_err(io)?;
        connect(socket.as_raw_fd(), &address).map_err(io)?;
        Ok(Self { socket })
    }
}

fn setup_error(errno: Errno, what: &'static [u8]) -> ChildError {
    ChildError::setup(errno, &[b"setting up the terminal: ", what])
}

fn check(result: libc::c_int, what: &'static [u8]) -> Result<libc::c_int, ChildError> {
    if result < 0 {
        Err(setup_error(Errno::last(), what))
    } else {
        Ok(result)
    }
}

impl Stage for Terminal {
    fn name(&self) -> &'static str {
        "terminal"
    }

    fn order(&self) -> StageOrder {
        ORDER
    }

    // ANCHOR: terminal
    fn in_child(&self, _ctx: &ChildContext) -> Result<(), ChildError> {
        // SAFETY: plain syscalls on descriptors this process owns and on constant strings;
        // nothing here allocates or touches memory shared with anyone.
        unsafe {
            let master = check(
                libc::open(c"/dev/ptmx".as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC),
                b"open /dev/ptmx",
            )?;
            let unlock: libc::c_int = 0;
            check(libc::ioctl(master, libc::TIOCSPTLCK, &unlock), b"unlockpt")?;
            // The slave by its descriptor, without building its /dev/pts/N path.
            let slave = check(
                libc::ioctl(master, libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY),
                b"open the pty slave",
            )?;
            // A new session, so that the pty can become its controlling terminal.
            check(libc::setsid(), b"setsid")?;
            check(libc::ioctl(slave, libc::TIOCSCTTY, 0), b"TIOCSCTTY")?;
            for target in 0..3 {
                check(libc::dup2(slave, target), b"dup2 onto stdio")?;
            }
            if slave > 2 {
                libc::close(slave);
            }
            send_fd(self.socket.as_raw_fd(), master)?;
            libc::close(master);
        }
        Ok(())
    }
    // ANCHOR_END: terminal
}

/// Sends `fd` over the unix socket `socket` (SCM_RIGHTS), with a short name as payload, as
/// runc does; built on the stack, because the child may not allocate.
fn send_fd(socket: RawFd, fd: RawFd) -> Result<(), ChildError> {
    let name = b"/dev/ptmx";
    // Room for one cmsghdr and one int, aligned for cmsghdr.
    let mut control = [0u64; 4];
    // SAFETY: msghdr points at `name` and `control`, both alive for the call; the control
    // message header and the descriptor are written inside `control` through the CMSG_*
    // helpers, which stay within CMSG_SPACE(4) <= 32 bytes.
    unsafe {
        let mut iov = libc::iovec {
            iov_base: name.as_ptr() as *mut libc::c_void,
            iov_len: name.len(),
        };
        let mut message: libc::msghdr = std::mem::zeroed();
        message.msg_iov = &mut iov;
        message.msg_iovlen = 1;
        message.msg_control = control.as_mut_ptr().cast();
        message.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
        let header = libc::CMSG_FIRSTHDR(&message);
        if header.is_null() {
            return Err(setup_error(Errno::EINVAL, b"sending the pty master"));
        }
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(header).cast::<RawFd>(), fd);
        if libc::sendmsg(socket, &message, 0) < 0 {
            return Err(setup_error(
                Errno::last(),
                b"sending the pty master to the console socket",
            ));
        }
    }
    Ok(())
}
