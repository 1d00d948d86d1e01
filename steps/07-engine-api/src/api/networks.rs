//! `docker network ls/inspect/create/rm/prune`: the engine's bridge networks, and docker's
//! built-in `host` and `none`.

use axum::extract::rejection::BytesRejection;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{body_bytes, json, parse_body, ApiError, ApiResult};
use super::State;
use crate::engine::Engine;
use crate::network::{NetworkDef, DEFAULT};

const BUILTIN: [(&str, &str); 2] = [("host", "host"), ("none", "null")];

fn builtin_id(name: &str) -> String {
    format!("{:0<64}", name.bytes().map(|b| format!("{b:02x}")).collect::<String>())
}

fn describe(engine: &Engine, network: &NetworkDef) -> Value {
    let mut containers = serde_json::Map::new();
    for container in engine.all() {
        let record = container.record();
        if let Some(a) = record.network.filter(|a| a.network == network.name) {
            containers.insert(
                container.id.clone(),
                json!({"Name": record.name, "EndpointID": "", "MacAddress": "",
                       "IPv4Address": format!("{}/{}", a.address, a.prefix), "IPv6Address": ""}),
            );
        }
    }
    json!({
        "Name": network.name, "Id": network.id, "Created": network.created, "Scope": "local",
        "Driver": "bridge", "EnableIPv6": false, "Internal": false, "Attachable": false, "Ingress": false,
        "IPAM": {"Driver": "default", "Options": {}, "Config": [{"Subnet": network.subnet.to_string(),
                 "Gateway": network.subnet.gateway().to_string()}]},
        "Options": {"com.docker.network.bridge.name": network.bridge},
        "Labels": {}, "Containers": containers,
    })
}

fn describe_builtin(name: &str, driver: &str) -> Value {
    json!({"Name": name, "Id": builtin_id(name), "Created": "0001-01-01T00:00:00Z", "Scope": "local",
           "Driver": driver, "EnableIPv6": false, "Internal": false, "Attachable": false, "Ingress": false,
           "IPAM": {"Driver": "default", "Options": null, "Config": []}, "Options": {}, "Labels": {},
           "Containers": {}})
}

pub async fn list(state: State) -> ApiResult<Response> {
    let engine = state.0;
    let mut all: Vec<Value> = engine.networks.all().iter().map(|n| describe(&engine, n)).collect();
    all.extend(BUILTIN.iter().map(|(name, driver)| describe_builtin(name, driver)));
    Ok(json(StatusCode::OK, &all))
}

pub async fn inspect(state: State, Path(key): Path<String>) -> ApiResult<Response> {
    let engine = state.0;
    if let Some(network) = engine.networks.find(&key) {
        return Ok(json(StatusCode::OK, &describe(&engine, &network)));
    }
    if let Some((name, driver)) = BUILTIN.iter().find(|(name, _)| *name == key || builtin_id(name) == key) {
        return Ok(json(StatusCode::OK, &describe_builtin(name, driver)));
    }
    Err(ApiError::not_found(format!("network {key} not found")))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    name: String,
    driver: String,
}

pub async fn create(state: State, body: Result<Bytes, BytesRejection>) -> ApiResult<Response> {
    let engine = state.0;
    let body: CreateBody = parse_body(&body_bytes(body)?)?;
    if !crate::ids::valid_name(&body.name) {
        return Err(ApiError::bad_request(format!(
            "invalid network name {:?}: use [a-zA-Z0-9][a-zA-Z0-9_.-]+",
            body.name
        )));
    }
    if !matches!(body.driver.as_str(), "" | "bridge") {
        return Err(ApiError::bad_request(format!(
            "network driver {:?}: keel has bridge networks",
            body.driver
        )));
    }
    if engine.networks.find(&body.name).is_some() || BUILTIN.iter().any(|(n, _)| *n == body.name) {
        return Err(ApiError::conflict(format!(
            "network with name {} already exists",
            body.name
        )));
    }
    let network = engine
        .networks
        .create(&body.name)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    engine.events.emit(
        "network",
        "create",
        &network.id,
        [("name".to_owned(), network.name.clone())].into(),
    );
    Ok(json(StatusCode::CREATED, &json!({"Id": network.id, "Warning": ""})))
}

async fn remove_network(engine: &Engine, network: &NetworkDef) -> ApiResult<()> {
    if network.name == DEFAULT {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("{DEFAULT} is a pre-defined network and cannot be removed"),
        ));
    }
    let in_use = engine.all().iter().any(|c| {
        let record = c.record();
        crate::network::Mode::of(record.host_config["NetworkMode"].as_str().unwrap_or_default())
            == crate::network::Mode::Bridge(network.name.clone())
    });
    if in_use {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "error while removing network: network {} id {} has active endpoints",
                network.name, network.id
            ),
        ));
    }
    engine
        .networks
        .remove(network)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    engine.events.emit(
        "network",
        "destroy",
        &network.id,
        [("name".to_owned(), network.name.clone())].into(),
    );
    Ok(())
}

pub async fn remove(state: State, Path(key): Path<String>) -> ApiResult<StatusCode> {
    let engine = state.0;
    if BUILTIN.iter().any(|(name, _)| *name == key) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("{key} is a pre-defined network and cannot be removed"),
        ));
    }
    let network = engine
        .networks
        .find(&key)
        .ok_or_else(|| ApiError::not_found(format!("network {key} not found")))?;
    remove_network(&engine, &network).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn prune(state: State) -> ApiResult<Response> {
    let engine = state.0;
    let mut deleted = Vec::new();
    for network in engine.networks.all() {
        if network.name != DEFAULT && remove_network(&engine, &network).await.is_ok() {
            deleted.push(network.name);
        }
    }
    Ok(json(StatusCode::OK, &json!({"NetworksDeleted": deleted})))
}
