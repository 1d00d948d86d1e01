//! `docker exec`: another process in a running container, by the runtime's `exec` (which
//! joins the container's namespaces and cgroup). The engine runs the runtime as its child
//! and holds the process's stdio itself.

use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Request};
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::error::{body_bytes, json, parse_body, ApiError, ApiResult};
use super::hijack::{self, Client};
use super::query::{number, Query};
use super::State;
use crate::engine::Engine;
use crate::stdcopy;
use step06_images::step05_overlay::step04_cgroups::step03_mount_ns::step02_pid_ns::step01_unshare;

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecConfig {
    pub cmd: Vec<String>,
    pub env: Option<Vec<String>>,
    pub user: String,
    pub working_dir: String,
    pub tty: bool,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub privileged: bool,
}

#[derive(Debug, Default)]
struct ExecState {
    running: bool,
    exit_code: Option<i64>,
    pid: u32,
    master: Option<Arc<std::fs::File>>,
}

pub struct Exec {
    pub id: String,
    pub container_id: String,
    pub config: ExecConfig,
    state: Mutex<ExecState>,
}

/// Execs by id; they live as long as their container.
#[derive(Default)]
pub struct Execs(Mutex<HashMap<String, Arc<Exec>>>);

impl Execs {
    pub fn ids_of(&self, container: &str) -> Vec<String> {
        let execs = self.0.lock().unwrap_or_else(|e| e.into_inner());
        execs
            .values()
            .filter(|e| e.container_id == container)
            .map(|e| e.id.clone())
            .collect()
    }
    pub fn forget_container(&self, container: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, e| e.container_id != container);
    }
    fn get(&self, id: &str) -> ApiResult<Arc<Exec>> {
        let execs = self.0.lock().unwrap_or_else(|e| e.into_inner());
        execs
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))
    }
}

/// `POST /containers/{id}/exec`.
pub async fn create(state: State, Path(id): Path<String>, body: Result<Bytes, BytesRejection>) -> ApiResult<Response> {
    let engine = state.0;
    let container = engine.find(&id)?;
    let config: ExecConfig = parse_body(&body_bytes(body)?)?;
    if config.cmd.is_empty() {
        return Err(ApiError::bad_request("No exec command specified"));
    }
    if !container.record().running() {
        return Err(ApiError::conflict(format!("Container {} is not running", container.id)));
    }
    let exec = Arc::new(Exec {
        id: crate::ids::new_id(),
        container_id: container.id.clone(),
        config,
        state: Mutex::new(ExecState::default()),
    });
    engine
        .execs
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(exec.id.clone(), Arc::clone(&exec));
    engine.event(
        &container,
        &format!("exec_create: {}", exec.config.cmd.join(" ")),
        &[("execID", exec.id.clone())],
    );
    Ok(json(StatusCode::CREATED, &json!({"Id": exec.id})))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct StartBody {
    detach: bool,
}

/// The runtime's `exec` command line for this exec.
fn command(engine: &Engine, exec: &Exec, console: Option<&std::path::Path>) -> tokio::process::Command {
    let log = engine
        .root
        .join("containers")
        .join(&exec.container_id)
        .join("runtime.log");
    let mut command = engine.runtime.command(&log);
    command.arg("exec");
    if let Some(socket) = console {
        command.arg("--tty").arg("--console-socket").arg(socket);
    }
    if !exec.config.working_dir.is_empty() {
        command.arg("--cwd").arg(&exec.config.working_dir);
    }
    for variable in exec.config.env.iter().flatten().filter(|v| v.contains('=')) {
        command.arg("--env").arg(variable);
    }
    if !exec.config.user.is_empty() {
        let user = if exec.config.user == "root" {
            "0"
        } else {
            exec.config.user.as_str()
        };
        command.arg("--user").arg(user);
    }
    // `docker exec --privileged`: every capability, whatever the container's own set.
    if exec.config.privileged {
        for capability in step01_unshare::capabilities::all() {
            command.arg("--cap").arg(format!("CAP_{capability}"));
        }
    }
    command.arg(&exec.container_id).args(&exec.config.cmd);
    command.kill_on_drop(false);
    command
}

/// `POST /exec/{id}/start`: detached (200, nothing more), or upgraded to a stream.
pub async fn start(state: State, Path(id): Path<String>, mut request: Request) -> ApiResult<Response> {
    let engine = state.0;
    let exec = engine.execs.get(&id)?;
    let (parts, body) = std::mem::take(&mut request).into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .map_err(|e| ApiError::bad_request(format!("request body: {e}")))?;
    let mut request = Request::from_parts(parts, axum::body::Body::empty());
    let start: StartBody = parse_body(&bytes)?;
    {
        let mut state = exec.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.running || state.exit_code.is_some() {
            return Err(ApiError::conflict(format!("Exec {id} has already been started")));
        }
        state.running = true;
    }
    let container = engine.find(&exec.container_id)?;
    engine.event(
        &container,
        &format!("exec_start: {}", exec.config.cmd.join(" ")),
        &[("execID", exec.id.clone())],
    );
    if start.detach {
        let mut child = command(&engine, &exec, None)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| ApiError::internal(format!("running the runtime's exec: {e}")))?;
        let exec = Arc::clone(&exec);
        tokio::spawn(async move {
            let status = child.wait().await;
            finished(&exec, status.ok().and_then(|s| s.code()).map_or(126, i64::from));
        });
        return Ok(Response::new(axum::body::Body::empty()));
    }
    let engine2 = Arc::clone(&engine);
    let exec2 = Arc::clone(&exec);
    hijack::upgrade(&mut request, move |client| async move {
        let code = if exec2.config.tty {
            run_tty(&engine2, &exec2, client).await
        } else {
            run_piped(&engine2, &exec2, client).await
        };
        finished(&exec2, code);
    })
}

fn finished(exec: &Exec, code: i64) {
    tracing::info!(
        "exec {} in {} ended with {code}",
        &exec.id[..12],
        &exec.container_id[..12]
    );
    let mut state = exec.state.lock().unwrap_or_else(|e| e.into_inner());
    state.running = false;
    state.exit_code = Some(code);
    state.master = None;
}

/// Pipes: stdin from the client, stdout and stderr framed back; the client's half-close is
/// the end of stdin.
async fn run_piped(engine: &Engine, exec: &Exec, client: Client) -> i64 {
    let stdin = if exec.config.attach_stdin {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    let spawned = command(engine, exec, None)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) => {
            let message = format!("running the runtime's exec: {error}\n");
            let _ = client_write
                .write_all(&stdcopy::frame(stdcopy::STDERR, message.as_bytes()))
                .await;
            let _ = client_write.shutdown().await;
            return 126;
        }
    };
    exec.state.lock().unwrap_or_else(|e| e.into_inner()).pid = child.id().unwrap_or(0);
    let mut child_stdin = child.stdin.take();
    let to_process = tokio::spawn(async move {
        if let Some(stdin) = child_stdin.as_mut() {
            let _ = tokio::io::copy(&mut client_read, stdin).await;
        }
        drop(child_stdin);
    });
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    for (output, stream) in [
        (
            child
                .stdout
                .take()
                .map(|o| Box::new(o) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            stdcopy::STDOUT,
        ),
        (
            child
                .stderr
                .take()
                .map(|o| Box::new(o) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            stdcopy::STDERR,
        ),
    ] {
        let Some(mut output) = output else { continue };
        let sender = sender.clone();
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 32 * 1024];
            while let Ok(n) = output.read(&mut buffer).await {
                if n == 0 || sender.send(stdcopy::frame(stream, &buffer[..n])).await.is_err() {
                    break;
                }
            }
        });
    }
    drop(sender);
    while let Some(frame) = receiver.recv().await {
        if client_write.write_all(&frame).await.is_err() {
            break;
        }
    }
    let code = child.wait().await.ok().and_then(|s| s.code()).map_or(126, i64::from);
    // Recorded before the stream ends: the CLI asks for the exit code as soon as it does.
    finished(exec, code);
    let _ = client_write.shutdown().await;
    to_process.abort();
    code
}

/// A terminal: the runtime sends the pty master to a console socket of ours; the client
/// talks to it raw.
async fn run_tty(engine: &Engine, exec: &Exec, client: Client) -> i64 {
    let socket = crate::record::console_socket(
        &engine.runtime.root,
        &exec.container_id,
        &format!("exec-{}", &exec.id[..12]),
    );
    if let Some(parent) = socket.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = std::fs::remove_file(&socket);
    let listener = match std::os::unix::net::UnixListener::bind(&socket) {
        Ok(listener) => listener,
        Err(_) => return 126,
    };
    let spawned = command(engine, exec, Some(&socket))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(_) => return 126,
    };
    let master = tokio::task::spawn_blocking(move || crate::monitor::console::accept_master(&listener)).await;
    let _ = std::fs::remove_file(&socket);
    let master = match master {
        Ok(Ok(master)) => Arc::new(master),
        _ => {
            let _ = child.kill().await;
            return 126;
        }
    };
    exec.state.lock().unwrap_or_else(|e| e.into_inner()).master = Some(Arc::clone(&master));
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (reader, writer) = match (master.try_clone(), master.try_clone()) {
        (Ok(r), Ok(w)) => (tokio::fs::File::from_std(r), tokio::fs::File::from_std(w)),
        _ => return 126,
    };
    let to_process = tokio::spawn(async move {
        let mut writer = writer;
        let _ = tokio::io::copy(&mut client_read, &mut writer).await;
    });
    let mut reader = reader;
    let _ = tokio::io::copy(&mut reader, &mut client_write).await;
    let code = child.wait().await.ok().and_then(|s| s.code()).map_or(126, i64::from);
    // Recorded before the stream ends: the CLI asks for the exit code as soon as it does.
    finished(exec, code);
    let _ = client_write.shutdown().await;
    to_process.abort();
    code
}

/// `POST /exec/{id}/resize?h=&w=`.
pub async fn resize(state: State, Path(id): Path<String>, query: Query) -> ApiResult<StatusCode> {
    let exec = state.0.execs.get(&id)?;
    let (Some(rows), Some(cols)) = (number::<u16>(&query, "h"), number::<u16>(&query, "w")) else {
        return Err(ApiError::bad_request("resize needs h and w"));
    };
    // The CLI may resize before start has made the pty: wait for it a little, as dockerd.
    for _ in 0..50 {
        let master = exec.state.lock().unwrap_or_else(|e| e.into_inner()).master.clone();
        if let Some(master) = master {
            let size = rustix::termios::Winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            rustix::termios::tcsetwinsize(&*master, size).map_err(|e| ApiError::internal(format!("resize: {e}")))?;
            return Ok(StatusCode::OK);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Err(ApiError::conflict(format!("exec {id} has no terminal to resize")))
}

/// `GET /exec/{id}/json`: `docker exec` reads its exit code here.
pub async fn inspect(state: State, Path(id): Path<String>) -> ApiResult<Response> {
    let exec = state.0.execs.get(&id)?;
    let exec_state = exec.state.lock().unwrap_or_else(|e| e.into_inner());
    let (entrypoint, arguments) = exec
        .config
        .cmd
        .split_first()
        .map_or(("", &[][..]), |(e, a)| (e.as_str(), a));
    Ok(json(
        StatusCode::OK,
        &json!({
            "ID": exec.id,
            "Running": exec_state.running,
            "ExitCode": exec_state.exit_code,
            "ProcessConfig": {"tty": exec.config.tty, "entrypoint": entrypoint, "arguments": arguments,
                "privileged": exec.config.privileged, "user": exec.config.user},
            "OpenStdin": exec.config.attach_stdin,
            "OpenStderr": exec.config.attach_stderr,
            "OpenStdout": exec.config.attach_stdout,
            "CanRemove": false,
            "ContainerID": exec.container_id,
            "DetachKeys": "",
            "Pid": exec_state.pid,
        }),
    ))
}
