//! `import`: a root filesystem tarball becomes a one-layer image, as `docker import` does.
//! The image's config and manifest are written by us; the layer is stored as given (gzip or
//! plain tar) and unpacked (with every hostile-input check) before the name is tagged.

use serde_json::json;
use std::io::Read;

use crate::digest::Digest;
use crate::reference::Reference;
use crate::registry::host_platform;
use crate::store::images::Image;
use crate::store::{io, Store, StoreError};
use crate::unpack::decompress;

pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MEDIA_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// RFC 3339 for "now", without a date crate: seconds since the epoch, turned into UTC.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// The diff id of a stored layer blob: the digest of its uncompressed tar.
fn diff_id_of(store: &Store, blob: &Digest) -> Result<Digest, StoreError> {
    let path = store.blob_path(blob);
    let file = std::fs::File::open(&path).map_err(io("reading", &path))?;
    let tar = decompress(file).map_err(|e| StoreError::Unsupported {
        what: "layer",
        detail: e.to_string(),
    })?;
    let mut hashing = crate::digest::Hashing::new(tar);
    std::io::copy(&mut hashing, &mut std::io::sink()).map_err(io("reading", &path))?;
    Ok(hashing.finish().0)
}

fn is_gzip(store: &Store, blob: &Digest) -> bool {
    let mut magic = [0u8; 2];
    std::fs::File::open(store.blob_path(blob))
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| magic == [0x1f, 0x8b])
}

fn layer_descriptor(store: &Store, blob: &Digest) -> serde_json::Value {
    let size = std::fs::metadata(store.blob_path(blob)).map_or(0, |m| m.len());
    let media = if is_gzip(store, blob) {
        MEDIA_LAYER_GZIP
    } else {
        MEDIA_LAYER
    };
    json!({"mediaType": media, "digest": blob.to_string(), "size": size})
}

/// Writes the manifest for a stored config and stored layers (lowest first), checks that
/// the image unpacks, and tags it. Nothing is named until every layer unpacked cleanly.
pub fn assemble(
    store: &Store,
    config_bytes: &[u8],
    layers: &[Digest],
    reference: Option<&Reference>,
) -> Result<Image, StoreError> {
    let config_digest = store.put_blob(config_bytes)?;
    let descriptors: Vec<_> = layers.iter().map(|blob| layer_descriptor(store, blob)).collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest.to_string(), "size": config_bytes.len()},
        "layers": descriptors,
    });
    let manifest_bytes = serde_json::to_vec(&manifest).map_err(|e| io("encoding", store.root())(e.into()))?;
    let manifest_digest = store.put_blob(&manifest_bytes)?;
    let image = store.image(&manifest_digest)?;
    store.ensure_unpacked(&image)?;
    if let Some(reference) = reference {
        store.tag(reference, &manifest_digest)?;
    }
    Ok(image)
}

/// Stores a config for an image made of `layers` (blob digests, lowest first), with `cmd`
/// as its default command, and assembles it under `reference`.
pub fn create_image(
    store: &Store,
    layers: &[Digest],
    reference: &Reference,
    cmd: Option<Vec<String>>,
    history: &str,
) -> Result<Image, StoreError> {
    let mut diff_ids = Vec::new();
    for blob in layers {
        diff_ids.push(diff_id_of(store, blob)?.to_string());
    }
    let (os, architecture) = host_platform();
    let created = now_rfc3339();
    let mut config = json!({
        "Env": [format!("PATH={}", step05_overlay::step04_cgroups::step03_mount_ns::step02_pid_ns::step01_unshare::exec::DEFAULT_PATH)],
    });
    if let Some(cmd) = cmd {
        config["Cmd"] = json!(cmd);
    }
    let image_config = json!({
        "created": created,
        "architecture": architecture,
        "os": os,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": created, "created_by": history}],
    });
    let config_bytes = serde_json::to_vec(&image_config).map_err(|e| io("encoding", store.root())(e.into()))?;
    assemble(store, &config_bytes, layers, Some(reference))
}

/// `import TAR REF`: a rootfs tarball (plain or gzip) as a one-layer image.
pub fn import(
    store: &Store,
    tarball: impl Read,
    reference: &Reference,
    cmd: Option<Vec<String>>,
) -> Result<Image, StoreError> {
    let (blob, _) = store.put_blob_from(tarball)?;
    let result = create_image(store, &[blob], reference, cmd, "keel import");
    if result.is_err() {
        let _ = store.collect_garbage();
    }
    result
}

#[cfg(test)]
mod tests {
    #[test]
    fn now_is_an_rfc3339_utc_time() {
        let now = super::now_rfc3339();
        assert_eq!(now.len(), 20, "{now}");
        assert!(
            now.starts_with("20") && now.ends_with('Z') && now.as_bytes()[10] == b'T',
            "{now}"
        );
    }
}
