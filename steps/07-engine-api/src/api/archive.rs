//! `docker cp`, both ways: `HEAD`, `GET` and `PUT /containers/{id}/archive?path=PATH`.
//!
//! * `HEAD` answers with the `X-Docker-Container-Path-Stat` header: base64 of
//!   `{"name","size","mode","mtime","linkTarget"}`, `mode` being a Go `os.FileMode`.
//! * `GET` adds a tar of the file or directory, its top entry named after the path's last
//!   element (`docker cp bg:/etc out` gets `etc/`, `etc/hostname`...).
//! * `PUT` extracts a tar (streamed: an upload is never held whole in memory) into the
//!   directory `path`, refusing to replace a directory by a non-directory or the reverse
//!   when `noOverwriteDirNonDir` is set.
//!
//! The paths come from the user and the container's files from whoever runs in it, so the
//! point of this module is that **nothing is ever looked up through the host's root**.
//! Every lookup starts from a directory file descriptor of the container's root and goes
//! one name at a time (`openat`/`fstatat` with `O_NOFOLLOW`/`AT_SYMLINK_NOFOLLOW`); a
//! symlink is read and followed by this code, as if the container's root were `/` (an
//! absolute target restarts at the container's root, `..` stops there). A process in the
//! container that swaps a directory for a symlink while we walk makes the walk fail with
//! `ELOOP`/`ENOTDIR`, never leave the root. Files are created with
//! `O_CREAT|O_EXCL|O_NOFOLLOW` in a directory we hold open, and their metadata is set
//! through their own descriptors, never by path. Tar entries are cleaned like Docker's
//! (`filepath.Join(dest, name)`): an absolute name is taken relative to `path`, a `..` that
//! would climb above `path` is refused, and symlinks in the archive are created as they
//! are, to be followed (inside the root) by later entries, as in Docker's chroot.
//!
//! Which root: a running container's is `/proc/<pid>/root`, its overlay as its own mount
//! namespace sees it (writes land in the snapshot's upper dir, bind mounts included). A
//! stopped container has no mount: its snapshot is read as overlayfs would (the upper dir
//! over each lower layer, top-down; a 0:0 character device is a whiteout, a directory
//! marked `trusted.overlay.opaque=y` hides the ones below), and writes go to the upper dir,
//! copying up the directories they land in.
//!
//! A running container's pseudo file systems (its `/proc`, `/sys`...) are out of reach:
//! Docker copies from the root file system, where they are empty directories, and the
//! container's procfs would hand the engine things like `/proc/kcore`.

use axum::body::Body;
use axum::extract::Path as UrlPath;
use axum::http::{header, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use rustix::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags, CWD};
use rustix::io::Errno;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

use super::error::{ApiError, ApiResult};
use super::query::{flag, Query};
use super::State;
use crate::engine::{Container, Engine};
use step06_images::step05_overlay;

/// The response header carrying the path's stat.
pub const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

/// As many symlinks as Linux follows in one lookup.
const MAX_LINKS: usize = 40;

/// How deep a directory tree a copy walks (the walks recurse: a container must not be able
/// to overflow the engine's stack with a very deep tree).
const MAX_DEPTH: usize = 512;

/// Bytes per body chunk of a `GET`.
const CHUNK: usize = 64 * 1024;

/// How a directory is opened: a real descriptor (readable, for `getdents`, `fgetxattr`,
/// `fchown`...), never through a symlink.
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

// ------------------------------------------------------------------------------------------
// The handlers

/// `HEAD /containers/{id}/archive?path=`: the stat header alone.
pub async fn head(state: State, UrlPath(id): UrlPath<String>, query: Query) -> ApiResult<Response> {
    let engine = state.0;
    let container = engine.find(&id)?;
    let path = wanted_path(&query)?;
    let stat = blocking(move || {
        let (tree, _guard) = Tree::open(&engine, &container, Access::Read)?;
        tree.find(&path, &id).map(|found| found.stat)
    })
    .await?;
    Response::builder()
        .status(StatusCode::OK)
        .header(STAT_HEADER, stat.encoded())
        .body(Body::empty())
        .map_err(ApiError::internal)
}

/// `GET /containers/{id}/archive?path=`: the stat header and a tar of the path.
pub async fn get(state: State, UrlPath(id): UrlPath<String>, query: Query) -> ApiResult<Response> {
    let engine = state.0;
    let container = engine.find(&id)?;
    let path = wanted_path(&query)?;
    let (ready, found) = oneshot::channel::<ApiResult<PathStat>>();
    let (sender, receiver) = mpsc::channel::<io::Result<Bytes>>(8);
    let task_engine = Arc::clone(&engine);
    let task_container = Arc::clone(&container);
    tokio::task::spawn_blocking(move || {
        let prepared = Tree::open(&task_engine, &task_container, Access::Read)
            .and_then(|(tree, _guard)| tree.find(&path, &id).map(|found| (tree, found)));
        let (tree, found) = match prepared {
            Ok(prepared) => prepared,
            Err(error) => {
                let _ = ready.send(Err(error));
                return;
            }
        };
        if ready.send(Ok(found.stat.clone())).is_err() {
            return;
        }
        let mut tar = TarWriter {
            out: BodyWriter {
                sender: sender.clone(),
                buffer: Vec::with_capacity(CHUNK),
            },
        };
        let written = tree.archive(&found, &mut tar).and_then(|()| tar.finish());
        if let Err(error) = written {
            // Half-way, the answer cannot be an HTTP error any more: the body breaks off.
            tracing::warn!("archiving {path} of {}: {error}", task_container.id);
            let _ = sender.blocking_send(Err(error));
        }
    });
    let stat = found
        .await
        .map_err(|_| ApiError::internal("the copy ended before it began"))??;
    engine.event(&container, "archive-path", &[]);
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/x-tar")
        .header(STAT_HEADER, stat.encoded())
        .body(Body::from_stream(stream))
        .map_err(ApiError::internal)
}

/// `PUT /containers/{id}/archive?path=DIR[&noOverwriteDirNonDir=true]`: extracts the tar
/// of the body (gzip-compressed or plain) into DIR.
pub async fn put(state: State, UrlPath(id): UrlPath<String>, query: Query, body: Body) -> ApiResult<StatusCode> {
    let engine = state.0;
    let container = engine.find(&id)?;
    let path = wanted_path(&query)?;
    let no_overwrite = flag(&query, "noOverwriteDirNonDir");
    let reader = body_reader(body);
    let task_engine = Arc::clone(&engine);
    let task_container = Arc::clone(&container);
    blocking(move || {
        // A stopped container stays stopped while its upper dir is written.
        let (tree, _guard) = Tree::open(&task_engine, &task_container, Access::Write)?;
        tree.extract(&path, &id, no_overwrite, reader)
    })
    .await?;
    engine.event(&container, "extract-to-dir", &[]);
    Ok(StatusCode::OK)
}

fn wanted_path(query: &Query) -> ApiResult<String> {
    match query.get("path") {
        Some(path) if !path.is_empty() => Ok(path.clone()),
        _ => Err(ApiError::bad_request("path cannot be empty")),
    }
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> ApiResult<T> + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(work).await.map_err(ApiError::internal)?
}

// ------------------------------------------------------------------------------------------
// The stat header

/// What `X-Docker-Container-Path-Stat` says of a path (moby's `container.PathStat`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// A Go `os.FileMode`.
    pub mode: u32,
    /// RFC 3339 with nanoseconds, as Go writes a `time.Time`.
    pub mtime: String,
    /// For a symlink, its target resolved in the container.
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

impl PathStat {
    fn encoded(&self) -> String {
        base64(&serde_json::to_vec(self).unwrap_or_default())
    }
}

/// A Unix mode as Go's `os.FileMode`: the permission bits, and the type and special bits
/// high up (directory = 1<<31, symlink = 1<<27...).
pub fn go_file_mode(mode: u32) -> u32 {
    let mut go = mode & 0o777;
    for (unix, bit) in [(0o4000, 23), (0o2000, 22), (0o1000, 20)] {
        if mode & unix != 0 {
            go |= 1 << bit;
        }
    }
    go | match FileType::from_raw_mode(mode) {
        FileType::Directory => 1 << 31,
        FileType::Symlink => 1 << 27,
        FileType::BlockDevice => 1 << 26,
        FileType::CharacterDevice => (1 << 26) | (1 << 21),
        FileType::Fifo => 1 << 25,
        FileType::Socket => 1 << 24,
        _ => 0,
    }
}

/// Go's `time.Time` in JSON: RFC 3339, UTC, the fraction without its trailing zeros.
fn go_time(secs: i64, nanos: u32) -> String {
    let since = std::time::Duration::new(u64::try_from(secs).unwrap_or(0), nanos.min(999_999_999));
    let text = humantime::format_rfc3339_nanos(std::time::UNIX_EPOCH + since).to_string();
    match text.strip_suffix('Z').and_then(|t| t.split_once('.')) {
        Some((whole, fraction)) => match fraction.trim_end_matches('0') {
            "" => format!("{whole}Z"),
            fraction => format!("{whole}.{fraction}Z"),
        },
        None => text,
    }
}

/// Standard base64, padded (Go's `base64.StdEncoding`).
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        let sextet = |shift: u32| char::from(ALPHABET[((n >> shift) & 63) as usize]);
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if chunk.len() > 1 { sextet(6) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(0) } else { '=' });
    }
    out
}

/// The request's path as Docker reads it (`archive.PreserveTrailingDotOrSeparator(
/// filepath.Join("/", path), path)`): absolute, cleaned, keeping a trailing `/` or `/.`
/// (which mean "the directory itself, symlink followed"); and its name (`filepath.Base`).
pub fn request_path(raw: &str) -> (String, String) {
    let mut parts: Vec<&str> = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    let mut abs = format!("/{}", parts.join("/"));
    let base_is_dot = raw == "." || raw.ends_with("/.");
    if base_is_dot {
        if !abs.ends_with('/') {
            abs.push('/');
        }
        abs.push('.');
    } else if raw.ends_with('/') && !abs.ends_with('/') {
        abs.push('/');
    }
    let name = if base_is_dot {
        ".".to_owned()
    } else {
        parts.last().map_or_else(|| "/".to_owned(), |p| (*p).to_owned())
    };
    (abs, name)
}

// ------------------------------------------------------------------------------------------
// A container's files, looked up safely

/// A file's metadata, the same on every architecture.
#[derive(Debug, Clone, Copy)]
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: i64,
    mtime_nsec: u32,
    nlink: u64,
    rdev: u64,
    dev: u64,
    ino: u64,
}

impl Meta {
    // The field types of `struct stat` differ between architectures.
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    fn of(stat: &rustix::fs::Stat) -> Self {
        Self {
            mode: stat.st_mode as u32,
            uid: stat.st_uid as u32,
            gid: stat.st_gid as u32,
            size: u64::try_from(stat.st_size).unwrap_or(0),
            mtime: stat.st_mtime as i64,
            mtime_nsec: u32::try_from(stat.st_mtime_nsec).unwrap_or(0),
            nlink: stat.st_nlink as u64,
            rdev: stat.st_rdev as u64,
            dev: stat.st_dev as u64,
            ino: stat.st_ino as u64,
        }
    }
    fn kind(&self) -> FileType {
        FileType::from_raw_mode(self.mode)
    }
    fn is_dir(&self) -> bool {
        self.kind() == FileType::Directory
    }
    fn is_symlink(&self) -> bool {
        self.kind() == FileType::Symlink
    }
    /// overlayfs's mark of a deleted name in an upper dir.
    fn is_whiteout(&self) -> bool {
        self.kind() == FileType::CharacterDevice && self.rdev == 0
    }
}

/// The layers a container's files are read from: one for a running container (its root as
/// its mount namespace sees it), or a snapshot's upper dir over its lower layers.
struct Tree {
    /// Top-down; writes go to the first.
    layers: Vec<OwnedFd>,
    /// Whether whiteouts and opaque directories mean what overlayfs makes of them.
    overlay: bool,
}

/// A directory of the tree: its open descriptor in each layer that has it (top-down, down
/// to an opaque one).
struct UnionDir {
    /// Its path in the container: absolute, clean, reached through no symlink.
    path: PathBuf,
    fds: Vec<(usize, OwnedFd)>,
    /// The metadata of the topmost one.
    meta: Meta,
}

impl UnionDir {
    fn fd(&self, layer: usize) -> io::Result<BorrowedFd<'_>> {
        self.fds
            .iter()
            .find(|(l, _)| *l == layer)
            .map(|(_, fd)| fd.as_fd())
            .ok_or_else(|| io::Error::other("a layer of the directory vanished"))
    }
}

/// What a name of a directory is.
enum Node {
    Missing,
    Dir(UnionDir),
    /// Anything but a directory, in the topmost layer that has the name.
    Other {
        layer: usize,
        meta: Meta,
    },
}

/// A path looked up.
struct Resolved {
    /// The directory holding it (none for a directory reached as a whole).
    parent: Option<UnionDir>,
    name: OsString,
    node: Node,
    /// Its path in the container, through no symlink.
    path: PathBuf,
}

/// A `GET`/`HEAD` path found.
struct Found {
    resolved: Resolved,
    stat: PathStat,
    /// The name of the tar's top entry ("" for `/` and `dir/.`, whose entries go bare).
    prefix: Vec<u8>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

fn errno(error: &io::Error, which: Errno) -> bool {
    error.raw_os_error() == Some(which.raw_os_error())
}

fn is_opaque(dir: BorrowedFd<'_>) -> bool {
    let mut value = [0u8; 4];
    matches!(
        rustix::fs::fgetxattr(dir, step05_overlay::whiteout::OPAQUE_XATTR, &mut value[..]),
        Ok(1) if value[0] == b'y'
    )
}

/// Splits a path into its names (no empty ones).
fn names(path: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    path.split(|b| *b == b'/').filter(|p| !p.is_empty())
}

impl Tree {
    /// The container's files, and (for a stopped container) its operation lock, held so
    /// that it does not start while we read or write its snapshot.
    fn open<'c>(
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
    fn root(&self) -> io::Result<UnionDir> {
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
    fn lookup(&self, dir: &UnionDir, name: &OsStr) -> io::Result<Node> {
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

    /// The directory at `path`, every symlink on the way followed inside the tree; with
    /// `create`, missing directories are made (0755, root's, as `mkdir -p`).
    fn resolve_dir(&self, path: &[u8], create: bool) -> io::Result<UnionDir> {
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
    fn resolve(&self, path: &[u8], follow: bool) -> io::Result<Resolved> {
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

    /// The path of a `GET` or `HEAD`, and its stat.
    fn find(&self, request: &str, container: &str) -> ApiResult<Found> {
        let (abs, name) = request_path(request);
        let not_found = || ApiError::not_found(format!("Could not find the file {request} in container {container}"));
        let resolved = match self.resolve(abs.as_bytes(), false) {
            Ok(resolved) => resolved,
            Err(e) if errno(&e, Errno::NOENT) || errno(&e, Errno::NOTDIR) => return Err(not_found()),
            Err(e) => return Err(ApiError::internal(format!("looking up {request}: {e}"))),
        };
        // What a pseudo file system of a running container holds (its /proc, /sys) is not
        // the container's files: Docker, which reads the root file system, finds nothing.
        if self.in_pseudo_fs(&resolved) {
            return Err(not_found());
        }
        let meta = match &resolved.node {
            Node::Missing => return Err(not_found()),
            Node::Dir(dir) => dir.meta,
            Node::Other { meta, .. } => *meta,
        };
        let link_target = if meta.is_symlink() {
            match self.resolve(resolved.path.as_os_str().as_bytes(), true) {
                Ok(target) => target.path.display().to_string(),
                Err(_) => self.read_link(&resolved).unwrap_or_default(),
            }
        } else {
            String::new()
        };
        let stat = PathStat {
            name: name.clone(),
            size: i64::try_from(meta.size).unwrap_or(i64::MAX),
            mode: go_file_mode(meta.mode),
            mtime: go_time(meta.mtime, meta.mtime_nsec),
            link_target,
        };
        let prefix = match name.as_str() {
            "/" | "." => Vec::new(),
            name => name.as_bytes().to_vec(),
        };
        Ok(Found { resolved, stat, prefix })
    }

    /// Whether `dir` is on a pseudo file system of a running container.
    fn pseudo(&self, dir: &UnionDir) -> bool {
        !self.overlay && dir.fds.first().is_some_and(|(_, fd)| is_pseudo_fs(fd.as_fd()))
    }

    /// Whether what was resolved is inside a pseudo file system (the mount point itself,
    /// `/proc`, is not: it is a directory of the root file system).
    fn in_pseudo_fs(&self, resolved: &Resolved) -> bool {
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

    fn read_link(&self, resolved: &Resolved) -> Option<String> {
        let (Some(parent), Node::Other { layer, .. }) = (&resolved.parent, &resolved.node) else {
            return None;
        };
        let target = rustix::fs::readlinkat(parent.fd(*layer).ok()?, &resolved.name, Vec::new()).ok()?;
        Some(String::from_utf8_lossy(target.as_bytes()).into_owned())
    }

    /// The names of a directory, merged over its layers, sorted (whiteouts and what they
    /// hide are left to `lookup`).
    fn list(&self, dir: &UnionDir) -> io::Result<BTreeSet<Vec<u8>>> {
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
    fn writable<'d>(&self, dir: &'d mut UnionDir) -> io::Result<BorrowedFd<'d>> {
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
    fn make_dir(&self, parent: &mut UnionDir, name: &OsStr, meta: &DirMeta) -> io::Result<UnionDir> {
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

/// Owner and mode of a directory made along the way.
struct DirMeta {
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

fn set_owner_and_mode(fd: BorrowedFd<'_>, uid: u32, gid: u32, mode: u32) -> io::Result<()> {
    // Owner first: chown clears the setuid and setgid bits.
    rustix::fs::fchown(
        fd,
        Some(Uid::from_raw_unchecked(uid)),
        Some(Gid::from_raw_unchecked(gid)),
    )?;
    rustix::fs::fchmod(fd, Mode::from_raw_mode(mode & 0o7777))?;
    Ok(())
}

fn timestamps(secs: i64, nanos: u32) -> Timestamps {
    let time = Timespec {
        tv_sec: secs,
        tv_nsec: i64::from(nanos.min(999_999_999)),
    };
    Timestamps {
        last_access: time,
        last_modification: time,
    }
}

fn set_times(fd: BorrowedFd<'_>, secs: i64, nanos: u32) -> io::Result<()> {
    rustix::fs::futimens(fd, &timestamps(secs, nanos))?;
    Ok(())
}

/// Removes `name` from `dir` whatever it is, a directory with its content; never through
/// a symlink. Nothing there is fine.
fn remove_all_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    remove_tree(dir, name, 0)
}

fn remove_tree(dir: BorrowedFd<'_>, name: &OsStr, depth: usize) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    let meta = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => Meta::of(&stat),
        Err(Errno::NOENT) => return Ok(()),
        Err(error) => return Err(error.into()),
    };
    if meta.is_dir() {
        let sub = rustix::fs::openat(dir, name, DIR_FLAGS, Mode::empty())?;
        let mut children = Vec::new();
        for entry in rustix::fs::Dir::read_from(&sub)? {
            let entry = entry?;
            let child = entry.file_name().to_bytes();
            if child != b"." && child != b".." {
                children.push(child.to_vec());
            }
        }
        for child in children {
            remove_tree(sub.as_fd(), OsStr::from_bytes(&child), depth + 1)?;
        }
        rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?;
    } else {
        rustix::fs::unlinkat(dir, name, AtFlags::empty())?;
    }
    Ok(())
}

fn too_deep() -> io::Error {
    io::Error::other(format!("the directory tree is more than {MAX_DEPTH} levels deep"))
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

// ------------------------------------------------------------------------------------------
// GET: a tar of the path

impl Tree {
    fn archive<W: Write>(&self, found: &Found, tar: &mut TarWriter<W>) -> io::Result<()> {
        let mut links = HashMap::new();
        let resolved = &found.resolved;
        match (&resolved.node, &resolved.parent) {
            (Node::Dir(dir), _) => self.archive_dir(tar, dir, &found.prefix, &mut links, 0),
            (Node::Other { layer, meta }, Some(parent)) => {
                self.archive_other(tar, parent.fd(*layer)?, &resolved.name, meta, &found.prefix, &mut links)
            }
            _ => Err(Errno::NOENT.into()),
        }
    }

    fn archive_dir<W: Write>(
        &self,
        tar: &mut TarWriter<W>,
        dir: &UnionDir,
        prefix: &[u8],
        links: &mut HashMap<(u64, u64), Vec<u8>>,
        depth: usize,
    ) -> io::Result<()> {
        let own = if prefix.is_empty() {
            b"./".to_vec()
        } else {
            [prefix, b"/"].concat()
        };
        if depth > MAX_DEPTH {
            return Err(too_deep());
        }
        tar.header(&own, TYPE_DIR, &dir.meta, 0, b"")?;
        if self.pseudo(dir) {
            return Ok(());
        }
        for name in self.list(dir)? {
            let os_name = OsStr::from_bytes(&name);
            let entry = if prefix.is_empty() {
                name.clone()
            } else {
                [prefix, b"/", &name].concat()
            };
            match self.lookup(dir, os_name)? {
                Node::Missing => {}
                Node::Dir(sub) => self.archive_dir(tar, &sub, &entry, links, depth + 1)?,
                Node::Other { layer, meta } => {
                    self.archive_other(tar, dir.fd(layer)?, os_name, &meta, &entry, links)?
                }
            }
        }
        Ok(())
    }

    fn archive_other<W: Write>(
        &self,
        tar: &mut TarWriter<W>,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        meta: &Meta,
        entry: &[u8],
        links: &mut HashMap<(u64, u64), Vec<u8>>,
    ) -> io::Result<()> {
        match meta.kind() {
            FileType::RegularFile => {
                if meta.nlink > 1 {
                    if let Some(first) = links.get(&(meta.dev, meta.ino)) {
                        return tar.header(entry, TYPE_LINK, meta, 0, first);
                    }
                    links.insert((meta.dev, meta.ino), entry.to_vec());
                }
                // O_NONBLOCK: a fifo swapped in meanwhile must not hang the copy.
                let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
                let fd = match rustix::fs::openat(parent, name, flags, Mode::empty()) {
                    Ok(fd) => fd,
                    Err(Errno::NOENT) => return Ok(()), // gone since listed
                    Err(error) => return Err(error.into()),
                };
                let meta = Meta::of(&rustix::fs::fstat(&fd)?);
                if meta.kind() != FileType::RegularFile {
                    return Ok(());
                }
                tar.header(entry, TYPE_FILE, &meta, meta.size, b"")?;
                tar.data(std::fs::File::from(fd), meta.size)
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(parent, name, Vec::new())?;
                tar.header(entry, TYPE_SYMLINK, meta, 0, target.as_bytes())
            }
            FileType::CharacterDevice => tar.header(entry, TYPE_CHAR, meta, 0, b""),
            FileType::BlockDevice => tar.header(entry, TYPE_BLOCK, meta, 0, b""),
            FileType::Fifo => tar.header(entry, TYPE_FIFO, meta, 0, b""),
            // Sockets have no tar form (Docker skips them too).
            _ => Ok(()),
        }
    }
}

/// The `GET` body: the tar in chunks, through a small channel to the response.
struct BodyWriter {
    sender: mpsc::Sender<io::Result<Bytes>>,
    buffer: Vec<u8>,
}

impl BodyWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK)));
        self.sender
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for BodyWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CHUNK {
            self.send()?;
        }
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

// ------------------------------------------------------------------------------------------
// PUT: a tar extracted

/// The request body as a blocking reader: chunks come through a small channel, so an
/// upload is never held whole in memory. A body that breaks off is an error, not an end.
struct BodyReader {
    chunks: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

fn body_reader(body: Body) -> BodyReader {
    let (sender, chunks) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut stream = body.into_data_stream();
        let mut wanted = true;
        while let Some(chunk) = stream.next().await {
            // Once the extraction has stopped (done or failed), the rest is read and
            // dropped, so that the client finishes sending and reads the answer.
            if !wanted {
                continue;
            }
            let broken = chunk.is_err();
            let chunk = chunk.map_err(|e| io::Error::other(format!("reading the request body: {e}")));
            if sender.send(chunk).await.is_err() {
                wanted = false;
            }
            if broken {
                break;
            }
        }
    });
    BodyReader {
        chunks,
        current: Bytes::new(),
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(error)) => return Err(error),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// A tar entry's name made relative to the extraction directory, as Docker's
/// `filepath.Join(dest, filepath.Clean(name))`: a leading `/` is dropped, `.` and `..` are
/// applied, and climbing above the directory is refused.
pub fn entry_names(name: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut clean: Vec<Vec<u8>> = Vec::new();
    for part in names(name) {
        match part {
            b"." => {}
            b".." => {
                if clean.pop().is_none() {
                    return Err(format!(
                        "{:?} is outside of the extraction directory",
                        String::from_utf8_lossy(name)
                    ));
                }
            }
            part => clean.push(part.to_vec()),
        }
    }
    Ok(clean)
}

fn pseudo_refused(path: &str) -> ApiError {
    ApiError::bad_request(format!(
        "cannot copy into {path}: it is a pseudo file system of the container (like /proc or /sys)"
    ))
}

fn join(base: &Path, names: &[Vec<u8>]) -> Vec<u8> {
    let mut path = base.as_os_str().as_bytes().to_vec();
    for name in names {
        path.push(b'/');
        path.extend_from_slice(name);
    }
    path
}

impl Tree {
    fn extract(&self, request: &str, container: &str, no_overwrite: bool, body: impl Read + Send) -> ApiResult<()> {
        let (abs, _) = request_path(request);
        let dest = match self.resolve_dir(abs.as_bytes(), false) {
            Ok(dest) => dest,
            Err(e) if errno(&e, Errno::NOENT) => {
                return Err(ApiError::not_found(format!(
                    "Could not find the file {request} in container {container}"
                )))
            }
            Err(e) if errno(&e, Errno::NOTDIR) => {
                return Err(ApiError::bad_request("extraction point is not a directory"))
            }
            Err(e) => return Err(ApiError::internal(format!("looking up {request}: {e}"))),
        };
        if self.pseudo(&dest) {
            return Err(pseudo_refused(request));
        }
        let stream = step06_images::unpack::decompress(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let mut tar = TarReader::new(stream);
        let mut extraction = Extraction {
            tree: self,
            dest: dest.path.clone(),
            no_overwrite,
            parent: None,
            dir_times: Vec::new(),
        };
        while let Some(entry) = tar
            .next_entry()
            .map_err(|e| ApiError::bad_request(format!("reading the archive: {e}")))?
        {
            extraction.entry(&entry, &mut tar)?;
        }
        extraction.set_dir_times();
        Ok(())
    }
}

/// One `PUT`.
struct Extraction<'t> {
    tree: &'t Tree,
    /// The extraction directory's path in the container.
    dest: PathBuf,
    no_overwrite: bool,
    /// The directory of the last entry, kept for the next (entries come by directory).
    parent: Option<(Vec<Vec<u8>>, UnionDir)>,
    /// Directory mtimes, set at the end: creating a child changes its directory's mtime.
    dir_times: Vec<(PathBuf, i64)>,
}

impl Extraction<'_> {
    fn entry(&mut self, entry: &TarEntry, data: &mut dyn Read) -> ApiResult<()> {
        let shown = String::from_utf8_lossy(&entry.name).into_owned();
        let failed = |action: &str, e: io::Error| ApiError::internal(format!("{shown}: {action}: {e}"));
        let names = entry_names(&entry.name).map_err(ApiError::bad_request)?;
        let Some((name, parents)) = names.split_last() else {
            // `./`: the extraction directory itself, which stays as it is.
            return if entry.is_dir() {
                Ok(())
            } else {
                Err(ApiError::bad_request(format!(
                    "{shown}: cannot replace the extraction directory"
                )))
            };
        };
        let name = OsStr::from_bytes(name).to_owned();
        let tree = self.tree;
        let cached = self.parent.as_ref().is_some_and(|(key, _)| key.as_slice() == parents);
        if !cached {
            let dir = tree
                .resolve_dir(&join(&self.dest, parents), true)
                .map_err(|e| failed("making its directory", e))?;
            if tree.pseudo(&dir) {
                return Err(pseudo_refused(&dir.path.display().to_string()));
            }
            self.parent = Some((parents.to_vec(), dir));
        }
        let Some((_, parent)) = self.parent.as_mut() else {
            return Err(ApiError::internal("lost the entry's directory"));
        };
        let path = parent.path.join(&name);
        let existing = tree.lookup(parent, &name).map_err(|e| failed("looking it up", e))?;
        if self.no_overwrite {
            match (&existing, entry.is_dir()) {
                (Node::Dir(_), false) => {
                    return Err(ApiError::bad_request(format!(
                        "cannot overwrite directory {:?} with non-directory {:?}",
                        path.display().to_string(),
                        self.dest.display().to_string()
                    )))
                }
                (Node::Other { .. }, true) => {
                    return Err(ApiError::bad_request(format!(
                        "cannot overwrite non-directory {:?} with directory {:?}",
                        path.display().to_string(),
                        self.dest.display().to_string()
                    )))
                }
                _ => {}
            }
        }
        if entry.is_dir() {
            let mut dir = match existing {
                // A mount point of /proc or /sys stays as it is.
                Node::Dir(dir) if tree.pseudo(&dir) => return Ok(()),
                Node::Dir(dir) => dir,
                _ => tree
                    .make_dir(parent, &name, &DirMeta::default())
                    .map_err(|e| failed("making the directory", e))?,
            };
            let fd = tree.writable(&mut dir).map_err(|e| failed("copying up", e))?;
            set_owner_and_mode(fd, entry.uid, entry.gid, entry.mode).map_err(|e| failed("setting its metadata", e))?;
            self.dir_times.push((path, entry.mtime));
            return Ok(());
        }
        // A hard link's target is found before anything is replaced (it may be this name).
        let source = match entry.kind {
            TYPE_LINK => {
                let source = link_source(tree, &self.dest, entry)?;
                if source.path == path {
                    return Ok(()); // a link to itself: it is there already
                }
                Some(source)
            }
            _ => None,
        };
        let writable = tree
            .writable(parent)
            .map_err(|e| failed("copying up its directory", e))?;
        remove_all_at(writable, &name).map_err(|e| failed("replacing what was there", e))?;
        let made = match (entry.kind, source) {
            (_, Some(source)) => source.parent.fd(source.layer).and_then(|from| {
                Ok(rustix::fs::linkat(
                    from,
                    &source.name,
                    writable,
                    &name,
                    AtFlags::empty(),
                )?)
            }),
            (TYPE_FILE | TYPE_CONTIGUOUS | TYPE_OLD_FILE, _) => write_file(writable, &name, entry, data),
            (TYPE_SYMLINK, _) => make_symlink(writable, &name, entry),
            (TYPE_CHAR | TYPE_BLOCK | TYPE_FIFO, _) => make_node(writable, &name, entry),
            (kind, _) => {
                return Err(ApiError::bad_request(format!(
                    "{shown}: entry type {:?} is not supported",
                    char::from(kind)
                )))
            }
        };
        made.map_err(|e| failed("extracting", e))
    }

    fn set_dir_times(&self) {
        for (path, mtime) in self.dir_times.iter().rev() {
            if let Ok(dir) = self.tree.resolve_dir(path.as_os_str().as_bytes(), false) {
                if let Some((0, fd)) = dir.fds.first() {
                    let _ = set_times(fd.as_fd(), *mtime, 0);
                }
            }
        }
    }
}

/// A hard link's target: a name of the extraction directory (Docker's
/// `filepath.Join(dest, linkname)`), already there, not a directory; in a snapshot, a
/// file of the upper dir.
fn link_source(tree: &Tree, dest: &Path, entry: &TarEntry) -> ApiResult<LinkSource> {
    let shown = || {
        format!(
            "invalid hardlink {:?} -> {:?}",
            String::from_utf8_lossy(&entry.name),
            String::from_utf8_lossy(&entry.link)
        )
    };
    let names = entry_names(&entry.link).map_err(|_| ApiError::bad_request(shown()))?;
    let Some((name, parents)) = names.split_last() else {
        return Err(ApiError::bad_request(shown()));
    };
    let name = OsStr::from_bytes(name).to_owned();
    let parent = tree
        .resolve_dir(&join(dest, parents), false)
        .map_err(|e| ApiError::bad_request(format!("{}: {e}", shown())))?;
    match tree.lookup(&parent, &name) {
        Ok(Node::Other { layer, .. }) if !tree.overlay || layer == 0 => Ok(LinkSource {
            path: parent.path.join(&name),
            parent,
            name,
            layer,
        }),
        Ok(Node::Other { .. }) => Err(ApiError::bad_request(format!(
            "{}: the target is in the image's layers (link to it while the container runs)",
            shown()
        ))),
        Ok(Node::Dir(_)) => Err(ApiError::bad_request(format!("{}: the target is a directory", shown()))),
        Ok(Node::Missing) => Err(ApiError::bad_request(format!("{}: the target does not exist", shown()))),
        Err(e) => Err(ApiError::bad_request(format!("{}: {e}", shown()))),
    }
}

struct LinkSource {
    parent: UnionDir,
    name: OsString,
    layer: usize,
    path: PathBuf,
}

/// A regular file: made by us (never over something, never through a symlink), its
/// content, then owner, mode and mtime through its descriptor.
fn write_file(dir: BorrowedFd<'_>, name: &OsStr, entry: &TarEntry, data: &mut dyn Read) -> io::Result<()> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(0o600))?;
    let mut file = std::fs::File::from(fd);
    let copied = io::copy(&mut data.take(entry.size), &mut file)?;
    if copied < entry.size {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the archive ends inside the file",
        ));
    }
    set_owner_and_mode(file.as_fd(), entry.uid, entry.gid, entry.mode)?;
    set_times(file.as_fd(), entry.mtime, 0)
}

/// A symlink, as it is: its target is the container's business (followed inside the
/// root by anything we do later).
fn make_symlink(dir: BorrowedFd<'_>, name: &OsStr, entry: &TarEntry) -> io::Result<()> {
    rustix::fs::symlinkat(OsStr::from_bytes(&entry.link), dir, name)?;
    let (uid, gid) = (Uid::from_raw_unchecked(entry.uid), Gid::from_raw_unchecked(entry.gid));
    rustix::fs::chownat(dir, name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)?;
    rustix::fs::utimensat(dir, name, &timestamps(entry.mtime, 0), AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// A device or a fifo. Its mode is set through `/proc/self/fd` on an `O_PATH` descriptor
/// of the node itself (`fchmodat` would follow a symlink swapped in by the container).
fn make_node(dir: BorrowedFd<'_>, name: &OsStr, entry: &TarEntry) -> io::Result<()> {
    let kind = match entry.kind {
        TYPE_CHAR => FileType::CharacterDevice,
        TYPE_BLOCK => FileType::BlockDevice,
        _ => FileType::Fifo,
    };
    let device = match kind {
        FileType::Fifo => 0,
        _ => rustix::fs::makedev(entry.major, entry.minor),
    };
    rustix::fs::mknodat(dir, name, kind, Mode::from_raw_mode(0o600), device)?;
    let node = rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    if Meta::of(&rustix::fs::fstat(&node)?).kind() != kind {
        return Err(io::Error::other("the node was replaced while being made"));
    }
    let (uid, gid) = (Uid::from_raw_unchecked(entry.uid), Gid::from_raw_unchecked(entry.gid));
    rustix::fs::chownat(&node, "", Some(uid), Some(gid), AtFlags::EMPTY_PATH)?;
    let magic = format!("/proc/self/fd/{}", node.as_raw_fd());
    rustix::fs::chmodat(
        CWD,
        magic.as_str(),
        Mode::from_raw_mode(entry.mode & 0o7777),
        AtFlags::empty(),
    )?;
    rustix::fs::utimensat(dir, name, &timestamps(entry.mtime, 0), AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

// ------------------------------------------------------------------------------------------
// Tar, both ways (ustar with PAX and GNU long-name extensions)

const BLOCK: usize = 512;
const TYPE_OLD_FILE: u8 = b'\0';
const TYPE_FILE: u8 = b'0';
const TYPE_LINK: u8 = b'1';
const TYPE_SYMLINK: u8 = b'2';
const TYPE_CHAR: u8 = b'3';
const TYPE_BLOCK: u8 = b'4';
const TYPE_DIR: u8 = b'5';
const TYPE_FIFO: u8 = b'6';
const TYPE_CONTIGUOUS: u8 = b'7';
const TYPE_PAX: u8 = b'x';
const TYPE_PAX_GLOBAL: u8 = b'g';
const TYPE_GNU_LONG_NAME: u8 = b'L';
const TYPE_GNU_LONG_LINK: u8 = b'K';
/// The largest PAX or GNU long-name record read.
const MAX_META: u64 = 1 << 20;

/// One tar entry's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntry {
    pub name: Vec<u8>,
    pub link: Vec<u8>,
    pub kind: u8,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub size: u64,
    pub major: u32,
    pub minor: u32,
}

impl TarEntry {
    fn is_dir(&self) -> bool {
        // Old (v7) tars mark a directory only by a trailing slash.
        self.kind == TYPE_DIR || (matches!(self.kind, TYPE_FILE | TYPE_OLD_FILE) && self.name.ends_with(b"/"))
    }
}

/// Writes a tar entry by entry.
struct TarWriter<W: Write> {
    out: W,
}

fn put_field(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// An octal number filling `field` (NUL-terminated), or false if it does not fit.
fn put_octal(field: &mut [u8], value: u64) -> bool {
    let width = field.len() - 1;
    let text = format!("{value:0width$o}");
    if text.len() > width {
        return false;
    }
    put_field(field, text.as_bytes());
    field[width] = 0;
    true
}

/// PAX records: `LEN KEY=VALUE\n`, LEN counting itself.
fn pax_records(records: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in records {
        let body = key.len() + value.len() + 3; // ' ', '=', '\n'
        let mut len = body + 1;
        while len != body + len.to_string().len() {
            len = body + len.to_string().len();
        }
        out.extend_from_slice(format!("{len} {key}=").as_bytes());
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    out
}

/// A name split into ustar's prefix (155) and name (100) fields, if it can be.
fn split_ustar(name: &[u8]) -> Option<(&[u8], &[u8])> {
    if name.len() <= 100 {
        return Some((b"", name));
    }
    let at = (1..name.len().min(156)).find(|&i| name[i] == b'/' && name.len() - i - 1 <= 100 && i + 1 < name.len())?;
    Some((&name[..at], &name[at + 1..]))
}

impl<W: Write> TarWriter<W> {
    fn header(&mut self, name: &[u8], kind: u8, meta: &Meta, size: u64, link: &[u8]) -> io::Result<()> {
        let mut pax: Vec<(&str, Vec<u8>)> = Vec::new();
        let mut block = [0u8; BLOCK];
        match split_ustar(name) {
            Some((prefix, rest)) => {
                put_field(&mut block[0..100], rest);
                put_field(&mut block[345..500], prefix);
            }
            None => {
                pax.push(("path", name.to_vec()));
                put_field(&mut block[0..100], name);
            }
        }
        if link.len() > 100 {
            pax.push(("linkpath", link.to_vec()));
        }
        put_field(&mut block[157..257], link);
        put_octal(&mut block[100..108], u64::from(meta.mode & 0o7777));
        if !put_octal(&mut block[108..116], u64::from(meta.uid)) {
            pax.push(("uid", meta.uid.to_string().into_bytes()));
        }
        if !put_octal(&mut block[116..124], u64::from(meta.gid)) {
            pax.push(("gid", meta.gid.to_string().into_bytes()));
        }
        if !put_octal(&mut block[124..136], size) {
            pax.push(("size", size.to_string().into_bytes()));
        }
        if !put_octal(&mut block[136..148], u64::try_from(meta.mtime).unwrap_or(0)) {
            pax.push(("mtime", meta.mtime.to_string().into_bytes()));
        }
        block[156] = kind;
        put_field(&mut block[257..263], b"ustar\0");
        put_field(&mut block[263..265], b"00");
        if matches!(kind, TYPE_CHAR | TYPE_BLOCK) {
            put_octal(&mut block[329..337], u64::from(rustix::fs::major(meta.rdev)));
            put_octal(&mut block[337..345], u64::from(rustix::fs::minor(meta.rdev)));
        }
        if !pax.is_empty() {
            let records = pax_records(&pax);
            let mut own = [0u8; BLOCK];
            put_field(&mut own[0..100], b"././@PaxHeader");
            put_octal(&mut own[100..108], 0o644);
            put_octal(&mut own[108..116], 0);
            put_octal(&mut own[116..124], 0);
            put_octal(&mut own[124..136], records.len() as u64);
            put_octal(&mut own[136..148], 0);
            own[156] = TYPE_PAX;
            put_field(&mut own[257..263], b"ustar\0");
            put_field(&mut own[263..265], b"00");
            checksum(&mut own);
            self.out.write_all(&own)?;
            self.out.write_all(&records)?;
            self.pad(records.len() as u64)?;
        }
        checksum(&mut block);
        self.out.write_all(&block)
    }

    /// Exactly `size` bytes of `file` (zeros if it shrank since its header), padded.
    fn data(&mut self, file: impl Read, size: u64) -> io::Result<()> {
        let copied = io::copy(&mut file.take(size), &mut self.out)?;
        io::copy(&mut io::repeat(0).take(size - copied), &mut self.out)?;
        self.pad(size)
    }

    fn pad(&mut self, size: u64) -> io::Result<()> {
        let rest = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        io::copy(&mut io::repeat(0).take(rest), &mut self.out)?;
        Ok(())
    }

    /// The two zero blocks that end an archive.
    fn finish(&mut self) -> io::Result<()> {
        self.out.write_all(&[0u8; 2 * BLOCK])?;
        self.out.flush()
    }
}

fn header_sum(block: &[u8; BLOCK]) -> u64 {
    block
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                u64::from(b' ')
            } else {
                u64::from(*b)
            }
        })
        .sum()
}

fn checksum(block: &mut [u8; BLOCK]) {
    let sum = header_sum(block);
    put_field(&mut block[148..156], format!("{sum:06o}\0 ").as_bytes());
}

/// Reads a tar entry by entry; between entries, it reads as the current entry's content.
pub struct TarReader<R: Read> {
    inner: R,
    /// Content of the current entry not read yet, then its padding.
    remaining: u64,
    padding: u64,
    done: bool,
}

fn bad(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// A NUL-terminated field.
fn field_text(field: &[u8]) -> &[u8] {
    field.split(|b| *b == 0).next().unwrap_or_default()
}

/// A numeric field: octal (NUL- or space-padded, empty is 0) or GNU base-256.
fn numeric(field: &[u8], what: &str) -> io::Result<u64> {
    match field.first() {
        Some(first) if first & 0x80 != 0 => {
            if *first == 0xff {
                return Err(bad(format!("negative {what}")));
            }
            let mut value = u64::from(first & 0x7f);
            for byte in &field[1..] {
                value = value
                    .checked_mul(256)
                    .and_then(|v| v.checked_add(u64::from(*byte)))
                    .ok_or_else(|| bad(format!("{what} out of range")))?;
            }
            Ok(value)
        }
        _ => {
            let text = String::from_utf8_lossy(field);
            let text = text.trim_matches(|c| c == '\0' || c == ' ');
            if text.is_empty() {
                return Ok(0);
            }
            u64::from_str_radix(text, 8).map_err(|_| bad(format!("bad {what} {text:?}")))
        }
    }
}

fn parse_pax(data: &[u8], into: &mut HashMap<String, Vec<u8>>) -> io::Result<()> {
    let mut rest = data;
    while !rest.is_empty() && rest.iter().any(|b| *b != 0) {
        let space = rest
            .iter()
            .position(|b| *b == b' ')
            .ok_or_else(|| bad("bad PAX record"))?;
        let len: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| bad("bad PAX record length"))?;
        if len <= space + 1 || len > rest.len() {
            return Err(bad("bad PAX record length"));
        }
        let record = rest[space + 1..len]
            .strip_suffix(b"\n")
            .ok_or_else(|| bad("bad PAX record"))?;
        let eq = record
            .iter()
            .position(|b| *b == b'=')
            .ok_or_else(|| bad("bad PAX record"))?;
        let key = String::from_utf8_lossy(&record[..eq]).into_owned();
        into.insert(key, record[eq + 1..].to_vec());
        rest = &rest[len..];
    }
    Ok(())
}

fn pax_number(pax: &HashMap<String, Vec<u8>>, key: &str) -> io::Result<Option<u64>> {
    let Some(value) = pax.get(key) else { return Ok(None) };
    let text = String::from_utf8_lossy(value);
    // mtime may have a fraction: the seconds are enough.
    let whole = text.split('.').next().unwrap_or_default();
    whole
        .parse()
        .map(Some)
        .map_err(|_| bad(format!("bad PAX {key} {text:?}")))
}

impl<R: Read> TarReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            remaining: 0,
            padding: 0,
            done: false,
        }
    }

    /// A whole block, or None at a clean end of stream.
    fn block(&mut self) -> io::Result<Option<[u8; BLOCK]>> {
        let mut block = [0u8; BLOCK];
        let mut filled = 0;
        while filled < BLOCK {
            match self.inner.read(&mut block[filled..]) {
                Ok(0) if filled == 0 => return Ok(None),
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the archive ends inside a header",
                    ))
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Some(block))
    }

    fn skip(&mut self, count: u64) -> io::Result<()> {
        let skipped = io::copy(&mut (&mut self.inner).take(count), &mut io::sink())?;
        if skipped < count {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ends inside an entry",
            ));
        }
        Ok(())
    }

    /// The content of a PAX or GNU long-name entry.
    fn meta_content(&mut self, size: u64) -> io::Result<Vec<u8>> {
        if size > MAX_META {
            return Err(bad("an extended header is too large"));
        }
        let mut data = Vec::new();
        (&mut self.inner).take(size).read_to_end(&mut data)?;
        if (data.len() as u64) < size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ends inside a header",
            ));
        }
        self.skip((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64)?;
        Ok(data)
    }

    /// The next entry (what is left of the current one is skipped), or None at the end.
    pub fn next_entry(&mut self) -> io::Result<Option<TarEntry>> {
        if self.done {
            return Ok(None);
        }
        self.skip(self.remaining + self.padding)?;
        self.remaining = 0;
        self.padding = 0;
        let mut pax = HashMap::new();
        let mut long_name = None;
        let mut long_link = None;
        loop {
            let Some(block) = self.block()? else {
                self.done = true;
                return Ok(None);
            };
            if block.iter().all(|b| *b == 0) {
                self.done = true;
                return Ok(None);
            }
            let stored = numeric(&block[148..156], "checksum")?;
            let signed: i64 = block
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    if (148..156).contains(&i) {
                        i64::from(b' ')
                    } else {
                        i64::from(*b as i8)
                    }
                })
                .sum();
            if stored != header_sum(&block) && i64::try_from(stored).ok() != Some(signed) {
                return Err(bad("not a tar archive (bad header checksum)"));
            }
            let kind = block[156];
            let size = numeric(&block[124..136], "size")?;
            match kind {
                TYPE_PAX => {
                    let data = self.meta_content(size)?;
                    parse_pax(&data, &mut pax)?;
                    continue;
                }
                TYPE_PAX_GLOBAL => {
                    self.meta_content(size)?;
                    continue;
                }
                TYPE_GNU_LONG_NAME | TYPE_GNU_LONG_LINK => {
                    let data = self.meta_content(size)?;
                    let text = field_text(&data).to_vec();
                    if kind == TYPE_GNU_LONG_NAME {
                        long_name = Some(text);
                    } else {
                        long_link = Some(text);
                    }
                    continue;
                }
                _ => {}
            }
            let name = match (pax.remove("path"), long_name.take()) {
                (Some(name), _) | (None, Some(name)) => name,
                (None, None) => {
                    let name = field_text(&block[0..100]);
                    let prefix = field_text(&block[345..500]);
                    if &block[257..263] == b"ustar\0" && !prefix.is_empty() {
                        [prefix, b"/", name].concat()
                    } else {
                        name.to_vec()
                    }
                }
            };
            let link = match (pax.remove("linkpath"), long_link.take()) {
                (Some(link), _) | (None, Some(link)) => link,
                (None, None) => field_text(&block[157..257]).to_vec(),
            };
            let size = pax_number(&pax, "size")?.unwrap_or(size);
            let small = |value: u64, what: &str| u32::try_from(value).map_err(|_| bad(format!("{what} out of range")));
            let entry = TarEntry {
                name,
                link,
                kind,
                mode: small(numeric(&block[100..108], "mode")? & 0o7777, "mode")?,
                uid: small(
                    pax_number(&pax, "uid")?.map_or_else(|| numeric(&block[108..116], "uid"), Ok)?,
                    "uid",
                )?,
                gid: small(
                    pax_number(&pax, "gid")?.map_or_else(|| numeric(&block[116..124], "gid"), Ok)?,
                    "gid",
                )?,
                mtime: i64::try_from(
                    pax_number(&pax, "mtime")?.map_or_else(|| numeric(&block[136..148], "mtime"), Ok)?,
                )
                .map_err(|_| bad("mtime out of range"))?,
                size,
                major: small(numeric(&block[329..337], "device major")?, "device major")?,
                minor: small(numeric(&block[337..345], "device minor")?, "device minor")?,
            };
            // As Go's archive/tar: these types have no content, whatever the size says.
            let header_only = matches!(
                kind,
                TYPE_LINK | TYPE_SYMLINK | TYPE_CHAR | TYPE_BLOCK | TYPE_DIR | TYPE_FIFO
            );
            if !header_only {
                self.remaining = size;
                self.padding = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
            }
            return Ok(Some(entry));
        }
    }
}

impl<R: Read> Read for TarReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let most = usize::try_from(self.remaining).unwrap_or(usize::MAX).min(buf.len());
        let n = self.inner.read(&mut buf[..most])?;
        self.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(mode: u32, uid: u32) -> Meta {
        Meta {
            mode,
            uid,
            gid: 0,
            size: 0,
            mtime: 1_700_000_000,
            mtime_nsec: 0,
            nlink: 1,
            rdev: 0,
            dev: 0,
            ino: 0,
        }
    }

    #[test]
    fn request_paths_clean_like_dockers() {
        assert_eq!(
            request_path("/tmp/hostfile.txt"),
            ("/tmp/hostfile.txt".into(), "hostfile.txt".into())
        );
        assert_eq!(request_path("/tmp/"), ("/tmp/".into(), "tmp".into()));
        assert_eq!(request_path("/tmp/."), ("/tmp/.".into(), ".".into()));
        assert_eq!(request_path("tmp/../../etc"), ("/etc".into(), "etc".into()));
        assert_eq!(request_path("/"), ("/".into(), "/".into()));
        assert_eq!(request_path("/tmp/escape/.."), ("/tmp".into(), "tmp".into()));
    }

    #[test]
    fn entry_names_stay_under_the_destination() {
        let joined = |n: &[u8]| entry_names(n).map(|v| v.join(&b'/'));
        assert_eq!(joined(b"/etc/passwd").expect("absolute"), b"etc/passwd");
        assert_eq!(joined(b"./a/../b/").expect("dots"), b"b");
        assert!(joined(b"../x").is_err());
        assert!(joined(b"a/../../x").is_err());
        assert_eq!(joined(b"./").expect("root"), b"");
    }

    #[test]
    fn the_stat_header_is_what_the_cli_decodes() {
        // The capture's header for /tmp/hostfile.txt (45b-cp-from.log).
        let stat = PathStat {
            name: "hostfile.txt".into(),
            size: 18,
            mode: go_file_mode(0o100644),
            mtime: go_time(1_795_389_600, 0),
            link_target: String::new(),
        };
        assert_eq!(stat.mode, 420);
        assert_eq!(
            String::from_utf8_lossy(&serde_json::to_vec(&stat).expect("json")),
            r#"{"name":"hostfile.txt","size":18,"mode":420,"mtime":"2026-11-22T23:20:00Z","linkTarget":""}"#
        );
        assert_eq!(go_file_mode(0o040755), 2_147_484_141);
        assert_eq!(go_file_mode(0o120777), (1 << 27) | 0o777);
        assert_eq!(go_time(1, 500_000_000), "1970-01-01T00:00:01.5Z");
        assert_eq!(base64(b"hello"), "aGVsbG8=");
        assert_eq!(base64(b"hell"), "aGVsbA==");
        assert_eq!(base64(b"hel"), "aGVs");
    }

    #[test]
    fn tars_we_write_read_back_long_names_and_large_ids_included() {
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(150)).into_bytes();
        let mut tar = TarWriter { out: Vec::new() };
        tar.header(b"top/", TYPE_DIR, &meta(0o040755, 0), 0, b"").expect("dir");
        tar.header(b"top/file", TYPE_FILE, &meta(0o100640, 3_000_000), 5, b"")
            .expect("file");
        tar.data(&b"hello"[..], 5).expect("data");
        tar.header(
            &long,
            TYPE_SYMLINK,
            &meta(0o120777, 0),
            0,
            &"t".repeat(200).into_bytes(),
        )
        .expect("long");
        tar.finish().expect("finish");
        let bytes = tar.out;
        assert_eq!(bytes.len() % BLOCK, 0);

        let mut reader = TarReader::new(&bytes[..]);
        let dir = reader.next_entry().expect("read").expect("dir");
        assert_eq!(
            (dir.name.as_slice(), dir.kind, dir.mode),
            (&b"top/"[..], TYPE_DIR, 0o755)
        );
        let file = reader.next_entry().expect("read").expect("file");
        assert_eq!((file.uid, file.mode, file.size), (3_000_000, 0o640, 5));
        let mut content = Vec::new();
        reader.read_to_end(&mut content).expect("content");
        assert_eq!(content, b"hello");
        let link = reader.next_entry().expect("read").expect("link");
        assert_eq!(link.name, long);
        assert_eq!(link.link, "t".repeat(200).into_bytes());
        assert!(reader.next_entry().expect("end").is_none());
    }

    #[test]
    fn a_corrupt_header_is_refused() {
        let mut tar = TarWriter { out: Vec::new() };
        tar.header(b"f", TYPE_FILE, &meta(0o100644, 0), 0, b"").expect("file");
        let mut bytes = tar.out;
        bytes[0] = b'g';
        let error = TarReader::new(&bytes[..]).next_entry().expect_err("checksum");
        assert!(error.to_string().contains("checksum"), "{error}");
    }
}
