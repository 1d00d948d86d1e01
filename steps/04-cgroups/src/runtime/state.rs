//! What the runtime remembers of a container between its commands: `--root/ID/state.json`,
//! written once by `create` (temp file, fsync, rename: a crash leaves the old file or the
//! new one, never half of one), and the live status, which is read from the kernel each time
//! rather than stored (a stored "running" would lie after the process died).

use nix::sys::signal::kill;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use step03_mount_ns::step02_pid_ns::step01_unshare::oci_spec::runtime::Spec;

use super::RuntimeError;
use crate::cgroups::{self, Layout};

/// The version of the runtime spec this runtime implements, as `state` reports it.
pub const OCI_VERSION: &str = "1.0.2";

/// Where a container's process is, in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Set up, waiting on the start fifo.
    Created,
    Running,
    /// Frozen by `pause`.
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        };
        f.pad(text)
    }
}

/// The record `create` leaves in the state directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// The container's first process, on the host.
    pub pid: i32,
    /// Its start time in clock ticks since boot (`/proc/PID/stat` field 22): a pid that
    /// was reused by another process after ours ended has another start time.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339, like runc's.
    pub created: String,
    /// The spec the container was created from, with its paths made absolute: `delete`
    /// and `exec` need it after `create` is gone.
    pub config: Spec,
}

/// What `state` prints: the OCI runtime spec's state, with runc's extra fields.
#[derive(Debug, Serialize)]
pub struct StateOutput {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The runtime's state directory (`--root`) and the containers in it.
pub struct StateDir {
    pub root: PathBuf,
}

impl StateDir {
    pub fn new(root: &Path) -> Self {
        Self { root: root.to_owned() }
    }

    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    pub fn fifo(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("exec.fifo")
    }

    /// Makes the container's directory; an existing one means the id is taken.
    pub fn claim(&self, id: &str) -> Result<PathBuf, RuntimeError> {
        std::fs::create_dir_all(&self.root).map_err(|e| RuntimeError::io("creating the state root", &self.root, e))?;
        let dir = self.container_dir(id);
        match std::fs::create_dir(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(RuntimeError::Exists(id.to_owned())),
            Err(e) => Err(RuntimeError::io("creating the container's state directory", &dir, e)),
        }
    }

    pub fn save(&self, record: &Record) -> Result<(), RuntimeError> {
        let path = self.container_dir(&record.id).join("state.json");
        let json = serde_json::to_vec(record).map_err(|e| RuntimeError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        write_atomically(&path, &json)
    }

    /// The record of `id`; runc's wording when there is none, which containerd matches.
    pub fn load(&self, id: &str) -> Result<Record, RuntimeError> {
        let path = self.container_dir(id).join("state.json");
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(RuntimeError::NotFound(id.to_owned())),
            Err(e) => return Err(RuntimeError::io("reading", &path, e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| RuntimeError::Corrupt {
            path,
            reason: e.to_string(),
        })
    }

    /// Every container id with a record, sorted.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("state.json").exists())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        ids.sort();
        ids
    }

    pub fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let dir = self.container_dir(id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RuntimeError::io("removing", &dir, e)),
        }
    }
}

/// How long `kill KILL` and `delete --force` wait for the first process to end.
const KILL_WAIT: Duration = Duration::from_secs(5);

impl Record {
    /// Whether the container's first process still exists (and is not a zombie waiting to be
    /// reaped by its parent, which for the kernel is an ended process).
    pub fn alive(&self) -> bool {
        match process_start(self.pid) {
            Some((start, state)) => start == self.pid_start && state != 'Z' && state != 'X',
            None => false,
        }
    }

    /// Waits, at most a few seconds, until the first process has ended. The kernel delivers
    /// `SIGKILL` after `kill(2)` returns, and the process is the shim's child, not ours: we
    /// cannot reap it, only watch it become a zombie or disappear.
    pub fn wait_until_ended(&self) {
        let deadline = Instant::now() + KILL_WAIT;
        while self.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    pub fn status(&self, dir: &StateDir) -> Status {
        if !self.alive() {
            return Status::Stopped;
        }
        if dir.fifo(&self.id).exists() {
            return Status::Created;
        }
        match self.cgroup() {
            Ok(cgroup) if cgroup.is_frozen() => Status::Paused,
            _ => Status::Running,
        }
    }

    pub fn cgroups_path(&self) -> String {
        self.config
            .linux()
            .as_ref()
            .and_then(|l| l.cgroups_path().clone())
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }

    /// The container's cgroup, reopened from its path.
    pub fn cgroup(&self) -> Result<Box<dyn cgroups::Cgroup>, RuntimeError> {
        let layout = Layout::detect()?;
        Ok(cgroups::open(&layout, &self.cgroups_path())?)
    }

    pub fn output(&self, dir: &StateDir) -> StateOutput {
        let annotations = self.config.annotations().clone().unwrap_or_default();
        StateOutput {
            oci_version: OCI_VERSION.to_owned(),
            id: self.id.clone(),
            status: self.status(dir),
            pid: if self.alive() { self.pid } else { 0 },
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            created: self.created.clone(),
            owner: String::new(),
            annotations: annotations.into_iter().collect(),
        }
    }
}

/// A process's start time and state letter, from `/proc/PID/stat`.
pub fn process_start(pid: i32) -> Option<(u64, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: parse after it.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((start, state))
}

/// Whether `pid` exists at all (even as a zombie).
pub fn exists(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
}

// ANCHOR: write_atomically
/// Writes `bytes` to `path` so that a reader (or a process killed halfway) sees the old or
/// the new file, never a mix: a temporary file of this process, renamed over it. Not synced
/// to disk: the runtime's state describes processes, and a crash of the machine ends them
/// all, so waiting for the disk (an fsync costs more than the rest of the write) buys
/// nothing. Records that must survive a reboot use [`write_durably`].
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RuntimeError> {
    write_then_rename(path, bytes, false)
}

/// [`write_atomically`], and on disk when it returns: the file, then the directory that
/// holds the rename (a container engine's records outlive a power cut).
pub fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), RuntimeError> {
    write_then_rename(path, bytes, true)
}

fn write_then_rename(path: &Path, bytes: &[u8], sync: bool) -> Result<(), RuntimeError> {
    // Unique per writer: two processes writing the same file never share a temporary.
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        if sync {
            file.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|_| sync) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        RuntimeError::io("writing", path, e)
    })
}
// ANCHOR_END: write_atomically

/// Now, as runc writes it in `created`.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_has_a_start_time_and_runs() {
        let (start, state) = process_start(std::process::id() as i32).expect("stat");
        assert!(start > 0);
        assert_ne!(state, 'Z');
    }

    #[test]
    fn a_record_with_another_start_time_is_a_stopped_container() {
        let record = Record {
            id: "x".into(),
            pid: std::process::id() as i32,
            pid_start: 1,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: now_rfc3339(),
            config: Spec::default(),
        };
        assert!(!record.alive(), "a reused pid must not count as our container");
    }
}
