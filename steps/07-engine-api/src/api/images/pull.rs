//! Pulls: `POST /images/create?fromImage=`, references, registry options and credentials.

use axum::body::Body;
use axum::extract::Query;
use axum::http::HeaderMap;
use axum::response::Response;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine as _};
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::mpsc;

use super::super::error::{ApiError, ApiResult};
use super::super::State;
use super::import::import;
use super::progress::{encode, layer_status, progress_stream, status, JsonMessage, Progress};
use super::transfer::discard;
use super::{image_event, Params};
use crate::engine::Engine;
use step06_images::pull::{pull_reporting, PullError, PullEvent};
use step06_images::reference::Reference;
use step06_images::registry::{RegistryError, RegistryOptions};
use step06_images::store::Store;

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

/// Base64 as clients write `X-Registry-Auth`: padded or not (Go's `URLEncoding` pads, some
/// clients strip it), trailing bits not checked.
const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);

/// Base64 as Go writes it: the URL alphabet (the CLI's) or the standard one.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    URL_SAFE.decode(text).or_else(|_| STANDARD.decode(text)).ok()
}

/// The credentials of `X-Registry-Auth` (base64 JSON; `e30=`, `{}`, when there are none).
fn registry_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get("X-Registry-Auth")?.to_str().ok()?;
    let auth: serde_json::Value = serde_json::from_slice(&base64_decode(value)?).ok()?;
    let user = auth["username"].as_str().filter(|u| !u.is_empty())?;
    let password = auth["password"].as_str().unwrap_or_default();
    Some((user.to_owned(), password.to_owned()))
}

pub(super) fn registry_options(reference: &Reference, headers: &HeaderMap) -> RegistryOptions {
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
                image_event(&engine, "pull", &reference.familiar(), Some(&reference.familiar_name()));
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

#[cfg(test)]
mod tests {
    use super::*;

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
        // {"username":"keel","password":"a>b?"}: either alphabet, padded or not.
        for encoded in [
            "eyJ1c2VybmFtZSI6ImtlZWwiLCJwYXNzd29yZCI6ImE-Yj8ifQ==",
            "eyJ1c2VybmFtZSI6ImtlZWwiLCJwYXNzd29yZCI6ImE-Yj8ifQ",
            "eyJ1c2VybmFtZSI6ImtlZWwiLCJwYXNzd29yZCI6ImE+Yj8ifQ==",
            "eyJ1c2VybmFtZSI6ImtlZWwiLCJwYXNzd29yZCI6ImE+Yj8ifQ",
        ] {
            headers.insert("X-Registry-Auth", encoded.parse().expect("header"));
            assert_eq!(
                registry_credentials(&headers),
                Some(("keel".to_owned(), "a>b?".to_owned())),
                "{encoded}"
            );
        }
        headers.insert("X-Registry-Auth", "not base64!".parse().expect("header"));
        assert_eq!(registry_credentials(&headers), None);
    }
}
