//! `POST /containers/{id}/attach`: the client's side of the container's stdio, through the
//! monitor that holds it. `docker run` attaches before it starts the container, so an
//! attach to a container that is not running waits for the next start.

use axum::extract::{Path, Request};
use axum::http::StatusCode;
use axum::response::Response;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;

use super::error::{ApiError, ApiResult};
use super::hijack::{self, Client};
use super::query::{flag, number, Query};
use super::State;
use crate::engine::Container;
use crate::monitor_client;

// ANCHOR: attach
pub async fn attach(state: State, Path(id): Path<String>, query: Query, mut request: Request) -> ApiResult<Response> {
    let engine = state.0;
    let container = engine.find(&id)?;
    let (stdin, stdout, stderr) = (flag(&query, "stdin"), flag(&query, "stdout"), flag(&query, "stderr"));
    let tty = container.record().tty();
    // Registered now, before the response, so that a start that follows finds it.
    let waiting = if container.record().running() {
        None
    } else {
        let (sender, receiver) = oneshot::channel();
        if let Ok(mut pending) = container.pending_attaches.lock() {
            pending.push(sender);
        }
        Some(receiver)
    };
    let for_task = Arc::clone(&container);
    let socket = engine.monitor_socket(&container);
    let response = hijack::upgrade(&mut request, move |client| async move {
        let ack = match waiting {
            Some(receiver) => match receiver.await {
                Ok(ack) => Some(ack),
                Err(_) => return,
            },
            None => None,
        };
        let monitor = monitor_client::attach(&socket, stdin, stdout, stderr).await;
        if let Some(ack) = ack {
            let _ = ack.send(());
        }
        match monitor {
            Ok(monitor) => bridge(client, monitor, tty).await,
            Err(error) => tracing::debug!("attach to {}: {error}", for_task.id),
        }
    })?;
    engine.event(&container, "attach", &[]);
    Ok(response)
}
// ANCHOR_END: attach

/// Client bytes → the monitor (the container's stdin); the monitor's frames → the client.
/// The client's half-close means "no more stdin", not "gone": output keeps flowing until
/// the container's ends.
pub async fn bridge(client: Client, monitor: tokio::net::UnixStream, tty: bool) {
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (monitor_read, mut monitor_write) = monitor.into_split();
    let to_container = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_read, &mut monitor_write).await;
        let _ = monitor_write.shutdown().await;
    });
    hijack::frames_to_client(monitor_read, &mut client_write, tty).await;
    let _ = client_write.shutdown().await;
    to_container.abort();
}

/// `POST /containers/{id}/resize?h=&w=`: the pty's size, set by the monitor.
pub async fn resize(state: State, Path(id): Path<String>, query: Query) -> ApiResult<StatusCode> {
    let engine = state.0;
    let container: Arc<Container> = engine.find(&id)?;
    let (Some(rows), Some(cols)) = (number::<u16>(&query, "h"), number::<u16>(&query, "w")) else {
        return Err(ApiError::bad_request("resize needs h and w"));
    };
    if !container.record().running() {
        return Err(ApiError::conflict(format!("Container {} is not running", container.id)));
    }
    monitor_client::resize(&engine.monitor_socket(&container), rows, cols)
        .await
        .map_err(|e| ApiError::internal(format!("resizing the tty: {e}")))?;
    Ok(StatusCode::OK)
}
