//! Unpacking a layer: a tar stream (often gzip-compressed) becomes a directory that step 05
//! stacks as an overlayfs lower layer.
//!
//! A layer is hostile input: it comes from a registry or a tarball someone else wrote, and we
//! unpack it as root (or, rootless, as the user). A tar entry is only a name and some bytes, and a name like
//! `../../etc/cron.d/x`, or a symlink `evil -> /` followed by a file `evil/etc/shadow`, would
//! write on the host if we let a library "just unpack" it. So the `tar` crate only *parses*
//! here; every file is created by the code below, under these rules:
//!
//! 1. **Paths stay inside the layer.** A leading `./` is dropped; an absolute path or one
//!    with a `..` component is refused. The empty path (`./`) is the layer's root directory.
//! 2. **Nothing is written through a symlink.** Every parent of an entry must be a real
//!    directory of the layer (checked with `lstat`, never `stat`), missing ones are created;
//!    the entry's own name is removed first if something is there (a later entry replaces an
//!    earlier one, but a directory stays a directory), and files are created with
//!    `O_CREAT|O_EXCL|O_NOFOLLOW`. Symlinks are created as they are: their targets are
//!    resolved inside the container, by its processes, never by us.
//! 3. **Hard links point into the layer.** A hard link's target is a path of the layer (a
//!    leading `/` means the layer's root); it must already exist there, reached through real
//!    directories only, and must not be a directory. A layer cannot link the host's
//!    `/etc/shadow` into an image.
//! 4. **Metadata is the entry's:** mode (setuid bits included), owner (the user's own when
//!    unpacking without root), modification time,
//!    device numbers, and the `user.*` and `security.capability` extended attributes of
//!    PAX headers. Other xattrs (`trusted.overlay.*` above all, which steers overlayfs) are
//!    not the layer's to set.
//! 5. **Whiteouts become overlayfs whiteouts.** The OCI image spec records a deletion as
//!    an empty entry `.wh.NAME`, and "this directory replaces the one below" as an entry
//!    `.wh..wh..opq` inside it; overlayfs wants a character device 0:0 named NAME, and the
//!    xattr `trusted.overlay.opaque=y` on the directory.
//!
//! The whole uncompressed stream is hashed as it is read: its sha256 is the layer's *diff
//! id*, which the image config lists, so the caller can check we unpacked what it expected.
//!
//! The checks use paths, not file descriptors (`openat2(RESOLVE_BENEATH)` would be the
//! belt and braces): this is sound because the destination is a fresh directory of the
//! store that nothing but this code writes to while it runs, so what `lstat` saw is still
//! there when we create the entry.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{fchown, lchown, symlink, DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, AT_FDCWD};
use nix::sys::stat::{makedev, mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use step05_overlay::whiteout::OPAQUE_XATTR;
use tar::{Entry, EntryType, Header};

use crate::digest::Digest;
use crate::file_writer::{FileJob, FileWriter, MAX_QUEUED_FILE};
use crate::read_ahead::read_ahead;

/// The OCI prefix of a deletion marker: `.wh.NAME` deletes NAME.
const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// Names starting like this are the spec's own markers, not deletions.
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
/// The marker making its directory opaque.
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";

/// Whether a layer may set this extended attribute (see the module doc, rule 4): file
/// capabilities (`ping` needs them) and user attributes, nothing that steers the kernel.
fn allowed_xattr(name: &str) -> bool {
    name.starts_with("user.") || name == "security.capability"
}

/// Why a layer was not unpacked; all but the stream-level ones name the entry at fault.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("layers compressed with {0} are not supported (only gzip-compressed or plain tar layers are)")]
    Unsupported(&'static str),
    #[error("reading the layer's tar stream: {0}")]
    Read(io::Error),
    #[error("layer entry {path:?}: {reason}")]
    BadPath { path: String, reason: &'static str },
    #[error("layer entry {path:?}: {reason}")]
    BadHeader { path: String, reason: String },
    #[error("layer entry {path:?}: its parent {} is a symlink", parent.display())]
    SymlinkParent { path: String, parent: PathBuf },
    #[error("layer entry {path:?}: its parent {} is not a directory", parent.display())]
    NotADirectory { path: String, parent: PathBuf },
    #[error("layer entry {path:?}: hard link to {target:?} {reason}")]
    BadHardLink {
        path: String,
        target: String,
        reason: &'static str,
    },
    #[error("layer entry {path:?}: {action}: {error}")]
    Io {
        path: String,
        action: &'static str,
        error: io::Error,
    },
}

/// What unpacking a layer gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// The sha256 of the whole uncompressed tar stream.
    pub diff_id: Digest,
    /// How many entries the tar had (PAX global headers aside).
    pub entries: u64,
    /// The size of the uncompressed tar stream.
    pub bytes: u64,
}

/// Wraps a layer blob's bytes: gzip (magic 1f 8b) is decompressed, a plain tar passes as is;
/// zstd, xz and bzip2 layers give [`UnpackError::Unsupported`].
pub fn decompress<'a>(mut reader: impl Read + Send + 'a) -> Result<Box<dyn Read + Send + 'a>, UnpackError> {
    let mut magic = [0u8; 6];
    let len = read_up_to(&mut reader, &mut magic).map_err(UnpackError::Read)?;
    // Put back the bytes we looked at.
    let whole = io::Cursor::new(magic).take(len as u64).chain(reader);
    match compression(&magic[..len]) {
        // Multi-member: `pigz` and some registries write layers as concatenated gzip members.
        Some("gzip") => Ok(Box::new(flate2::read::MultiGzDecoder::new(whole))),
        Some(other) => Err(UnpackError::Unsupported(other)),
        None => Ok(Box::new(whole)),
    }
}

/// The compression its first bytes say a blob has, if any (a tar starts with a file name).
fn compression(magic: &[u8]) -> Option<&'static str> {
    match magic {
        [0x1f, 0x8b, ..] => Some("gzip"),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Some("zstd"),
        [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => Some("xz"),
        [b'B', b'Z', b'h', b'1'..=b'9', ..] => Some("bzip2"),
        _ => None,
    }
}

/// Fills `buf` as far as the reader goes (a short read is not the end of a stream).
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Unpacks the (uncompressed) tar stream into `dest`, an existing empty directory, following
/// the rules of the module doc, and returns the sha256 of the whole stream (the layer's diff
/// id: the stream is read to its end, the tar's end padding included).
///
/// On error, `dest` is left partly unpacked: the caller removes it (and must not use it).
pub fn unpack_layer(tar: impl Read + Send, dest: &Path) -> Result<Unpacked, UnpackError> {
    // Decompression and hashing run on a second thread (read_ahead.rs); this one parses the
    // tar stream and makes the files.
    let (entries, hashed) = read_ahead(tar, |stream| -> Result<u64, UnpackError> {
        let mut archive = tar::Archive::new(stream);
        let mut unpacker = Unpacker {
            dest,
            dir_times: Vec::new(),
            known_dirs: HashSet::new(),
            dest_was_empty: fs::read_dir(dest).map_err(UnpackError::Read)?.next().is_none(),
            created: HashSet::new(),
            pending: HashSet::new(),
            writer: FileWriter::new(),
            entries: 0,
        };
        for entry in archive.entries().map_err(UnpackError::Read)? {
            let mut entry = entry.map_err(UnpackError::Read)?;
            unpacker.entry(&mut entry)?;
        }
        unpacker.flush()?;
        unpacker.set_dir_times()?;
        // The tar parser stops at the first end-of-archive block; the digest covers the rest too.
        io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(UnpackError::Read)?;
        Ok(unpacker.entries)
    });
    let entries = entries?;
    let (diff_id, bytes) = hashed.map_err(UnpackError::Read)?;
    Ok(Unpacked {
        diff_id,
        entries,
        bytes,
    })
}

/// The state of one unpack.
struct Unpacker<'d> {
    dest: &'d Path,
    /// Directory mtimes, set at the end: creating a child changes its directory's mtime.
    dir_times: Vec<(PathBuf, i64)>,
    /// Parent directories (relative) already checked to be real directories in this unpack.
    /// Only this unpack writes under `dest`, so they stay so until it removes something;
    /// any removal forgets them all. It spares an `lstat` per parent per entry.
    known_dirs: HashSet<PathBuf>,
    /// Whether `dest` was empty at the start: then a path exists only if this unpack made it.
    dest_was_empty: bool,
    /// Every (relative) path this unpack made; a removal may leave stale ones, which only
    /// cost a check.
    created: HashSet<PathBuf>,
    /// Regular files handed to the writers since the last flush.
    pending: HashSet<PathBuf>,
    writer: FileWriter,
    entries: u64,
}

/// The metadata of an entry, checked.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    xattrs: Vec<(String, Vec<u8>)>,
}

impl Unpacker<'_> {
    /// Unpacks one entry.
    fn entry<R: Read>(&mut self, entry: &mut Entry<'_, R>) -> Result<(), UnpackError> {
        let kind = entry.header().entry_type();
        // A PAX global header describes the archive, not a file (the parser consumed it).
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        self.entries += 1;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let raw = entry.path().map_err(|_| bad_path(&name, "the path is not valid"))?;
        let rel = safe_path(&raw, Root::Refused).map_err(|reason| bad_path(&name, reason))?;
        // Old (v7) tars mark a directory only by a trailing slash on a regular entry.
        let is_dir = kind.is_dir() || (kind.is_file() && entry.path_bytes().ends_with(b"/"));
        let meta = meta(entry, &name)?;
        let Some(file_name) = rel.file_name() else {
            return self.root(&name, is_dir, &meta);
        };
        if let Some(whiteout) = Whiteout::of(file_name) {
            self.known_dirs.clear();
            return self.whiteout(&name, &rel, whiteout, &meta);
        }
        self.make_parents(&name, &rel)?;
        let path = self.dest.join(&rel);
        let made = if is_dir {
            self.dir(&name, &path, &meta)
        } else {
            match kind {
                EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                    self.file(entry, &name, &rel, &path, meta)
                }
                EntryType::Symlink => self.symlink(entry, &name, &path, &meta),
                EntryType::Link => self.hard_link(entry, &name, &rel),
                EntryType::Char | EntryType::Block | EntryType::Fifo => self.node(entry.header(), &name, &path, &meta),
                other => Err(UnpackError::BadHeader {
                    path: name,
                    reason: format!("entry type {:?} is not supported", char::from(other.as_byte())),
                }),
            }
        };
        made?;
        self.created.insert(rel);
        Ok(())
    }

    /// Waits for the files handed to the writers; their first failure is the unpack's.
    fn flush(&mut self) -> Result<(), UnpackError> {
        self.pending.clear();
        self.writer.flush().map_err(|failed| UnpackError::Io {
            path: failed.name,
            action: failed.action,
            error: failed.error,
        })
    }

    /// Whether something may be at `rel` already.
    fn may_exist(&self, rel: &Path) -> bool {
        !self.dest_was_empty || self.created.contains(rel)
    }

    /// The entry `./`: the layer root's own metadata.
    fn root(&mut self, name: &str, is_dir: bool, meta: &Meta) -> Result<(), UnpackError> {
        if !is_dir {
            return Err(bad_path(name, "the layer's root can only be a directory"));
        }
        self.set_metadata(name, self.dest, meta)?;
        self.dir_times.push((self.dest.to_owned(), meta.mtime));
        Ok(())
    }

    /// A directory: created, or kept if one is there already (with what it holds).
    fn dir(&mut self, name: &str, path: &Path, meta: &Meta) -> Result<(), UnpackError> {
        if !self.make_room(name, path, true)? {
            DirBuilder::new()
                .mode(0o700)
                .create(path)
                .map_err(io_error(name, "creating the directory"))?;
        }
        self.set_metadata(name, path, meta)?;
        self.dir_times.push((path.to_owned(), meta.mtime));
        Ok(())
    }

    /// A regular file, written by us: never through a symlink, never over something. Small
    /// ones are handed to the writer threads (file_writer.rs); their parents were checked
    /// and cannot change before they are written, since any removal flushes first.
    fn file<R: Read>(
        &mut self,
        entry: &mut Entry<'_, R>,
        name: &str,
        rel: &Path,
        path: &Path,
        meta: Meta,
    ) -> Result<(), UnpackError> {
        self.make_room(name, path, false)?;
        let size = entry.header().size().unwrap_or(u64::MAX);
        if size <= MAX_QUEUED_FILE {
            let mut content = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut content).map_err(UnpackError::Read)?;
            let job = FileJob {
                name: name.to_owned(),
                path: path.to_owned(),
                content,
                mode: meta.mode,
                uid: meta.uid,
                gid: meta.gid,
                mtime: meta.mtime,
                xattrs: meta.xattrs,
            };
            self.writer.queue(job).map_err(|failed| UnpackError::Io {
                path: failed.name,
                action: failed.action,
                error: failed.error,
            })?;
            self.pending.insert(rel.to_owned());
            return Ok(());
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(OFlag::O_NOFOLLOW.bits())
            .open(path)
            .map_err(io_error(name, "creating the file"))?;
        io::copy(entry, &mut file).map_err(io_error(name, "writing the file"))?;
        // Owner before mode: chown clears the setuid and setgid bits.
        fchown(&file, Some(meta.uid), Some(meta.gid)).map_err(io_error(name, "setting the owner"))?;
        file.set_permissions(Permissions::from_mode(meta.mode))
            .map_err(io_error(name, "setting the mode"))?;
        drop(file);
        // After the owner too: chown drops security.capability.
        set_xattrs(name, path, &meta.xattrs)?;
        set_mtime(path, meta.mtime).map_err(io_error(name, "setting the mtime"))
    }

    /// A symlink, created as is: its target means something inside the container only.
    fn symlink<R: Read>(
        &mut self,
        entry: &Entry<'_, R>,
        name: &str,
        path: &Path,
        meta: &Meta,
    ) -> Result<(), UnpackError> {
        let target = link_name(entry, name)?;
        self.make_room(name, path, false)?;
        symlink(&target, path).map_err(io_error(name, "creating the symlink"))?;
        lchown(path, Some(meta.uid), Some(meta.gid)).map_err(io_error(name, "setting the owner"))?;
        // A symlink's mode means nothing on Linux, and user.* xattrs are not allowed on one.
        set_mtime(path, meta.mtime).map_err(io_error(name, "setting the mtime"))
    }

    /// A hard link to a file the layer made before (rule 3). The link shares its target's
    /// inode, so the target's metadata is the link's: there is none of its own to set.
    fn hard_link<R: Read>(&mut self, entry: &Entry<'_, R>, name: &str, rel: &Path) -> Result<(), UnpackError> {
        let raw = link_name(entry, name)?;
        // The target may be a file still with the writers: let them finish.
        self.flush()?;
        let target_name = raw.to_string_lossy().into_owned();
        let refused = |reason| UnpackError::BadHardLink {
            path: name.to_owned(),
            target: target_name.clone(),
            reason,
        };
        let outside = "outside the layer or missing";
        let target_rel = safe_path(&raw, Root::IsTheLayers).map_err(|_| refused(outside))?;
        if target_rel.as_os_str().is_empty() || walk_parents(self.dest, &target_rel, false).is_err() {
            return Err(refused(outside));
        }
        let target = self.dest.join(&target_rel);
        match fs::symlink_metadata(&target) {
            Ok(found) if found.is_dir() => return Err(refused("which is a directory")),
            Ok(_) => {}
            Err(_) => return Err(refused(outside)),
        }
        if target_rel == rel {
            return Ok(()); // a link to itself: it is there already
        }
        let path = self.dest.join(rel);
        self.make_room(name, &path, false)?;
        // No AT_SYMLINK_FOLLOW: if the target is a symlink, the link is to the symlink itself.
        nix::unistd::linkat(AT_FDCWD, &target, AT_FDCWD, &path, AtFlags::empty())
            .map_err(|e| io_error(name, "creating the hard link")(e.into()))
    }

    /// A character or block device, or a fifo.
    fn node(&mut self, header: &Header, name: &str, path: &Path, meta: &Meta) -> Result<(), UnpackError> {
        let number = |n: io::Result<Option<u32>>| {
            n.map(Option::unwrap_or_default).map_err(|e| UnpackError::BadHeader {
                path: name.to_owned(),
                reason: format!("bad device number: {e}"),
            })
        };
        let (kind, device) = match header.entry_type() {
            EntryType::Char => (SFlag::S_IFCHR, None),
            EntryType::Block => (SFlag::S_IFBLK, None),
            // A fifo has no device numbers: tar writers often leave the fields empty.
            _ => (SFlag::S_IFIFO, Some(0)),
        };
        let device = match device {
            Some(none) => none,
            None => makedev(
                number(header.device_major())?.into(),
                number(header.device_minor())?.into(),
            ),
        };
        self.make_room(name, path, false)?;
        mknod(path, kind, Mode::empty(), device).map_err(|e| io_error(name, "creating the node")(e.into()))?;
        self.set_metadata(name, path, meta)?;
        set_mtime(path, meta.mtime).map_err(io_error(name, "setting the mtime"))
    }

    /// Owner, mode and xattrs of something we just made or checked, and that is no symlink
    /// (`chmod` follows symlinks: only called where `lstat` or our own mkdir/mknod says so).
    fn set_metadata(&self, name: &str, path: &Path, meta: &Meta) -> Result<(), UnpackError> {
        lchown(path, Some(meta.uid), Some(meta.gid)).map_err(io_error(name, "setting the owner"))?;
        fs::set_permissions(path, Permissions::from_mode(meta.mode)).map_err(io_error(name, "setting the mode"))?;
        set_xattrs(name, path, &meta.xattrs)
    }

    /// Makes the entry's parent directories (0755, root's, as `mkdir -p` would), refusing
    /// any that is a symlink or not a directory.
    fn make_parents(&mut self, name: &str, rel: &Path) -> Result<(), UnpackError> {
        // A parent that is a file still with the writers must exist before it is looked at.
        if rel.ancestors().skip(1).any(|a| self.pending.contains(a)) {
            self.flush()?;
        }
        if rel
            .parent()
            .is_none_or(|parent| parent.as_os_str().is_empty() || self.known_dirs.contains(parent))
        {
            return Ok(());
        }
        walk_parents(self.dest, rel, true).map_err(|problem| match problem {
            ParentProblem::Symlink(parent) => UnpackError::SymlinkParent {
                path: name.to_owned(),
                parent,
            },
            ParentProblem::NotADirectory(parent) | ParentProblem::Missing(parent) => UnpackError::NotADirectory {
                path: name.to_owned(),
                parent,
            },
            ParentProblem::Io(source) => UnpackError::Io {
                path: name.to_owned(),
                action: "creating its parent directories",
                error: source,
            },
        })?;
        if let Some(parent) = rel.parent() {
            self.known_dirs.insert(parent.to_owned());
            for ancestor in parent.ancestors().filter(|a| !a.as_os_str().is_empty()) {
                self.created.insert(ancestor.to_owned());
            }
        }
        Ok(())
    }

    /// Makes room for an entry at `path` ([`clear_place`]), after the writers finished
    /// (nothing may be removed under a pending file), forgetting the known directories when
    /// something is removed. Returns whether a directory was kept. A path this unpack never
    /// made is free: no need to look.
    fn make_room(&mut self, name: &str, path: &Path, keep_dir: bool) -> Result<bool, UnpackError> {
        let rel = path.strip_prefix(self.dest).unwrap_or(path);
        if !self.may_exist(rel) {
            return Ok(false);
        }
        self.flush()?;
        let replacing = io_error(name, "replacing what was there");
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() && keep_dir => Ok(true),
            Ok(_) => {
                self.known_dirs.clear();
                clear_place(path, keep_dir).map_err(replacing)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(replacing(e)),
        }
    }

    /// Sets the mtimes of the directories, now that no entry will be created in them.
    fn set_dir_times(&self) -> Result<(), UnpackError> {
        for (path, mtime) in &self.dir_times {
            // A later entry may have replaced the directory: its own mtime is set already.
            if fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
                let name = path.strip_prefix(self.dest).unwrap_or(path).to_string_lossy();
                set_mtime(path, *mtime).map_err(io_error(&name, "setting the mtime"))?;
            }
        }
        Ok(())
    }
}

// ANCHOR: safe_path
/// Whether a leading `/` is allowed: it is for hard link targets, which name a file of the
/// layer from its root; an entry's own path must be relative.
#[derive(Clone, Copy, PartialEq)]
enum Root {
    Refused,
    IsTheLayers,
}

/// An entry's path made safe to join to the destination: only plain names, no `..`, no
/// root, no `.` (so `./etc//passwd` is `etc/passwd`). Empty for the layer's root itself.
fn safe_path(raw: &Path, root: Root) -> Result<PathBuf, &'static str> {
    let mut clean = PathBuf::new();
    for component in raw.components() {
        match component {
            Component::Normal(name) => clean.push(name),
            Component::CurDir => {}
            Component::RootDir if root == Root::IsTheLayers => {}
            Component::RootDir | Component::Prefix(_) => return Err("a path may not be absolute"),
            Component::ParentDir => return Err("a path may not contain '..'"),
        }
    }
    Ok(clean)
}

/// Why a path's parents are not all real directories of the layer.
enum ParentProblem {
    Symlink(PathBuf),
    NotADirectory(PathBuf),
    Missing(PathBuf),
    Io(io::Error),
}

/// Checks that each parent of `rel` (a [`safe_path`]) inside `dest` is a real directory,
/// never following a symlink; with `create`, makes the missing ones.
fn walk_parents(dest: &Path, rel: &Path, create: bool) -> Result<(), ParentProblem> {
    let Some(parents) = rel.parent() else { return Ok(()) };
    let mut sofar = PathBuf::new();
    for component in parents.components() {
        sofar.push(component);
        let path = dest.join(&sofar);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => return Err(ParentProblem::Symlink(sofar)),
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(ParentProblem::NotADirectory(sofar)),
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                DirBuilder::new().mode(0o755).create(&path).map_err(ParentProblem::Io)?;
                // The umask must not decide what the image holds.
                fs::set_permissions(&path, Permissions::from_mode(0o755)).map_err(ParentProblem::Io)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(ParentProblem::Missing(sofar)),
            Err(e) => return Err(ParentProblem::Io(e)),
        }
    }
    Ok(())
}

/// Makes room for an entry at `path` (whose parents [`walk_parents`] checked): whatever is
/// there goes, except a directory when a directory comes, which stays with its content.
/// Returns whether a directory was kept.
fn clear_place(path: &Path, keep_dir: bool) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() && keep_dir => Ok(true),
        // remove_dir_all does not follow symlinks inside the tree.
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path).map(|()| false),
        Ok(_) => fs::remove_file(path).map(|()| false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}
// ANCHOR_END: safe_path

// ANCHOR: whiteouts
/// What an entry named `.wh.*` means (OCI image spec, "Representing Changes").
enum Whiteout<'n> {
    /// `.wh..wh..opq`: the directory holding it hides the lower layers' one.
    Opaque,
    /// `.wh.NAME`: NAME, from a lower layer, is deleted.
    Deleted(&'n OsStr),
    /// Another `.wh..wh.` name: reserved by the spec, meaning nothing today.
    Ignored,
}

impl<'n> Whiteout<'n> {
    fn of(file_name: &'n OsStr) -> Option<Self> {
        let bytes = file_name.as_bytes();
        if bytes == OPAQUE_MARKER {
            Some(Self::Opaque)
        } else if bytes.starts_with(WHITEOUT_META_PREFIX) {
            Some(Self::Ignored)
        } else {
            let hidden = bytes.strip_prefix(WHITEOUT_PREFIX)?;
            Some(Self::Deleted(OsStr::from_bytes(hidden)))
        }
    }
}

impl Unpacker<'_> {
    /// Turns an OCI whiteout entry into what overlayfs reads: a 0:0 character device for a
    /// deleted name, `trusted.overlay.opaque=y` on an opaque directory.
    fn whiteout(&mut self, name: &str, rel: &Path, whiteout: Whiteout, meta: &Meta) -> Result<(), UnpackError> {
        // A whiteout removes: the writers must be done first.
        self.flush()?;
        // The directory holding the marker is made like any entry's parents.
        self.make_parents(name, rel)?;
        let dir = self.dest.join(rel.parent().unwrap_or(Path::new("")));
        match whiteout {
            Whiteout::Opaque => {
                xattr::set(&dir, OPAQUE_XATTR, b"y").map_err(io_error(name, "marking the directory opaque"))
            }
            Whiteout::Deleted(hidden) => {
                if hidden.is_empty() || hidden == "." || hidden == ".." {
                    return Err(bad_path(name, "a whiteout must name a file"));
                }
                let path = dir.join(hidden);
                clear_place(&path, false).map_err(io_error(name, "removing the deleted file"))?;
                mknod(&path, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
                    .map_err(|e| io_error(name, "creating the whiteout")(e.into()))?;
                if let Ok(rel) = path.strip_prefix(self.dest) {
                    self.created.insert(rel.to_owned());
                }
                lchown(&path, Some(meta.uid), Some(meta.gid)).map_err(io_error(name, "setting the owner"))
            }
            Whiteout::Ignored => Ok(()),
        }
    }
}
// ANCHOR_END: whiteouts

/// A numeric header field left empty (all NULs or spaces) reads as 0, as Go's archive/tar
/// (and so Docker) reads it; anything else must parse.
fn or_zero(field: &[u8], parsed: std::io::Result<u64>) -> std::io::Result<u64> {
    if field.iter().all(|b| *b == 0 || *b == b' ') {
        Ok(0)
    } else {
        parsed
    }
}

/// The user's own ids when unpacking without root.
fn rootless_owner() -> Option<(u32, u32)> {
    let uid = nix::unistd::geteuid();
    (!uid.is_root()).then(|| (uid.as_raw(), nix::unistd::getegid().as_raw()))
}

/// The entry's mode, owner, mtime and allowed xattrs, refused if out of range.
fn meta<R: Read>(entry: &mut Entry<'_, R>, name: &str) -> Result<Meta, UnpackError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| UnpackError::BadHeader {
        path: name.to_owned(),
        reason: format!("bad {what}: {e}"),
    };
    let header = entry.header();
    let raw = header.as_old();
    let mode = or_zero(&raw.mode, header.mode().map(u64::from)).map_err(|e| bad("mode", &e))? as u32 & 0o7777;
    let uid = or_zero(&raw.uid, header.uid()).map_err(|e| bad("uid", &e))?;
    let uid = u32::try_from(uid).map_err(|e| bad("uid", &e))?;
    let gid = or_zero(&raw.gid, header.gid()).map_err(|e| bad("gid", &e))?;
    let gid = u32::try_from(gid).map_err(|e| bad("gid", &e))?;
    // Without root (a rootless store), every file is the user's own: the user namespace
    // maps that one id to root inside, and no other owner could be set anyway.
    let (uid, gid) = rootless_owner().unwrap_or((uid, gid));
    let mtime = or_zero(&raw.mtime, header.mtime()).map_err(|e| bad("mtime", &e))?;
    let mtime = i64::try_from(mtime).map_err(|e| bad("mtime", &e))?;
    let xattrs = xattrs(entry).map_err(|e| bad("PAX header", &e))?;
    Ok(Meta {
        mode,
        uid,
        gid,
        mtime,
        xattrs,
    })
}

/// The `SCHILY.xattr.*` records of the entry's PAX header that a layer may set.
fn xattrs<R: Read>(entry: &mut Entry<'_, R>) -> io::Result<Vec<(String, Vec<u8>)>> {
    let Some(extensions) = entry.pax_extensions()? else {
        return Ok(Vec::new());
    };
    let mut allowed = Vec::new();
    for extension in extensions {
        let extension = extension?;
        let Some(xattr) = extension.key().ok().and_then(|key| key.strip_prefix("SCHILY.xattr.")) else {
            continue;
        };
        if allowed_xattr(xattr) {
            allowed.push((xattr.to_owned(), extension.value_bytes().to_vec()));
        }
    }
    Ok(allowed)
}

/// Sets the xattrs, skipping them where the file system has none (as `tar` does).
fn set_xattrs(name: &str, path: &Path, xattrs: &[(String, Vec<u8>)]) -> Result<(), UnpackError> {
    for (key, value) in xattrs {
        match xattr::set(path, key, value) {
            Err(e) if e.raw_os_error() == Some(Errno::EOPNOTSUPP as i32) => {}
            result => result.map_err(io_error(name, "setting an extended attribute"))?,
        }
    }
    Ok(())
}

/// Sets the access and modification times of `path`, or of the symlink it is.
fn set_mtime(path: &Path, mtime: i64) -> io::Result<()> {
    let time = TimeSpec::new(mtime, 0);
    utimensat(AT_FDCWD, path, &time, &time, UtimensatFlags::NoFollowSymlink).map_err(io::Error::from)
}

/// A link's target, which a link entry must have.
fn link_name<R: Read>(entry: &Entry<'_, R>, name: &str) -> Result<PathBuf, UnpackError> {
    match entry.link_name() {
        Ok(Some(target)) if !target.as_os_str().is_empty() => Ok(target.into_owned()),
        _ => Err(UnpackError::BadHeader {
            path: name.to_owned(),
            reason: "a link without a target".to_owned(),
        }),
    }
}

fn bad_path(name: &str, reason: &'static str) -> UnpackError {
    UnpackError::BadPath {
        path: name.to_owned(),
        reason,
    }
}

fn io_error<'a>(name: &'a str, action: &'static str) -> impl FnOnce(io::Error) -> UnpackError + 'a {
    move |source| UnpackError::Io {
        path: name.to_owned(),
        action,
        error: source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    const MTIME: u64 = 1_700_000_000;

    /// A layer built entry by entry with raw headers, so that hostile names (which
    /// `tar::Builder` rightly refuses to write) can be written too.
    struct Layer(tar::Builder<Vec<u8>>);

    impl Layer {
        fn new() -> Self {
            Self(tar::Builder::new(Vec::new()))
        }

        fn entry(mut self, path: &str, kind: EntryType, mode: u32, link: &str, data: &[u8]) -> Self {
            let mut header = Header::new_gnu();
            let old = header.as_old_mut();
            old.name[..path.len()].copy_from_slice(path.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
            header.set_entry_type(kind);
            header.set_mode(mode);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(MTIME);
            header.set_size(data.len() as u64);
            header.set_cksum();
            self.0.append(&header, data).expect("append");
            self
        }

        fn dir(self, path: &str, mode: u32) -> Self {
            self.entry(path, EntryType::Directory, mode, "", b"")
        }

        fn file(self, path: &str, mode: u32, data: &[u8]) -> Self {
            self.entry(path, EntryType::Regular, mode, "", data)
        }

        fn symlink(self, path: &str, target: &str) -> Self {
            self.entry(path, EntryType::Symlink, 0o777, target, b"")
        }

        fn hard_link(self, path: &str, target: &str) -> Self {
            self.entry(path, EntryType::Link, 0o644, target, b"")
        }

        /// An entry with a header the caller adjusts (owner, device numbers...).
        fn with(mut self, path: &str, adjust: impl FnOnce(&mut Header)) -> Self {
            let mut header = Header::new_gnu();
            header.set_path(path).expect("path");
            header.set_mode(0o644);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(MTIME);
            header.set_size(0);
            adjust(&mut header);
            header.set_cksum();
            self.0.append(&header, &b""[..]).expect("append");
            self
        }

        fn bytes(self) -> Vec<u8> {
            self.0.into_inner().expect("finish")
        }
    }

    /// Unpacking sets owners and makes devices: these tests need root, as a store of root's does.
    fn root() -> bool {
        let root = nix::unistd::geteuid().is_root();
        if !root {
            eprintln!("skipped: unpacking a layer needs root");
        }
        root
    }

    /// A temp dir holding an empty `dest`, so that escapes into its parent can be seen.
    fn dest() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dest = tmp.path().join("dest");
        fs::create_dir(&dest).expect("dest");
        (tmp, dest)
    }

    fn unpack(bytes: &[u8], dest: &Path) -> Result<Unpacked, UnpackError> {
        unpack_layer(bytes, dest)
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn lstat(path: &Path) -> fs::Metadata {
        fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn dot_slash_is_stripped_and_the_root_entry_sets_the_roots_mode() {
        if !root() {
            return;
        }
        let (_tmp, dest) = dest();
        let layer = Layer::new()
            .dir("./", 0o751)
            .dir("./etc/", 0o755)
            .file("./etc/hostname", 0o644, b"keel\n")
            .file(".//etc/./motd", 0o600, b"hi\n")
            .bytes();
        let unpacked = unpack(&layer, &dest).expect("unpack");
        assert_eq!(unpacked.entries, 4);
        assert_eq!(names(&dest), ["etc"]);
        assert_eq!(names(&dest.join("etc")), ["hostname", "motd"]);
        assert_eq!(fs::read(dest.join("etc/hostname")).expect("read"), b"keel\n");
        assert_eq!(lstat(&dest).mode() & 0o7777, 0o751);
        assert_eq!(lstat(&dest.join("etc/motd")).mode() & 0o7777, 0o600);
    }

    #[test]
    fn dot_dot_is_refused_and_nothing_is_written_outside() {
        if !root() {
            return;
        }
        for path in ["../escape", "a/../../escape", "a/.."] {
            let (tmp, dest) = dest();
            let layer = Layer::new().dir("a/", 0o755).file(path, 0o644, b"x").bytes();
            let error = unpack(&layer, &dest).expect_err(path);
            assert_eq!(
                error.to_string(),
                format!("layer entry {path:?}: a path may not contain '..'")
            );
            assert_eq!(names(tmp.path()), ["dest"], "{path}");
            assert_eq!(names(&dest), ["a"], "{path}");
            assert!(names(&dest.join("a")).is_empty(), "{path}");
        }
    }

    #[test]
    fn absolute_paths_are_refused() {
        if !root() {
            return;
        }
        let (tmp, dest) = dest();
        let host = Path::new("/keel-unpack-test-abs");
        let layer = Layer::new().file(&host.to_string_lossy(), 0o644, b"x").bytes();
        let error = unpack(&layer, &dest).expect_err("absolute");
        assert_eq!(
            error.to_string(),
            "layer entry \"/keel-unpack-test-abs\": a path may not be absolute"
        );
        assert!(!host.exists());
        assert_eq!(names(tmp.path()), ["dest"]);
        assert!(names(&dest).is_empty());
    }

    #[test]
    fn a_directory_replaced_by_a_symlink_is_not_trusted_from_before() {
        if !root() {
            return;
        }
        // The unpacker remembers checked directories; replacing one must make it forget.
        let (_tmp, dest) = dest();
        let layer = Layer::new()
            .dir("a", 0o755)
            .file("a/x", 0o644, b"x")
            .symlink("a", "/")
            .file("a/keel-unpack-test-cached", 0o644, b"pwned")
            .bytes();
        let error = unpack(&layer, &dest).expect_err("through the new symlink");
        assert!(error.to_string().contains("its parent a is a symlink"), "{error}");
        assert!(!Path::new("/keel-unpack-test-cached").exists());
    }

    #[test]
    fn a_file_through_a_symlink_to_the_host_root_is_refused() {
        if !root() {
            return;
        }
        let (_tmp, dest) = dest();
        let layer = Layer::new()
            .symlink("evil", "/")
            .file("evil/keel-unpack-test-pwned", 0o644, b"pwned")
            .bytes();
        let error = unpack(&layer, &dest).expect_err("through a symlink");
        assert_eq!(
            error.to_string(),
            "layer entry \"evil/keel-unpack-test-pwned\": its parent evil is a symlink"
        );
        assert!(!Path::new("/keel-unpack-test-pwned").exists());
    }

    #[test]
    fn a_file_through_a_relative_symlink_out_is_refused() {
        if !root() {
            return;
        }
        let (tmp, dest) = dest();
        let layer = Layer::new()
            .dir("d/", 0o755)
            .symlink("d/lnk", "../../..")
            .file("d/lnk/x", 0o644, b"x")
            .bytes();
        let error = unpack(&layer, &dest).expect_err("through a symlink");
        assert!(matches!(&error, UnpackError::SymlinkParent { parent, .. } if parent == Path::new("d/lnk")));
        assert_eq!(
            error.to_string(),
            "layer entry \"d/lnk/x\": its parent d/lnk is a symlink"
        );
        assert_eq!(names(tmp.path()), ["dest"]);
        assert!(!tmp.path().parent().expect("parent").join("x").exists());
    }

    #[test]
    fn a_file_under_a_file_is_refused() {
        if !root() {
            return;
        }
        let (_tmp, dest) = dest();
        let layer = Layer::new().file("f", 0o644, b"").file("f/x", 0o644, b"").bytes();
        let error = unpack(&layer, &dest).expect_err("under a file");
        assert_eq!(
            error.to_string(),
            "layer entry \"f/x\": its parent f is not a directory"
        );
    }

    #[test]
    fn a_hard_link_to_a_host_file_is_refused() {
        if !root() {
            return;
        }
        let links = || lstat(Path::new("/etc/passwd")).nlink();
        let before = links();
        for (layer, entry) in [
            (Layer::new().hard_link("passwd", "/etc/passwd"), "passwd"),
            (Layer::new().hard_link("passwd", "etc/passwd"), "passwd"),
            (Layer::new().hard_link("passwd", "../../../../etc/passwd"), "passwd"),
            (
                Layer::new().symlink("etc", "/etc").hard_link("passwd", "etc/passwd"),
                "passwd",
            ),
            (
                Layer::new()
                    .dir("etc/", 0o755)
                    .symlink("etc/up", "/etc")
                    .hard_link("x", "etc/up/passwd"),
                "x",
            ),
        ] {
            let (_tmp, dest) = dest();
            let error = unpack(&layer.bytes(), &dest).expect_err("hard link out");
            assert!(matches!(error, UnpackError::BadHardLink { .. }), "{error}");
            assert!(error
                .to_string()
                .starts_with(&format!("layer entry {entry:?}: hard link to ")));
            assert!(error.to_string().ends_with("outside the layer or missing"), "{error}");
            assert!(!dest.join(entry).exists());
        }
        assert_eq!(links(), before);
    }

    #[test]
    fn a_hard_link_to_a_layer_file_links_inside_the_layer() {
        if !root() {
            return;
        }
        let (_tmp, dest) = dest();
        let host = lstat(Path::new("/etc/passwd"));
        let layer = Layer::new()
            .dir("etc/", 0o755)
            .file("etc/passwd", 0o644, b"root:x:0:0::/root:/bin/sh\n")
            .hard_link("passwd-", "/etc/passwd")
            .bytes();
        unpack(&layer, &dest).expect("unpack");
        let ours = lstat(&dest.join("etc/passwd"));
        let link = lstat(&dest.join("passwd-"));
        assert_eq!((link.dev(), link.ino()), (ours.dev(), ours.ino()));
        assert_eq!(ours.nlink(), 2);
        assert_ne!((link.dev(), link.ino()), (host.dev(), host.ino()));
        assert_eq!(lstat(Path::new("/etc/passwd")).nlink(), host.nlink());
    }

    #[test]
    fn a_hard_link_to_a_symlink_links_the_symlink_not_its_target() {
        if !root() {
            return;
        }
        let (_tmp, dest) = dest();
        let before = lstat(Path::new("/etc/passwd")).nlink();
        let layer = Layer::new()
            .symlink("lnk", "/etc/passwd")
            .hard_link("hl", "lnk")
            .bytes();
        unpack(&layer, &dest).expect("unpack");
        assert!(lstat(&dest.join("hl")).file_type().is_symlink());
        assert_eq!(
            fs::read_link(dest.join("hl")).expect("readlink"),
            Path::new("/etc/passwd")
        );
        assert_eq!(lstat(Path::new("/etc/passwd")).nlink(), before);
    }

    #[test]
    fn a_hard_link_to_a_directory_is_refused() {
        if !root() {
            return;
        }
        let (_tmp, dest) = dest();
        let layer = Layer::new().dir("d/", 0o755).hard_link("x", "d").bytes();
        let error = unpack(&layer, &dest).expect_err("link to a dir");
        assert_eq!(
            error.to_string(),
            "layer entry \"x\": hard link to \"d\" which is a directory"
        );
    }

    #[test]
    fn a_legit_layer_unpacks_with_its_types_modes_and_contents() {
        if !root() {
            return;
        }
        let (_tmp, dest) = dest();
        let layer = Layer::new()
            .dir("bin/", 0o755)
            .file("bin/busybox", 0o4755, b"\x7fELF...")
            .symlink("bin/sh", "/bin/busybox")
            .hard_link("bin/su", "bin/busybox")
            .dir("tmp/", 0o1777)
            .with("home/user/notes", |h| {
                h.set_uid(1000);
                h.set_gid(100);
                h.set_mode(0o640);
            })
            .with("dev/null", |h| {
                h.set_entry_type(EntryType::Char);
                h.set_mode(0o666);
                h.set_device_major(1).expect("major");
                h.set_device_minor(3).expect("minor");
            })
            .with("run/fifo", |h| h.set_entry_type(EntryType::Fifo))
            .file("etc/.wh.motd", 0o644, b"")
            .dir("var/", 0o755)
            .dir("var/cache/", 0o755)
            .file("var/cache/.wh..wh..opq", 0o644, b"")
            .file("var/cache/.wh..wh.plnk.1", 0o644, b"")
            .file("var/cache/new", 0o644, b"fresh")
            .bytes();
        let unpacked = unpack(&layer, &dest).expect("unpack");
        assert_eq!(unpacked.entries, 14);
        assert_eq!(names(&dest), ["bin", "dev", "etc", "home", "run", "tmp", "var"]);

        let busybox = lstat(&dest.join("bin/busybox"));
        assert!(busybox.is_file());
        assert_eq!(busybox.mode() & 0o7777, 0o4755);
        assert_eq!(busybox.mtime(), MTIME as i64);
        assert_eq!(fs::read(dest.join("bin/busybox")).expect("read"), b"\x7fELF...");
        assert_eq!(
            fs::read_link(dest.join("bin/sh")).expect("readlink"),
            Path::new("/bin/busybox")
        );
        assert_eq!(lstat(&dest.join("bin/su")).ino(), busybox.ino());

        let tmp = lstat(&dest.join("tmp"));
        assert!(tmp.is_dir());
        assert_eq!(tmp.mode() & 0o7777, 0o1777);
        // Set after its children were made.
        assert_eq!(lstat(&dest.join("bin")).mtime(), MTIME as i64);

        let notes = lstat(&dest.join("home/user/notes"));
        assert_eq!((notes.uid(), notes.gid(), notes.mode() & 0o7777), (1000, 100, 0o640));
        assert_eq!(lstat(&dest.join("home/user")).mode() & 0o7777, 0o755);

        let null = lstat(&dest.join("dev/null"));
        assert!(null.file_type().is_char_device());
        assert_eq!((null.rdev(), null.mode() & 0o7777), (makedev(1, 3), 0o666));
        assert!(lstat(&dest.join("run/fifo")).file_type().is_fifo());

        let whiteout = lstat(&dest.join("etc/motd"));
        assert!(step05_overlay::whiteout::is_whiteout(&whiteout));
        assert_eq!(names(&dest.join("etc")), ["motd"]);
        assert!(step05_overlay::whiteout::is_opaque(&dest.join("var/cache")));
        assert!(!step05_overlay::whiteout::is_opaque(&dest.join("var")));
        assert_eq!(names(&dest.join("var/cache")), ["new"]);
    }

    #[test]
    fn later_entries_replace_earlier_ones() {
        if !root() {
            return;
        }
        let (_tmp, dest) = dest();
        let layer = Layer::new()
            .file("a", 0o644, b"first")
            .dir("a/", 0o700)
            .dir("d/", 0o755)
            .file("d/kept", 0o644, b"kept")
            .dir("d/", 0o711)
            .dir("gone/", 0o755)
            .file("gone/file", 0o644, b"")
            .file(".wh.gone", 0o644, b"")
            .file("s", 0o644, b"file")
            .symlink("s", "/etc/shadow")
            .file("s", 0o600, b"file again")
            .symlink("e", "/")
            .dir("e/", 0o755)
            .file("e/keel-unpack-test-x", 0o644, b"inside")
            .bytes();
        unpack(&layer, &dest).expect("unpack");
        assert!(lstat(&dest.join("a")).is_dir());
        assert_eq!(lstat(&dest.join("d")).mode() & 0o7777, 0o711);
        assert_eq!(fs::read(dest.join("d/kept")).expect("read"), b"kept");
        assert!(step05_overlay::whiteout::is_whiteout(&lstat(&dest.join("gone"))));
        assert_eq!(fs::read(dest.join("s")).expect("read"), b"file again");
        assert!(lstat(&dest.join("s")).is_file());
        // The directory replaced the symlink: the file is in the layer, not in /.
        assert_eq!(fs::read(dest.join("e/keel-unpack-test-x")).expect("read"), b"inside");
        assert!(!Path::new("/keel-unpack-test-x").exists());
    }

    #[test]
    fn whiteouts_must_name_a_file() {
        if !root() {
            return;
        }
        for path in [".wh.", "d/.wh.."] {
            let (tmp, dest) = dest();
            let error = unpack(&Layer::new().file(path, 0o644, b"").bytes(), &dest).expect_err(path);
            assert_eq!(
                error.to_string(),
                format!("layer entry {path:?}: a whiteout must name a file")
            );
            assert_eq!(names(tmp.path()), ["dest"]);
        }
    }

    #[test]
    fn unknown_entry_types_are_refused() {
        if !root() {
            return;
        }
        let (_tmp, dest) = dest();
        let layer = Layer::new()
            .entry("label", EntryType::new(b'V'), 0o644, "", b"")
            .bytes();
        let error = unpack(&layer, &dest).expect_err("volume label");
        assert_eq!(
            error.to_string(),
            "layer entry \"label\": entry type 'V' is not supported"
        );
    }

    #[test]
    fn long_names_and_pax_xattrs_come_through_but_not_overlay_ones() {
        if !root() {
            return;
        }
        let (_tmp, dest) = dest();
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(150));
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = Header::new_gnu();
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_size(4);
        header.set_entry_type(EntryType::Regular);
        builder
            .append_data(&mut header, &long, &b"long"[..])
            .expect("long name");
        builder
            .append_pax_extensions([
                ("SCHILY.xattr.user.keel", &b"yes"[..]),
                ("SCHILY.xattr.trusted.overlay.opaque", &b"y"[..]),
            ])
            .expect("pax");
        let mut header = Header::new_ustar();
        header.set_mode(0o755);
        header.set_uid(0);
        header.set_gid(0);
        header.set_size(0);
        header.set_entry_type(EntryType::Directory);
        builder.append_data(&mut header, "x/", &b""[..]).expect("dir");
        let layer = builder.into_inner().expect("finish");

        unpack(&layer, &dest).expect("unpack");
        assert_eq!(fs::read(dest.join(&long)).expect("read"), b"long");
        let dir = dest.join("x");
        assert_eq!(xattr::get(&dir, "user.keel").expect("get"), Some(b"yes".to_vec()));
        assert!(!step05_overlay::whiteout::is_opaque(&dir));
    }

    #[test]
    fn the_diff_id_is_the_digest_of_the_whole_stream() {
        if !root() {
            return;
        }
        let (_tmp, dest) = dest();
        let mut layer = Layer::new()
            .dir("etc/", 0o755)
            .file("etc/hostname", 0o644, b"keel")
            .bytes();
        // GNU tar pads to a 10 KiB record after the end-of-archive blocks: that counts too.
        layer.resize(10_240, 0);
        let unpacked = unpack(&layer, &dest).expect("unpack");
        assert_eq!(unpacked.diff_id, Digest::of(&layer));
        assert_eq!(unpacked.bytes, 10_240);
        assert_eq!(unpacked.entries, 2);
    }

    #[test]
    fn gzip_and_plain_layers_unpack_the_same() {
        if !root() {
            return;
        }
        let layer = Layer::new()
            .dir("etc/", 0o755)
            .file("etc/hostname", 0o644, b"keel")
            .bytes();
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gzip.write_all(&layer).expect("gzip");
        let gzip = gzip.finish().expect("gzip");
        assert_ne!(gzip, layer);

        let mut results = Vec::new();
        for blob in [&layer, &gzip] {
            let (_tmp, dest) = dest();
            let tar = decompress(&blob[..]).expect("decompress");
            let unpacked = unpack_layer(tar, &dest).expect("unpack");
            results.push((unpacked, fs::read(dest.join("etc/hostname")).expect("read")));
        }
        assert_eq!(results[0], results[1]);
        assert_eq!(results[0].0.diff_id, Digest::of(&layer));
    }

    #[test]
    fn short_and_empty_streams_pass_through_decompress() {
        for bytes in [&b""[..], b"\x1f", b"abc", b"BZhx"] {
            let mut out = Vec::new();
            decompress(bytes)
                .expect("decompress")
                .read_to_end(&mut out)
                .expect("read");
            assert_eq!(out, bytes);
        }
    }

    #[test]
    fn zstd_layers_are_refused_clearly() {
        let zstd = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58, 0x61, 0x00];
        let error = decompress(&zstd[..]).err().expect("zstd is refused");
        assert!(matches!(error, UnpackError::Unsupported("zstd")));
        assert_eq!(
            error.to_string(),
            "layers compressed with zstd are not supported (only gzip-compressed or plain tar layers are)"
        );
    }

    #[test]
    fn a_truncated_stream_is_an_error() {
        if !root() {
            return;
        }
        let (_tmp, dest) = dest();
        let layer = Layer::new().file("big", 0o644, &[7; 4096]).bytes();
        let error = unpack(&layer[..2048], &dest).expect_err("truncated");
        assert!(
            matches!(error, UnpackError::Io { .. } | UnpackError::Read(_)),
            "{error}"
        );
    }
}
