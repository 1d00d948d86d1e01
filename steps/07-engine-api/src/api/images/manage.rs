//! The images there are: list, inspect, history, tag, rmi (untag), prune.

use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;

use super::super::error::{json, ApiError, ApiResult};
use super::super::{query, State};
use super::list_filter::{labels, ImageFilter};
use super::{exclusive, familiar, image_event, is_digest_name, names_by_id, names_of, resolve, store, Params};
use crate::engine::Engine;
use crate::record::unix_seconds;
use step06_images::digest::Digest;
use step06_images::reference::Reference;
use step06_images::store::images::Image;
use step06_images::store::Store;

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
// GET /images/json, GET /images/{name}/json, GET /images/{name}/history

/// `GET /images/json`: one entry per image, with all its names (or, with a `reference`
/// filter, the names it matched).
pub async fn list(state: State, Query(pairs): Query<Vec<(String, String)>>) -> ApiResult<Response> {
    let filters = query::filters(&Params(pairs).map()).map_err(ApiError::bad_request)?;
    let store = store(&state.0)?;
    let filter = ImageFilter::parse(&filters, &store)?;
    let mut by_id: Vec<(Image, Vec<Reference>)> = Vec::new();
    for (reference, image) in store.list().map_err(ApiError::internal)? {
        match by_id.iter_mut().find(|(i, _)| i.id() == image.id()) {
            Some((_, names)) => names.push(reference),
            None => by_id.push((image, vec![reference])),
        }
    }
    let items: Vec<_> = by_id
        .into_iter()
        .filter_map(|(image, names)| {
            let names = filter.names_to_list(&image, names)?;
            Some(summary(&image, names))
        })
        .collect();
    Ok(json(StatusCode::OK, &items))
}

/// One entry of `docker images`.
fn summary(image: &Image, names: Vec<String>) -> serde_json::Value {
    let (tags, digests): (Vec<String>, Vec<String>) = names.into_iter().partition(|n| !is_digest_name(n));
    let created = image.config.created().clone().unwrap_or_default();
    let labels = labels(image);
    json!({"Id": image.id().to_string(), "RepoTags": tags, "RepoDigests": digests,
        "Created": unix_seconds(&created), "Size": image.size(), "VirtualSize": image.size(),
        "Labels": labels, "ParentId": "", "SharedSize": -1, "Containers": -1})
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
// POST /images/{name}/tag, DELETE /images/{name}, POST /images/prune

/// `POST /images/{name}/tag` and `/push` (names hold slashes: split here).
pub async fn post_image(
    state: State,
    Path(rest): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if let Some(name) = rest.strip_suffix("/tag") {
        return tag(&state.0, name, &Params(pairs)).await;
    }
    if let Some(name) = rest.strip_suffix("/push") {
        return super::push::push(&state.0, name, &Params(pairs), &headers).await;
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
