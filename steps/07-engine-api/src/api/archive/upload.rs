//! The body of a `PUT`: a tar extracted into a directory of the container, each entry put
//! where Docker's `filepath.Join(dest, name)` would (never above the directory), the
//! directories on the way made or copied up, what was there replaced.

use rustix::fd::AsFd;
use rustix::fs::AtFlags;
use rustix::io::Errno;
use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use tar::EntryType;

use super::super::error::{ApiError, ApiResult};
use super::create::{make_node, make_symlink, write_file};
use super::entries::{read_each, EntryHeader};
use super::files::{errno, remove_all_at, set_owner_and_mode, set_times};
use super::layers::{DirMeta, Node, Tree, UnionDir};
use super::request_path;
use super::walk::names;

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
    /// Extracts the tar of `body` (gzip-compressed or plain) into the directory `request`.
    pub(super) fn extract(
        &self,
        request: &str,
        container: &str,
        no_overwrite: bool,
        body: impl Read + Send,
    ) -> ApiResult<()> {
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
        let mut extraction = Extraction {
            tree: self,
            dest: dest.path.clone(),
            no_overwrite,
            parent: None,
            dir_times: Vec::new(),
        };
        read_each(stream, |entry, data| extraction.entry(entry, data))?;
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
    fn entry(&mut self, entry: &EntryHeader, data: &mut dyn Read) -> ApiResult<()> {
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
            EntryType::Link => {
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
            (EntryType::Regular | EntryType::Continuous, _) => write_file(writable, &name, entry, data),
            (EntryType::Symlink, _) => make_symlink(writable, &name, entry),
            (EntryType::Char | EntryType::Block | EntryType::Fifo, _) => make_node(writable, &name, entry),
            (kind, _) => {
                return Err(ApiError::bad_request(format!(
                    "{shown}: entry type {:?} is not supported",
                    char::from(kind.as_byte())
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
fn link_source(tree: &Tree, dest: &Path, entry: &EntryHeader) -> ApiResult<LinkSource> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_stay_under_the_destination() {
        let joined = |n: &[u8]| entry_names(n).map(|v| v.join(&b'/'));
        assert_eq!(joined(b"/etc/passwd").expect("absolute"), b"etc/passwd");
        assert_eq!(joined(b"./a/../b/").expect("dots"), b"b");
        assert!(joined(b"../x").is_err());
        assert!(joined(b"a/../../x").is_err());
        assert_eq!(joined(b"./").expect("root"), b"");
    }
}
