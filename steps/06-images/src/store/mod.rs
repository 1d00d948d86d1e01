//! The image store, what containerd's content store and snapshotter keep:
//!
//! ```text
//! ROOT/images/
//!   blobs/sha256/<hex>      every manifest, config and layer blob, named by its digest
//!   layers/sha256/<hex>/    each layer unpacked once, named by its diff id, shared by images
//!   index.json              image names -> manifest digests
//!   tmp/                    downloads and unpacks in progress (a dead process's cleared when the store opens)
//! ```
//!
//! Blobs are written to `tmp/`, synced, checked against their digest and renamed into place:
//! a crash leaves a stray temp file, never a wrong blob under a trusted name.

pub mod blobs;
pub mod images;
pub mod index;
pub mod layers;

use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::reference::BadReference;
use crate::unpack::UnpackError;
pub use step05_overlay::step04_cgroups::step03_mount_ns::step02_pid_ns::step01_unshare::path_error::{
    path_error as io, PathError,
};

/// The data root when `--root` is not given (shared with step 05's snapshots).
pub use step05_overlay::store::{default_root, DEFAULT_ROOT};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Io(#[from] PathError),
    #[error("blob {expected} does not match its digest (its content hashes to {actual}): refusing it")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("blob {0} is not in the store")]
    MissingBlob(Digest),
    #[error("{what} {digest} is not valid JSON: {error}")]
    BadJson {
        what: &'static str,
        digest: Digest,
        error: serde_json::Error,
    },
    #[error("no such image: {0} (see `images`, or `pull` it)")]
    UnknownImage(String),
    #[error(transparent)]
    BadReference(#[from] BadReference),
    #[error("layer {diff_id} of image {image}: {error}")]
    Unpack {
        image: String,
        diff_id: Digest,
        error: UnpackError,
    },
    /// The disk filled up while unpacking: said apart from a bad layer, with the place, since
    /// the fix is room on that disk, not another image.
    #[error("layer {diff_id} of image {image}: no room to unpack it into {}: {error}", dir.display())]
    NoSpace {
        image: String,
        diff_id: Digest,
        dir: PathBuf,
        error: UnpackError,
    },
    #[error("layer {blob} unpacks to {actual}, but the image config says {expected}: refusing it")]
    DiffIdMismatch {
        blob: Digest,
        expected: Digest,
        actual: Digest,
    },
    #[error("the image {0} is used by container snapshot(s) {1}: remove them first, or use --force")]
    InUse(String, String),
    #[error("unsupported {what}: {detail}")]
    Unsupported { what: &'static str, detail: String },
}

/// The image store under a data root.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    dir: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store under `root`, and clears its temp dir.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        let dir = root.join("images");
        for sub in ["blobs/sha256", "layers/sha256", "tmp"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path).map_err(io("creating", &path))?;
        }
        let store = Self {
            root: root.to_owned(),
            dir,
        };
        store.clear_tmp();
        Ok(store)
    }

    /// The data root (step 05's snapshots live beside the images).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Removes what interrupted work left in tmp/: each entry is named after the process
    /// that made it (`tmp_path`), and goes once that process is gone (killed mid-pull, say).
    /// Work of a live process stays however long it takes: another process (a pull beside
    /// the engine's `docker run`) may be writing there right now. Entries not named so go
    /// after a minute.
    fn clear_tmp(&self) {
        let tmp = self.dir.join("tmp");
        let Ok(entries) = std::fs::read_dir(&tmp) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let stale = match owner(&name) {
                Some(pid) => !alive(pid),
                None => entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age.as_secs() > 60),
            };
            if stale {
                let path = entry.path();
                let _ = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
            }
        }
    }

    /// A fresh path under tmp/ for work in progress: `HINT-PID-NANOS`, the pid telling
    /// `clear_tmp` whether its maker still runs.
    pub fn tmp_path(&self, hint: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        self.dir
            .join("tmp")
            .join(format!("{hint}-{}-{nanos}", std::process::id()))
    }
}

/// The pid in a `tmp_path` name (`pull-1234-5678.partial` → 1234).
fn owner(name: &str) -> Option<i32> {
    let mut parts = name.rsplitn(3, '-');
    let (_nanos, pid, _hint) = (parts.next()?, parts.next()?, parts.next()?);
    pid.parse().ok().filter(|pid| *pid > 0)
}

/// Whether process `pid` exists (signal 0 checks without sending anything).
fn alive(pid: i32) -> bool {
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(errno) => errno != nix::errno::Errno::ESRCH,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmp_work_of_a_dead_process_goes_and_a_live_ones_stays() {
        let root = tempfile::tempdir().expect("tempdir");
        let store = Store::open(root.path()).expect("open");
        let ours = store.tmp_path("layer");
        std::fs::create_dir(&ours).expect("mkdir");
        // A child that has exited and been reaped: its pid names no process any more.
        let mut child = std::process::Command::new("true").spawn().expect("true");
        let dead = child.id();
        child.wait().expect("wait");
        let theirs = store.dir.join("tmp").join(format!("pull-{dead}-1.partial"));
        std::fs::write(&theirs, b"half a blob").expect("write");
        let store = Store::open(root.path()).expect("reopen");
        assert!(ours.is_dir(), "the work of a live process was removed");
        assert!(!theirs.exists(), "a dead process's download was kept");
        assert_eq!(owner("pull-1234-5678.partial"), Some(1234));
        assert_eq!(owner("stray"), None);
        drop(store);
    }
}
