//! `save` and `load`: images as one tar file, in the format `docker save` writes since
//! Docker 25: an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/...`) plus
//! Docker's `manifest.json`, so that `docker load`, `skopeo` and keel all read it. `load`
//! also reads the older Docker format (`<id>/layer.tar`, `<id>.json`, symlinked layers).
//!
//! An archive is hostile input like a layer: entries are unpacked into a scratch directory
//! only when their names are plain relative paths, and every blob is checked against its
//! digest before it enters the store.

use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use crate::digest::Digest;
use crate::import::assemble;
use crate::reference::Reference;
use crate::registry::{host_platform, pick_platform};
use crate::store::{io, Store, StoreError};

fn bad(detail: impl Into<String>) -> StoreError {
    StoreError::Unsupported {
        what: "archive",
        detail: detail.into(),
    }
}

// ANCHOR: save
/// Writes `images` (names as typed) to `out` as one tar.
pub fn save(store: &Store, names: &[String], out: impl Write) -> Result<(), StoreError> {
    let mut tar = tar::Builder::new(out);
    let mut blobs = std::collections::BTreeSet::new();
    let mut index = Vec::new();
    let mut docker = Vec::new();
    for name in names {
        let (reference, image) = store.resolve(name)?;
        let layers = image.layer_digests()?;
        blobs.insert(image.manifest_digest.clone());
        blobs.insert(image.config_digest.clone());
        blobs.extend(layers.iter().cloned());
        let size = std::fs::metadata(store.blob_path(&image.manifest_digest)).map_or(0, |m| m.len());
        let mut annotations = json!({});
        if let Some(reference) = &reference {
            annotations["io.containerd.image.name"] = json!(reference.to_string());
            annotations["org.opencontainers.image.ref.name"] = json!(reference.tag.clone().unwrap_or_default());
        }
        index.push(json!({
            "mediaType": crate::import::MEDIA_MANIFEST,
            "digest": image.manifest_digest.to_string(),
            "size": size,
            "annotations": annotations,
        }));
        docker.push(json!({
            "Config": format!("blobs/sha256/{}", image.config_digest.hex()),
            "RepoTags": reference.iter().map(|r| r.familiar()).collect::<Vec<_>>(),
            "Layers": layers.iter().map(|l| format!("blobs/sha256/{}", l.hex())).collect::<Vec<_>>(),
        }));
    }
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": index});
    let layout = json!({"imageLayoutVersion": "1.0.0"});
    let encode = |v: &serde_json::Value| serde_json::to_vec(v).unwrap_or_default();
    let wrote = |e: std::io::Error| StoreError::from(io("writing", Path::new("the archive"))(e));
    append(&mut tar, "oci-layout", &encode(&layout)).map_err(wrote)?;
    append(&mut tar, "index.json", &encode(&index)).map_err(wrote)?;
    append(&mut tar, "manifest.json", &encode(&json!(docker))).map_err(wrote)?;
    for blob in blobs {
        let path = store.blob_path(&blob);
        tar.append_path_with_name(&path, format!("blobs/sha256/{}", blob.hex()))
            .map_err(wrote)?;
    }
    tar.into_inner().and_then(|mut out| out.flush()).map_err(wrote)
}
// ANCHOR_END: save

fn append(tar: &mut tar::Builder<impl Write>, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    tar.append_data(&mut header, name, bytes)
}

/// A plain relative path inside the archive, or `None`.
fn safe_name(path: &Path) -> Option<PathBuf> {
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!clean.as_os_str().is_empty()).then_some(clean)
}

/// Unpacks the archive's files (and links between them) into `dir`.
fn extract(archive: impl Read, dir: &Path) -> Result<(), StoreError> {
    let mut tar = tar::Archive::new(archive);
    let mut links = Vec::new();
    let read_error = |e: std::io::Error| bad(format!("reading the archive: {e}"));
    for entry in tar.entries().map_err(read_error)? {
        let mut entry = entry.map_err(read_error)?;
        let raw = entry.path().map_err(read_error)?.into_owned();
        let name = safe_name(&raw).ok_or_else(|| bad(format!("entry {raw:?} is not a plain relative path")))?;
        let target = dir.join(&name);
        match entry.header().entry_type() {
            tar::EntryType::Directory => std::fs::create_dir_all(&target).map_err(io("creating", &target))?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(io("creating", parent))?;
                }
                let mut file = std::fs::File::create(&target).map_err(io("creating", &target))?;
                std::io::copy(&mut entry, &mut file).map_err(io("writing", &target))?;
            }
            // Old `docker save` links duplicate layers: resolve them once all files are out.
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let link = entry.link_name().map_err(read_error)?.unwrap_or_default().into_owned();
                let base = if entry.header().entry_type() == tar::EntryType::Symlink {
                    name.parent().unwrap_or(Path::new("")).join(&link)
                } else {
                    link.clone()
                };
                let resolved =
                    normalize(&base).ok_or_else(|| bad(format!("link {raw:?} -> {link:?} leaves the archive")))?;
                links.push((target, dir.join(resolved)));
            }
            other => return Err(bad(format!("entry {raw:?} has an unexpected type {other:?}"))),
        }
    }
    for (link, target) in links {
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent).map_err(io("creating", parent))?;
        }
        std::fs::hard_link(&target, &link).map_err(io("linking", &link))?;
    }
    Ok(())
}

/// `a/b/../c` as `a/c`; `None` when `..` climbs above the start.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            _ => return None,
        }
    }
    Some(parts.iter().collect())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn read_json<T: for<'a> Deserialize<'a>>(path: &Path) -> Result<T, StoreError> {
    let bytes = std::fs::read(path).map_err(io("reading", path))?;
    serde_json::from_slice(&bytes).map_err(|e| bad(format!("{}: {e}", path.display())))
}

/// Moves a file of the extracted archive into the store; returns its digest.
fn store_file(store: &Store, dir: &Path, name: &str, expected: Option<&Digest>) -> Result<Digest, StoreError> {
    let path =
        dir.join(safe_name(Path::new(name)).ok_or_else(|| bad(format!("{name:?} is not a plain relative path")))?);
    let file = std::fs::File::open(&path).map_err(io("reading", &path))?;
    let (digest, _) = store.put_blob_from(file)?;
    if let Some(expected) = expected {
        if &digest != expected {
            let _ = std::fs::remove_file(store.blob_path(&digest));
            return Err(StoreError::DigestMismatch {
                expected: expected.clone(),
                actual: digest,
            });
        }
    }
    Ok(digest)
}

/// The digest a blob's path names (`blobs/sha256/<hex>`), when it names one.
fn named_digest(name: &str) -> Option<Digest> {
    let hex = name.strip_prefix("blobs/sha256/")?;
    format!("sha256:{hex}").parse().ok()
}

// ANCHOR: load
/// Loads every image of an archive; returns docker's lines (`Loaded image: busybox:latest`).
pub fn load(store: &Store, archive: impl Read) -> Result<Vec<String>, StoreError> {
    let dir = store.tmp_path("load");
    std::fs::create_dir(&dir).map_err(io("creating", &dir))?;
    let result = extract(archive, &dir).and_then(|()| load_extracted(store, &dir));
    let _ = std::fs::remove_dir_all(&dir);
    if result.is_err() {
        let _ = store.collect_garbage();
    }
    result
}
// ANCHOR_END: load

fn load_extracted(store: &Store, dir: &Path) -> Result<Vec<String>, StoreError> {
    let mut lines = Vec::new();
    if dir.join("manifest.json").is_file() {
        let entries: Vec<DockerEntry> = read_json(&dir.join("manifest.json"))?;
        for entry in entries {
            let config_path = dir.join(safe_name(Path::new(&entry.config)).ok_or_else(|| bad("config path"))?);
            let config = std::fs::read(&config_path).map_err(io("reading", &config_path))?;
            if let Some(expected) = named_digest(&entry.config) {
                if Digest::of(&config) != expected {
                    return Err(StoreError::DigestMismatch {
                        expected,
                        actual: Digest::of(&config),
                    });
                }
            }
            let mut layers = Vec::new();
            for layer in &entry.layers {
                layers.push(store_file(store, dir, layer, named_digest(layer).as_ref())?);
            }
            let tags: Vec<Reference> = entry
                .repo_tags
                .unwrap_or_default()
                .iter()
                .map(|t| t.parse())
                .collect::<Result<_, _>>()?;
            let image = assemble(store, &config, &layers, tags.first())?;
            for tag in tags.iter().skip(1) {
                store.tag(tag, &image.manifest_digest)?;
            }
            if tags.is_empty() {
                lines.push(format!("Loaded image ID: {}", image.id()));
            }
            lines.extend(tags.iter().map(|t| format!("Loaded image: {}", t.familiar())));
        }
        return Ok(lines);
    }
    if dir.join("oci-layout").is_file() && dir.join("index.json").is_file() {
        return load_oci_layout(store, dir);
    }
    Err(bad(
        "neither manifest.json (docker save) nor oci-layout with index.json (OCI image layout) is in it",
    ))
}

#[derive(Deserialize)]
struct LayoutIndex {
    manifests: Vec<LayoutDescriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayoutDescriptor {
    digest: String,
    #[serde(default)]
    media_type: String,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

fn load_oci_layout(store: &Store, dir: &Path) -> Result<Vec<String>, StoreError> {
    let index: LayoutIndex = read_json(&dir.join("index.json"))?;
    let mut lines = Vec::new();
    for descriptor in index.manifests {
        let mut digest: Digest = descriptor
            .digest
            .parse()
            .map_err(|_| bad("a manifest digest in index.json"))?;
        let blob = |d: &Digest| store_file(store, dir, &format!("blobs/sha256/{}", d.hex()), Some(d));
        blob(&digest)?;
        // A multi-platform index: take this machine's platform.
        if descriptor.media_type.contains("index") || descriptor.media_type.contains("manifest.list") {
            let (os, arch) = host_platform();
            digest = pick_platform(&store.read_blob(&digest)?, os, arch).map_err(|e| bad(e.to_string()))?;
            blob(&digest)?;
        }
        let manifest: serde_json::Value =
            serde_json::from_slice(&store.read_blob(&digest)?).map_err(|e| bad(format!("manifest {digest}: {e}")))?;
        let config: Digest = manifest["config"]["digest"]
            .as_str()
            .unwrap_or_default()
            .parse()
            .map_err(|_| bad("config digest"))?;
        blob(&config)?;
        for layer in manifest["layers"].as_array().into_iter().flatten() {
            let layer: Digest = layer["digest"]
                .as_str()
                .unwrap_or_default()
                .parse()
                .map_err(|_| bad("layer digest"))?;
            blob(&layer)?;
        }
        let image = store.image(&digest)?;
        store.ensure_unpacked(&image)?;
        let name = descriptor
            .annotations
            .get("io.containerd.image.name")
            .or_else(|| descriptor.annotations.get("org.opencontainers.image.ref.name"))
            .and_then(|n| n.parse::<Reference>().ok());
        match name {
            Some(reference) => {
                store.tag(&reference, &digest)?;
                lines.push(format!("Loaded image: {}", reference.familiar()));
            }
            None => lines.push(format!("Loaded image ID: {}", image.id())),
        }
    }
    Ok(lines)
}
