//! Unpacked layers, one directory per diff id, shared by every image that has the layer:
//! step 05 stacks them as overlay lower dirs.

use std::fs::File;
use std::path::PathBuf;

use super::images::Image;
use super::{io, Store, StoreError};
use crate::digest::Digest;
use crate::unpack::{decompress, unpack_layer, UnpackError};

/// A write that failed for want of room (ENOSPC), or of quota (EDQUOT).
fn is_no_space(error: &UnpackError) -> bool {
    let UnpackError::Io { error, .. } = error else {
        return false;
    };
    error.kind() == std::io::ErrorKind::StorageFull || error.raw_os_error() == Some(nix::libc::EDQUOT)
}

impl Store {
    pub fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.dir.join("layers/sha256").join(diff_id.hex())
    }

    pub fn layer_dirs(&self) -> Vec<PathBuf> {
        let dir = self.dir.join("layers/sha256");
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect()
    }

    // ANCHOR: ensure_unpacked
    /// The image's layers as directories, lowest first, unpacking those not unpacked yet.
    /// Each is unpacked into tmp/, its diff id checked against the image config, then
    /// renamed into place: a layer dir that exists is complete and trusted.
    pub fn ensure_unpacked(&self, image: &Image) -> Result<Vec<PathBuf>, StoreError> {
        let blobs = image.layer_digests()?;
        let diff_ids = image.diff_ids()?;
        if blobs.len() != diff_ids.len() {
            return Err(StoreError::Unsupported {
                what: "image",
                detail: format!("{} layers but {} diff ids in its config", blobs.len(), diff_ids.len()),
            });
        }
        let mut dirs = Vec::new();
        for (blob, diff_id) in blobs.iter().zip(&diff_ids) {
            let dir = self.layer_dir(diff_id);
            if !dir.is_dir() {
                self.unpack(image, blob, diff_id, &dir)?;
            }
            dirs.push(dir);
        }
        Ok(dirs)
    }
    // ANCHOR_END: ensure_unpacked

    fn unpack(&self, image: &Image, blob: &Digest, diff_id: &Digest, dir: &PathBuf) -> Result<(), StoreError> {
        let path = self.blob_path(blob);
        let file = File::open(&path).map_err(|_| StoreError::MissingBlob(blob.clone()))?;
        let tmp = self.tmp_path("layer");
        std::fs::create_dir(&tmp).map_err(io("creating", &tmp))?;
        let failed = |source: UnpackError| {
            let (image, diff_id) = (image.manifest_digest.to_string(), diff_id.clone());
            if is_no_space(&source) {
                let dir = dir.clone();
                StoreError::NoSpace {
                    image,
                    diff_id,
                    dir,
                    error: source,
                }
            } else {
                StoreError::Unpack {
                    image,
                    diff_id,
                    error: source,
                }
            }
        };
        let unpacked = decompress(file).and_then(|tar| unpack_layer(tar, &tmp));
        let unpacked = match unpacked {
            Ok(unpacked) => unpacked,
            Err(error) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(failed(error));
            }
        };
        if &unpacked.diff_id != diff_id {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(StoreError::DiffIdMismatch {
                blob: blob.clone(),
                expected: diff_id.clone(),
                actual: unpacked.diff_id,
            });
        }
        match std::fs::rename(&tmp, dir) {
            Ok(()) => Ok(()),
            // Another process unpacked the same layer meanwhile: theirs is as good.
            Err(_) if dir.is_dir() => {
                let _ = std::fs::remove_dir_all(&tmp);
                Ok(())
            }
            Err(e) => Err(io("storing", dir)(e).into()),
        }
    }
}
