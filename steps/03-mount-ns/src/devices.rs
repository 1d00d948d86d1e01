//! A minimal `/dev`: the device nodes every container gets (the OCI spec's default list),
//! the usual symlinks, and `/dev/console` when the tool runs on a terminal.
//!
//! Device nodes are made with `mknod`. Where that is not allowed (inside a user namespace)
//! the host's node is bind-mounted instead, as rootless runtimes do.

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, mknod, umask, Mode, SFlag};
use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
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
    path: CString,
    host: CString,
    major: u64,
    minor: u64,
}

pub struct Devices {
    nodes: Vec<Node>,
    links: Vec<(CString, CString)>,
    /// The terminal the tool runs on, and where it appears inside.
    console: Option<(CString, CString)>,
}

fn c(path: &Path) -> CString {
    // Paths built from a rootfs path that was already a valid C string, plus fixed names.
    CString::new(path.as_os_str().as_bytes()).unwrap_or_default()
}

impl Devices {
    /// The devices for a rootfs at `root` (`root/dev` must be a fresh tmpfs by then).
    pub fn new(root: &Path) -> Self {
        let dev = root.join("dev");
        let nodes = DEFAULT_DEVICES
            .iter()
            .map(|(name, major, minor)| Node {
                path: c(&dev.join(name)),
                host: c(&Path::new("/dev").join(name)),
                major: *major,
                minor: *minor,
            })
            .collect();
        let links = LINKS
            .iter()
            .map(|(link, target)| (c(&dev.join(link)), c(Path::new(target))))
            .collect();
        let console = nix::unistd::ttyname(std::io::stdin())
            .ok()
            .map(|tty| (c(&tty), c(&dev.join("console"))));
        Self { nodes, links, console }
    }

    /// In the child, after `/dev` is mounted.
    pub fn create(&self) -> Result<(), ChildError> {
        // The nodes must be 0666 whatever the caller's umask; the command gets it back.
        let old_umask = umask(Mode::empty());
        let result = self.create_nodes();
        umask(old_umask);
        result?;
        for (link, target) in &self.links {
            match nix::unistd::symlinkat(target.as_c_str(), nix::fcntl::AT_FDCWD, link.as_c_str()) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(errno) => return Err(ChildError::setup(errno, &[b"creating ", link.as_bytes(), b": symlink"])),
            }
        }
        if let Some((tty, console)) = &self.console {
            bind_on_file(tty, console)?;
        }
        Ok(())
    }

    fn create_nodes(&self) -> Result<(), ChildError> {
        for node in &self.nodes {
            let made = mknod(
                node.path.as_c_str(),
                SFlag::S_IFCHR,
                Mode::from_bits_truncate(0o666),
                makedev(node.major, node.minor),
            );
            match made {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(Errno::EPERM) => bind_on_file(&node.host, &node.path)?,
                Err(errno) => {
                    return Err(ChildError::setup(
                        errno,
                        &[b"creating ", node.path.as_bytes(), b": mknod"],
                    ))
                }
            }
        }
        Ok(())
    }
}

/// Bind-mounts the file `source` on `target`, creating `target` as an empty file.
fn bind_on_file(source: &CStr, target: &CStr) -> Result<(), ChildError> {
    let fail = |errno, what: &[u8]| {
        ChildError::setup(
            errno,
            &[b"binding ", source.to_bytes(), b" on ", target.to_bytes(), what],
        )
    };
    open(
        target,
        OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o666),
    )
    .map_err(|errno| fail(errno, b": open"))?;
    mount(Some(source), target, None::<&CStr>, MsFlags::MS_BIND, None::<&CStr>).map_err(|errno| fail(errno, b": mount"))
}
