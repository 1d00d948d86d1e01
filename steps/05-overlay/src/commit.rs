//! `snapshot commit`: a container's changes become a new layer directory, usable as a
//! `--layer` above the ones it ran on. The upper dir is copied as it is, whiteouts (0:0
//! character devices) and opaque markers (xattrs) included: overlayfs reads them the same
//! way in a lower layer. Built beside the destination and renamed into place.

use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use std::collections::HashMap;
use std::os::unix::fs::{chown, lchown, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::store::{io, StoreError};

/// Copies `upper` to a new directory `dest`.
pub fn commit(upper: &Path, dest: &Path) -> Result<(), StoreError> {
    if dest.exists() {
        let exists = std::io::Error::new(std::io::ErrorKind::AlreadyExists, "it already exists");
        return Err(io("committing to", dest)(exists).into());
    }
    let staging = dest.with_file_name(format!(
        ".{}.commit",
        dest.file_name().unwrap_or_default().to_string_lossy()
    ));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io("removing", &staging))?;
    }
    let mut links = HashMap::new();
    let result = copy_tree(upper, &staging, &mut links).and_then(|()| {
        std::fs::rename(&staging, dest)
            .map_err(io("renaming", dest))
            .map_err(Into::into)
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

fn copy_tree(from: &Path, to: &Path, links: &mut HashMap<(u64, u64), PathBuf>) -> Result<(), StoreError> {
    copy_entry(from, to, links)?;
    for entry in std::fs::read_dir(from).map_err(io("reading", from))? {
        let entry = entry.map_err(io("reading", from))?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().map_err(io("reading", &source))?.is_dir() {
            copy_tree(&source, &target, links)?;
        } else {
            copy_entry(&source, &target, links)?;
        }
    }
    Ok(())
}

/// One entry with its type, content, mode, owner and xattrs (hard links stay links).
fn copy_entry(from: &Path, to: &Path, links: &mut HashMap<(u64, u64), PathBuf>) -> Result<(), StoreError> {
    let meta = from.symlink_metadata().map_err(io("reading", from))?;
    let kind = meta.file_type();
    if !kind.is_dir() && meta.nlink() > 1 {
        if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
            return std::fs::hard_link(first, to)
                .map_err(io("linking", to))
                .map_err(Into::into);
        }
        links.insert((meta.dev(), meta.ino()), to.to_owned());
    }
    if kind.is_dir() {
        std::fs::create_dir(to).map_err(io("creating", to))?;
    } else if kind.is_symlink() {
        let target = std::fs::read_link(from).map_err(io("reading", from))?;
        std::os::unix::fs::symlink(target, to).map_err(io("creating", to))?;
    } else if kind.is_file() {
        std::fs::copy(from, to).map_err(io("copying to", to))?;
    } else {
        let (flag, dev) = if kind.is_char_device() {
            (SFlag::S_IFCHR, meta.rdev())
        } else if kind.is_block_device() {
            (SFlag::S_IFBLK, meta.rdev())
        } else if kind.is_fifo() {
            (SFlag::S_IFIFO, 0)
        } else {
            return Ok(()); // sockets are not part of a filesystem image
        };
        let dev = makedev(nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
        mknod(to, flag, Mode::from_bits_truncate(meta.mode()), dev).map_err(|e| io("creating", to)(e.into()))?;
    }
    lchown(to, Some(meta.uid()), Some(meta.gid())).map_err(io("chown", to))?;
    if !kind.is_symlink() {
        chown(to, Some(meta.uid()), Some(meta.gid())).map_err(io("chown", to))?;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(meta.mode() & 0o7777)).map_err(io("chmod", to))?;
        for name in xattr::list(from).map_err(io("reading xattrs of", from))? {
            if let Ok(Some(value)) = xattr::get(from, &name) {
                xattr::set(to, &name, &value).map_err(io("setting xattrs on", to))?;
            }
        }
    }
    Ok(())
}
