//! How overlayfs records deletions in an upper dir: a deleted file or directory becomes a
//! *whiteout*, a character device 0:0 of the same name; a directory replaced as a whole is
//! marked *opaque* with the xattr `trusted.overlay.opaque=y`, hiding everything below it.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

pub fn is_whiteout(meta: &std::fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

pub fn is_opaque(dir: &Path) -> bool {
    matches!(xattr::get(dir, OPAQUE_XATTR), Ok(Some(value)) if value == b"y")
}
