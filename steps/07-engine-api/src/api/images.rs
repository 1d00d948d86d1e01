//! Images: step 06's store behind docker's image endpoints.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::json;
use std::sync::Arc;

use super::error::{json, ApiError, ApiResult};
use super::State;
use crate::engine::Engine;
use step06_images::store::{Store, StoreError};

pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/images/json", get(list))
        .route("/images/{*rest}", get(get_image))
}

fn store(engine: &Engine) -> ApiResult<Store> {
    Store::open(&engine.root).map_err(ApiError::internal)
}

fn unix_seconds(rfc3339: &str) -> i64 {
    humantime::parse_rfc3339(rfc3339)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64)
}

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
            entry["Id"] = json!(id);
            entry["RepoTags"] = json!(names);
            entry
        })
        .collect();
    Ok(json(StatusCode::OK, &items))
}

/// `GET /images/{name}/json` (names hold slashes, so the path is split here).
pub async fn get_image(state: State, Path(rest): Path<String>) -> ApiResult<Response> {
    let Some(name) = rest.strip_suffix("/json") else {
        return Err(ApiError::not_found(format!("page not found: /images/{rest}")));
    };
    let store = store(&state.0)?;
    let (reference, image) = store.resolve(name).map_err(|e| match e {
        StoreError::UnknownImage(_) | StoreError::BadReference(_) => {
            ApiError::not_found(format!("No such image: {name}"))
        }
        other => ApiError::internal(other),
    })?;
    let config = serde_json::to_value(image.config.config()).unwrap_or_default();
    let layers: Vec<String> = image
        .diff_ids()
        .unwrap_or_default()
        .iter()
        .map(|d| d.to_string())
        .collect();
    Ok(json(
        StatusCode::OK,
        &json!({
            "Id": image.id().to_string(),
            "RepoTags": reference.map(|r| vec![r.familiar()]).unwrap_or_default(),
            "RepoDigests": [],
            "Parent": "",
            "Comment": "",
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
