//! `GET /containers/{id}/logs`: the monitor's json-file log, framed like attach output, and
//! with `follow` kept open until the container ends.

use axum::body::Body;
use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use std::time::Duration;

use super::error::{ApiError, ApiResult};
use super::query::{flag, Query};
use super::State;
use crate::logs::{self, Entry, Selection};
use crate::stdcopy;

fn encode(entries: &[Entry], tty: bool, timestamps: bool) -> Bytes {
    let mut out = Vec::new();
    for entry in entries {
        let payload = logs::payload(entry, timestamps);
        if tty {
            out.extend_from_slice(&payload);
        } else {
            let stream = if entry.stream == "stderr" {
                stdcopy::STDERR
            } else {
                stdcopy::STDOUT
            };
            out.extend(stdcopy::frame(stream, &payload));
        }
    }
    Bytes::from(out)
}

pub async fn logs(state: State, Path(id): Path<String>, query: Query) -> ApiResult<Response> {
    let container = state.0.find(&id)?;
    let record = container.record();
    let selection = Selection {
        stdout: flag(&query, "stdout"),
        stderr: flag(&query, "stderr"),
        since: query.get("since").and_then(|s| logs::parse_unix_time(s)),
        until: query.get("until").and_then(|s| logs::parse_unix_time(s)),
        tail: query.get("tail").and_then(|t| t.parse().ok()),
    };
    if !selection.stdout && !selection.stderr {
        return Err(ApiError::bad_request("you must choose at least one stream"));
    }
    let (tty, timestamps, follow) = (record.tty(), flag(&query, "timestamps"), flag(&query, "follow"));
    let path = container.dir.log();
    // Opened once: docker-py reads a followed stream only after it has removed the
    // container, whose log file is gone by then; an open file still reads.
    let file = match std::fs::File::open(&path) {
        Ok(file) => Some(std::sync::Arc::new(file)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(ApiError::internal(e)),
    };
    let (entries, offset) = match &file {
        Some(file) => logs::read_entries(file, 0).map_err(ApiError::internal)?,
        None => (Vec::new(), 0),
    };
    let mut first: Vec<Entry> = entries.into_iter().filter(|e| selection.wants(e)).collect();
    if let Some(tail) = selection.tail {
        first.drain(..first.len().saturating_sub(tail));
    }
    let head = futures_util::stream::once(std::future::ready(Ok::<_, std::io::Error>(encode(
        &first, tty, timestamps,
    ))));
    let lifecycle = container.lifecycle.subscribe();
    let follow = follow && record.running();
    // Following: poll the file until the container has ended and the file is drained.
    let rest = futures_util::stream::unfold((offset, follow, lifecycle), move |(offset, going, lifecycle)| {
        let (path, file, selection) = (path.clone(), file.clone(), selection.clone());
        async move {
            if !going {
                return None;
            }
            let mut offset = offset;
            loop {
                let ended = !lifecycle.borrow().running;
                let read = match &file {
                    Some(file) => logs::read_entries(file, offset),
                    None => logs::read_from(&path, offset),
                };
                let (entries, next) = read.unwrap_or((Vec::new(), offset));
                let wanted: Vec<Entry> = entries.into_iter().filter(|e| selection.wants(e)).collect();
                offset = next;
                if !wanted.is_empty() || ended {
                    let chunk = encode(&wanted, tty, timestamps);
                    return Some((Ok(chunk), (offset, !ended, lifecycle)));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    use futures_util::StreamExt;
    let body = Body::from_stream(head.chain(rest));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/vnd.docker.raw-stream")
        .body(body)
        .map_err(ApiError::internal)
}
