//! `POST /images/{name}/push?tag=`: step 06's push, its events as docker's JSON messages.
//! Without a tag (`docker push --all-tags`), every tag of the repository goes, one after
//! the other.

use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::mpsc;

use super::super::error::{ApiError, ApiResult};
use super::progress::{encode, layer_status, progress_stream, status, Progress};
use super::pull::registry_options;
use super::{image_event, Params};
use crate::engine::Engine;
use step06_images::push::{push_reporting, PushError, PushEvent};
use step06_images::reference::Reference;
use step06_images::store::Store;

/// One push event as docker's JSON message.
fn push_message(event: PushEvent) -> Bytes {
    match event {
        PushEvent::Refers { repository } => status(format!("The push refers to repository [{repository}]")),
        PushEvent::Preparing { layer } => layer_status("Preparing", layer, None),
        PushEvent::AlreadyExists { layer } => layer_status("Layer already exists", layer, None),
        PushEvent::Pushing { layer, current, total } => layer_status("Pushing", layer, Some((current, total))),
        PushEvent::Pushed { layer } => layer_status("Pushed", layer, None),
        PushEvent::Digest { tag, digest, size } => {
            let mut line = status(format!("{tag}: digest: {digest} size: {size}")).to_vec();
            // The CLI's content trust reads the result from this `aux` message.
            line.extend_from_slice(&encode(&json!({
                "progressDetail": {},
                "aux": {"Tag": tag, "Digest": digest.to_string(), "Size": size},
            })));
            Bytes::from(line)
        }
    }
}

/// A push's error as dockerd words it.
fn push_error(error: PushError) -> ApiError {
    match error {
        error @ PushError::NoSuchImage(_) => ApiError::not_found(error.to_string()),
        error @ PushError::DigestReference(_) => ApiError::bad_request(error.to_string()),
        other => ApiError::internal(other),
    }
}

/// The references to push: `name:tag`, or with no tag every tag the store has of `name`.
fn references(store: &Store, name: &str, tag: Option<&str>) -> ApiResult<Vec<Reference>> {
    let bad = |e: step06_images::reference::BadReference| ApiError::bad_request(format!("{e}"));
    if let Some(tag) = tag {
        return Ok(vec![format!("{name}:{tag}").parse().map_err(bad)?]);
    }
    let repository: Reference = name.parse().map_err(bad)?;
    // The names alone, from the index: no image needs loading to be chosen.
    let tagged: Vec<Reference> = store
        .index()
        .map_err(ApiError::internal)?
        .images
        .keys()
        .filter_map(|name| name.parse::<Reference>().ok())
        .filter(|r| r.name() == repository.name() && r.tag.is_some())
        .collect();
    if tagged.is_empty() {
        return Err(ApiError::not_found(format!(
            "An image does not exist locally with the tag: {}",
            repository.familiar_name()
        )));
    }
    Ok(tagged)
}

/// Runs the push on a blocking thread; its events become the response's messages. An error
/// before the first one (no such image) is the HTTP error; one after it goes in the stream.
pub async fn push(engine: &Arc<Engine>, name: &str, params: &Params, headers: &HeaderMap) -> ApiResult<Response> {
    let (sender, mut receiver) = mpsc::unbounded_channel::<Progress>();
    let engine = Arc::clone(engine);
    let (name, tag) = (name.to_owned(), params.get("tag").map(str::to_owned));
    let headers = headers.clone();
    tokio::spawn(async move {
        // Blobs must not be collected under the push (an rmi meanwhile): one image task at a time.
        let _one_at_a_time = engine.images.lock().await;
        let root = engine.root.clone();
        let events = sender.clone();
        let outcome = tokio::task::spawn_blocking(move || -> ApiResult<Vec<(Reference, String)>> {
            let store = Store::open(&root).map_err(ApiError::internal)?;
            let mut pushed = Vec::new();
            for (n, reference) in references(&store, &name, tag.as_deref())?.into_iter().enumerate() {
                let report = |event: PushEvent| {
                    // Said once, however many tags go.
                    if n > 0 && matches!(event, PushEvent::Refers { .. }) {
                        return;
                    }
                    let _ = events.send(Progress::Message(push_message(event)));
                };
                let options = registry_options(&reference, &headers);
                let digest = push_reporting(&store, &reference, options, &report).map_err(push_error)?;
                pushed.push((reference, digest.to_string()));
            }
            Ok(pushed)
        })
        .await;
        match outcome {
            Ok(Ok(pushed)) => {
                // As dockerd: the pushed reference, and its repository as the name.
                for (reference, _) in pushed {
                    image_event(&engine, "push", &reference.familiar(), Some(&reference.familiar_name()));
                }
            }
            Ok(Err(error)) => {
                tracing::info!("push: {}", error.message);
                let _ = sender.send(Progress::Fail(error));
            }
            Err(error) => {
                let _ = sender.send(Progress::Fail(ApiError::internal(format!("the push failed: {error}"))));
            }
        }
    });
    match receiver.recv().await {
        Some(Progress::Message(first)) => progress_stream(first, receiver),
        Some(Progress::Fail(error)) => Err(error),
        None => Err(ApiError::internal("the push ended without a word")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use step06_images::digest::Digest;

    #[test]
    fn progress_messages_are_dockerds() {
        let text = |event| String::from_utf8(push_message(event).to_vec()).expect("utf-8");
        assert_eq!(
            text(PushEvent::Refers {
                repository: "localhost:5000/busybox".into()
            }),
            "{\"status\":\"The push refers to repository [localhost:5000/busybox]\"}\r\n"
        );
        assert_eq!(
            text(PushEvent::Pushed {
                layer: "1c1c4429e413".into()
            }),
            "{\"status\":\"Pushed\",\"progressDetail\":{},\"id\":\"1c1c4429e413\"}\r\n"
        );
        let digest = Digest::of(b"manifest");
        let lines = text(PushEvent::Digest {
            tag: "v1".into(),
            digest: digest.clone(),
            size: 527,
        });
        let mut lines = lines.split("\r\n");
        assert_eq!(
            lines.next(),
            Some(format!("{{\"status\":\"v1: digest: {digest} size: 527\"}}").as_str())
        );
        let aux: serde_json::Value = serde_json::from_str(lines.next().expect("aux")).expect("JSON");
        assert_eq!(
            aux["aux"],
            json!({"Tag": "v1", "Digest": digest.to_string(), "Size": 527})
        );
    }
}
