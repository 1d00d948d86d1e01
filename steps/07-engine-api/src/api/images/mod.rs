//! Images: step 06's store behind docker's image endpoints.
//!
//! Store work is blocking (files, hashing, unpacking, the registry client), so it runs on
//! tokio's blocking threads; image changes (pull, import, load, tag, rmi, prune, and save,
//! which must not see blobs collected under it) take `Engine::images` one at a time, in a
//! task of their own, so that a client that goes away never leaves a change half done and
//! unlocked. Streams go to the client through channels: pull's progress as docker's JSON
//! messages, save's tar as it is written; uploaded tars (import, load) come from the
//! request body through a channel into a blocking reader, never whole in memory.
//!
//! This module routes the endpoints and keeps what its parts share: the store, what names
//! resolve to, image events, and running store work one change at a time.

mod import;
mod list_filter;
mod manage;
mod progress;
mod pull;
mod push;
mod transfer;

use axum::routing::{get, post};
use axum::Router;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::error::{ApiError, ApiResult};
use crate::engine::Engine;
use step06_images::digest::Digest;
use step06_images::reference::Reference;
use step06_images::store::images::Image;
use step06_images::store::{Store, StoreError};

pub use manage::{get_image, list, post_image, prune, remove};
pub use pull::create;
pub use transfer::{load, save};

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
fn image_event(engine: &Engine, action: &str, id: &str, name: Option<&str>) {
    let mut attributes = BTreeMap::new();
    if let Some(name) = name {
        attributes.insert("name".to_owned(), name.to_owned());
    }
    engine.events.emit("image", action, id, attributes);
}
