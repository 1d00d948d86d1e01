//! The body of a `GET`: a tar of the path found, written (with the `tar` crate) as the
//! container's tree is walked, and sent to the response in chunks.

use bytes::Bytes;
use rustix::fd::BorrowedFd;
use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use tar::{Builder, EntryType, Header};
use tokio::sync::mpsc;

use super::files::{too_deep, Meta, MAX_DEPTH};
use super::layers::{Node, Tree, UnionDir};
use super::stat::Found;

/// Bytes per body chunk.
const CHUNK: usize = 64 * 1024;

/// Writes the tar of `found` to the response through `sender`. On an error, what is not
/// sent yet is dropped and the caller breaks the body off: it must never look complete.
pub(super) fn send(tree: &Tree, found: &Found, sender: mpsc::Sender<io::Result<Bytes>>) -> io::Result<()> {
    let mut tar = Builder::new(BodyWriter {
        sender,
        buffer: Vec::with_capacity(CHUNK),
        broken: false,
    });
    let written = tree
        .archive(found, &mut tar)
        .and_then(|()| tar.finish())
        .and_then(|()| tar.get_mut().flush());
    if written.is_err() {
        // Nothing more goes out, not even the end of archive a dropped builder writes.
        tar.get_mut().break_off();
    }
    written
}

/// Hard links seen: the first entry of each file with more than one name.
type Links = HashMap<(u64, u64), Vec<u8>>;

impl Tree {
    fn archive<W: Write>(&self, found: &Found, tar: &mut Builder<W>) -> io::Result<()> {
        let mut links = Links::new();
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
        tar: &mut Builder<W>,
        dir: &UnionDir,
        prefix: &[u8],
        links: &mut Links,
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
        append(tar, EntryType::Directory, &dir.meta, &own, b"", 0, io::empty())?;
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
        tar: &mut Builder<W>,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        meta: &Meta,
        entry: &[u8],
        links: &mut Links,
    ) -> io::Result<()> {
        let kind = match meta.kind() {
            FileType::RegularFile => {
                if meta.nlink > 1 {
                    if let Some(first) = links.get(&(meta.dev, meta.ino)) {
                        return append(tar, EntryType::Link, meta, entry, first, 0, io::empty());
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
                // Exactly the size of the header: zeros if the file shrank since, its
                // first bytes if it grew.
                let size = meta.size;
                let content = std::fs::File::from(fd).take(size).chain(io::repeat(0)).take(size);
                return append(tar, EntryType::Regular, &meta, entry, b"", size, content);
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(parent, name, Vec::new())?;
                return append(tar, EntryType::Symlink, meta, entry, target.as_bytes(), 0, io::empty());
            }
            FileType::CharacterDevice => EntryType::Char,
            FileType::BlockDevice => EntryType::Block,
            FileType::Fifo => EntryType::Fifo,
            // Sockets have no tar form (Docker skips them too).
            _ => return Ok(()),
        };
        append(tar, kind, meta, entry, b"", 0, io::empty())
    }
}

/// One entry: a ustar header of `meta`, its name and link target as they are (in a PAX
/// header when they do not fit ustar's fields), then `size` bytes of `data`.
fn append<W: Write>(
    tar: &mut Builder<W>,
    kind: EntryType,
    meta: &Meta,
    name: &[u8],
    link: &[u8],
    size: u64,
    data: impl Read,
) -> io::Result<()> {
    let mut header = Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(meta.mode & 0o7777);
    header.set_uid(meta.uid.into());
    header.set_gid(meta.gid.into());
    header.set_mtime(u64::try_from(meta.mtime).unwrap_or(0));
    header.set_size(size);
    if matches!(kind, EntryType::Char | EntryType::Block) {
        header.set_device_major(rustix::fs::major(meta.rdev))?;
        header.set_device_minor(rustix::fs::minor(meta.rdev))?;
    }
    let mut pax: Vec<(&str, &[u8])> = Vec::new();
    if header.set_path(OsStr::from_bytes(name)).is_err() {
        pax.push(("path", name));
        truncated(&mut header.as_old_mut().name, name);
    }
    if header.set_link_name_literal(link).is_err() {
        pax.push(("linkpath", link));
        truncated(&mut header.as_old_mut().linkname, link);
    }
    tar.append_pax_extensions(pax)?;
    header.set_cksum();
    tar.append(&header, data)
}

/// What fits of `value` in `field`, for readers that know no PAX.
fn truncated(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// The response body: the tar in chunks, through a small channel.
struct BodyWriter {
    sender: mpsc::Sender<io::Result<Bytes>>,
    buffer: Vec<u8>,
    /// Set when the copy failed: nothing more is sent.
    broken: bool,
}

impl BodyWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.broken {
            return Err(copy_failed());
        }
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK)));
        self.sender
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }

    fn break_off(&mut self) {
        self.broken = true;
        self.buffer = Vec::new();
    }
}

fn copy_failed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the copy failed")
}

impl Write for BodyWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.broken {
            return Err(copy_failed());
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry: name, type, mode, owner, link target, content.
    type Row = (Vec<u8>, EntryType, u32, u32, Vec<u8>, Vec<u8>);

    fn row(name: &[u8], kind: EntryType, mode: u32, uid: u32, link: &[u8], content: &[u8]) -> Row {
        (name.to_vec(), kind, mode, uid, link.to_vec(), content.to_vec())
    }

    #[test]
    fn entries_read_back_as_written_long_names_links_and_large_ids_included() {
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(150)).into_bytes();
        let target = "t/./t//".repeat(30).into_bytes();
        let rows = [
            row(b"./", EntryType::Directory, 0o755, 0, b"", b""),
            row(b"top/file", EntryType::Regular, 0o640, 3_000_000, b"", b"hello"),
            row(&long, EntryType::Symlink, 0o777, 0, &target, b""),
            row(b"short", EntryType::Symlink, 0o777, 0, b"a//./b", b""),
            row(b"again", EntryType::Link, 0o640, 0, b"top/file", b""),
            row(b"null", EntryType::Char, 0o666, 0, b"", b""),
        ];
        let mut tar = Builder::new(Vec::new());
        for (name, kind, mode, uid, link, content) in &rows {
            let meta = Meta {
                mode: *mode,
                uid: *uid,
                gid: 0,
                size: 0,
                mtime: 1_700_000_000,
                mtime_nsec: 0,
                nlink: 1,
                rdev: rustix::fs::makedev(1, 3),
                dev: 0,
                ino: 0,
            };
            let size = content.len() as u64;
            append(&mut tar, *kind, &meta, name, link, size, &content[..]).expect("append");
        }
        let bytes = tar.into_inner().expect("finish");
        assert_eq!(bytes.len() % 512, 0);

        let mut archive = tar::Archive::new(&bytes[..]);
        let mut read = Vec::new();
        for entry in archive.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let mut content = Vec::new();
            entry.read_to_end(&mut content).expect("content");
            let header = entry.header();
            if header.entry_type() == EntryType::Char {
                assert_eq!(header.device_major().expect("major"), Some(1));
                assert_eq!(header.device_minor().expect("minor"), Some(3));
            }
            assert_eq!(header.mtime().expect("mtime"), 1_700_000_000);
            let uid = u32::try_from(header.uid().expect("uid")).expect("small uid");
            let link = entry.link_name_bytes().unwrap_or_default();
            let path = entry.path_bytes();
            read.push(row(
                &path,
                header.entry_type(),
                header.mode().expect("mode"),
                uid,
                &link,
                &content,
            ));
        }
        assert_eq!(read, rows);
    }

    #[test]
    fn a_failed_copy_sends_nothing_more() {
        let (sender, mut receiver) = mpsc::channel(8);
        let mut body = BodyWriter {
            sender,
            buffer: Vec::new(),
            broken: false,
        };
        body.write_all(b"half an entry").expect("buffered");
        body.break_off();
        assert!(body.write_all(&[0; 1024]).is_err());
        assert!(body.flush().is_err());
        drop(body);
        assert!(receiver.try_recv().is_err());
    }
}
