//! Tars in and out: the response as a writer; save and load.

use axum::body::Body;
use axum::extract::Query;
use axum::http::{header, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use std::io::Write;
use std::sync::Arc;
use tokio::sync::mpsc;

use super::super::body::body_reader;
use super::super::error::{ApiError, ApiResult};
use super::super::State;
use super::progress::{encode, messages, JsonMessage};
use super::{exclusive, image_event, resolve, Params};
use step06_images::store::{Store, StoreError};

/// What the save task sends: ready (every name resolved), tar bytes, or a failure.
enum Chunk {
    Ready,
    Data(Bytes),
    Fail(ApiError),
}

/// A blocking writer into the response body, in 64 KiB chunks.
struct BodyWriter {
    sender: mpsc::Sender<Chunk>,
    buffer: Vec<u8>,
}

const CHUNK: usize = 64 * 1024;

impl BodyWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK)));
        self.sender
            .blocking_send(Chunk::Data(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for BodyWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        if self.buffer.len() >= CHUNK {
            self.send()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// Reads a request body to its end, for nothing: a client still sending its upload when
/// the answer comes reads no answer (it gets a broken pipe).
pub(super) async fn discard(body: Body) {
    let mut stream = body.into_data_stream();
    while let Some(Ok(_)) = stream.next().await {}
}

/// `GET /images/get?names=busybox&names=...`: one tar (docker save's format and an OCI
/// layout), streamed as it is written. Unknown names are a 404 before any byte.
pub async fn save(state: State, Query(pairs): Query<Vec<(String, String)>>) -> ApiResult<Response> {
    let names: Vec<String> = Params(pairs)
        .all("names")
        .into_iter()
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        return Err(ApiError::bad_request("no image to save: give names=IMAGE"));
    }
    let (sender, mut receiver) = mpsc::channel::<Chunk>(8);
    let engine = Arc::clone(&state.0);
    tokio::spawn(async move {
        let _one_at_a_time = engine.images.lock().await;
        let root = engine.root.clone();
        let task_engine = Arc::clone(&engine);
        let saving = tokio::task::spawn_blocking(move || {
            let engine = task_engine;
            let fail = |error: ApiError| {
                let _ = sender.blocking_send(Chunk::Fail(error));
            };
            let store = match Store::open(&root) {
                Ok(store) => store,
                Err(error) => return fail(ApiError::internal(error)),
            };
            let mut ids = Vec::new();
            for name in &names {
                match resolve(&store, name) {
                    Ok((_, image)) => ids.push((image.id().to_string(), name.clone())),
                    Err(error) => return fail(error),
                }
            }
            if sender.blocking_send(Chunk::Ready).is_err() {
                return;
            }
            let mut writer = BodyWriter {
                sender: sender.clone(),
                buffer: Vec::with_capacity(CHUNK),
            };
            let saved = step06_images::archive::save(&store, &names, &mut writer)
                .map_err(ApiError::internal)
                .and_then(|()| writer.flush().map_err(ApiError::internal));
            match saved {
                Ok(()) => ids
                    .iter()
                    .for_each(|(id, name)| image_event(&engine, "save", id, Some(name))),
                Err(error) => {
                    tracing::warn!("saving {names:?}: {}", error.message);
                    fail(error);
                }
            }
        });
        if let Err(error) = saving.await {
            tracing::error!("the save task failed: {error}");
        }
    });
    match receiver.recv().await {
        Some(Chunk::Ready) => {}
        Some(Chunk::Fail(error)) => return Err(error),
        Some(Chunk::Data(_)) | None => return Err(ApiError::internal("the save ended before it began")),
    }
    // A failure half-way cannot be an HTTP error any more: the body breaks off instead.
    let stream = futures_util::stream::unfold((receiver, false), |(mut receiver, failed)| async move {
        if failed {
            return None;
        }
        match receiver.recv().await? {
            Chunk::Data(bytes) => Some((Ok(bytes), (receiver, false))),
            Chunk::Fail(error) => Some((Err(std::io::Error::other(error.message)), (receiver, true))),
            Chunk::Ready => Some((Ok(Bytes::new()), (receiver, false))),
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/x-tar")
        .body(Body::from_stream(stream))
        .map_err(ApiError::internal)
}

/// `POST /images/load`: a `docker save` tar (or an OCI layout) as the body;
/// `{"stream":"Loaded image: busybox:latest\n"}` per image.
pub async fn load(state: State, body: Body) -> ApiResult<Response> {
    let archive = body_reader(body);
    let loaded = exclusive(&state.0, move |store| {
        let lines = step06_images::archive::load(store, archive).map_err(|e| match e {
            StoreError::Io(_) => ApiError::internal(e),
            other => ApiError::bad_request(format!("loading the archive: {other}")),
        })?;
        let mut loaded = Vec::new();
        for line in lines {
            let id = match line.split_once(": ") {
                Some(("Loaded image", name)) => store.resolve(name).ok().map(|(_, i)| i.id().to_string()),
                Some(("Loaded image ID", id)) => Some(id.to_owned()),
                _ => None,
            };
            loaded.push((line, id));
        }
        Ok(loaded)
    })
    .await?;
    let mut lines = Vec::new();
    for (line, id) in loaded {
        if let Some(id) = id {
            let name = line.strip_prefix("Loaded image: ");
            image_event(&state.0, "load", &id, name);
        }
        lines.push(encode(&JsonMessage {
            stream: Some(format!("{line}\n")),
            ..JsonMessage::default()
        }));
    }
    Ok(messages(lines))
}
