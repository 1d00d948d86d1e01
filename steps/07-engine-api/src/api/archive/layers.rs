//! Which files a copy sees: a running container's root as its mount namespace sees it, or
//! a stopped container's snapshot read as overlayfs would (the upper dir over each lower
//! layer, whiteouts and opaque directories honoured) and written through its upper dir,
//! copying up the directories a write lands in.

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, Mode, OFlags, XattrFlags, CWD};
use rustix::io::Errno;
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io;
use std::path::{Component, Path, PathBuf};

use super::super::error::{ApiError, ApiResult};
use super::files::{remove_all_at, set_owner_and_mode, set_times, Meta, DIR_FLAGS};
use crate::engine::{Container, Engine};
use step06_images::step05_overlay;

/// The layers a container's files are read from: one for a running container (its root as
/// its mount namespace sees it), or a snapshot's upper dir over its lower layers.
pub(super) struct Tree {
    /// Top-down; writes go to the first.
    layers: Vec<OwnedFd>,
    /// Whether whiteouts and opaque directories mean what overlayfs makes of them.
    pub(super) overlay: bool,
}

/// A directory of the tree: its open descriptor in each layer that has it (top-down, down
/// to an opaque one).
pub(super) struct UnionDir {
    /// Its path in the container: absolute, clean, reached through no symlink.
    pub(super) path: PathBuf,
    pub(super) fds: Vec<(usize, OwnedFd)>,
    /// The metadata of the topmost one.
    pub(super) meta: Meta,
}

impl UnionDir {
    pub(super) fn fd(&self, layer: usize) -> io::Result<BorrowedFd<'_>> {
        self.fds
            .iter()
            .find(|(l, _)| *l == layer)
            .map(|(_, fd)| fd.as_fd())
            .ok_or_else(|| io::Error::other("a layer of the directory vanished"))
    }
}

/// What a name of a directory is.
pub(super) enum Node {
    Missing,
    Dir(UnionDir),
    /// Anything but a directory, in the topmost layer that has the name.
    Other {
        layer: usize,
        meta: Meta,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    Read,
    Write,
}

/// Owner and mode of a directory made along the way.
pub(super) struct DirMeta {
    uid: u32,
    gid: u32,
    mode: u32,
}

impl Default for DirMeta {
    fn default() -> Self {
        Self {
            uid: 0,
            gid: 0,
            mode: 0o755,
        }
    }
}

fn is_opaque(dir: BorrowedFd<'_>) -> bool {
    let mut value = [0u8; 4];
    matches!(
        rustix::fs::fgetxattr(dir, step05_overlay::whiteout::OPAQUE_XATTR, &mut value[..]),
        Ok(1) if value[0] == b'y'
    )
}

impl Tree {
    /// The container's files, and (for a stopped container) its operation lock, held so
    /// that it does not start while we read or write its snapshot.
    pub(super) fn open<'c>(
        engine: &Engine,
        container: &'c Container,
        access: Access,
    ) -> ApiResult<(Self, Option<tokio::sync::MutexGuard<'c, ()>>)> {
        let guard = container.operation.blocking_lock();
        let record = container.record();
        if record.running() {
            let pid = record.state.pid;
            if pid <= 0 {
                // Never its snapshot: writing an upper dir under a mounted overlay is undefined.
                return Err(ApiError::conflict(format!("Container {} has no process", container.id)));
            }
            // The one symlink followed by the kernel: the magic link to the container's root.
            let root = rustix::fs::openat(
                CWD,
                format!("/proc/{pid}/root"),
                DIR_FLAGS.difference(OFlags::NOFOLLOW),
                Mode::empty(),
            )
            .map_err(|e| ApiError::internal(format!("opening the root of container {}: {e}", container.id)))?;
            // The pid is the container's (not a recycled one) if it is in the container's
            // cgroup; checked after the open, so the root we hold is the one checked.
            let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
            if !cgroup.contains(&container.id) {
                return Err(ApiError::conflict(format!("Container {} is not running", container.id)));
            }
            let tree = Self {
                layers: vec![root],
                overlay: false,
            };
            return Ok((tree, None));
        }
        if access == Access::Write && record.host_config["ReadonlyRootfs"].as_bool() == Some(true) {
            return Err(ApiError::bad_request("container rootfs is marked read-only"));
        }
        let snapshot = step05_overlay::store::Store::new(&engine.root)
            .get(&container.id)
            .map_err(|e| ApiError::internal(format!("the snapshot of container {}: {e}", container.id)))?;
        let lowers = snapshot.layers().map_err(ApiError::internal)?;
        let mut layers = Vec::new();
        for dir in std::iter::once(snapshot.upper()).chain(lowers.into_iter().rev()) {
            let fd = rustix::fs::openat(CWD, &dir, DIR_FLAGS, Mode::empty())
                .map_err(|e| ApiError::internal(format!("opening {}: {e}", dir.display())))?;
            layers.push(fd);
        }
        let tree = Self { layers, overlay: true };
        // Reading needs no lock once the layers are open; writing does.
        Ok((tree, (access == Access::Write).then_some(guard)))
    }

    /// The root directory.
    pub(super) fn root(&self) -> io::Result<UnionDir> {
        let mut fds = Vec::new();
        let mut meta = None;
        for (layer, fd) in self.layers.iter().enumerate() {
            let dir = rustix::fs::openat(fd, ".", DIR_FLAGS, Mode::empty())?;
            meta.get_or_insert(Meta::of(&rustix::fs::fstat(&dir)?));
            let opaque = self.overlay && is_opaque(dir.as_fd());
            fds.push((layer, dir));
            if opaque {
                break;
            }
        }
        let meta = meta.ok_or_else(|| io::Error::other("a container without a root"))?;
        Ok(UnionDir {
            path: PathBuf::from("/"),
            fds,
            meta,
        })
    }

    /// What `name` is in `dir`: the topmost layer decides, a directory merges with the
    /// directories below it (down to an opaque one), a whiteout hides what is below.
    pub(super) fn lookup(&self, dir: &UnionDir, name: &OsStr) -> io::Result<Node> {
        let mut found: Vec<(usize, OwnedFd)> = Vec::new();
        let mut top = None;
        for (layer, fd) in &dir.fds {
            let meta = match rustix::fs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) => Meta::of(&stat),
                Err(Errno::NOENT) => continue,
                Err(error) => return Err(error.into()),
            };
            if self.overlay && meta.is_whiteout() {
                break;
            }
            if !meta.is_dir() {
                if found.is_empty() {
                    return Ok(Node::Other { layer: *layer, meta });
                }
                break;
            }
            // Never through a symlink: one swapped in since the stat makes this fail.
            let sub = rustix::fs::openat(fd, name, DIR_FLAGS, Mode::empty())?;
            top.get_or_insert(Meta::of(&rustix::fs::fstat(&sub)?));
            let opaque = self.overlay && is_opaque(sub.as_fd());
            found.push((*layer, sub));
            if opaque {
                break;
            }
        }
        Ok(match top {
            Some(meta) => Node::Dir(UnionDir {
                path: dir.path.join(name),
                fds: found,
                meta,
            }),
            None => Node::Missing,
        })
    }

    /// The names of a directory, merged over its layers, sorted (whiteouts and what they
    /// hide are left to `lookup`).
    pub(super) fn list(&self, dir: &UnionDir) -> io::Result<BTreeSet<Vec<u8>>> {
        let mut all = BTreeSet::new();
        for (_, fd) in &dir.fds {
            for entry in rustix::fs::Dir::read_from(fd)? {
                let entry = entry?;
                let name = entry.file_name().to_bytes();
                if name != b"." && name != b".." {
                    all.insert(name.to_vec());
                }
            }
        }
        Ok(all)
    }

    /// The directory to write into for `dir`: a running container's own; the upper dir's
    /// for a snapshot, made (copied up) if only lower layers have it.
    pub(super) fn writable<'d>(&self, dir: &'d mut UnionDir) -> io::Result<BorrowedFd<'d>> {
        if self.overlay && dir.fds.first().is_none_or(|(layer, _)| *layer != 0) {
            let upper = self.copy_up(&dir.path)?;
            dir.fds.insert(0, (0, upper));
        }
        dir.fds
            .first()
            .map(|(_, fd)| fd.as_fd())
            .ok_or_else(|| io::Error::other("a directory in no layer"))
    }

    /// Makes the directories of `path` that the upper dir lacks, with the metadata of the
    /// ones below, as overlayfs's copy-up does.
    fn copy_up(&self, path: &Path) -> io::Result<OwnedFd> {
        let mut union = self.root()?;
        let mut upper = rustix::fs::openat(&self.layers[0], ".", DIR_FLAGS, Mode::empty())?;
        for component in path.components() {
            let Component::Normal(name) = component else { continue };
            let Node::Dir(child) = self.lookup(&union, name)? else {
                return Err(Errno::NOENT.into());
            };
            upper = match rustix::fs::openat(&upper, name, DIR_FLAGS, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    rustix::fs::mkdirat(&upper, name, Mode::from_raw_mode(0o700))?;
                    let fd = rustix::fs::openat(&upper, name, DIR_FLAGS, Mode::empty())?;
                    let meta = child.meta;
                    set_owner_and_mode(fd.as_fd(), meta.uid, meta.gid, meta.mode)?;
                    set_times(fd.as_fd(), meta.mtime, meta.mtime_nsec)?;
                    fd
                }
                Err(error) => return Err(error.into()),
            };
            union = child;
        }
        Ok(upper)
    }

    /// A new directory `name` in `parent`, in place of whatever the writable layer has
    /// there; in a snapshot, opaque if a lower layer has the name (what was deleted or
    /// replaced there must not show through).
    pub(super) fn make_dir(&self, parent: &mut UnionDir, name: &OsStr, meta: &DirMeta) -> io::Result<UnionDir> {
        let opaque = self.overlay
            && parent
                .fds
                .iter()
                .any(|(layer, fd)| *layer != 0 && rustix::fs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW).is_ok());
        let path = parent.path.join(name);
        let writable = self.writable(parent)?;
        remove_all_at(writable, name)?;
        rustix::fs::mkdirat(writable, name, Mode::from_raw_mode(0o700))?;
        let fd = rustix::fs::openat(writable, name, DIR_FLAGS, Mode::empty())?;
        set_owner_and_mode(fd.as_fd(), meta.uid, meta.gid, meta.mode)?;
        if opaque {
            rustix::fs::fsetxattr(&fd, step05_overlay::whiteout::OPAQUE_XATTR, b"y", XattrFlags::empty())?;
        }
        let meta = Meta::of(&rustix::fs::fstat(&fd)?);
        Ok(UnionDir {
            path,
            fds: vec![(0, fd)],
            meta,
        })
    }
}
