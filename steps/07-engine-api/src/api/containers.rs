//! Containers as records: create, list, inspect, rename, remove, prune, top, stats.

use axum::extract::rejection::BytesRejection;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::SystemTime;

use super::error::{body_bytes, json, parse_body, ApiError, ApiResult};
use super::query::{filters, flag, number, Query};
use super::State;
use crate::bundle::{self, BundleError, CreateBody};
use crate::engine::{Container, Engine};
use crate::ids;
use crate::record::{now_rfc3339, unix_seconds, ContainerDir, Record, State as RecordState, Status};

static CREATING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn name_conflict(name: &str, id: &str) -> ApiError {
    ApiError::conflict(format!(
        "Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
    ))
}

fn check_name(engine: &Engine, name: &str) -> ApiResult<()> {
    if !ids::valid_name(name) {
        return Err(ApiError::bad_request(format!(
            "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    match engine.name_in_use(name) {
        Some(id) => Err(name_conflict(name, &id)),
        None => Ok(()),
    }
}

// ANCHOR: create
/// `POST /containers/create`: a record and a bundle; nothing runs until start.
pub async fn create(state: State, query: Query, body: Result<Bytes, BytesRejection>) -> ApiResult<Response> {
    let engine = state.0;
    let raw: Value = parse_body(&body_bytes(body)?)?;
    let body: CreateBody = serde_json::from_value(raw.clone())
        .map_err(|e| ApiError::bad_request(format!("invalid container config: {e}")))?;
    if body.image.is_empty() {
        return Err(ApiError::bad_request("no image given (Config.Image is empty)"));
    }
    let given_name = query
        .get("name")
        .filter(|n| !n.is_empty())
        .map(|n| n.trim_start_matches('/').to_owned());
    if let Some(name) = &given_name {
        check_name(&engine, name)?;
    }
    check_network(&engine, &raw)?;
    check_labels(&raw)?;
    let id = ids::new_id();
    let dir = ContainerDir(Engine::containers_dir(&engine.root).join(&id));
    std::fs::create_dir_all(&dir.0).map_err(ApiError::internal)?;
    let hostname = if body.hostname.is_empty() {
        id[..12].to_owned()
    } else {
        body.hostname.clone()
    };
    let made = {
        let (root, dir, id, hostname) = (engine.root.clone(), dir.clone(), id.clone(), hostname.clone());
        tokio::task::spawn_blocking(move || bundle::make(&body, &id, &root, &dir, &hostname))
            .await
            .map_err(ApiError::internal)?
    };
    let made = match made {
        Ok(made) => made,
        Err(error) => {
            discard(&engine, &dir, &id);
            return Err(match error {
                BundleError::NoSuchImage(image) => ApiError::not_found(format!("No such image: {image}")),
                BundleError::BadRequest(message) => ApiError::bad_request(message),
                BundleError::Other(error) => ApiError::internal(format!("{error:#}")),
            });
        }
    };
    let mut config = raw.clone();
    if let Some(object) = config.as_object_mut() {
        object.remove("HostConfig");
        object.insert("Hostname".into(), json!(hostname));
        if object.get("Cmd").is_none_or(Value::is_null) {
            object.insert("Cmd".into(), json!(made.args.clone()));
        }
    }
    let _creating = CREATING.lock().await;
    let name = match given_name {
        Some(name) => {
            if let Some(other) = engine.name_in_use(&name) {
                discard(&engine, &dir, &id);
                return Err(name_conflict(&name, &other));
            }
            name
        }
        None => {
            // Past the 400 adjective_name pairs every create tries hundreds of names: look
            // them up in a set, not by a scan of every container each.
            let taken = engine.names_in_use();
            (0..)
                .map(|attempt| ids::generated_name(&id, attempt))
                .find(|n| !taken.contains(n))
                .unwrap_or_else(|| id[..12].to_owned())
        }
    };
    let record = Record {
        id: id.clone(),
        name,
        created: now_rfc3339(),
        image: raw["Image"].as_str().unwrap_or_default().to_owned(),
        image_id: made.image_id,
        path: made.path,
        args: made.args,
        config,
        host_config: host_config_with_defaults(raw.get("HostConfig")),
        state: RecordState::default(),
        restart_count: 0,
        network: None,
    };
    if let Err(error) = dir.save(&record) {
        discard(&engine, &dir, &id);
        return Err(ApiError::internal(error));
    }
    let container = engine.insert(dir, record);
    engine.event(&container, "create", &[]);
    Ok(json(StatusCode::CREATED, &json!({"Id": id, "Warnings": []})))
}
// ANCHOR_END: create

/// The HostConfig as sent, with what the engine decided filled in: clients read these back
/// (docker-py reads `LogConfig.Type` to know whether it can fetch logs).
fn host_config_with_defaults(sent: Option<&Value>) -> Value {
    let mut host_config = sent.filter(|v| v.is_object()).cloned().unwrap_or_else(|| json!({}));
    if host_config["LogConfig"]["Type"].as_str().unwrap_or_default().is_empty() {
        host_config["LogConfig"] = json!({"Type": "json-file", "Config": {}});
    }
    if host_config["NetworkMode"].as_str().unwrap_or_default().is_empty() {
        host_config["NetworkMode"] = json!("default");
    }
    host_config
}

/// Labels are kept as sent and listed back: docker's clients read them as strings, and one
/// number among them breaks `docker ps` for every container (found by fuzzing the API).
fn check_labels(raw: &Value) -> ApiResult<()> {
    match raw.get("Labels") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(labels)) if labels.values().all(Value::is_string) => Ok(()),
        Some(_) => Err(ApiError::bad_request(
            "invalid container config: Labels must be an object whose values are strings",
        )),
    }
}

/// The network exists and the published ports are free: refused at create, as docker's
/// conflicts are, before anything is made.
fn check_network(engine: &Engine, raw: &Value) -> ApiResult<()> {
    use crate::network::{ports, Mode};
    let host_config = &raw["HostConfig"];
    match Mode::of(host_config["NetworkMode"].as_str().unwrap_or_default()) {
        Mode::Bridge(name) if engine.networks.find(&name).is_none() => {
            // 400, not 404: a 404 on create makes the CLI try to pull the image.
            return Err(ApiError::bad_request(format!("network {name} not found")));
        }
        Mode::Container(name) => {
            engine.find(&name)?;
        }
        _ => {}
    }
    let wanted = ports::requested(raw, host_config).map_err(|e| ApiError::bad_request(e.to_string()))?;
    for port in wanted.iter().filter(|p| p.host_port != 0) {
        let taken_by_container = engine.all().iter().any(|other| {
            let record = other.record();
            ports::requested(&record.config, &record.host_config)
                .unwrap_or_default()
                .iter()
                .chain(record.network.iter().flat_map(|a| a.ports.iter()))
                .any(|p| p.clashes_with(port))
        });
        if taken_by_container || ports::in_use_on_host(port) {
            return Err(ApiError::conflict(format!(
                "Bind for {}:{} failed: port is already allocated",
                port.host_address(),
                port.host_port
            )));
        }
    }
    Ok(())
}

/// Undoes a create that failed half-way: nothing of it is left.
fn discard(engine: &Engine, dir: &ContainerDir, id: &str) {
    let _ = step06_images::step05_overlay::store::Store::new(&engine.root).remove(id);
    let _ = std::fs::remove_dir_all(&dir.0);
}

/// docker's `units.HumanDuration`: "Less than a second", "5 seconds", "About a minute"...
pub fn human_duration(seconds: u64) -> String {
    let minutes = seconds / 60;
    let hours = minutes / 60;
    match () {
        _ if seconds < 1 => "Less than a second".into(),
        _ if seconds == 1 => "1 second".into(),
        _ if seconds < 60 => format!("{seconds} seconds"),
        _ if minutes == 1 => "About a minute".into(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", hours / 24 / 365),
    }
}

fn since(rfc3339: Option<&str>) -> u64 {
    rfc3339
        .and_then(|t| humantime::parse_rfc3339(t).ok())
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map_or(0, |d| d.as_secs())
}

/// The STATUS column: `Up 5 seconds`, `Exited (3) 2 minutes ago`, `Created`.
pub fn status_text(record: &Record) -> String {
    let state = &record.state;
    match state.status {
        Status::Running | Status::Restarting => format!("Up {}", human_duration(since(state.started_at.as_deref()))),
        Status::Paused => format!("Up {} (Paused)", human_duration(since(state.started_at.as_deref()))),
        Status::Exited | Status::Dead => format!(
            "Exited ({}) {} ago",
            state.exit_code,
            human_duration(since(state.finished_at.as_deref()))
        ),
        Status::Created => "Created".into(),
        Status::Removing => "Removal In Progress".into(),
    }
}

fn command_text(record: &Record) -> String {
    std::iter::once(record.path.as_str())
        .chain(record.args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

fn network_mode(record: &Record) -> String {
    record.host_config["NetworkMode"]
        .as_str()
        .filter(|m| !m.is_empty())
        .unwrap_or("default")
        .to_owned()
}

fn summary(record: &Record) -> Value {
    json!({
        "Id": record.id,
        "Names": [format!("/{}", record.name)],
        "Image": record.image,
        "ImageID": record.image_id,
        "Command": command_text(record),
        "Created": unix_seconds(&record.created),
        "Ports": ports_list(record),
        "Labels": record.config.get("Labels").filter(|l| l.is_object()).cloned().unwrap_or_else(|| json!({})),
        "State": record.state.status.as_str(),
        "Status": status_text(record),
        "HostConfig": {"NetworkMode": network_mode(record)},
        "NetworkSettings": {"Networks": networks_of(record)},
        "Mounts": mounts(record),
    })
}

/// `docker ps`'s PORTS column: `127.0.0.1:8081->80/tcp`.
fn ports_list(record: &Record) -> Vec<Value> {
    record
        .network
        .iter()
        .flat_map(|a| a.ports.iter())
        .map(|p| {
            json!({"IP": p.host_address(), "PrivatePort": p.container_port, "PublicPort": p.host_port, "Type": p.proto})
        })
        .collect()
}

fn networks_of(record: &Record) -> Value {
    let mut networks = serde_json::Map::new();
    if let Some(a) = &record.network {
        networks.insert(
            a.network.clone(),
            json!({"IPAddress": a.address.to_string(), "Gateway": a.gateway.to_string(),
                   "IPPrefixLen": a.prefix, "MacAddress": ""}),
        );
    }
    Value::Object(networks)
}

/// `docker port`, `inspect`'s IP address.
fn network_settings(record: &Record) -> Value {
    let mut ports = serde_json::Map::new();
    for p in record.network.iter().flat_map(|a| a.ports.iter()) {
        let key = format!("{}/{}", p.container_port, p.proto);
        let entry = ports.entry(key).or_insert_with(|| json!([]));
        if let Some(list) = entry.as_array_mut() {
            list.push(json!({"HostIp": p.host_address(), "HostPort": p.host_port.to_string()}));
        }
    }
    let (address, gateway, prefix) = record
        .network
        .as_ref()
        .map(|a| (a.address.to_string(), a.gateway.to_string(), a.prefix))
        .unwrap_or_default();
    json!({"Ports": ports, "IPAddress": address, "Gateway": gateway, "IPPrefixLen": prefix,
           "MacAddress": "", "Networks": networks_of(record)})
}

fn mounts(record: &Record) -> Vec<Value> {
    let binds = record.host_config["Binds"].as_array().cloned().unwrap_or_default();
    binds
        .iter()
        .filter_map(Value::as_str)
        .filter_map(|bind| {
            let parts: Vec<&str> = bind.split(':').collect();
            let read_only = parts.get(2).is_some_and(|m| m.split(',').any(|o| o == "ro"));
            Some(
                json!({"Type": "bind", "Source": parts.first()?, "Destination": parts.get(1)?,
                "Mode": parts.get(2).unwrap_or(&""), "RW": !read_only, "Propagation": "rprivate"}),
            )
        })
        .collect()
}

fn matches_filters(record: &Record, filters: &std::collections::BTreeMap<String, Vec<String>>) -> bool {
    filters.iter().all(|(key, values)| {
        values.iter().any(|value| match key.as_str() {
            "status" => record.state.status.as_str() == value,
            "name" => record.name.contains(value.trim_start_matches('/')),
            "id" => record.id.starts_with(value),
            "ancestor" => record.image == *value || record.image_id.contains(value),
            "exited" => record.state.status == Status::Exited && record.state.exit_code.to_string() == *value,
            "label" => {
                let labels = &record.config["Labels"];
                match value.split_once('=') {
                    Some((k, v)) => labels[k].as_str() == Some(v),
                    None => labels.get(value).is_some(),
                }
            }
            _ => true,
        })
    })
}

/// `GET /containers/json`: `docker ps`.
pub async fn list(state: State, query: Query) -> ApiResult<Response> {
    let filters = filters(&query).map_err(ApiError::bad_request)?;
    let all = flag(&query, "all") || filters.contains_key("status") || filters.contains_key("exited");
    let limit: i64 = number(&query, "limit").unwrap_or(-1);
    let mut items = Vec::new();
    for container in state.0.all() {
        let record = container.record();
        if (!all && !record.running()) || !matches_filters(&record, &filters) {
            continue;
        }
        items.push(summary(&record));
        if limit > 0 && items.len() as i64 >= limit {
            break;
        }
    }
    Ok(json(StatusCode::OK, &items))
}

/// `GET /containers/{id}/json`: `docker inspect`.
pub async fn inspect(state: State, Path(id): Path<String>) -> ApiResult<Response> {
    let container = state.0.find(&id)?;
    Ok(json(StatusCode::OK, &details(&state.0, &container)))
}

pub fn details(engine: &Engine, container: &Container) -> Value {
    let record = container.record();
    let state = &record.state;
    let zero = "0001-01-01T00:00:00Z";
    json!({
        "Id": record.id,
        "Created": record.created,
        "Path": record.path,
        "Args": record.args,
        "State": {
            "Status": state.status.as_str(),
            "Running": record.running(),
            "Paused": state.status == Status::Paused,
            "Restarting": state.status == Status::Restarting,
            "OOMKilled": state.oom_killed,
            "Dead": state.status == Status::Dead,
            "Pid": state.pid,
            "ExitCode": state.exit_code,
            "Error": state.error,
            "StartedAt": state.started_at.as_deref().unwrap_or(zero),
            "FinishedAt": state.finished_at.as_deref().unwrap_or(zero),
        },
        "Image": record.image_id,
        "ResolvConfPath": container.dir.resolv_conf(),
        "HostnamePath": container.dir.hostname(),
        "HostsPath": container.dir.hosts(),
        "LogPath": container.dir.log(),
        "Name": format!("/{}", record.name),
        "RestartCount": record.restart_count,
        "Driver": "overlay",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": engine.execs.ids_of(&record.id),
        "HostConfig": record.host_config,
        "GraphDriver": {"Name": "overlay", "Data": {
            "MergedDir": engine.root.join("snapshots").join(&record.id).join("merged"),
            "UpperDir": engine.root.join("snapshots").join(&record.id).join("upper"),
            "WorkDir": engine.root.join("snapshots").join(&record.id).join("work")}},
        "Mounts": mounts(&record),
        "Config": record.config,
        "NetworkSettings": network_settings(&record),
    })
}

/// `POST /containers/{id}/rename?name=`.
pub async fn rename(state: State, Path(id): Path<String>, query: Query) -> ApiResult<StatusCode> {
    let engine = state.0;
    let container = engine.find(&id)?;
    let name = query
        .get("name")
        .map(|n| n.trim_start_matches('/').to_owned())
        .unwrap_or_default();
    let _creating = CREATING.lock().await;
    check_name(&engine, &name)?;
    let old = container
        .update(|record| std::mem::replace(&mut record.name, name))
        .map_err(ApiError::internal)?;
    engine.event(&container, "rename", &[("oldName", format!("/{old}"))]);
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /containers/{id}[?force=1]`.
pub async fn remove(state: State, Path(id): Path<String>, query: Query) -> ApiResult<StatusCode> {
    let engine = state.0;
    let container = engine.find(&id)?;
    let _operation = container.operation.lock().await;
    if container.record().running() {
        if !flag(&query, "force") {
            return Err(ApiError::conflict(format!(
                "You cannot remove a running container {}. Stop the container before attempting removal or force remove",
                container.id
            )));
        }
        super::lifecycle::kill_and_wait(&engine, &container, "KILL", std::time::Duration::from_secs(10)).await?;
    }
    if container.lifecycle.borrow().removed {
        return Ok(StatusCode::NO_CONTENT); // --rm got there first
    }
    engine
        .remove(&container)
        .await
        .map_err(|e| ApiError::internal(format!("{e:#}")))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /containers/prune`: every stopped container goes.
pub async fn prune(state: State) -> ApiResult<Response> {
    let engine = state.0;
    let mut deleted = Vec::new();
    for container in engine.all() {
        let _operation = container.operation.lock().await;
        if container.record().running() || container.lifecycle.borrow().removed {
            continue;
        }
        engine
            .remove(&container)
            .await
            .map_err(|e| ApiError::internal(format!("{e:#}")))?;
        deleted.push(container.id.clone());
    }
    Ok(json(
        StatusCode::OK,
        &json!({"ContainersDeleted": deleted, "SpaceReclaimed": 0}),
    ))
}

fn running(engine: &Engine, id: &str) -> ApiResult<Arc<Container>> {
    let container = engine.find(id)?;
    if !container.record().running() {
        return Err(ApiError::conflict(format!("Container {} is not running", container.id)));
    }
    Ok(container)
}

/// `GET /containers/{id}/top[?ps_args=]`: the runtime's `ps`, which lists the processes of
/// the container's cgroup from the host's `ps`.
pub async fn top(state: State, Path(id): Path<String>, query: Query) -> ApiResult<Response> {
    let engine = state.0;
    let container = running(&engine, &id)?;
    let mut args = vec!["ps".to_owned(), container.id.clone()];
    if let Some(ps_args) = query.get("ps_args").filter(|a| !a.is_empty()) {
        args.push("--".into());
        args.extend(ps_args.split_whitespace().map(str::to_owned));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = engine
        .runtime
        .output(&engine.runtime_log(&container), &args)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut lines = output.lines();
    let titles: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let processes: Vec<Vec<String>> = lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            // The last column (the command) may hold spaces: split the rest off the front.
            let mut fields: Vec<String> = Vec::new();
            let mut rest = line.trim_start();
            while fields.len() + 1 < titles.len() {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                fields.push(rest[..end].to_owned());
                rest = rest[end..].trim_start();
            }
            fields.push(rest.to_owned());
            fields
        })
        .collect();
    engine.event(&container, "top", &[]);
    Ok(json(StatusCode::OK, &json!({"Titles": titles, "Processes": processes})))
}

/// `GET /containers/{id}/stats?stream=0`: one sample (two reads, so CPU % has a delta).
pub async fn stats(state: State, Path(id): Path<String>) -> ApiResult<Response> {
    let engine = state.0;
    let container = engine.find(&id)?;
    let record = container.record();
    let sample = |engine: &Engine| crate::stats::cgroup_sample(engine, &record.id);
    let first = sample(&engine);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let second = sample(&engine);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = |s: &crate::stats::Sample| {
        json!({"cpu_usage": {"total_usage": s.cpu_ns, "usage_in_kernelmode": 0, "usage_in_usermode": s.cpu_ns},
               "system_cpu_usage": s.system_ns, "online_cpus": cpus, "throttling_data": {}})
    };
    Ok(json(
        StatusCode::OK,
        &json!({
            "read": now_rfc3339(),
            "preread": now_rfc3339(),
            "name": format!("/{}", record.name),
            "id": record.id,
            "pids_stats": {"current": second.pids},
            "num_procs": 0,
            "blkio_stats": {"io_service_bytes_recursive": []},
            "storage_stats": {},
            "cpu_stats": cpu(&second),
            "precpu_stats": cpu(&first),
            "memory_stats": {"usage": second.memory, "limit": second.memory_limit, "stats": {}},
            "networks": {},
        }),
    ))
}
