//! The Docker Engine API, the subset the docker CLI and docker-py use (see the OpenAPI
//! document in `openapi.yaml`). Every path answers with or without the `/v1.NN` prefix.

pub mod archive;
pub mod attach;
mod body;
pub mod containers;
pub mod error;
pub mod exec;
pub mod hijack;
pub mod images;
pub mod lifecycle;
pub mod logs;
pub mod networks;
pub mod query;
pub mod system;
pub mod version;

use axum::routing::{delete, get, post};
use axum::Router;
use std::sync::Arc;

use crate::engine::Engine;

pub type State = axum::extract::State<Arc<Engine>>;

// ANCHOR: router
pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/_ping", get(system::ping).head(system::ping))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/events", get(system::events))
        .route("/openapi.yaml", get(system::openapi))
        .route("/containers/create", post(containers::create))
        .route("/containers/json", get(containers::list))
        .route("/containers/prune", post(containers::prune))
        .route("/containers/{id}/json", get(containers::inspect))
        .route("/containers/{id}", delete(containers::remove))
        .route("/containers/{id}/rename", post(containers::rename))
        .route("/containers/{id}/top", get(containers::top))
        .route("/containers/{id}/stats", get(containers::stats))
        .route("/containers/{id}/start", post(lifecycle::start))
        .route("/containers/{id}/stop", post(lifecycle::stop))
        .route("/containers/{id}/restart", post(lifecycle::restart))
        .route("/containers/{id}/kill", post(lifecycle::kill))
        .route("/containers/{id}/wait", post(lifecycle::wait))
        .route("/containers/{id}/attach", post(attach::attach))
        .route("/containers/{id}/resize", post(attach::resize))
        .route("/containers/{id}/logs", get(logs::logs))
        .route(
            "/containers/{id}/archive",
            get(archive::get).head(archive::head).put(archive::put),
        )
        .route("/containers/{id}/exec", post(exec::create))
        .route("/exec/{id}/start", post(exec::start))
        .route("/exec/{id}/resize", post(exec::resize))
        .route("/exec/{id}/json", get(exec::inspect))
        .merge(images::routes())
        .route("/networks", get(networks::list))
        .route("/networks/create", post(networks::create))
        .route("/networks/prune", post(networks::prune))
        .route("/networks/{id}", get(networks::inspect).delete(networks::remove))
        .route("/volumes/{id}", get(system::not_found))
        .route("/plugins/{id}/json", get(system::not_found))
        .route("/volumes", get(system::volumes))
        .fallback(system::unknown_endpoint)
        .with_state(engine)
}
// ANCHOR_END: router
