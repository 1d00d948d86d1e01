//! Where snapshots live: `ROOT/snapshots/ID/` holds a container's `upper` (its writes),
//! `work` (overlayfs's scratch space), `merged` (where the union is mounted), the list of
//! its `layers`, and a `lock` held while a container uses it.

use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::path::{Path, PathBuf};
pub use step04_cgroups::step03_mount_ns::step02_pid_ns::step01_unshare::path_error::{path_error as io, PathError};

/// Removes a snapshot's directory (or its work dir). overlayfs leaves `work/work` with mode
/// 000: root goes through regardless, but a rootless user must first give the directories
/// back their permissions, which only their owner can.
pub fn remove_tree(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => {
            open_up(dir)?;
            std::fs::remove_dir_all(dir)
        }
        other => other,
    }
}

fn open_up(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            open_up(&entry.path())?;
        }
    }
    Ok(())
}

/// The data root of root's containers.
pub const DEFAULT_ROOT: &str = "/var/lib/keel";

/// The data root when `--root` is not given: [`DEFAULT_ROOT`] for root; without root (a
/// rootless container, in step 01's user namespace) the user's own, as podman's:
/// `$XDG_DATA_HOME/keel`, else `~/.local/share/keel`.
pub fn default_root() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from(DEFAULT_ROOT);
    }
    std::env::var_os("XDG_DATA_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share")))
        .map_or_else(|| PathBuf::from(DEFAULT_ROOT), |data| data.join("keel"))
}

#[derive(Debug, thiserror::Error)]
// ANCHOR: errors
pub enum StoreError {
    #[error("snapshot name {0:?} is not valid: use 1 to 64 letters, digits, '.', '_' or '-'")]
    BadId(String),
    #[error("snapshot {0} does not exist (see `snapshot ls`)")]
    NotFound(String),
    #[error("snapshot {0} already exists: choose another --name, or remove it with `snapshot rm {0}`")]
    Exists(String),
    #[error("snapshot {0} is in use by a running container")]
    InUse(String),
    #[error(transparent)]
    Io(#[from] PathError),
}
// ANCHOR_END: errors

/// The snapshots under a data root.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// One snapshot's directory.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub id: String,
    pub dir: PathBuf,
}

impl Snapshot {
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    pub fn merged(&self) -> PathBuf {
        self.dir.join("merged")
    }
    fn layers_file(&self) -> PathBuf {
        self.dir.join("layers")
    }

    /// The read-only layers under the upper dir, lowest first.
    pub fn layers(&self) -> Result<Vec<PathBuf>, StoreError> {
        let text = std::fs::read_to_string(self.layers_file()).map_err(io("reading", &self.layers_file()))?;
        Ok(text.lines().map(PathBuf::from).collect())
    }

    /// Takes the snapshot's lock, held for as long as the returned file is open.
    pub fn lock(&self) -> Result<Flock<File>, StoreError> {
        let path = self.dir.join("lock");
        let file = File::create(&path).map_err(io("creating", &path))?;
        Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|_| StoreError::InUse(self.id.clone()))
    }
}

pub fn valid_id(id: &str) -> Result<(), StoreError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadId(id.to_owned()))
    }
}

/// A fresh id: 12 hex digits, like docker's short ids.
pub fn new_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mixed = (nanos as u64) ^ (u64::from(std::process::id()) << 40);
    format!("{:012x}", mixed & 0xffff_ffff_ffff)
}

impl Store {
    pub fn new(root: &Path) -> Self {
        Self {
            dir: root.join("snapshots"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn get(&self, id: &str) -> Result<Snapshot, StoreError> {
        valid_id(id)?;
        let dir = self.dir.join(id);
        if !dir.is_dir() {
            return Err(StoreError::NotFound(id.to_owned()));
        }
        Ok(Snapshot { id: id.to_owned(), dir })
    }

    /// Creates the directories of a new snapshot on `layers` (lowest first).
    pub fn create(&self, id: &str, layers: &[PathBuf]) -> Result<Snapshot, StoreError> {
        valid_id(id)?;
        std::fs::create_dir_all(&self.dir).map_err(io("creating", &self.dir))?;
        let dir = self.dir.join(id);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(StoreError::Exists(id.to_owned())),
            Err(e) => return Err(io("creating", &dir)(e).into()),
        }
        let snapshot = Snapshot { id: id.to_owned(), dir };
        for sub in [snapshot.upper(), snapshot.work(), snapshot.merged()] {
            std::fs::create_dir(&sub).map_err(io("creating", &sub))?;
        }
        let list: String = layers.iter().map(|l| format!("{}\n", l.display())).collect();
        std::fs::write(snapshot.layers_file(), list).map_err(io("writing", &snapshot.layers_file()))?;
        Ok(snapshot)
    }

    /// Removes a snapshot that no container uses.
    pub fn remove(&self, id: &str) -> Result<(), StoreError> {
        let snapshot = self.get(id)?;
        let _lock = snapshot.lock()?;
        remove_tree(&snapshot.dir)
            .map_err(io("removing", &snapshot.dir))
            .map_err(Into::into)
    }

    /// Every snapshot's id, sorted.
    pub fn list(&self) -> Result<Vec<String>, StoreError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("reading", &self.dir)(e).into()),
        };
        let mut ids: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_be_paths() {
        for bad in ["", "../x", "a/b", ".hidden", &"x".repeat(65)] {
            assert!(valid_id(bad).is_err(), "{bad:?} accepted");
        }
        valid_id("web-1.test_a").expect("valid");
        valid_id(&new_id()).expect("a new id is valid");
    }

    #[test]
    fn a_snapshot_in_use_cannot_be_removed() {
        let root = tempfile::tempdir().expect("tempdir");
        let store = Store::new(root.path());
        let snapshot = store.create("c1", &[PathBuf::from("/l1")]).expect("create");
        assert_eq!(snapshot.layers().expect("layers"), [PathBuf::from("/l1")]);
        assert!(matches!(store.create("c1", &[]), Err(StoreError::Exists(_))));
        let lock = snapshot.lock().expect("lock");
        assert!(matches!(store.remove("c1"), Err(StoreError::InUse(_))));
        drop(lock);
        store.remove("c1").expect("remove");
        assert_eq!(store.list().expect("list"), Vec::<String>::new());
    }
}
