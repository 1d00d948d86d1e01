//! A minimal `/dev`: the device nodes every container gets (the OCI spec's default list),
//! the usual symlinks, and `/dev/console` when the tool runs on a terminal.
//!
//! Device nodes are made with `mknod`. Where that is not allowed (inside a user namespace)
//! the host's node is bind-mounted instead, as rootless runtimes do.
//!
//! Everything is made relative to a descriptor of `/dev` resolved inside the root
//! ([`crate::in_root`]): an image whose `/dev` is a symlink to a host path must not get
//! device nodes made there.

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, mknodat, umask, Mode, SFlag};
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::in_root::{FdPath, InRoot};
use step02_pid_ns::step01_unshare::child_error::ChildError;

/// `(name, major, minor)`: the character devices the OCI runtime spec requires.
pub const DEFAULT_DEVICES: [(&str, u64, u64); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// `(link, target)`: what programs expect to find in `/dev`.
pub const LINKS: [(&str, &str); 5] = [
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

struct Node {
    /// The name in /dev.
    name: CString,
    host: CString,
    major: u64,
    minor: u64,
}

pub struct Devices {
    /// `/dev` under the root, resolved in the child.
    dev: InRoot,
    nodes: Vec<Node>,
    links: Vec<(CString, CString)>,
    /// The terminal the tool runs on; it appears inside as /dev/console.
    console: Option<CString>,
}

fn c(bytes: &[u8]) -> CString {
    // Fixed names and a tty path from the kernel: none holds a NUL.
    CString::new(bytes).unwrap_or_default()
}

impl Devices {
    /// The devices for a rootfs at `root` (`root/dev` must be a fresh tmpfs by then).
    pub fn new(root: &Path) -> Result<Self, std::ffi::NulError> {
        let nodes = DEFAULT_DEVICES
            .iter()
            .map(|(name, major, minor)| Node {
                name: c(name.as_bytes()),
                host: c(Path::new("/dev").join(name).as_os_str().as_bytes()),
                major: *major,
                minor: *minor,
            })
            .collect();
        let links = LINKS
            .iter()
            .map(|(link, target)| (c(link.as_bytes()), c(target.as_bytes())))
            .collect();
        let console = nix::unistd::ttyname(std::io::stdin())
            .ok()
            .map(|tty| c(tty.as_os_str().as_bytes()));
        Ok(Self {
            dev: InRoot::new(root, Path::new("/dev"))?,
            nodes,
            links,
            console,
        })
    }

    /// In the child, after `/dev` is mounted.
    pub fn create(&self) -> Result<(), ChildError> {
        let dev = self
            .dev
            .reopen()
            .map_err(|(errno, call)| ChildError::setup(errno, &[b"finding /dev in the rootfs", call]))?;
        // The nodes must be 0666 whatever the caller's umask; the command gets it back.
        let old_umask = umask(Mode::empty());
        let result = self.create_nodes(dev.as_fd());
        umask(old_umask);
        result?;
        for (link, target) in &self.links {
            match nix::unistd::symlinkat(target.as_c_str(), dev.as_fd(), link.as_c_str()) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(errno) => {
                    return Err(ChildError::setup(
                        errno,
                        &[b"creating /dev/", link.as_bytes(), b": symlinkat"],
                    ))
                }
            }
        }
        if let Some(tty) = &self.console {
            bind_on_file(tty, dev.as_fd(), c"console")?;
        }
        Ok(())
    }

    fn create_nodes(&self, dev: BorrowedFd) -> Result<(), ChildError> {
        for node in &self.nodes {
            let made = mknodat(
                dev,
                node.name.as_c_str(),
                SFlag::S_IFCHR,
                Mode::from_bits_truncate(0o666),
                makedev(node.major, node.minor),
            );
            match made {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(Errno::EPERM) => bind_on_file(&node.host, dev, &node.name)?,
                Err(errno) => {
                    return Err(ChildError::setup(
                        errno,
                        &[b"creating /dev/", node.name.as_bytes(), b": mknodat"],
                    ))
                }
            }
        }
        Ok(())
    }
}

/// Bind-mounts the file `source` on `/dev/NAME`, creating it as an empty file (never
/// through a symlink) and mounting on its descriptor.
fn bind_on_file(source: &CStr, dev: BorrowedFd, name: &CStr) -> Result<(), ChildError> {
    let fail = |errno, what: &[u8]| {
        ChildError::setup(
            errno,
            &[b"binding ", source.to_bytes(), b" on /dev/", name.to_bytes(), what],
        )
    };
    let target = openat(
        dev,
        name,
        OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o666),
    )
    .map_err(|errno| fail(errno, b": openat"))?;
    let path = FdPath::new(&target);
    mount(
        Some(source),
        path.as_c_str(),
        None::<&CStr>,
        MsFlags::MS_BIND,
        None::<&CStr>,
    )
    .map_err(|errno| fail(errno, b": mount"))
}
