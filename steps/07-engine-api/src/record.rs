//! A container's record on disk: `ROOT/containers/ID/record.json`, rewritten whole on each
//! change through a temp file, fsync and rename, so a crash leaves the old record or the new
//! one, never half of each. The monitor writes `exit.json` the same way when the container
//! ends, so an engine that was down at the time still learns how it ended.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use step06_images::step05_overlay::step04_cgroups;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a container record: {source}")]
    Json { path: PathBuf, source: serde_json::Error },
    #[error(transparent)]
    Write(#[from] step04_cgroups::runtime::RuntimeError),
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> RecordError + 'a {
    move |source| RecordError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    pub pid: i32,
    pub exit_code: i64,
    pub oom_killed: bool,
    pub error: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// Everything the engine knows of a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// Without docker's leading `/`.
    pub name: String,
    pub created: String,
    /// The image as the user typed it, and its id.
    pub image: String,
    pub image_id: String,
    pub path: String,
    pub args: Vec<String>,
    /// The create request's `Config` and `HostConfig`, as docker keeps them for inspect.
    pub config: serde_json::Value,
    pub host_config: serde_json::Value,
    pub state: State,
    pub restart_count: u64,
    /// Its place on a bridge network while it runs.
    #[serde(default)]
    pub network: Option<crate::network::Attachment>,
}

impl Record {
    pub fn tty(&self) -> bool {
        self.config["Tty"].as_bool().unwrap_or(false)
    }

    pub fn auto_remove(&self) -> bool {
        self.host_config["AutoRemove"].as_bool().unwrap_or(false)
    }

    pub fn running(&self) -> bool {
        matches!(self.state.status, Status::Running | Status::Paused | Status::Restarting)
    }
}

/// How a container ended, as its monitor saw it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExitInfo {
    pub exit_code: i64,
    pub oom_killed: bool,
    pub finished_at: String,
}

/// The sockets of a container's monitor. Not in the container's directory: a unix socket's
/// path must fit in 108 bytes, and `ROOT/containers/<64 hex digits>/` leaves too little room.
/// Sixteen hex digits of the id are unique enough on one machine.
pub fn monitor_socket(runtime_root: &Path, id: &str) -> PathBuf {
    runtime_root
        .join("sockets")
        .join(format!("{}.sock", &id[..id.len().min(16)]))
}

pub fn console_socket(runtime_root: &Path, id: &str, what: &str) -> PathBuf {
    runtime_root
        .join("sockets")
        .join(format!("{}.{what}", &id[..id.len().min(16)]))
}

/// A container's directory and the files in it.
#[derive(Debug, Clone)]
pub struct ContainerDir(pub PathBuf);

impl ContainerDir {
    pub fn record(&self) -> PathBuf {
        self.0.join("record.json")
    }
    pub fn exit(&self) -> PathBuf {
        self.0.join("exit.json")
    }
    pub fn bundle(&self) -> PathBuf {
        self.0.join("bundle")
    }
    pub fn log(&self) -> PathBuf {
        self.0.join("container-json.log")
    }
    pub fn hosts(&self) -> PathBuf {
        self.0.join("hosts")
    }
    pub fn hostname(&self) -> PathBuf {
        self.0.join("hostname")
    }
    pub fn resolv_conf(&self) -> PathBuf {
        self.0.join("resolv.conf")
    }

    pub fn save(&self, record: &Record) -> Result<(), RecordError> {
        let path = self.record();
        let bytes = serde_json::to_vec_pretty(record).map_err(|source| RecordError::Json {
            path: path.clone(),
            source,
        })?;
        write_durably(&path, &bytes)
    }

    pub fn load(&self) -> Result<Record, RecordError> {
        read_json(&self.record())
    }

    pub fn exit_info(&self) -> Option<ExitInfo> {
        read_json(&self.exit()).ok()
    }
}

pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, RecordError> {
    let bytes = std::fs::read(path).map_err(io("reading", path))?;
    serde_json::from_slice(&bytes).map_err(|source| RecordError::Json {
        path: path.to_owned(),
        source,
    })
}

/// Temp file, fsync, rename, fsync of the directory: the new content or the old, whole, and
/// on disk (containers outlive a reboot; step 04's runtime state, which does not, skips the
/// fsyncs).
pub fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), RecordError> {
    step04_cgroups::runtime::state::write_durably(path, bytes).map_err(RecordError::from)
}

pub use step04_cgroups::runtime::state::now_rfc3339;

/// An RFC 3339 time as docker's lists give it: seconds since the epoch (0 if unreadable).
/// Lenient, for image configs written by other tools.
pub fn unix_seconds(rfc3339: &str) -> i64 {
    humantime::parse_rfc3339_weak(rfc3339)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_survives_a_round_trip_and_a_torn_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let container = ContainerDir(dir.path().to_owned());
        let record = Record {
            id: "a".repeat(64),
            name: "web".into(),
            created: now_rfc3339(),
            image: "busybox".into(),
            image_id: "sha256:1".into(),
            path: "sh".into(),
            args: vec![],
            config: serde_json::json!({"Tty": true}),
            host_config: serde_json::json!({"AutoRemove": false}),
            state: State::default(),
            restart_count: 0,
            network: None,
        };
        container.save(&record).expect("save");
        // A crash mid-write leaves only a temp file beside the record: the record is intact.
        std::fs::write(dir.path().join(".record.json.1.tmp"), b"{\"id\":").expect("write");
        let back = container.load().expect("load");
        assert_eq!(back.name, "web");
        assert!(back.tty());
        assert!(!back.auto_remove());
        assert_eq!(back.state.status, Status::Created);
    }
}
