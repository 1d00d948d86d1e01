//! Imports: `POST /images/create?fromSrc=-`, a tar made an image with `changes=` applied.

use axum::body::Body;
use axum::response::Response;
use serde_json::json;
use std::io::Read;
use std::sync::Arc;

use super::super::body::body_reader;
use super::super::error::{ApiError, ApiResult};
use super::progress::{messages, status};
use super::transfer::discard;
use super::{exclusive, image_event, Params};
use crate::engine::Engine;
use step06_images::digest::{Digest, Hashing};
use step06_images::reference::Reference;
use step06_images::step05_overlay::step04_cgroups::step03_mount_ns::step02_pid_ns::step01_unshare;
use step06_images::store::images::Image;
use step06_images::store::{Store, StoreError};

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

/// An error about input the client sent (a tar, an archive): 400, unless the engine's
/// own disk failed.
fn input_error(error: StoreError) -> ApiError {
    match error {
        // The engine's disk, not the client's input: a server error.
        StoreError::Io(_) | StoreError::NoSpace { .. } => ApiError::internal(error),
        other => ApiError::bad_request(other.to_string()),
    }
}

/// `POST /images/create?fromSrc=-&repo=imported:v1`, the tar as the body: `{"status":"sha256:<id>"}`.
pub(super) async fn import(engine: &Arc<Engine>, source: &str, params: &Params, body: Body) -> ApiResult<Response> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
