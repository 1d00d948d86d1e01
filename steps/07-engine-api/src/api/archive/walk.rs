//! Paths resolved inside the container's root, one name at a time from a directory
//! descriptor: every symlink is read and followed here, as if the container's root were
//! `/` (an absolute target restarts at the root, `..` stops there), never by the kernel;
//! and whether what a path leads to is on a running container's pseudo file systems (its
//! `/proc`, `/sys`...), out of a copy's reach.

use rustix::fd::{AsFd, BorrowedFd};
use rustix::io::Errno;
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::layers::{DirMeta, Node, Tree, UnionDir};

/// As many symlinks as Linux follows in one lookup.
const MAX_LINKS: usize = 40;

/// A path looked up.
pub(super) struct Resolved {
    /// The directory holding it (none for a directory reached as a whole).
    pub(super) parent: Option<UnionDir>,
    pub(super) name: OsString,
    pub(super) node: Node,
    /// Its path in the container, through no symlink.
    pub(super) path: PathBuf,
}

/// Splits a path into its names (no empty ones).
pub(super) fn names(path: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    path.split(|b| *b == b'/').filter(|p| !p.is_empty())
}

impl Tree {
    /// The directory at `path`, every symlink on the way followed inside the tree; with
    /// `create`, missing directories are made (0755, root's, as `mkdir -p`).
    pub(super) fn resolve_dir(&self, path: &[u8], create: bool) -> io::Result<UnionDir> {
        let mut stack = vec![self.root()?];
        let mut pending: VecDeque<Vec<u8>> = names(path).map(<[u8]>::to_vec).collect();
        let mut links = 0;
        while let Some(name) = pending.pop_front() {
            match name.as_slice() {
                b"." => continue,
                b".." => {
                    if stack.len() > 1 {
                        stack.pop();
                    }
                    continue;
                }
                _ => {}
            }
            let name = OsStr::from_bytes(&name);
            let Some(current) = stack.last_mut() else {
                return Err(io::Error::other("lost the root"));
            };
            let next = match self.lookup(current, name)? {
                Node::Dir(dir) => dir,
                Node::Missing if create => self.make_dir(current, name, &DirMeta::default())?,
                Node::Missing => return Err(Errno::NOENT.into()),
                Node::Other { layer, meta } if meta.is_symlink() => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(Errno::LOOP.into());
                    }
                    let target = rustix::fs::readlinkat(current.fd(layer)?, name, Vec::new())?.into_bytes();
                    if target.starts_with(b"/") {
                        stack.truncate(1);
                    }
                    for part in names(&target).rev() {
                        pending.push_front(part.to_vec());
                    }
                    continue;
                }
                Node::Other { .. } => return Err(Errno::NOTDIR.into()),
            };
            stack.push(next);
        }
        stack.pop().ok_or_else(|| io::Error::other("lost the root"))
    }

    /// `path` looked up: its directory resolved, its last name looked up as it is, or,
    /// with `follow`, followed if it is a symlink. A path ending in `/`, `.` or `..` is a
    /// directory as a whole.
    pub(super) fn resolve(&self, path: &[u8], follow: bool) -> io::Result<Resolved> {
        let mut path = path.to_vec();
        for _ in 0..=MAX_LINKS {
            let whole_dir = path.is_empty()
                || path.ends_with(b"/")
                || matches!(names(&path).next_back(), None | Some(b".") | Some(b".."));
            if whole_dir {
                let dir = self.resolve_dir(&path, false)?;
                let name = dir.path.file_name().map(OsStr::to_owned).unwrap_or_default();
                return Ok(Resolved {
                    parent: None,
                    name,
                    path: dir.path.clone(),
                    node: Node::Dir(dir),
                });
            }
            let split = path.iter().rposition(|b| *b == b'/').map_or(0, |i| i + 1);
            let (dir_part, base) = path.split_at(split);
            let base = OsStr::from_bytes(base).to_owned();
            let parent = self.resolve_dir(dir_part, false)?;
            let node = self.lookup(&parent, &base)?;
            if let Node::Other { layer, meta } = &node {
                if follow && meta.is_symlink() {
                    let target = rustix::fs::readlinkat(parent.fd(*layer)?, &base, Vec::new())?.into_bytes();
                    path = if target.starts_with(b"/") {
                        target
                    } else {
                        let mut joined = parent.path.as_os_str().as_bytes().to_vec();
                        joined.push(b'/');
                        joined.extend_from_slice(&target);
                        joined
                    };
                    continue;
                }
            }
            return Ok(Resolved {
                path: parent.path.join(&base),
                parent: Some(parent),
                name: base,
                node,
            });
        }
        Err(Errno::LOOP.into())
    }

    /// The target of a symlink looked up, as it is.
    pub(super) fn read_link(&self, resolved: &Resolved) -> Option<String> {
        let (Some(parent), Node::Other { layer, .. }) = (&resolved.parent, &resolved.node) else {
            return None;
        };
        let target = rustix::fs::readlinkat(parent.fd(*layer).ok()?, &resolved.name, Vec::new()).ok()?;
        Some(String::from_utf8_lossy(target.as_bytes()).into_owned())
    }

    /// Whether `dir` is on a pseudo file system of a running container.
    pub(super) fn pseudo(&self, dir: &UnionDir) -> bool {
        !self.overlay && dir.fds.first().is_some_and(|(_, fd)| is_pseudo_fs(fd.as_fd()))
    }

    /// Whether what was resolved is inside a pseudo file system (the mount point itself,
    /// `/proc`, is not: it is a directory of the root file system).
    pub(super) fn in_pseudo_fs(&self, resolved: &Resolved) -> bool {
        if self.overlay {
            return false;
        }
        match (&resolved.parent, resolved.path.parent()) {
            (Some(parent), _) => self.pseudo(parent),
            (None, Some(up)) => self
                .resolve_dir(up.as_os_str().as_bytes(), false)
                .is_ok_and(|up| self.pseudo(&up)),
            (None, None) => false,
        }
    }
}

/// Pseudo file systems a copy does not descend into (Docker copies from the container's
/// root file system, where /proc and /sys are empty directories).
fn is_pseudo_fs(dir: BorrowedFd<'_>) -> bool {
    const PSEUDO: [i64; 8] = [
        0x9fa0,      // proc
        0x6265_6572, // sysfs
        0x0027_e0eb, // cgroup
        0x6367_7270, // cgroup2
        0x1cd1,      // devpts
        0x1980_0202, // mqueue
        0x6462_6720, // debugfs
        0x7363_6673, // securityfs
    ];
    rustix::fs::fstatfs(dir).is_ok_and(|fs| PSEUDO.iter().any(|m| i128::from(*m) == i128::from(fs.f_type)))
}
