//! The non-directory entries of an upload (a file, a symlink, a device or fifo), made in a
//! directory we hold open, never over something nor through a symlink, and their owner,
//! mode and times set without following one.

use rustix::fd::{AsFd, AsRawFd, BorrowedFd};
use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Uid, CWD};
use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use tar::EntryType;

use super::entries::EntryHeader;
use super::files::{set_owner_and_mode, set_times, timestamps, Meta};

/// A regular file: made by us (never over something, never through a symlink), its
/// content, then owner, mode and mtime through its descriptor.
pub(super) fn write_file(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    entry: &EntryHeader,
    data: &mut dyn Read,
) -> io::Result<()> {
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
pub(super) fn make_symlink(dir: BorrowedFd<'_>, name: &OsStr, entry: &EntryHeader) -> io::Result<()> {
    rustix::fs::symlinkat(OsStr::from_bytes(&entry.link), dir, name)?;
    let (uid, gid) = (Uid::from_raw_unchecked(entry.uid), Gid::from_raw_unchecked(entry.gid));
    rustix::fs::chownat(dir, name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)?;
    rustix::fs::utimensat(dir, name, &timestamps(entry.mtime, 0), AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// A device or a fifo. Its mode is set through `/proc/self/fd` on an `O_PATH` descriptor
/// of the node itself (`fchmodat` would follow a symlink swapped in by the container).
pub(super) fn make_node(dir: BorrowedFd<'_>, name: &OsStr, entry: &EntryHeader) -> io::Result<()> {
    let kind = match entry.kind {
        EntryType::Char => FileType::CharacterDevice,
        EntryType::Block => FileType::BlockDevice,
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
