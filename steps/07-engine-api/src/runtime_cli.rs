//! The runtime as the engine drives it: step 04's binary, by its runc command line, as
//! dockerd drives runc (through containerd). The engine never forks a container itself: each
//! runtime call is a separate process, started with exec right after fork.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeCliError {
    #[error("running the runtime {binary}: {source}")]
    Spawn { binary: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Failed(String),
}

/// Where the runtime binary is and where it keeps its state.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub binary: PathBuf,
    pub root: PathBuf,
}

/// The step 04 binary beside this one (`target/debug/step04-cgroups`), else on PATH.
pub fn default_binary() -> PathBuf {
    sibling("step04-cgroups")
}

/// A binary built beside the current one, else the bare name (found on PATH).
pub fn sibling(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(name)))
        .filter(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

impl Runtime {
    /// `RUNTIME --root ROOT --log LOG --log-format json ARGS...`: the log keeps the runtime's
    /// error for the message the engine reports.
    pub fn command(&self, log: &Path) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.binary);
        command
            .arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(log)
            .arg("--log-format")
            .arg("json");
        command
    }

    /// Runs a runtime command to its end; its error line becomes the error.
    pub async fn call(&self, log: &Path, args: &[&str]) -> Result<(), RuntimeCliError> {
        self.output(log, args).await.map(|_| ())
    }

    /// Runs a runtime command to its end and returns what it printed.
    pub async fn output(&self, log: &Path, args: &[&str]) -> Result<String, RuntimeCliError> {
        let output = self
            .command(log)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|source| RuntimeCliError::Spawn {
                binary: self.binary.clone(),
                source,
            })?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let message = last_error(log).unwrap_or_else(|| stderr.trim().to_owned());
        Err(RuntimeCliError::Failed(message))
    }

    pub async fn kill(&self, log: &Path, id: &str, signal: &str) -> Result<(), RuntimeCliError> {
        self.call(log, &["kill", id, signal]).await
    }
}

/// The last `"level":"error"` message of a runtime's JSON log, as containerd reads it.
pub fn last_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().rev().find_map(|line| {
        let value: serde_json::Value = serde_json::from_str(line).ok()?;
        (value["level"] == "error").then(|| value["msg"].as_str().unwrap_or_default().to_owned())
    })
}
