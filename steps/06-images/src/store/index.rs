//! `index.json`: which manifest each image name points at. Rewritten whole (temp file,
//! fsync, rename) under a lock, so readers see the old or the new index, never half of one.

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;

use super::blobs::write_synced;
use super::{io, Store, StoreError};
use crate::digest::Digest;
use crate::reference::Reference;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Index {
    /// Full reference (`docker.io/library/busybox:latest`) -> manifest digest.
    pub images: BTreeMap<String, String>,
}

impl Store {
    fn index_path(&self) -> std::path::PathBuf {
        self.dir.join("index.json")
    }

    /// The current index (empty when there is none yet).
    pub fn index(&self) -> Result<Index, StoreError> {
        let path = self.index_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| StoreError::BadJson {
                what: "the image index",
                digest: Digest::of(&bytes),
                error: source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(io("reading", &path)(e).into()),
        }
    }

    /// Changes the index under an exclusive lock and writes it back crash-safely.
    pub fn update_index<T>(&self, change: impl FnOnce(&mut Index) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let lock_path = self.dir.join("index.lock");
        let lock_file = File::create(&lock_path).map_err(io("creating", &lock_path))?;
        let _lock = Flock::lock(lock_file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| io("locking", &lock_path)(std::io::Error::from(errno)))?;
        let mut index = self.index()?;
        let result = change(&mut index)?;
        let bytes = serde_json::to_vec_pretty(&index).map_err(|e| io("encoding", &lock_path)(e.into()))?;
        let tmp = self.tmp_path("index");
        write_synced(&tmp, &bytes)?;
        let path = self.index_path();
        std::fs::rename(&tmp, &path).map_err(io("replacing", &path))?;
        Ok(result)
    }

    /// Points `name` at `manifest`.
    pub fn tag(&self, name: &Reference, manifest: &Digest) -> Result<(), StoreError> {
        self.update_index(|index| {
            index.images.insert(name.to_string(), manifest.to_string());
            Ok(())
        })
    }
}
