//! `pull`: the conversation with a registry (OCI distribution spec). Ask for the manifest
//! (negotiating OCI or Docker formats); for a multi-platform index, pick this machine's
//! platform and ask again; fetch the config and the layers this store does not have yet, in
//! parallel, each checked against its digest; unpack; only then name the image.

use std::io::IsTerminal;
use std::path::PathBuf;

use crate::digest::Digest;
use crate::reference::Reference;
use crate::registry::{host_platform, pick_platform, Client, PullProgress, RegistryError, RegistryOptions};
use crate::store::images::Image;
use crate::store::{Store, StoreError};

/// Layers downloaded at once, as docker's default.
pub const PARALLEL_DOWNLOADS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the manifest of {0} is not valid: {1}")]
    BadManifest(String, String),
}

fn is_index(media_type: &str) -> bool {
    media_type.contains("image.index") || media_type.contains("manifest.list")
}

/// A blob a manifest names, with the size it says it has.
type Sized = (Digest, u64);

/// The config and each layer, from a manifest's JSON.
fn blobs_of(reference: &Reference, bytes: &[u8]) -> Result<(Sized, Vec<Sized>), PullError> {
    let bad = |why: &str| PullError::BadManifest(reference.familiar(), why.to_owned());
    let manifest: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| bad(&e.to_string()))?;
    let descriptor = |d: &serde_json::Value| -> Result<(Digest, u64), PullError> {
        let digest = d["digest"]
            .as_str()
            .unwrap_or_default()
            .parse()
            .map_err(|_| bad("a digest is not sha256"))?;
        Ok((digest, d["size"].as_u64().unwrap_or(0)))
    };
    let config = descriptor(&manifest["config"])?;
    let layers = manifest["layers"].as_array().ok_or_else(|| bad("no layers"))?;
    Ok((config, layers.iter().map(descriptor).collect::<Result<_, _>>()?))
}

/// Downloads a blob into the store (checked twice: by the client, and by the store).
fn fetch_blob(
    client: &Client,
    store: &Store,
    reference: &Reference,
    digest: &Digest,
    size: u64,
    progress: &PullProgress,
) -> Result<(), PullError> {
    let bar = progress.layer(digest, size);
    let tmp: PathBuf = store.tmp_path("pull");
    client.blob(reference, digest, size, &tmp, &bar)?;
    store.adopt_blob(&tmp, digest)?;
    progress.done(&bar, "Pull complete");
    Ok(())
}

// ANCHOR: pull
/// Pulls `reference` into `store`; prints docker's status lines unless `quiet`.
pub fn pull(store: &Store, reference: &Reference, options: RegistryOptions, quiet: bool) -> Result<Image, PullError> {
    let client = Client::new(options)?;
    let say = |line: String| {
        if !quiet {
            println!("{line}");
        }
    };
    say(format!(
        "{}: Pulling from {}",
        reference.tag.as_deref().unwrap_or("latest"),
        reference.repository
    ));
    let mut fetched = client.manifest(reference)?;
    if is_index(&fetched.media_type) {
        let (os, architecture) = host_platform();
        let digest = pick_platform(&fetched.bytes, os, architecture)?;
        fetched = client.manifest_by_digest(reference, &digest)?;
    }
    let (config, layers) = blobs_of(reference, &fetched.bytes)?;
    let progress = PullProgress::new();
    // Layers this store already has (from another image) are not downloaded again.
    let missing: Vec<&(Digest, u64)> = layers.iter().filter(|(d, _)| !store.has_blob(d)).collect();
    for (digest, _) in layers.iter().filter(|(d, _)| store.has_blob(d)) {
        say(format!("{}: Already exists", digest.short()));
    }
    std::thread::scope(|scope| -> Result<(), PullError> {
        for chunk in missing.chunks(PARALLEL_DOWNLOADS) {
            let handles: Vec<_> = chunk
                .iter()
                .map(|(digest, size)| scope.spawn(|| fetch_blob(&client, store, reference, digest, *size, &progress)))
                .collect();
            for handle in handles {
                handle
                    .join()
                    .map_err(|_| PullError::BadManifest(reference.familiar(), "a download thread panicked".into()))??;
            }
            // Without a terminal there are no bars: say what docker says in a log.
            if !std::io::stderr().is_terminal() {
                for (digest, _) in chunk {
                    say(format!("{}: Pull complete", digest.short()));
                }
            }
        }
        Ok(())
    })?;
    if !store.has_blob(&config.0) {
        fetch_blob(&client, store, reference, &config.0, config.1, &PullProgress::hidden())?;
    }
    let manifest_digest = store.put_blob(&fetched.bytes)?;
    let image = store.image(&manifest_digest)?;
    store.ensure_unpacked(&image)?;
    store.tag(reference, &manifest_digest)?;
    say(format!("Digest: {}", fetched.digest));
    say(format!("Status: Downloaded newer image for {}", reference.familiar()));
    Ok(image)
}
// ANCHOR_END: pull
