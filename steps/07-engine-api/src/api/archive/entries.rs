//! The entries of an uploaded tar, read with the `tar` crate: each one's header checked
//! and made plain, and what the parser holds in memory for one entry's headers bounded.

use std::borrow::Cow;
use std::cell::Cell;
use std::io::{self, Read};
use tar::EntryType;

use super::super::error::{ApiError, ApiResult};

/// What the headers of one entry may take, its extended headers included (PAX records, GNU
/// long names and long link targets, which the parser reads into memory whole).
const MAX_HEADERS: u64 = 3 << 20;

/// One entry's header, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct EntryHeader {
    pub(super) name: Vec<u8>,
    pub(super) link: Vec<u8>,
    pub(super) kind: EntryType,
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) mtime: i64,
    pub(super) size: u64,
    pub(super) major: u32,
    pub(super) minor: u32,
}

impl EntryHeader {
    pub(super) fn is_dir(&self) -> bool {
        // Old (v7) tars mark a directory only by a trailing slash.
        self.kind.is_dir() || (self.kind.is_file() && self.name.ends_with(b"/"))
    }
}

/// Calls `each` with every entry of the tar `stream`, its header and its content; what
/// `each` leaves of the content is skipped. A PAX global header, which describes the
/// archive and no file, is skipped too.
pub(super) fn read_each(
    stream: impl Read,
    mut each: impl FnMut(&EntryHeader, &mut dyn Read) -> ApiResult<()>,
) -> ApiResult<()> {
    let reading = |e: io::Error| ApiError::bad_request(format!("reading the archive: {e}"));
    let budget = Cell::new(None);
    let mut archive = tar::Archive::new(Bounded {
        inner: stream,
        budget: &budget,
    });
    let mut entries = archive.entries().map_err(reading)?;
    loop {
        budget.set(Some(MAX_HEADERS));
        let next = entries.next();
        budget.set(None);
        let Some(entry) = next else {
            return Ok(());
        };
        let mut entry = entry.map_err(reading)?;
        if !entry.header().entry_type().is_pax_global_extensions() {
            let header = EntryHeader::of(&mut entry).map_err(reading)?;
            each(&header, &mut entry)?;
        }
        io::copy(&mut entry, &mut io::sink()).map_err(reading)?;
    }
}

/// The upload as the parser reads it: while `budget` holds a number (the parser is reading
/// an entry's headers), at most that many bytes more.
struct Bounded<'b, R> {
    inner: R,
    budget: &'b Cell<Option<u64>>,
}

impl<R: Read> Read for Bounded<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(left) = self.budget.get() else {
            return self.inner.read(buf);
        };
        if left == 0 && !buf.is_empty() {
            return Err(bad(format!(
                "the headers of an entry take more than {MAX_HEADERS} bytes"
            )));
        }
        let most = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..most])?;
        self.budget.set(Some(left - n as u64));
        Ok(n)
    }
}

fn bad(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// A numeric field's value; an empty field (NULs or spaces) is 0.
fn or_zero(field: &[u8], parsed: io::Result<u64>) -> io::Result<u64> {
    if field.iter().all(|b| *b == 0 || *b == b' ') {
        Ok(0)
    } else {
        parsed
    }
}

impl EntryHeader {
    fn of<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Self> {
        // The parser applies PAX `path`, `linkpath`, `size`, `uid` and `gid`, not `mtime`.
        let pax_mtime = pax_mtime(entry)?;
        let header = entry.header();
        let kind = header.entry_type();
        let old = header.as_old();
        let small = |value: u64, what: &str| u32::try_from(value).map_err(|_| bad(format!("{what} out of range")));
        let mtime = match pax_mtime {
            Some(mtime) => mtime,
            None => or_zero(&old.mtime, header.mtime())?,
        };
        let (major, minor) = match kind {
            EntryType::Char | EntryType::Block => {
                let raw = header.as_bytes();
                let number = |n: io::Result<Option<u32>>| n.map(|n| u64::from(n.unwrap_or(0)));
                (
                    small(or_zero(&raw[329..337], number(header.device_major()))?, "device major")?,
                    small(or_zero(&raw[337..345], number(header.device_minor()))?, "device minor")?,
                )
            }
            _ => (0, 0),
        };
        Ok(Self {
            name: entry.path_bytes().into_owned(),
            link: entry.link_name_bytes().map(Cow::into_owned).unwrap_or_default(),
            kind,
            mode: small(or_zero(&old.mode, header.mode().map(u64::from))? & 0o7777, "mode")?,
            uid: small(or_zero(&old.uid, header.uid())?, "uid")?,
            gid: small(or_zero(&old.gid, header.gid())?, "gid")?,
            mtime: i64::try_from(mtime).map_err(|_| bad("mtime out of range"))?,
            size: entry.size(),
            major,
            minor,
        })
    }
}

/// The seconds of the entry's PAX `mtime` record, if it has one (a fraction may follow).
fn pax_mtime<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Option<u64>> {
    // An extended header the parser did not take as one is refused later; its content is
    // not read whole here.
    if entry.header().entry_type().is_pax_local_extensions() {
        return Ok(None);
    }
    let mut mtime = None;
    for record in entry.pax_extensions()?.into_iter().flatten() {
        let record = record?;
        if record.key_bytes() == b"mtime" {
            let text = String::from_utf8_lossy(record.value_bytes());
            let whole = text.split('.').next().unwrap_or_default();
            mtime = Some(whole.parse().map_err(|_| bad(format!("bad PAX mtime {text:?}")))?);
        }
    }
    Ok(mtime)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8]) -> ApiResult<Vec<(EntryHeader, Vec<u8>)>> {
        let mut all = Vec::new();
        read_each(bytes, |header, data| {
            let mut content = Vec::new();
            data.read_to_end(&mut content).map_err(ApiError::internal)?;
            all.push((header.clone(), content));
            Ok(())
        })?;
        Ok(all)
    }

    fn header(kind: EntryType, size: u64) -> tar::Header {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(0o4755);
        header.set_uid(1000);
        header.set_gid(3_000_000);
        header.set_mtime(1_700_000_000);
        header.set_size(size);
        header
    }

    #[test]
    fn headers_come_plain_pax_and_long_names_included() {
        let mut tar = tar::Builder::new(Vec::new());
        tar.append_pax_extensions([("comment", &b"archive"[..])]).expect("pax");
        let mut global = header(EntryType::XGlobalHeader, 0);
        global.set_path("global").expect("path");
        global.set_cksum();
        tar.append(&global, io::empty()).expect("global");
        tar.append_data(&mut header(EntryType::Regular, 5), "d/f", &b"hello"[..])
            .expect("file");
        let long = "l".repeat(300);
        tar.append_pax_extensions([("mtime", &b"1234.5"[..])]).expect("pax");
        tar.append_link(&mut header(EntryType::Symlink, 0), &long, &long)
            .expect("symlink");
        let mut node = header(EntryType::Char, 0);
        node.set_device_major(1).expect("major");
        node.set_device_minor(3).expect("minor");
        tar.append_data(&mut node, "null", io::empty()).expect("node");
        let bytes = tar.into_inner().expect("finish");

        let all = read_all(&bytes).expect("read");
        assert_eq!(all.len(), 3, "{all:?}");
        let (file, content) = &all[0];
        assert_eq!(
            (&file.name[..], file.kind, file.size),
            (&b"d/f"[..], EntryType::Regular, 5)
        );
        assert_eq!((file.mode, file.uid, file.gid), (0o4755, 1000, 3_000_000));
        assert_eq!(file.mtime, 1_700_000_000);
        assert_eq!(content, b"hello");
        let (link, _) = &all[1];
        assert_eq!(
            (link.name.clone(), link.link.clone(), link.mtime),
            (long.clone().into_bytes(), long.into_bytes(), 1234)
        );
        let (node, _) = &all[2];
        assert_eq!((node.kind, node.major, node.minor), (EntryType::Char, 1, 3));
    }

    #[test]
    fn a_corrupt_header_is_refused() {
        let mut tar = tar::Builder::new(Vec::new());
        tar.append_data(&mut header(EntryType::Regular, 0), "f", io::empty())
            .expect("file");
        let mut bytes = tar.into_inner().expect("finish");
        bytes[0] = b'g';
        let error = read_all(&bytes).expect_err("checksum");
        assert!(error.message.contains("checksum"), "{}", error.message);
    }

    #[test]
    fn huge_extended_headers_are_refused_before_they_are_read() {
        let mut tar = tar::Builder::new(Vec::new());
        let huge = vec![b'x'; usize::try_from(MAX_HEADERS).expect("size")];
        tar.append_pax_extensions([("comment", &huge[..])]).expect("pax");
        tar.append_data(&mut header(EntryType::Regular, 0), "f", io::empty())
            .expect("file");
        let bytes = tar.into_inner().expect("finish");
        let error = read_all(&bytes).expect_err("too large");
        assert!(error.message.contains("more than"), "{}", error.message);
    }
}
