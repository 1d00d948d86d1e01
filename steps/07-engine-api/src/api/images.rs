//! Images: step 06's store behind docker's image endpoints.
//!
//! Store work is blocking (files, hashing, unpacking, the registry client), so it runs on
//! tokio's blocking threads; image changes (pull, import, load, tag, rmi, prune, and save,
//! which must not see blobs collected under it) take `Engine::images` one at a time, in a
//! task of their own, so that a client that goes away never leaves a change half done and
//! unlocked. Streams go to the client through channels: pull's progress as docker's JSON
//! messages, save's tar as it is written; uploaded tars (import, load) come from the
//! request body through a channel into a blocking reader, never whole in memory.

use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::sync::Arc;
use tokio::sync::mpsc;

use super::error::{json, ApiError, ApiResult};
use super::query;
use super::State;
use crate::engine::Engine;
use step06_images::digest::{Digest, Hashing};
use step06_images::pull::{pull_reporting, PullError, PullEvent};
use step06_images::reference::Reference;
use step06_images::registry::{RegistryError, RegistryOptions};
use step06_images::step05_overlay::step04_cgroups::step03_mount_ns::step02_pid_ns::step01_unshare;
use step06_images::store::images::Image;
use step06_images::store::{Store, StoreError};

pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/images/json", get(list))
        .route("/images/create", post(create))
        .route("/images/get", get(save))
        .route("/images/load", post(load))
        .route("/images/prune", post(prune))
        .route("/images/{*rest}", get(get_image).post(post_image).delete(remove))
}

fn store(engine: &Engine) -> ApiResult<Store> {
    Store::open(&engine.root).map_err(ApiError::internal)
}

fn unix_seconds(rfc3339: &str) -> i64 {
    humantime::parse_rfc3339_weak(rfc3339)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64)
}

/// The query string as pairs, in order: some keys repeat (`names=`, `changes=`).
struct Params(Vec<(String, String)>);

impl Params {
    /// The first value of `key`, if given and not empty.
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn map(&self) -> HashMap<String, String> {
        self.0.iter().cloned().collect()
    }
}

// ---------------------------------------------------------------------------------------
// Running store work

/// `work` on a blocking thread.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> ApiResult<T> + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal(format!("the image task failed: {e}")))?
}

/// `work` on the store, as the only image change under way. It runs to its end even if the
/// client goes away meanwhile.
async fn exclusive<T: Send + 'static>(
    engine: &Arc<Engine>,
    work: impl FnOnce(&Store) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    let engine = Arc::clone(engine);
    let task = tokio::spawn(async move {
        let _one_at_a_time = engine.images.lock().await;
        let root = engine.root.clone();
        blocking(move || work(&Store::open(&root).map_err(ApiError::internal)?)).await
    });
    task.await
        .map_err(|e| ApiError::internal(format!("the image task failed: {e}")))?
}

/// What a name (or id) the user typed resolves to, or docker's 404.
fn resolve(store: &Store, name: &str) -> ApiResult<(Option<Reference>, Image)> {
    store.resolve(name).map_err(|e| match e {
        StoreError::UnknownImage(_) | StoreError::BadReference(_) => {
            ApiError::not_found(format!("No such image: {name}"))
        }
        other => ApiError::internal(other),
    })
}

/// The names (full references, as the index has them) of the image `id`, and the
/// manifests they point at: one image (one config) may have come as several manifests, a
/// pulled one with compressed layers and a loaded one without.
fn names_by_id(store: &Store, id: &Digest) -> ApiResult<(Vec<String>, Vec<Digest>)> {
    let index = store.index().map_err(ApiError::internal)?;
    let mut seen: HashMap<String, bool> = HashMap::new();
    let (mut names, mut manifests) = (Vec::new(), Vec::new());
    for (name, digest) in &index.images {
        let matches = match seen.get(digest) {
            Some(matches) => *matches,
            None => {
                let manifest = digest.parse::<Digest>().ok();
                let image = manifest.as_ref().and_then(|d| store.image(d).ok());
                let matches = image.is_some_and(|i| i.id() == id);
                if let (true, Some(manifest)) = (matches, manifest) {
                    manifests.push(manifest);
                }
                seen.insert(digest.clone(), matches);
                matches
            }
        };
        if matches {
            names.push(name.clone());
        }
    }
    Ok((names, manifests))
}

fn familiar(name: &str) -> String {
    name.parse::<Reference>()
        .map_or_else(|_| name.to_owned(), |r| r.familiar())
}

/// A name pinned by digest (`x@sha256:...`, from a pull by digest): docker lists those as
/// RepoDigests, not RepoTags.
fn is_digest_name(name: &str) -> bool {
    name.contains('@')
}

/// An image's names as docker shows them: RepoTags (`busybox:latest`...) and RepoDigests.
fn names_of(store: &Store, image: &Image) -> ApiResult<(Vec<String>, Vec<String>)> {
    let (names, _) = names_by_id(store, image.id())?;
    Ok(names.iter().map(|n| familiar(n)).partition(|n| !is_digest_name(n)))
}

/// An error about input the client sent (a tar, an archive): 400, unless the engine's
/// own disk failed.
fn input_error(error: StoreError) -> ApiError {
    match error {
        StoreError::Io(_) => ApiError::internal(error),
        other => ApiError::bad_request(other.to_string()),
    }
}

fn image_event(engine: &Engine, action: &str, id: &str, name: Option<&str>) {
    let mut attributes = BTreeMap::new();
    if let Some(name) = name {
        attributes.insert("name".to_owned(), name.to_owned());
    }
    engine.events.emit("image", action, id, attributes);
}

/// The containers (id, image id, running) as they are now.
fn container_images(engine: &Engine) -> Vec<(String, String, bool)> {
    engine
        .all()
        .iter()
        .map(|c| {
            let record = c.record();
            (c.id.clone(), record.image_id.clone(), record.running())
        })
        .collect()
}

fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.get(..12).unwrap_or(hex)
}

// ---------------------------------------------------------------------------------------
// Streams

/// One JSON message of a progress stream, as dockerd's `jsonmessage` writes it.
#[derive(Debug, Default, Serialize)]
struct JsonMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    #[serde(rename = "progressDetail", skip_serializing_if = "Option::is_none")]
    progress_detail: Option<ProgressDetail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    progress: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<String>,
}

#[derive(Debug, Default, Serialize)]
struct ProgressDetail {
    #[serde(skip_serializing_if = "Option::is_none")]
    current: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<u64>,
}

/// A message as sent: JSON and `\r\n`, like dockerd's encoder.
fn encode(value: &impl Serialize) -> Bytes {
    let mut line = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    line.extend_from_slice(b"\r\n");
    Bytes::from(line)
}

fn status(text: impl Into<String>) -> Bytes {
    encode(&JsonMessage {
        status: Some(text.into()),
        ..JsonMessage::default()
    })
}

/// A layer's status line: `{"status":"Pull complete","progressDetail":{},"id":"bad46e9ee236"}`.
fn layer_status(text: &str, layer: String, progress: Option<(u64, u64)>) -> Bytes {
    encode(&JsonMessage {
        status: Some(text.to_owned()),
        progress_detail: Some(match progress {
            Some((current, total)) => ProgressDetail {
                current: Some(current),
                total: Some(total),
            },
            None => ProgressDetail::default(),
        }),
        progress: progress.map(|(current, total)| progress_bar(current, total)),
        id: Some(layer),
        stream: None,
    })
}

/// The error of a stream that has begun: the CLI prints it and exits 1.
fn error_message(message: &str) -> Bytes {
    #[derive(Serialize)]
    struct Detail<'a> {
        message: &'a str,
    }
    #[derive(Serialize)]
    struct Failure<'a> {
        #[serde(rename = "errorDetail")]
        error_detail: Detail<'a>,
        error: &'a str,
    }
    encode(&Failure {
        error_detail: Detail { message },
        error: message,
    })
}

/// Go's `%.4g` for `value` in [1, 1000), as docker's `units.HumanSize` prints sizes.
fn four_digits(value: f64) -> String {
    let integer_digits = if value >= 100.0 {
        3
    } else if value >= 10.0 {
        2
    } else {
        1
    };
    let text = format!("{value:.*}", 4 - integer_digits);
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// docker's `units.HumanSize`: `116B`, `32.77kB`, `1.065MB`.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if bytes == 0 {
        return "0B".to_owned();
    }
    format!("{}{}", four_digits(value), UNITS[unit])
}

/// The bar dockerd renders into `progress`: `[=>    ]  32.77kB/1.065MB`.
fn progress_bar(current: u64, total: u64) -> String {
    if total == 0 {
        return format!("{:>8}", human_size(current));
    }
    let filled = ((current as f64 / total as f64 * 100.0) as usize / 2).min(50);
    let bar = format!("[{}>{}] ", "=".repeat(filled), " ".repeat(50 - filled));
    if current > total {
        return format!("{bar}{:>8}", human_size(current));
    }
    format!("{bar}{:>8}/{}", human_size(current), human_size(total))
}

/// What the work behind a progress stream says.
enum Progress {
    Message(Bytes),
    /// Before the first message: the HTTP error; after it: the in-band error message.
    Fail(ApiError),
}

/// `200`, `application/json`, chunked: `first`, then each message as it comes.
fn progress_stream(first: Bytes, receiver: mpsc::UnboundedReceiver<Progress>) -> ApiResult<Response> {
    let rest = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let bytes = match receiver.recv().await? {
            Progress::Message(bytes) => bytes,
            Progress::Fail(error) => error_message(&error.message),
        };
        Some((Ok::<_, std::convert::Infallible>(bytes), receiver))
    });
    let body = Body::from_stream(futures_util::stream::iter([Ok(first)]).chain(rest));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .map_err(ApiError::internal)
}

/// A finished list of messages as a JSON stream.
fn messages(lines: Vec<Bytes>) -> Response {
    let body: Vec<u8> = lines.iter().flat_map(|b| b.iter().copied()).collect();
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The request body as a blocking reader: chunks come through a small channel, so an
/// upload is never held in memory whole. A body that breaks off is an error, not an end.
struct BodyReader {
    chunks: mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
}

fn body_reader(body: Body) -> BodyReader {
    let (sender, chunks) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut stream = body.into_data_stream();
        let mut wanted = true;
        while let Some(chunk) = stream.next().await {
            // Once the reader has given up (a bad tar), the rest is read and dropped, so
            // that the client finishes sending and reads the answer.
            if !wanted {
                continue;
            }
            let broken = chunk.is_err();
            let chunk = chunk.map_err(|e| std::io::Error::other(format!("reading the request body: {e}")));
            if sender.send(chunk).await.is_err() {
                wanted = false;
            }
            if broken {
                break;
            }
        }
    });
    BodyReader {
        chunks,
        current: Bytes::new(),
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(error)) => return Err(error),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

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

// ---------------------------------------------------------------------------------------
// GET /images/json, GET /images/{name}/json, GET /images/{name}/history

/// `GET /images/json`: one entry per image, with all its names.
pub async fn list(state: State) -> ApiResult<Response> {
    let store = store(&state.0)?;
    let mut by_id: Vec<(String, Vec<String>, serde_json::Value)> = Vec::new();
    for (reference, image) in store.list().map_err(ApiError::internal)? {
        let id = image.id().to_string();
        let name = reference.familiar();
        match by_id.iter_mut().find(|(i, _, _)| *i == id) {
            Some((_, names, _)) => names.push(name),
            None => {
                let created = image.config.created().clone().unwrap_or_default();
                let entry = json!({"Created": unix_seconds(&created), "Size": image.size(),
                    "Labels": {}, "ParentId": "", "RepoDigests": [], "SharedSize": -1, "Containers": -1,
                    "VirtualSize": image.size()});
                by_id.push((id, vec![name], entry));
            }
        }
    }
    let items: Vec<_> = by_id
        .into_iter()
        .map(|(id, names, mut entry)| {
            let (tags, digests): (Vec<String>, Vec<String>) = names.into_iter().partition(|n| !is_digest_name(n));
            entry["Id"] = json!(id);
            entry["RepoTags"] = json!(tags);
            entry["RepoDigests"] = json!(digests);
            entry
        })
        .collect();
    Ok(json(StatusCode::OK, &items))
}

/// `GET /images/{name}/json` and `/history` (names hold slashes, so the path is split here).
pub async fn get_image(state: State, Path(rest): Path<String>) -> ApiResult<Response> {
    if let Some(name) = rest.strip_suffix("/json") {
        return inspect(&state.0, name);
    }
    if let Some(name) = rest.strip_suffix("/history") {
        return history(&state.0, name);
    }
    Err(ApiError::not_found(format!("page not found: /images/{rest}")))
}

fn inspect(engine: &Engine, name: &str) -> ApiResult<Response> {
    let store = store(engine)?;
    let (_, image) = resolve(&store, name)?;
    let (tags, digests) = names_of(&store, &image)?;
    let config = serde_json::to_value(image.config.config()).unwrap_or_default();
    let layers: Vec<String> = image
        .diff_ids()
        .unwrap_or_default()
        .iter()
        .map(|d| d.to_string())
        .collect();
    let comment = image
        .config
        .history()
        .as_ref()
        .and_then(|h| h.last())
        .and_then(|h| h.comment().clone())
        .unwrap_or_default();
    Ok(json(
        StatusCode::OK,
        &json!({
            "Id": image.id().to_string(),
            "RepoTags": tags,
            "RepoDigests": digests,
            "Parent": "",
            "Comment": comment,
            "Created": image.config.created(),
            "Config": config,
            "Architecture": image.config.architecture().to_string(),
            "Os": image.config.os().to_string(),
            "Size": image.size(),
            "RootFS": {"Type": "layers", "Layers": layers},
            "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
        }),
    ))
}

/// `docker history`: the config's history, newest first, each layer with its size.
fn history(engine: &Engine, name: &str) -> ApiResult<Response> {
    let store = store(engine)?;
    let (_, image) = resolve(&store, name)?;
    let (tags, _) = names_of(&store, &image)?;
    let mut sizes = image.manifest.layers().iter().map(|l| l.size());
    let created = image.config.created().clone().unwrap_or_default();
    let mut entries: Vec<serde_json::Value> = match image.config.history() {
        Some(history) if !history.is_empty() => history
            .iter()
            .map(|h| {
                let size = if h.empty_layer().unwrap_or(false) {
                    0
                } else {
                    sizes.next().unwrap_or(0)
                };
                json!({
                    "Id": "<missing>",
                    "Created": unix_seconds(h.created().as_deref().unwrap_or(&created)),
                    "CreatedBy": h.created_by().clone().unwrap_or_default(),
                    "Tags": null,
                    "Size": size,
                    "Comment": h.comment().clone().unwrap_or_default(),
                })
            })
            .collect(),
        _ => vec![
            json!({"Id": "<missing>", "Created": unix_seconds(&created), "CreatedBy": "",
            "Tags": null, "Size": image.size(), "Comment": ""}),
        ],
    };
    entries.reverse();
    if let Some(newest) = entries.first_mut() {
        newest["Id"] = json!(image.id().to_string());
        newest["Tags"] = json!(tags);
    }
    Ok(json(StatusCode::OK, &entries))
}

// ---------------------------------------------------------------------------------------
// POST /images/create: pull (fromImage) or import (fromSrc)

pub async fn create(
    state: State,
    Query(pairs): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let params = Params(pairs);
    if let Some(from) = params.get("fromImage") {
        return pull(&state.0, from, params.get("tag"), &headers).await;
    }
    if let Some(source) = params.get("fromSrc") {
        return import(&state.0, source, &params, body).await;
    }
    discard(body).await;
    Err(ApiError::bad_request(
        "fromImage (pull) or fromSrc (import) is required",
    ))
}

/// `fromImage=docker.io/library/busybox&tag=latest`, `tag=sha256:...` for a digest, no
/// tag for `latest` (or when the name carries one itself).
fn pull_reference(from: &str, tag: Option<&str>) -> ApiResult<Reference> {
    let last = from.rsplit('/').next().unwrap_or(from);
    let text = match tag {
        _ if from.contains('@') || last.contains(':') => from.to_owned(),
        Some(digest) if digest.starts_with("sha256:") => format!("{from}@{digest}"),
        Some(tag) => format!("{from}:{tag}"),
        None => from.to_owned(),
    };
    text.parse().map_err(|e| ApiError::bad_request(format!("{e}")))
}

/// Docker reaches registries on the loopback over plain HTTP (they are insecure registries
/// by default); every other one over HTTPS.
fn is_loopback(domain: &str) -> bool {
    let host = match domain.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => domain.split(':').next().unwrap_or_default(),
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Base64 as Go writes it (standard or URL alphabet, padded or not).
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut bits, mut count) = (0u32, 0u32);
    for byte in text.trim().bytes().filter(|b| *b != b'=') {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(value);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Some(out)
}

/// The credentials of `X-Registry-Auth` (base64 JSON; `e30=`, `{}`, when there are none).
fn registry_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get("X-Registry-Auth")?.to_str().ok()?;
    let auth: serde_json::Value = serde_json::from_slice(&base64_decode(value)?).ok()?;
    let user = auth["username"].as_str().filter(|u| !u.is_empty())?;
    let password = auth["password"].as_str().unwrap_or_default();
    Some((user.to_owned(), password.to_owned()))
}

fn registry_options(reference: &Reference, headers: &HeaderMap) -> RegistryOptions {
    RegistryOptions {
        insecure: if is_loopback(&reference.domain) {
            vec![reference.domain.clone()]
        } else {
            Vec::new()
        },
        ca_cert: None,
        credentials: registry_credentials(headers),
    }
}

/// A pull's error as dockerd words it where the CLI's users know the words.
fn pull_error(error: PullError) -> ApiError {
    match error {
        PullError::Registry(RegistryError::ManifestUnknown { reference }) => ApiError::not_found(format!(
            "manifest for {reference} not found: manifest unknown: manifest unknown"
        )),
        PullError::Registry(RegistryError::RepositoryUnknown { name } | RegistryError::Unauthorized { name }) => {
            ApiError::not_found(format!(
                "pull access denied for {name}, repository does not exist or may require 'docker login'"
            ))
        }
        PullError::Registry(RegistryError::Denied { name, user }) => ApiError::internal(format!(
            "{name}: unauthorized: the registry refused user {user:?} (check docker login)"
        )),
        PullError::Registry(RegistryError::Unreachable { host, why, .. }) => {
            ApiError::internal(format!("cannot reach registry {host}: {why}"))
        }
        other => ApiError::internal(other),
    }
}

/// One pull event as docker's JSON message.
fn pull_message(reference: &Reference, event: PullEvent) -> Bytes {
    match event {
        PullEvent::Pulling { id, repository } => encode(&JsonMessage {
            status: Some(format!("Pulling from {repository}")),
            id: Some(id),
            ..JsonMessage::default()
        }),
        PullEvent::AlreadyExists { layer } => layer_status("Already exists", layer, None),
        PullEvent::Waiting { layer } => layer_status("Pulling fs layer", layer, None),
        PullEvent::Downloading { layer, current, total } => layer_status("Downloading", layer, Some((current, total))),
        PullEvent::Verifying { layer } => layer_status("Verifying Checksum", layer, None),
        PullEvent::Downloaded { layer } => layer_status("Download complete", layer, None),
        PullEvent::Extracting { layer, current, total } => layer_status("Extracting", layer, Some((current, total))),
        PullEvent::Complete { layer } => layer_status("Pull complete", layer, None),
        PullEvent::Digest(digest) => status(format!("Digest: {digest}")),
        PullEvent::Tagged { updated: true } => {
            status(format!("Status: Downloaded newer image for {}", reference.familiar()))
        }
        PullEvent::Tagged { updated: false } => {
            status(format!("Status: Image is up to date for {}", reference.familiar()))
        }
    }
}

/// `POST /images/create?fromImage=...`: the pull runs on a blocking thread and its events
/// become the response's messages. An error before the first one (no such image, registry
/// unreachable) is the HTTP error; one after it goes in the stream.
async fn pull(engine: &Arc<Engine>, from: &str, tag: Option<&str>, headers: &HeaderMap) -> ApiResult<Response> {
    let reference = pull_reference(from, tag)?;
    let options = registry_options(&reference, headers);
    let (sender, mut receiver) = mpsc::unbounded_channel::<Progress>();
    let engine = Arc::clone(engine);
    tokio::spawn(async move {
        let _one_at_a_time = engine.images.lock().await;
        let root = engine.root.clone();
        let events = sender.clone();
        let pulled = reference.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let store = Store::open(&root)?;
            let report = |event: PullEvent| {
                let _ = events.send(Progress::Message(pull_message(&pulled, event)));
            };
            pull_reporting(&store, &pulled, options, &report)
        })
        .await;
        match outcome {
            Ok(Ok(_image)) => {
                let name = reference.familiar();
                let repository = name.rsplit_once(':').map_or(name.as_str(), |(r, _)| r).to_owned();
                image_event(&engine, "pull", &name, Some(&repository));
            }
            Ok(Err(error)) => {
                tracing::info!("pulling {reference}: {error}");
                let _ = sender.send(Progress::Fail(pull_error(error)));
            }
            Err(error) => {
                let _ = sender.send(Progress::Fail(ApiError::internal(format!("the pull failed: {error}"))));
            }
        }
    });
    match receiver.recv().await {
        Some(Progress::Message(first)) => progress_stream(first, receiver),
        Some(Progress::Fail(error)) => Err(error),
        None => Err(ApiError::internal("the pull ended without a word")),
    }
}

/// Splits `K=V K2="two words"` (or `K value with spaces`) into pairs, as Dockerfile's
/// ENV and LABEL do.
fn key_values(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let (mut quote, mut escaped, mut started) = (None, false, false);
    for c in text.chars() {
        match c {
            _ if escaped => {
                word.push(c);
                escaped = false;
            }
            '\\' => escaped = true,
            '"' | '\'' if quote == Some(c) => quote = None,
            '"' | '\'' if quote.is_none() => {
                quote = Some(c);
                started = true;
            }
            c if c.is_whitespace() && quote.is_none() => {
                if started || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                started = false;
            }
            c => {
                word.push(c);
                started = true;
            }
        }
    }
    if quote.is_some() {
        return Err(format!("unmatched quote in {text:?}"));
    }
    if started || !word.is_empty() {
        words.push(word);
    }
    let Some(first) = words.first() else {
        return Err("a key and a value are needed".to_owned());
    };
    if !first.contains('=') {
        // The old form: `ENV KEY the value`.
        let value = text.trim_start()[first.len()..].trim().to_owned();
        return Ok(vec![(first.clone(), value)]);
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(format!("{w:?} is not KEY=VALUE")),
        })
        .collect()
}

/// `CMD ["a","b"]` (exec form) or `CMD a b` (shell form, run by /bin/sh -c).
fn command_form(text: &str) -> serde_json::Value {
    if text.starts_with('[') {
        if let Ok(words) = serde_json::from_str::<Vec<String>>(text) {
            return json!(words);
        }
    }
    json!(["/bin/sh", "-c", text])
}

/// Applies one `changes=` instruction (Dockerfile syntax) to an image's config.
fn apply_change(config: &mut serde_json::Value, change: &str) -> Result<(), String> {
    let change = change.trim();
    let (word, rest) = change
        .split_once(char::is_whitespace)
        .map_or((change, ""), |(w, r)| (w, r.trim()));
    let needs_argument = |what: &str| {
        if rest.is_empty() {
            Err(format!("{what} needs an argument"))
        } else {
            Ok(())
        }
    };
    match word.to_ascii_uppercase().as_str() {
        "CMD" => {
            needs_argument("CMD")?;
            config["Cmd"] = command_form(rest);
        }
        "ENTRYPOINT" => {
            needs_argument("ENTRYPOINT")?;
            config["Entrypoint"] = command_form(rest);
        }
        "ENV" => {
            for (key, value) in key_values(rest).map_err(|e| format!("ENV: {e}"))? {
                let mut env: Vec<String> = config["Env"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default();
                env.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
                env.push(format!("{key}={value}"));
                config["Env"] = json!(env);
            }
        }
        "LABEL" => {
            for (key, value) in key_values(rest).map_err(|e| format!("LABEL: {e}"))? {
                if !config["Labels"].is_object() {
                    config["Labels"] = json!({});
                }
                config["Labels"][key] = json!(value);
            }
        }
        "EXPOSE" => {
            needs_argument("EXPOSE")?;
            for port in rest.split_whitespace() {
                let port = if port.contains('/') {
                    port.to_owned()
                } else {
                    format!("{port}/tcp")
                };
                if !config["ExposedPorts"].is_object() {
                    config["ExposedPorts"] = json!({});
                }
                config["ExposedPorts"][port] = json!({});
            }
        }
        "VOLUME" => {
            needs_argument("VOLUME")?;
            let paths: Vec<String> =
                serde_json::from_str(rest).unwrap_or_else(|_| rest.split_whitespace().map(str::to_owned).collect());
            for path in paths {
                if !config["Volumes"].is_object() {
                    config["Volumes"] = json!({});
                }
                config["Volumes"][path] = json!({});
            }
        }
        key @ ("WORKDIR" | "USER" | "STOPSIGNAL") => {
            needs_argument(key)?;
            let field = match key {
                "WORKDIR" => "WorkingDir",
                "USER" => "User",
                _ => "StopSignal",
            };
            config[field] = json!(rest);
        }
        _ => {
            return Err(format!(
                "{word:?} is not a valid change command (import takes CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, \
                 STOPSIGNAL, USER, VOLUME, WORKDIR)"
            ))
        }
    }
    Ok(())
}

/// The config `docker import` gives an image: the changes applied, one layer.
fn import_config(changes: &[String]) -> Result<serde_json::Value, String> {
    let mut config = json!({"Env": [format!("PATH={}", step01_unshare::exec::DEFAULT_PATH)]});
    for change in changes {
        apply_change(&mut config, change)?;
    }
    Ok(config)
}

/// The digest of a layer's uncompressed tar (its diff id).
fn diff_id_of(store: &Store, blob: &Digest) -> Result<Digest, StoreError> {
    let path = store.blob_path(blob);
    let file = std::fs::File::open(&path).map_err(step06_images::store::io("reading", &path))?;
    let tar = step06_images::unpack::decompress(file).map_err(|e| StoreError::Unsupported {
        what: "layer",
        detail: e.to_string(),
    })?;
    let mut hashing = Hashing::new(tar);
    std::io::copy(&mut hashing, &mut std::io::sink()).map_err(step06_images::store::io("reading", &path))?;
    Ok(hashing.finish().0)
}

/// Stores the tar, checks that it unpacks, and only then names the image; on any error
/// whatever was stored goes again.
fn import_tar(
    store: &Store,
    tarball: impl Read,
    reference: &Reference,
    config: serde_json::Value,
    comment: &str,
) -> ApiResult<Image> {
    let (blob, _) = store.put_blob_from(tarball).map_err(input_error)?;
    let made = (|| {
        let diff_id = diff_id_of(store, &blob)?;
        let (os, architecture) = step06_images::registry::host_platform();
        let created = step06_images::import::now_rfc3339();
        let image_config = json!({
            "created": created,
            "architecture": architecture,
            "os": os,
            "comment": comment,
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
            "history": [{"created": created, "comment": comment}],
        });
        let bytes = serde_json::to_vec(&image_config).map_err(|e| StoreError::Unsupported {
            what: "image config",
            detail: e.to_string(),
        })?;
        step06_images::import::assemble(store, &bytes, std::slice::from_ref(&blob), Some(reference))
    })();
    if made.is_err() {
        let _ = store.collect_garbage();
    }
    made.map_err(|e| match e {
        StoreError::Unpack { error, .. } => {
            ApiError::bad_request(format!("the imported tar is not a valid layer: {error}"))
        }
        other => input_error(other),
    })
}

/// What an import is asked for: its name, config and comment.
fn import_request(source: &str, params: &Params) -> ApiResult<(Reference, serde_json::Value, String)> {
    if source != "-" {
        return Err(ApiError::bad_request(format!(
            "importing from {source:?} is not supported: send the tar as the request body (fromSrc=-)"
        )));
    }
    let repo = params.get("repo").ok_or_else(|| {
        ApiError::bad_request("an imported image needs a name: docker import FILE NAME[:TAG] (repo= is empty)")
    })?;
    let text = match params.get("tag") {
        Some(tag) => format!("{repo}:{tag}"),
        None => repo.to_owned(),
    };
    let reference: Reference = text.parse().map_err(|e| ApiError::bad_request(format!("{e}")))?;
    let config = import_config(&params.all("changes")).map_err(ApiError::bad_request)?;
    let comment = params.get("message").unwrap_or("Imported from -").to_owned();
    Ok((reference, config, comment))
}

/// Reads a request body to its end, for nothing: a client still sending its upload when
/// the answer comes reads no answer (it gets a broken pipe).
async fn discard(body: Body) {
    let mut stream = body.into_data_stream();
    while let Some(Ok(_)) = stream.next().await {}
}

/// `POST /images/create?fromSrc=-&repo=imported:v1`, the tar as the body: `{"status":"sha256:<id>"}`.
async fn import(engine: &Arc<Engine>, source: &str, params: &Params, body: Body) -> ApiResult<Response> {
    let (reference, config, comment) = match import_request(source, params) {
        Ok(request) => request,
        Err(error) => {
            discard(body).await;
            return Err(error);
        }
    };
    let tarball = body_reader(body);
    let named = reference.clone();
    let image = exclusive(engine, move |store| {
        import_tar(store, tarball, &named, config, &comment)
    })
    .await?;
    let id = image.id().to_string();
    image_event(engine, "import", &id, Some(&reference.familiar()));
    Ok(messages(vec![status(id)]))
}

// ---------------------------------------------------------------------------------------
// GET /images/get (save), POST /images/load

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

// ---------------------------------------------------------------------------------------
// POST /images/{name}/tag, DELETE /images/{name}, POST /images/prune

/// `POST /images/{name}/tag` and `/push` (names hold slashes: split here).
pub async fn post_image(
    state: State,
    Path(rest): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ApiResult<Response> {
    if let Some(name) = rest.strip_suffix("/tag") {
        return tag(&state.0, name, &Params(pairs)).await;
    }
    if rest.ends_with("/push") {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "push is not implemented by keel's engine",
        ));
    }
    Err(ApiError::not_found(format!("page not found: /images/{rest}")))
}

/// `repo=docker.io/library/b&tag=t` (the repository arrives fully qualified): 201.
async fn tag(engine: &Arc<Engine>, name: &str, params: &Params) -> ApiResult<Response> {
    let repo = params
        .get("repo")
        .ok_or_else(|| ApiError::bad_request("repository name (repo=) is required"))?;
    let text = match params.get("tag") {
        Some(tag) => format!("{repo}:{tag}"),
        None => repo.to_owned(),
    };
    let target: Reference = text.parse().map_err(|e| ApiError::bad_request(format!("{e}")))?;
    if target.digest.is_some() {
        return Err(ApiError::bad_request(format!(
            "refusing to create a tag with a digest reference: {text}"
        )));
    }
    let source = name.to_owned();
    let tagged = target.clone();
    let id = exclusive(engine, move |store| {
        let (_, image) = resolve(store, &source)?;
        store.tag(&tagged, &image.manifest_digest).map_err(ApiError::internal)?;
        Ok(image.id().to_string())
    })
    .await?;
    image_event(engine, "tag", &id, Some(&target.familiar()));
    Ok(StatusCode::CREATED.into_response())
}

/// What removing names did: docker's `[{"Untagged": ...}, {"Deleted": ...}]`.
#[derive(Default)]
struct Removed {
    untagged: Vec<String>,
    deleted: Option<String>,
    size: u64,
}

/// Untags `names` (full references) of `image` (whose manifests are `manifests`); the
/// image goes with its last name.
fn untag(store: &Store, image: &Image, names: &[String], manifests: &[Digest]) -> ApiResult<Removed> {
    store
        .update_index(|index| {
            for name in names {
                index.images.remove(name);
            }
            Ok(())
        })
        .map_err(ApiError::internal)?;
    store.collect_garbage().map_err(ApiError::internal)?;
    let deleted = !manifests.iter().any(|m| store.has_blob(m)) && !store.has_blob(&image.manifest_digest);
    Ok(Removed {
        untagged: names.iter().map(|n| familiar(n)).collect(),
        deleted: deleted.then(|| image.id().to_string()),
        size: if deleted { image.size() } else { 0 },
    })
}

fn removed_json(removed: &Removed) -> Vec<serde_json::Value> {
    removed
        .untagged
        .iter()
        .map(|name| json!({"Untagged": name}))
        .chain(removed.deleted.iter().map(|id| json!({"Deleted": id})))
        .collect()
}

fn removed_events(engine: &Engine, image_id: &str, removed: &Removed) {
    for name in &removed.untagged {
        image_event(engine, "untag", image_id, Some(name));
    }
    if let Some(id) = &removed.deleted {
        image_event(engine, "delete", id, None);
    }
}

/// `DELETE /images/{name}[?force=1]`. By name: untags it; the image goes with its last
/// name, which a container's image keeps unless forced. By id: every name goes, which
/// needs force when there are several or a container uses it.
pub async fn remove(
    state: State,
    Path(name): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ApiResult<Response> {
    let force = query::flag(&Params(pairs).map(), "force");
    let containers = container_images(&state.0);
    let typed = name.clone();
    let (image_id, removed) = exclusive(&state.0, move |store| {
        let (_, image) = resolve(store, &typed)?;
        let id = image.id().to_string();
        let index = store.index().map_err(ApiError::internal)?;
        let (all_names, manifests) = names_by_id(store, image.id())?;
        let by_name = typed
            .parse::<Reference>()
            .ok()
            .map(|r| r.to_string())
            .filter(|full| index.images.contains_key(full));
        let user = containers.iter().find(|(_, image_id, _)| *image_id == id);
        let names = match by_name {
            Some(full) => {
                if let Some((container, _, _)) = user.filter(|_| !force && all_names.len() <= 1) {
                    return Err(ApiError::conflict(format!(
                        "conflict: unable to remove repository reference \"{typed}\" (must force) - container {} is using its referenced image {}",
                        short(container),
                        short(&id)
                    )));
                }
                vec![full]
            }
            None => {
                if let Some((container, _, true)) = user {
                    return Err(ApiError::conflict(format!(
                        "conflict: unable to delete {} (cannot be forced) - image is being used by running container {}",
                        short(&id),
                        short(container)
                    )));
                }
                if !force && all_names.len() > 1 {
                    return Err(ApiError::conflict(format!(
                        "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                        short(&id)
                    )));
                }
                if let Some((container, _, _)) = user.filter(|_| !force) {
                    return Err(ApiError::conflict(format!(
                        "conflict: unable to delete {} (must be forced) - image is being used by stopped container {}",
                        short(&id),
                        short(container)
                    )));
                }
                all_names
            }
        };
        Ok((id, untag(store, &image, &names, &manifests)?))
    })
    .await?;
    removed_events(&state.0, &image_id, &removed);
    Ok(json(StatusCode::OK, &removed_json(&removed)))
}

/// `POST /images/prune`: with `dangling=false` (`docker image prune -a`), every image no
/// container uses; by default only dangling (unnamed) images, which this store never keeps:
/// it collects whatever blobs nothing names.
pub async fn prune(state: State, Query(pairs): Query<Vec<(String, String)>>) -> ApiResult<Response> {
    let filters = query::filters(&Params(pairs).map()).map_err(ApiError::bad_request)?;
    let mut all = false;
    for (key, values) in &filters {
        match key.as_str() {
            "dangling" => {
                all = values
                    .iter()
                    .any(|v| matches!(v.as_str(), "false" | "0" | "False" | "FALSE"));
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "invalid filter '{other}' (keel prunes by dangling only)"
                )))
            }
        }
    }
    let containers = container_images(&state.0);
    let removed = exclusive(&state.0, move |store| {
        let mut removed = Vec::new();
        if all {
            let mut seen = std::collections::BTreeSet::new();
            for (_, image) in store.list().map_err(ApiError::internal)? {
                let id = image.id().to_string();
                if !seen.insert(id.clone()) || containers.iter().any(|(_, i, _)| *i == id) {
                    continue;
                }
                let (names, manifests) = names_by_id(store, image.id())?;
                removed.push((id, untag(store, &image, &names, &manifests)?));
            }
        } else {
            store.collect_garbage().map_err(ApiError::internal)?;
        }
        Ok(removed)
    })
    .await?;
    let mut deleted = Vec::new();
    let mut space = 0;
    for (id, removed) in &removed {
        removed_events(&state.0, id, removed);
        deleted.extend(removed_json(removed));
        space += removed.size;
    }
    let deleted = if deleted.is_empty() {
        json!(null)
    } else {
        json!(deleted)
    };
    Ok(json(
        StatusCode::OK,
        &json!({"ImagesDeleted": deleted, "SpaceReclaimed": space}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_bars_are_rendered_like_dockers() {
        assert_eq!(human_size(116), "116B");
        assert_eq!(human_size(32768), "32.77kB");
        assert_eq!(human_size(1_064_755), "1.065MB");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(
            progress_bar(32768, 1_064_755),
            "[=>                                                 ]  32.77kB/1.065MB"
        );
        assert_eq!(
            progress_bar(116, 116),
            "[==================================================>]     116B/116B"
        );
    }

    #[test]
    fn progress_messages_are_dockerds() {
        let reference: Reference = "localhost:5000/uniq:v1".parse().expect("reference");
        let text = |event| String::from_utf8(pull_message(&reference, event).to_vec()).expect("utf-8");
        assert_eq!(
            text(PullEvent::Pulling {
                id: "v1".into(),
                repository: "uniq".into()
            }),
            "{\"status\":\"Pulling from uniq\",\"id\":\"v1\"}\r\n"
        );
        assert_eq!(
            text(PullEvent::Waiting {
                layer: "bad46e9ee236".into()
            }),
            "{\"status\":\"Pulling fs layer\",\"progressDetail\":{},\"id\":\"bad46e9ee236\"}\r\n"
        );
        assert_eq!(
            text(PullEvent::Downloading {
                layer: "d84f835b5f3f".into(),
                current: 116,
                total: 116
            }),
            "{\"status\":\"Downloading\",\"progressDetail\":{\"current\":116,\"total\":116},\"progress\":\"[==================================================>]     116B/116B\",\"id\":\"d84f835b5f3f\"}\r\n"
        );
        assert_eq!(
            text(PullEvent::Tagged { updated: true }),
            "{\"status\":\"Status: Downloaded newer image for localhost:5000/uniq:v1\"}\r\n"
        );
        assert_eq!(
            String::from_utf8(error_message("boom").to_vec()).expect("utf-8"),
            "{\"errorDetail\":{\"message\":\"boom\"},\"error\":\"boom\"}\r\n"
        );
    }

    #[test]
    fn pull_references_take_every_form_the_cli_sends() {
        let full = |from: &str, tag: Option<&str>| pull_reference(from, tag).expect("valid").to_string();
        assert_eq!(
            full("docker.io/library/busybox", Some("latest")),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(full("localhost:5000/x", Some("v1")), "localhost:5000/x:v1");
        assert_eq!(full("localhost:5000/x", None), "localhost:5000/x:latest");
        let digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            full("localhost:5000/x", Some(digest)),
            format!("localhost:5000/x@{digest}")
        );
        assert_eq!(full("busybox:1.36", Some("latest")), "docker.io/library/busybox:1.36");
        assert!(pull_reference("UPPER", None).is_err());
    }

    #[test]
    fn loopback_registries_are_insecure() {
        for host in [
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "localhost",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["docker.io", "registry.example:5000", "10.0.0.1:5000"] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn registry_auth_is_decoded() {
        let mut headers = HeaderMap::new();
        headers.insert("X-Registry-Auth", "e30=".parse().expect("header"));
        assert_eq!(registry_credentials(&headers), None);
        // {"username":"keel","password":"s3cret"}, URL alphabet without padding.
        headers.insert(
            "X-Registry-Auth",
            "eyJ1c2VybmFtZSI6ImtlZWwiLCJwYXNzd29yZCI6InMzY3JldCJ9"
                .parse()
                .expect("header"),
        );
        assert_eq!(
            registry_credentials(&headers),
            Some(("keel".to_owned(), "s3cret".to_owned()))
        );
    }

    #[test]
    fn import_changes_are_applied_to_the_config() {
        let config = import_config(&[
            "ENV FOO=bar".into(),
            "CMD [\"/bin/sh\"]".into(),
            "ENV PATH=/bin".into(),
            "WORKDIR /tmp".into(),
            "LABEL a=\"b c\"".into(),
            "EXPOSE 80".into(),
            "ENTRYPOINT echo hi".into(),
        ])
        .expect("valid changes");
        assert_eq!(config["Env"], json!(["FOO=bar", "PATH=/bin"]));
        assert_eq!(config["Cmd"], json!(["/bin/sh"]));
        assert_eq!(config["WorkingDir"], json!("/tmp"));
        assert_eq!(config["Labels"], json!({"a": "b c"}));
        assert_eq!(config["ExposedPorts"], json!({"80/tcp": {}}));
        assert_eq!(config["Entrypoint"], json!(["/bin/sh", "-c", "echo hi"]));
        assert_eq!(
            key_values("KEY the value").expect("old form"),
            [("KEY".to_owned(), "the value".to_owned())]
        );
        assert!(import_config(&["RUN rm -rf /".into()]).is_err());
        assert!(import_config(&["CMD".into()]).is_err());
    }
}
