//! Content-addressed blobs: written once under their digest, verified before they get it.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::{io, Store, StoreError};
use crate::digest::{Digest, Hashing};

impl Store {
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.hex())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Stores `bytes`; returns their digest.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let digest = Digest::of(bytes);
        if !self.has_blob(&digest) {
            let tmp = self.tmp_path("blob");
            write_synced(&tmp, bytes)?;
            self.adopt_blob(&tmp, &digest)?;
        }
        Ok(digest)
    }

    // ANCHOR: adopt_blob
    /// Moves a finished file from tmp/ into the store under `expected`, after checking that
    /// its content hashes to `expected`. A mismatch removes the file and names both digests.
    pub fn adopt_blob(&self, tmp: &Path, expected: &Digest) -> Result<(), StoreError> {
        let actual = digest_of_file(tmp)?;
        if &actual != expected {
            let _ = std::fs::remove_file(tmp);
            return Err(StoreError::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        let dest = self.blob_path(expected);
        std::fs::rename(tmp, &dest)
            .map_err(io("storing", &dest))
            .map_err(Into::into)
    }
    // ANCHOR_END: adopt_blob

    /// Stores what `reader` yields, whatever its digest; returns the digest and size.
    pub fn put_blob_from(&self, reader: impl Read) -> Result<(Digest, u64), StoreError> {
        let tmp = self.tmp_path("blob");
        let file = File::create(&tmp).map_err(io("creating", &tmp))?;
        let mut hashing = Hashing::new(file);
        let mut reader = reader;
        std::io::copy(&mut reader, &mut hashing).map_err(io("writing", &tmp))?;
        let (digest, size, file) = hashing.finish();
        file.sync_all().map_err(io("syncing", &tmp))?;
        drop(file);
        let dest = self.blob_path(&digest);
        std::fs::rename(&tmp, &dest).map_err(io("storing", &dest))?;
        Ok((digest, size))
    }

    /// A blob's bytes, checked against its digest (small blobs: manifests and configs).
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest);
        let bytes = std::fs::read(&path).map_err(|_| StoreError::MissingBlob(digest.clone()))?;
        let actual = Digest::of(&bytes);
        if &actual != digest {
            return Err(StoreError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Every blob in the store.
    pub fn blob_digests(&self) -> Vec<Digest> {
        let dir = self.dir.join("blobs/sha256");
        let entries = std::fs::read_dir(dir).into_iter().flatten().flatten();
        entries
            .filter_map(|e| format!("sha256:{}", e.file_name().to_string_lossy()).parse().ok())
            .collect()
    }
}

pub fn digest_of_file(path: &Path) -> Result<Digest, StoreError> {
    let file = File::open(path).map_err(io("reading", path))?;
    let mut hashing = Hashing::new(file);
    std::io::copy(&mut hashing, &mut std::io::sink()).map_err(io("reading", path))?;
    Ok(hashing.finish().0)
}

/// Writes and syncs a file, so that a rename after it publishes complete content.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut file = File::create(path).map_err(io("creating", path))?;
    file.write_all(bytes).map_err(io("writing", path))?;
    file.sync_all().map_err(io("syncing", path)).map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_is_stored_under_its_digest_and_a_wrong_one_is_refused() {
        let root = tempfile::tempdir().expect("tempdir");
        let store = Store::open(root.path()).expect("open");
        let digest = store.put_blob(b"hello").expect("put");
        assert_eq!(store.read_blob(&digest).expect("read"), b"hello");
        let tmp = store.tmp_path("t");
        write_synced(&tmp, b"evil").expect("write");
        let error = store.adopt_blob(&tmp, &Digest::of(b"good")).expect_err("mismatch");
        assert!(error.to_string().contains(&Digest::of(b"good").to_string()), "{error}");
        assert!(!tmp.exists(), "the rejected file is removed");
        assert!(!store.has_blob(&Digest::of(b"good")));
    }

    #[test]
    fn a_corrupted_blob_is_caught_when_read() {
        let root = tempfile::tempdir().expect("tempdir");
        let store = Store::open(root.path()).expect("open");
        let digest = store.put_blob(b"{}").expect("put");
        std::fs::write(store.blob_path(&digest), b"{\"x\":1}").expect("corrupt");
        assert!(matches!(
            store.read_blob(&digest),
            Err(StoreError::DigestMismatch { .. })
        ));
    }
}
