//! The monitor: one small process per container, what containerd-shim and conmon are to
//! Docker and Podman. The engine starts it; it runs the runtime's `create`, keeps the
//! container's stdio (pipes, or the pty master the runtime sends it), writes every byte to
//! the json-file log and to attached clients, reaps the container (it is the container's
//! subreaper), and records how it ended in `exit.json`. It runs in its own session, so the
//! engine can be killed and restarted while the container lives on.
//!
//! With the engine it speaks over its stdin/stdout pipes until the container starts:
//! `created PID` ← monitor; `start` → monitor; `started` or `error MESSAGE` ← monitor. Then
//! it closes them; clients reach it through `monitor.sock` (see [`clients`]).

pub mod clients;
pub mod console;
pub mod pump;

use clap::Parser;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use std::fs::File;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::record::{now_rfc3339, write_durably, ContainerDir, ExitInfo};
use step06_images::step05_overlay::step04_cgroups;

#[derive(Debug, Parser)]
#[command(
    name = "keel-monitor",
    about = "keel's per-container monitor (started by the engine)"
)]
pub struct MonitorArgs {
    /// The runtime binary (step 04's, runc's command line)
    #[arg(long)]
    pub runtime: PathBuf,
    /// The runtime's state directory
    #[arg(long)]
    pub runtime_root: PathBuf,
    /// The container's directory (bundle/, logs, sockets)
    #[arg(long)]
    pub dir: PathBuf,
    /// Give the container a terminal
    #[arg(long)]
    pub tty: bool,
    /// Keep a stdin for the container that attached clients write to
    #[arg(long)]
    pub stdin: bool,
    /// Close the container's stdin when the first attached client closes its own
    #[arg(long)]
    pub stdin_once: bool,
    /// The terminal's size before the container starts (docker's ConsoleSize), ROWSxCOLS
    #[arg(long, value_name = "ROWSxCOLS")]
    pub console_size: Option<String>,
    pub id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("{action}: {source}")]
    Io { action: String, source: std::io::Error },
    #[error("{0}")]
    Runtime(String),
}

pub(crate) fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> MonitorError {
    let action = action.into();
    move |source| MonitorError::Io { action, source }
}

/// The whole monitor; returns its exit status.
pub fn main() -> i32 {
    let args = MonitorArgs::parse();
    let mut control = std::io::stdout();
    match run(&args, &mut control) {
        Ok(()) => 0,
        Err(error) => {
            // The engine may be gone by now: the message goes to monitor.log too (stderr).
            let message = error.to_string().replace('\n', " ");
            let _ = writeln!(control, "error {message}");
            eprintln!("keel-monitor {}: {message}", args.id);
            1
        }
    }
}

fn runtime(args: &MonitorArgs, dir: &ContainerDir) -> Command {
    let mut command = Command::new(&args.runtime);
    command
        .arg("--root")
        .arg(&args.runtime_root)
        .arg("--log")
        .arg(dir.0.join("runtime.log"))
        .arg("--log-format")
        .arg("json");
    command
}

fn runtime_failed(dir: &ContainerDir, what: &str) -> MonitorError {
    let message = crate::runtime_cli::last_error(&dir.0.join("runtime.log")).unwrap_or_else(|| {
        format!(
            "the runtime's {what} failed (see {})",
            dir.0.join("runtime.log").display()
        )
    });
    MonitorError::Runtime(message)
}

fn run(args: &MonitorArgs, control: &mut impl Write) -> Result<(), MonitorError> {
    let dir = ContainerDir(args.dir.clone());
    // ANCHOR: session
    // Its own session: a terminal's hangup or the engine's process group never reaches it.
    let _ = nix::unistd::setsid();
    // The container's first process is the runtime's child; when the runtime exits it
    // becomes ours, so we can reap it and learn its status.
    nix::sys::prctl::set_child_subreaper(true).map_err(|e| io("becoming a subreaper")(e.into()))?;
    // ANCHOR_END: session

    let _ = std::fs::remove_file(dir.exit());
    let mut stdio = console::Stdio::prepare(args)?;
    // ANCHOR: runtime_create
    let mut create = runtime(args, &dir);
    create
        .arg("create")
        .arg("--bundle")
        .arg(dir.bundle())
        .arg("--pid-file")
        .arg(dir.0.join("pid"));
    if let Some(socket) = &stdio.console_socket {
        create.arg("--console-socket").arg(socket);
    }
    create.arg(&args.id);
    let (container_stdin, container_stdout, container_stderr) = stdio.for_runtime()?;
    create
        .stdin(container_stdin)
        .stdout(container_stdout)
        .stderr(container_stderr);
    let status = create
        .status()
        .map_err(io(format!("running {}", args.runtime.display())))?;
    drop(create); // our copies of the container's pipe ends: EOF must come when it exits
    if !status.success() {
        return Err(runtime_failed(&dir, "create"));
    }
    // ANCHOR_END: runtime_create
    // From here until the container starts, any way out (an error, an engine that died and
    // left a broken pipe) must delete it: else its cgroup, state and waiting init outlive
    // everyone, and a later start of the same id fails with "already exists".
    let socket = crate::record::monitor_socket(&args.runtime_root, &args.id);
    let mut abandon = Abandon {
        args,
        dir: &dir,
        socket: &socket,
        armed: true,
    };
    let ours = stdio.finish()?;
    if let (Some(master), Some(size)) = (&ours.master, &args.console_size) {
        // The first program may ask for the size before any resize arrives.
        if let Some((rows, cols)) = size.split_once('x') {
            let (rows, cols) = (rows.parse().unwrap_or(0), cols.parse().unwrap_or(0));
            let size = rustix::termios::Winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            let _ = rustix::termios::tcsetwinsize(&**master, size);
        }
    }
    let pid = read_pid(&dir.0.join("pid"))?;

    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.log())
        .map_err(io(format!("opening {}", dir.log().display())))?;
    let shared = Arc::new(clients::Shared::new(
        log,
        ours.stdin,
        ours.master.clone(),
        args.stdin_once,
    ));
    let pumps = pump::start(&shared, ours.outputs);
    clients::serve(&shared, &socket)?;

    // ANCHOR: handshake
    writeln!(control, "created {pid}").map_err(io("answering the engine"))?;
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    if line.trim() != "start" {
        // The engine went away (or changed its mind) before starting it: `abandon` deletes.
        return Err(MonitorError::Runtime("the container was not started".into()));
    }
    let started = runtime(args, &dir).args(["start", &args.id]).status();
    if !started.is_ok_and(|status| status.success()) {
        return Err(runtime_failed(&dir, "start"));
    }
    // Running: from now on its end is reaped and recorded below, whatever the engine does.
    abandon.armed = false;
    // An engine that died meanwhile does not hear it; the next one finds the monitor.
    let _ = writeln!(control, "started");
    detach_from_engine();
    // ANCHOR_END: handshake

    // ANCHOR: exit
    let exit_code = reap(Pid::from_raw(pid));
    // Read the OOM count before `delete` removes the cgroup.
    let oom_killed = step04_cgroups::runtime::state::StateDir::new(&args.runtime_root)
        .load(&args.id)
        .ok()
        .and_then(|record| record.cgroup().ok())
        .is_some_and(|cgroup| cgroup.oom_kills() > 0);
    let _ = runtime(args, &dir).args(["delete", "--force", &args.id]).status();
    pump::finish(pumps, Duration::from_secs(3));
    let exit = ExitInfo {
        exit_code,
        oom_killed,
        finished_at: now_rfc3339(),
    };
    let bytes = serde_json::to_vec(&exit).map_err(|e| io("encoding exit.json")(e.into()))?;
    write_durably(&dir.exit(), &bytes).map_err(|e| io("writing exit.json")(std::io::Error::other(e)))?;
    // Gone from the file system before anyone hears of the exit: an engine that then removes
    // the container finds nothing of the monitor left. Connected clients keep their sockets.
    let _ = std::fs::remove_file(&socket);
    shared.exited(exit);
    // ANCHOR_END: exit
    Ok(())
}

/// Deletes a container that was created but never started, when the monitor gives up on it.
struct Abandon<'a> {
    args: &'a MonitorArgs,
    dir: &'a ContainerDir,
    socket: &'a Path,
    armed: bool,
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = runtime(self.args, self.dir)
                .args(["delete", "--force", &self.args.id])
                .status();
            let _ = std::fs::remove_file(self.socket);
        }
    }
}

fn read_pid(path: &Path) -> Result<i32, MonitorError> {
    let text = std::fs::read_to_string(path).map_err(io(format!("reading {}", path.display())))?;
    text.trim()
        .parse()
        .map_err(|_| MonitorError::Runtime(format!("{} holds no pid: {text:?}", path.display())))
}

/// The engine's pipes are closed: from now on the monitor answers only on its socket.
fn detach_from_engine() {
    if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&null);
    }
}

// ANCHOR: reap
/// Waits for the container's first process; reaps whatever else is reparented to us on the
/// way. Returns docker's exit code: the status, or 128+N after signal N.
fn reap(container: Pid) -> i64 {
    loop {
        match waitpid(None::<Pid>, None) {
            Ok(WaitStatus::Exited(pid, code)) if pid == container => return i64::from(code),
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == container => return 128 + signal as i64,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => {
                // Not our child after all (no subreaper): watch it until it is gone.
                while Path::new(&format!("/proc/{container}")).exists() {
                    std::thread::sleep(Duration::from_millis(100));
                }
                return 255;
            }
        }
    }
}
// ANCHOR_END: reap
