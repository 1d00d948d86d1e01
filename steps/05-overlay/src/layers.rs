//! Checking the layers before anything is mounted: each must be an existing directory,
//! given once, with a path overlayfs can take; overlayfs must exist; and the upper dir must
//! not sit on an overlay itself (overlay on overlay fails with a bare EINVAL).

use nix::sys::statfs::{statfs, OVERLAYFS_SUPER_MAGIC};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("layer {0}: no such directory")]
    Missing(PathBuf),
    #[error("layer {0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("layer {0} is given twice: each layer may appear once")]
    Duplicate(PathBuf),
    #[error("layer {0}: overlayfs cannot take a path with ',' or ':'")]
    BadPath(PathBuf),
    #[error(
        "overlayfs is not available in this kernel: run `modprobe overlay` (or use a kernel with CONFIG_OVERLAY_FS)"
    )]
    NoOverlay,
    #[error(
        "{0} is on overlayfs, which cannot hold an upper dir: give --root a directory on another filesystem (ext4, xfs, tmpfs, a volume)"
    )]
    OverlayOnOverlay(PathBuf),
}

/// The layers, canonical and checked, in the order given (lowest first).
pub fn check(layers: &[PathBuf]) -> Result<Vec<PathBuf>, LayerError> {
    let mut checked: Vec<PathBuf> = Vec::new();
    for layer in layers {
        let meta = std::fs::metadata(layer).map_err(|_| LayerError::Missing(layer.clone()))?;
        if !meta.is_dir() {
            return Err(LayerError::NotADirectory(layer.clone()));
        }
        let canonical = layer.canonicalize().map_err(|_| LayerError::Missing(layer.clone()))?;
        if checked.contains(&canonical) {
            return Err(LayerError::Duplicate(layer.clone()));
        }
        if canonical.to_string_lossy().contains([',', ':']) {
            return Err(LayerError::BadPath(canonical));
        }
        checked.push(canonical);
    }
    Ok(checked)
}

/// overlayfs is registered with the kernel (built in, or its module loaded).
pub fn overlay_available() -> Result<(), LayerError> {
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if filesystems
        .lines()
        .any(|l| l.split_whitespace().last() == Some("overlay"))
    {
        Ok(())
    } else {
        Err(LayerError::NoOverlay)
    }
}

/// The snapshot store at `dir` can hold upper dirs.
pub fn can_hold_upper(dir: &Path) -> Result<(), LayerError> {
    match statfs(dir) {
        Ok(fs) if fs.filesystem_type() == OVERLAYFS_SUPER_MAGIC => Err(LayerError::OverlayOnOverlay(dir.to_owned())),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_layers_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("file");
        std::fs::write(&file, "x").expect("write");
        assert!(matches!(check(&[dir.path().join("nope")]), Err(LayerError::Missing(_))));
        assert!(matches!(check(&[file]), Err(LayerError::NotADirectory(_))));
        let twice = [dir.path().to_owned(), dir.path().join(".")];
        assert!(matches!(check(&twice), Err(LayerError::Duplicate(_))));
        let colon = dir.path().join("a:b");
        std::fs::create_dir(&colon).expect("mkdir");
        assert!(matches!(check(&[colon]), Err(LayerError::BadPath(_))));
    }
}
