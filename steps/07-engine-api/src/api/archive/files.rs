//! File operations through descriptors only: a file's metadata, its owner, mode and times
//! set on the descriptor that holds it, a tree removed without following a symlink.

use rustix::fd::{AsFd, BorrowedFd};
use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;

/// How deep a directory tree a copy walks (the walks recurse: a container must not be able
/// to overflow the engine's stack with a very deep tree).
pub(super) const MAX_DEPTH: usize = 512;

/// How a directory is opened: a real descriptor (readable, for `getdents`, `fgetxattr`,
/// `fchown`...), never through a symlink.
pub(super) const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// A file's metadata, the same on every architecture.
#[derive(Debug, Clone, Copy)]
pub(super) struct Meta {
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) size: u64,
    pub(super) mtime: i64,
    pub(super) mtime_nsec: u32,
    pub(super) nlink: u64,
    pub(super) rdev: u64,
    pub(super) dev: u64,
    pub(super) ino: u64,
}

impl Meta {
    // The field types of `struct stat` differ between architectures.
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    pub(super) fn of(stat: &rustix::fs::Stat) -> Self {
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
    pub(super) fn kind(&self) -> FileType {
        FileType::from_raw_mode(self.mode)
    }
    pub(super) fn is_dir(&self) -> bool {
        self.kind() == FileType::Directory
    }
    pub(super) fn is_symlink(&self) -> bool {
        self.kind() == FileType::Symlink
    }
    /// overlayfs's mark of a deleted name in an upper dir.
    pub(super) fn is_whiteout(&self) -> bool {
        self.kind() == FileType::CharacterDevice && self.rdev == 0
    }
}

pub(super) fn errno(error: &io::Error, which: Errno) -> bool {
    error.raw_os_error() == Some(which.raw_os_error())
}

pub(super) fn set_owner_and_mode(fd: BorrowedFd<'_>, uid: u32, gid: u32, mode: u32) -> io::Result<()> {
    // Owner first: chown clears the setuid and setgid bits.
    rustix::fs::fchown(
        fd,
        Some(Uid::from_raw_unchecked(uid)),
        Some(Gid::from_raw_unchecked(gid)),
    )?;
    rustix::fs::fchmod(fd, Mode::from_raw_mode(mode & 0o7777))?;
    Ok(())
}

pub(super) fn timestamps(secs: i64, nanos: u32) -> Timestamps {
    let time = Timespec {
        tv_sec: secs,
        tv_nsec: i64::from(nanos.min(999_999_999)),
    };
    Timestamps {
        last_access: time,
        last_modification: time,
    }
}

pub(super) fn set_times(fd: BorrowedFd<'_>, secs: i64, nanos: u32) -> io::Result<()> {
    rustix::fs::futimens(fd, &timestamps(secs, nanos))?;
    Ok(())
}

/// Removes `name` from `dir` whatever it is, a directory with its content; never through
/// a symlink. Nothing there is fine.
pub(super) fn remove_all_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
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

pub(super) fn too_deep() -> io::Error {
    io::Error::other(format!("the directory tree is more than {MAX_DEPTH} levels deep"))
}
