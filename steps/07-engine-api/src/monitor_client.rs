//! The engine's side of a monitor: start one (and hand the container over to it), and reach
//! it later through its socket to attach, wait or resize.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::record::ContainerDir;
use crate::runtime_cli::Runtime;

#[derive(Debug, thiserror::Error)]
pub enum MonitorClientError {
    #[error("starting the monitor {binary}: {source}")]
    Spawn { binary: PathBuf, source: std::io::Error },
    #[error("talking to the monitor: {0}")]
    Io(#[from] std::io::Error),
    /// The runtime's own message (docker's CLI maps it to 125/126/127).
    #[error("{0}")]
    Failed(String),
}

/// How the container is to be set up.
pub struct Options {
    pub tty: bool,
    pub stdin: bool,
    pub stdin_once: bool,
    /// Rows and columns of the client's terminal.
    pub console_size: Option<(u16, u16)>,
}

/// A monitor that created the container and waits for `start`.
pub struct Created {
    pub pid: i32,
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

// ANCHOR: spawn
/// Starts a monitor for container `id`; returns once the runtime created the container.
pub async fn create(
    monitor: &Path,
    runtime: &Runtime,
    dir: &ContainerDir,
    id: &str,
    options: &Options,
) -> Result<Created, MonitorClientError> {
    let log = std::fs::File::create(dir.0.join("monitor.log"))?;
    let mut command = tokio::process::Command::new(monitor);
    command
        .arg("--runtime")
        .arg(&runtime.binary)
        .arg("--runtime-root")
        .arg(&runtime.root)
        .arg("--dir")
        .arg(&dir.0);
    for (flag, on) in [
        ("--tty", options.tty),
        ("--stdin", options.stdin),
        ("--stdin-once", options.stdin_once),
    ] {
        if on {
            command.arg(flag);
        }
    }
    if let Some((rows, cols)) = options.console_size.filter(|(r, c)| *r > 0 && *c > 0) {
        command.arg("--console-size").arg(format!("{rows}x{cols}"));
    }
    command
        .arg(id)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        // The monitor must outlive the engine: never killed with it.
        .kill_on_drop(false);
    let mut child = command.spawn().map_err(|source| MonitorClientError::Spawn {
        binary: monitor.to_owned(),
        source,
    })?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| MonitorClientError::Failed("the monitor has no stdout".into()))?;
    let mut lines = BufReader::new(stdout).lines();
    let line = lines.next_line().await?.unwrap_or_default();
    if let Some(pid) = line.strip_prefix("created ") {
        let pid = pid.trim().parse().unwrap_or(0);
        return Ok(Created { pid, child, lines });
    }
    let _ = child.wait().await;
    Err(failure(&line))
}
// ANCHOR_END: spawn

fn failure(line: &str) -> MonitorClientError {
    let message = line.strip_prefix("error ").unwrap_or(line);
    if message.is_empty() {
        MonitorClientError::Failed("the monitor ended without a word (see its monitor.log)".into())
    } else {
        MonitorClientError::Failed(message.to_owned())
    }
}

impl Created {
    // ANCHOR: go
    /// Lets the container run; the monitor then lets go of the engine.
    pub async fn start(mut self) -> Result<(), MonitorClientError> {
        if let Some(stdin) = self.child.stdin.as_mut() {
            stdin.write_all(b"start\n").await?;
        }
        let line = self.lines.next_line().await?.unwrap_or_default();
        // Reap our child (the monitor stays alive in its own session: it does not exit here,
        // so wait in the background). Dropping `child` without waiting would leave a zombie
        // when the monitor ends; a task owns it instead.
        let mut child = self.child;
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        if line.trim() == "started" {
            Ok(())
        } else {
            Err(failure(&line))
        }
    }
    // ANCHOR_END: go

    /// Gives up before start: the monitor deletes the container and exits.
    pub async fn abandon(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait().await;
    }
}

/// Connects to the monitor and sends one request line.
pub async fn request(socket: &Path, line: &str) -> std::io::Result<UnixStream> {
    let mut stream = UnixStream::connect(socket).await?;
    stream.write_all(format!("{line}\n").as_bytes()).await?;
    Ok(stream)
}

/// Reads one line from the monitor's answer (byte by byte: what follows is not ours).
pub async fn read_line(stream: &mut UnixStream) -> std::io::Result<String> {
    use tokio::io::AsyncReadExt;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while stream.read(&mut byte).await? == 1 {
        if byte[0] == b'\n' {
            break;
        }
        line.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// An attach connection, answered `ok`: frames come from it, stdin goes to it.
pub async fn attach(socket: &Path, stdin: bool, stdout: bool, stderr: bool) -> std::io::Result<UnixStream> {
    let flag = |b: bool| if b { "1" } else { "0" };
    let mut stream = request(
        socket,
        &format!("attach {} {} {}", flag(stdin), flag(stdout), flag(stderr)),
    )
    .await?;
    let answer = read_line(&mut stream).await?;
    if answer != "ok" {
        return Err(std::io::Error::other(format!(
            "the monitor refused to attach: {answer}"
        )));
    }
    Ok(stream)
}

/// Waits until the monitor says the container ended (or the monitor is gone).
pub async fn wait(socket: &Path) -> std::io::Result<()> {
    let mut stream = request(socket, "wait").await?;
    let _ = read_line(&mut stream).await?;
    Ok(())
}

pub async fn resize(socket: &Path, rows: u16, cols: u16) -> std::io::Result<()> {
    let mut stream = request(socket, &format!("resize {rows} {cols}")).await?;
    let answer = read_line(&mut stream).await?;
    if answer == "ok" {
        Ok(())
    } else {
        Err(std::io::Error::other(answer))
    }
}
