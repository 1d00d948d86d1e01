//! `/_ping`, `/version`, `/info`, `/events`, and the answers that let `docker inspect X`
//! fall through containers → images → networks → volumes.

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::time::SystemTime;

use super::error::{json, ApiError};
use super::query::{filters, Query};
use super::version::{API_VERSION, MIN_API_VERSION};
use super::State;
use crate::events::Event;

pub const ENGINE_VERSION: &str = concat!("keel-", env!("CARGO_PKG_VERSION"));

// ANCHOR: ping
/// `HEAD /_ping` (and GET): the CLI reads `Api-Version` to pick the version it speaks.
pub async fn ping(method: Method) -> Response {
    let body = if method == Method::HEAD { "" } else { "OK" };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert("Api-Version", HeaderValue::from_static(API_VERSION));
    headers.insert("Ostype", HeaderValue::from_static("linux"));
    headers.insert("Docker-Experimental", HeaderValue::from_static("false"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
// ANCHOR_END: ping

fn kernel_version() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn architecture() -> &'static str {
    step06_images::registry::platform::host_platform().1
}

pub async fn version() -> Response {
    json(
        StatusCode::OK,
        &json!({
            "Platform": {"Name": "keel"},
            "Components": [{"Name": "Engine", "Version": ENGINE_VERSION, "Details": {
                "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux",
                "Arch": architecture(), "KernelVersion": kernel_version()}}],
            "Version": ENGINE_VERSION,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "keel",
            "GoVersion": "rust",
            "Os": "linux",
            "Arch": architecture(),
            "KernelVersion": kernel_version(),
            "BuildTime": "",
        }),
    )
}

pub async fn info(state: State) -> Response {
    let engine = state.0;
    let records: Vec<_> = engine.all().iter().map(|c| c.record()).collect();
    let running = records.iter().filter(|r| r.running()).count();
    let images = step06_images::store::Store::open(&engine.root)
        .and_then(|s| s.list())
        .map(|l| l.len())
        .unwrap_or(0);
    use step06_images::step05_overlay::step04_cgroups::cgroups::layout::Layout;
    // Hybrid machines count as v1: that is where the controllers are.
    let cgroup_v2 = matches!(Layout::detect(), Ok(Layout::V2 { .. }));
    let hostname = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let memory = crate::stats::host_memory();
    json(
        StatusCode::OK,
        &json!({
            "ID": "keel",
            "Containers": records.len(),
            "ContainersRunning": running,
            "ContainersPaused": 0,
            "ContainersStopped": records.len() - running,
            "Images": images,
            "Driver": "overlay",
            "LoggingDriver": "json-file",
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": if cgroup_v2 { "2" } else { "1" },
            "KernelVersion": kernel_version(),
            "OperatingSystem": "keel on Linux",
            "OSType": "linux",
            "Architecture": architecture(),
            "NCPU": std::thread::available_parallelism().map_or(1, |n| n.get()),
            "MemTotal": memory,
            "Name": hostname,
            "ServerVersion": ENGINE_VERSION,
            "DockerRootDir": engine.root,
            "Runtimes": {"keel": {"path": engine.runtime.binary}},
            "DefaultRuntime": "keel",
            "Swarm": {"LocalNodeState": "inactive"},
            "SecurityOptions": ["name=seccomp,profile=builtin", "name=no-new-privileges"],
            "Warnings": null,
        }),
    )
}

/// `GET /events`: the kept events since `since` (up to `until`, then the stream ends),
/// then, without `until`, each new one as it happens.
pub async fn events(state: State, query: Query) -> Result<Response, ApiError> {
    let filters = filters(&query).map_err(ApiError::bad_request)?;
    let since = query.get("since").and_then(|s| crate::logs::parse_unix_time(s));
    let until = query.get("until").and_then(|s| crate::logs::parse_unix_time(s));
    let until_given = query.get("until").is_some_and(|u| !u.is_empty());
    let (recent, mut receiver) = state.0.events.subscribe();
    let matches = move |event: &Event| {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(event.time_nano.max(0) as u64);
        let wanted = |key: &str, values: &[&str]| {
            filters
                .get(key)
                .is_none_or(|allowed| allowed.iter().any(|a| values.contains(&a.as_str())))
        };
        let name = event.actor.attributes.get("name").map(String::as_str).unwrap_or("");
        let image = event.actor.attributes.get("image").map(String::as_str).unwrap_or("");
        wanted("type", &[&event.typ])
            && wanted("event", &[&event.action])
            && wanted("container", &[&event.id, name])
            && wanted("image", &[image])
            && since.is_none_or(|s| at >= s)
            && until.is_none_or(|u| at <= u)
    };
    let past: Vec<Event> = if since.is_some() || until_given {
        recent.into_iter().filter(|e| matches(e)).collect()
    } else {
        Vec::new()
    };
    let stream = async_stream(past, until_given, move |event| matches(event), &mut receiver);
    let response = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .map_err(ApiError::internal)?;
    Ok(response)
}

fn async_stream(
    past: Vec<Event>,
    finite: bool,
    matches: impl Fn(&Event) -> bool + Send + 'static,
    receiver: &mut tokio::sync::broadcast::Receiver<Event>,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send {
    let receiver = receiver.resubscribe();
    let line = |event: &Event| bytes::Bytes::from(format!("{}\n", serde_json::to_string(event).unwrap_or_default()));
    let first: Vec<Result<bytes::Bytes, std::io::Error>> = past.iter().map(|e| Ok(line(e))).collect();
    let live = futures_util::stream::unfold((receiver, finite), move |(mut receiver, finite)| async move {
        if finite {
            return None;
        }
        loop {
            match receiver.recv().await {
                Ok(event) => return Some((event, (receiver, finite))),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return None,
            }
        }
    });
    use futures_util::StreamExt;
    let live = live
        .filter(move |event| std::future::ready(matches(event)))
        .map(move |event| Ok(line(&event)));
    futures_util::stream::iter(first).chain(live)
}

/// The OpenAPI document of what keel implements, kept in the repository.
pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/yaml")],
        include_str!("../../openapi.yaml"),
    )
        .into_response()
}

/// Networks, volumes and plugins do not exist (yet): `docker inspect` moves on.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    let name = uri
        .path()
        .rsplit('/')
        .find(|s| !s.is_empty() && *s != "json")
        .unwrap_or_default();
    ApiError::not_found(format!("No such object: {name}"))
}

pub async fn volumes() -> Response {
    json(StatusCode::OK, &json!({"Volumes": [], "Warnings": null}))
}

pub async fn unknown_endpoint(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!(
        "page not found: {} is not an endpoint keel implements",
        uri.path()
    ))
}
