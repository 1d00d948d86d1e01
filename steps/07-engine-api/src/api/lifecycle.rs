//! start, stop, restart, kill, wait: a container's life, through its monitor and the
//! runtime's command line.

use axum::body::Body;
use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::Response;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

use super::error::{ApiError, ApiResult};
use super::query::{number, Query};
use super::State;
use crate::engine::{Container, Engine, Lifecycle};
use crate::monitor_client::{self, MonitorClientError, Options};
use crate::record::{now_rfc3339, Status};

// ANCHOR: start
/// `POST /containers/{id}/start`: a monitor creates the container through the runtime;
/// attaches that were waiting get their connection; then the container runs.
pub async fn start(state: State, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let engine = state.0;
    let container = engine.find(&id)?;
    let _operation = container.operation.lock().await;
    start_locked(&engine, &container).await
}

pub async fn start_locked(engine: &Arc<Engine>, container: &Arc<Container>) -> ApiResult<StatusCode> {
    let record = container.record();
    if record.running() {
        return Ok(StatusCode::NOT_MODIFIED);
    }
    let options = Options {
        tty: record.tty(),
        stdin: record.config["OpenStdin"].as_bool().unwrap_or(false),
        stdin_once: record.config["StdinOnce"].as_bool().unwrap_or(false),
        console_size: record.host_config["ConsoleSize"].as_array().and_then(|size| {
            let rows = u16::try_from(size.first()?.as_u64()?).ok()?;
            let cols = u16::try_from(size.get(1)?.as_u64()?).ok()?;
            Some((rows, cols))
        }),
    };
    join_network_of_another(engine, container)?;
    let created = monitor_client::create(
        &engine.monitor,
        &engine.runtime,
        &container.dir,
        &container.id,
        &options,
    )
    .await;
    let created = match created {
        Ok(created) => created,
        Err(error) => return Err(start_failed(engine, container, error).await),
    };
    let pid = created.pid;
    if let Err(error) = engine.connect(container, pid).await {
        created.abandon().await;
        engine.disconnect(container).await;
        let error = MonitorClientError::Failed(format!("connecting the container to its network: {error}"));
        return Err(start_failed(engine, container, error).await);
    }
    hand_over_attaches(container).await;
    if let Err(error) = created.start().await {
        return Err(start_failed(engine, container, error).await);
    }
    container
        .update(|record| {
            record.state.status = Status::Running;
            record.state.pid = pid;
            record.state.exit_code = 0;
            record.state.oom_killed = false;
            record.state.error.clear();
            record.state.started_at = Some(now_rfc3339());
            record.state.finished_at = None;
        })
        .map_err(ApiError::internal)?;
    container.lifecycle.send_modify(|l| l.running = true);
    engine.event(container, "start", &[]);
    engine.watch(Arc::clone(container));
    Ok(StatusCode::NO_CONTENT)
}
// ANCHOR_END: start

/// A start that failed: the container ends as if it had run, with dockerd's exit code for
/// the failure (127 not found, 126 not executable, else 128), so `docker run`'s wait gets
/// its answer and `--rm` still removes it. The runtime's own words go back to the CLI,
/// which turns them into its exit status the same way.
async fn start_failed(engine: &Arc<Engine>, container: &Arc<Container>, error: MonitorClientError) -> ApiError {
    // Attaches that waited for this start end now: their clients see the stream close.
    if let Ok(mut pending) = container.pending_attaches.lock() {
        pending.clear();
    }
    let message = error.to_string();
    let code = failure_exit_code(&message);
    engine
        .ended(container, code, false, now_rfc3339(), message.clone())
        .await;
    ApiError::bad_request(message)
}

pub fn failure_exit_code(message: &str) -> i64 {
    let lower = message.to_lowercase();
    if lower.contains("executable file not found") || lower.contains("no such file or directory") {
        127
    } else if lower.contains("permission denied") || lower.contains("is a directory") {
        126
    } else {
        128
    }
}

/// `--network container:NAME`: the bundle names that container's network namespace, by its
/// first process, which may have changed since create.
fn join_network_of_another(engine: &Engine, container: &Container) -> ApiResult<()> {
    let record = container.record();
    let mode = crate::network::Mode::of(record.host_config["NetworkMode"].as_str().unwrap_or_default());
    let crate::network::Mode::Container(name) = mode else {
        return Ok(());
    };
    let other = engine.find(&name)?;
    let other = other.record();
    if !other.running() {
        return Err(ApiError::conflict(format!(
            "cannot join network of a non running container: {name}"
        )));
    }
    let path = container.dir.bundle().join("config.json");
    let mut spec: serde_json::Value = crate::record::read_json(&path).map_err(ApiError::internal)?;
    let namespaces = spec["linux"]["namespaces"].as_array_mut();
    let Some(namespaces) = namespaces else {
        return Err(ApiError::internal("the bundle has no namespaces"));
    };
    namespaces.retain(|n| n["type"] != "network");
    namespaces.push(serde_json::json!({"type": "network", "path": format!("/proc/{}/ns/net", other.state.pid)}));
    let bytes = serde_json::to_vec_pretty(&spec).map_err(ApiError::internal)?;
    crate::record::write_durably(&path, &bytes).map_err(ApiError::internal)
}

/// Gives each waiting attach the monitor, and waits (briefly) until each is connected.
async fn hand_over_attaches(container: &Container) {
    let pending: Vec<_> = container
        .pending_attaches
        .lock()
        .map(|mut p| std::mem::take(&mut *p))
        .unwrap_or_default();
    let mut acks = Vec::new();
    for attach in pending {
        let (ack, acked) = oneshot::channel();
        if attach.send(ack).is_ok() {
            acks.push(acked);
        }
    }
    for acked in acks {
        let _ = tokio::time::timeout(Duration::from_secs(5), acked).await;
    }
}

/// Sends `signal` through the runtime, then waits up to `limit` for the container to end.
pub async fn kill_and_wait(engine: &Engine, container: &Container, signal: &str, limit: Duration) -> ApiResult<bool> {
    let mut lifecycle = container.lifecycle.subscribe();
    if !lifecycle.borrow().running {
        return Ok(true);
    }
    let log = engine.runtime_log(container);
    if let Err(error) = engine.runtime.kill(&log, &container.id, signal).await {
        if container.lifecycle.borrow().running {
            tracing::debug!("kill {signal} {}: {error}", container.id);
        }
    }
    let ended = tokio::time::timeout(limit, lifecycle.wait_for(|l| !l.running)).await;
    Ok(ended.is_ok())
}

/// `POST /containers/{id}/stop[?t=N]`: SIGTERM (or the image's StopSignal), SIGKILL after
/// N seconds (10 by default).
pub async fn stop(state: State, Path(id): Path<String>, query: Query) -> ApiResult<StatusCode> {
    let engine = state.0;
    let container = engine.find(&id)?;
    let _operation = container.operation.lock().await;
    stop_locked(&engine, &container, &query).await
}

async fn stop_locked(engine: &Engine, container: &Container, query: &Query) -> ApiResult<StatusCode> {
    if !container.record().running() {
        return Ok(StatusCode::NOT_MODIFIED);
    }
    let record = container.record();
    let signal = record.config["StopSignal"].as_str().unwrap_or("TERM").to_owned();
    let default_timeout = record.config["StopTimeout"].as_i64().unwrap_or(10);
    let timeout = number::<i64>(query, "t").unwrap_or(default_timeout).max(0) as u64;
    engine.event(container, "kill", &[("signal", "15".into())]);
    if !kill_and_wait(engine, container, &signal, Duration::from_secs(timeout)).await? {
        engine.event(container, "kill", &[("signal", "9".into())]);
        if !kill_and_wait(engine, container, "KILL", Duration::from_secs(10)).await? {
            return Err(ApiError::internal(format!(
                "container {} did not stop after SIGKILL",
                container.id
            )));
        }
    }
    engine.event(container, "stop", &[]);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /containers/{id}/restart[?t=N]`.
pub async fn restart(state: State, Path(id): Path<String>, query: Query) -> ApiResult<StatusCode> {
    let engine = state.0;
    let container = engine.find(&id)?;
    let _operation = container.operation.lock().await;
    stop_locked(&engine, &container, &query).await?;
    // Its monitor has recorded the exit; wait until the engine has too.
    let mut lifecycle = container.lifecycle.subscribe();
    let _ = tokio::time::timeout(Duration::from_secs(5), lifecycle.wait_for(|l| !l.running)).await;
    let _ = container.update(|record| record.restart_count += 1);
    start_locked(&engine, &container).await?;
    engine.event(&container, "restart", &[]);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /containers/{id}/kill[?signal=HUP]` (SIGKILL by default).
pub async fn kill(state: State, Path(id): Path<String>, query: Query) -> ApiResult<StatusCode> {
    let engine = state.0;
    let container = engine.find(&id)?;
    let record = container.record();
    if !record.running() {
        return Err(ApiError::conflict(format!(
            "Cannot kill container: {}: Container {} is not running",
            id, container.id
        )));
    }
    let signal = query
        .get("signal")
        .filter(|s| !s.is_empty())
        .cloned()
        .unwrap_or_else(|| "KILL".into());
    let signal = signal.trim_start_matches("SIG").to_owned();
    let log = engine.runtime_log(&container);
    engine
        .runtime
        .kill(&log, &container.id, &signal)
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let number = signal_number(&signal);
    engine.event(&container, "kill", &[("signal", number)]);
    Ok(StatusCode::NO_CONTENT)
}

fn signal_number(name: &str) -> String {
    if name.bytes().all(|b| b.is_ascii_digit()) {
        return name.to_owned();
    }
    format!("SIG{name}")
        .parse::<nix::sys::signal::Signal>()
        .map_or_else(|_| name.to_owned(), |s| (s as i32).to_string())
}

// ANCHOR: wait
/// `POST /containers/{id}/wait[?condition=]`: the headers go out at once (`docker run`
/// sends /start only after they arrive); the body follows when the condition is met.
pub async fn wait(state: State, Path(id): Path<String>, query: Query) -> ApiResult<Response> {
    let container = state.0.find(&id)?;
    let condition = query.get("condition").cloned().unwrap_or_else(|| "not-running".into());
    if !matches!(condition.as_str(), "not-running" | "next-exit" | "removed") {
        return Err(ApiError::bad_request(format!("invalid condition: {condition:?}")));
    }
    let mut lifecycle = container.lifecycle.subscribe();
    let initial = lifecycle.borrow().clone();
    let done = move |l: &Lifecycle| match condition.as_str() {
        "next-exit" => l.exits > initial.exits || l.removed,
        "removed" => l.removed,
        _ => !l.running,
    };
    let answer = async move {
        let code = match lifecycle.wait_for(|l| done(l)).await {
            Ok(l) => l.exit_code,
            Err(_) => container.record().state.exit_code,
        };
        let body = format!("{{\"Error\":null,\"StatusCode\":{code}}}\n");
        Ok::<_, std::io::Error>(bytes::Bytes::from(body))
    };
    let body = Body::from_stream(futures_util::stream::once(answer));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .map_err(ApiError::internal)
}
// ANCHOR_END: wait
