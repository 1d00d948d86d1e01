//! `pull`: the conversation with a registry (OCI distribution spec). Ask for the manifest
//! (negotiating OCI or Docker formats); for a multi-platform index, pick this machine's
//! platform and ask again; fetch the config and the layers this store does not have yet, in
//! parallel, each checked against its digest; unpack; only then name the image.
//!
//! The command line shows progress with docker's lines and bars ([`PullProgress`]); a caller
//! that shows it its own way (the engine streams docker's JSON messages) passes a function
//! that receives each step as a [`PullEvent`] ([`pull_reporting`]).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use crate::digest::Digest;
use crate::reference::Reference;
use crate::registry::{host_platform, pick_platform, watching, Client, PullProgress, RegistryError, RegistryOptions};
use crate::store::images::Image;
use crate::store::{Store, StoreError};

/// Layers downloaded at once, as docker's default.
pub const PARALLEL_DOWNLOADS: usize = 3;

/// How often a download's progress is reported to a [`PullEvent`] receiver.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the manifest of {0} is not valid: {1}")]
    BadManifest(String, String),
}

/// One step of a pull, in the order docker reports them. `layer` is the short digest docker
/// shows (`bad46e9ee236`); sizes are the compressed bytes of the layer blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullEvent {
    /// The manifest is resolved (a missing image has failed before this): `id` is the tag
    /// (or digest) asked for, `repository` the path in the registry (`library/busybox`).
    Pulling {
        id: String,
        repository: String,
    },
    /// The store has this layer already (another image brought it).
    AlreadyExists {
        layer: String,
    },
    /// The layer is to be downloaded ("Pulling fs layer").
    Waiting {
        layer: String,
    },
    Downloading {
        layer: String,
        current: u64,
        total: u64,
    },
    /// Downloaded; its digest is checked ("Verifying Checksum").
    Verifying {
        layer: String,
    },
    /// Downloaded and checked ("Download complete").
    Downloaded {
        layer: String,
    },
    Extracting {
        layer: String,
        current: u64,
        total: u64,
    },
    /// Unpacked ("Pull complete").
    Complete {
        layer: String,
    },
    /// The digest of what the reference named (an index's, for a multi-platform image).
    Digest(Digest),
    /// The name now points at the image; `updated` is false when it already did.
    Tagged {
        updated: bool,
    },
}

/// Receives a pull's events, from the download threads too.
pub type PullEvents<'a> = &'a (dyn Fn(PullEvent) + Sync);

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
    (digest, size): (&Digest, u64),
    progress: &PullProgress,
    events: Option<PullEvents<'_>>,
) -> Result<(), PullError> {
    let bar = progress.layer(digest, size);
    let tmp: PathBuf = store.tmp_path("pull");
    match events {
        None => client.blob(reference, digest, size, &tmp, &bar)?,
        Some(events) => {
            let layer = digest.short().to_owned();
            // The client moves the bar along; a watcher reports where it is, now and then.
            let report = |current| {
                events(PullEvent::Downloading {
                    layer: layer.clone(),
                    current,
                    total: size,
                })
            };
            watching(&bar, PROGRESS_EVERY, report, || {
                client.blob(reference, digest, size, &tmp, &bar)
            })?;
            events(PullEvent::Downloading {
                layer: layer.clone(),
                current: size,
                total: size,
            });
            events(PullEvent::Verifying { layer: layer.clone() });
            events(PullEvent::Downloaded { layer });
        }
    }
    store.adopt_blob(&tmp, digest)?;
    progress.done(&bar, "Pull complete");
    Ok(())
}

/// Unpacks the image's layers one by one, lowest first, reporting each: the first `k`
/// layers of an image are an image too, so the store's unpacking does the work.
fn unpack_reporting(
    store: &Store,
    image: &Image,
    downloaded: &[Sized],
    events: PullEvents<'_>,
) -> Result<(), PullError> {
    let layers = image.manifest.layers().clone();
    let diff_ids = image.config.rootfs().diff_ids().clone();
    for count in 1..=layers.len() {
        let descriptor = &layers[count - 1];
        let digest: Option<Digest> = descriptor.digest().to_string().parse().ok();
        let reported = digest.filter(|d| downloaded.iter().any(|(blob, _)| blob == d));
        let mut lower = image.clone();
        lower.manifest.set_layers(layers[..count].to_vec());
        lower
            .config
            .rootfs_mut()
            .set_diff_ids(diff_ids.iter().take(count).cloned().collect());
        let Some(digest) = reported else {
            store.ensure_unpacked(&lower)?;
            continue;
        };
        let layer = digest.short().to_owned();
        let total = descriptor.size();
        events(PullEvent::Extracting {
            layer: layer.clone(),
            current: 0,
            total,
        });
        store.ensure_unpacked(&lower)?;
        events(PullEvent::Extracting {
            layer: layer.clone(),
            current: total,
            total,
        });
        events(PullEvent::Complete { layer });
    }
    Ok(())
}

/// Pulls `reference` into `store`; prints docker's status lines unless `quiet`.
pub fn pull(store: &Store, reference: &Reference, options: RegistryOptions, quiet: bool) -> Result<Image, PullError> {
    pull_with(store, reference, options, quiet, None)
}

/// Pulls `reference` into `store`, printing nothing: each step goes to `events` instead.
/// Errors that come before the first event mean that nothing was pulled at all (the
/// registry is unreachable, or has no such image).
pub fn pull_reporting(
    store: &Store,
    reference: &Reference,
    options: RegistryOptions,
    events: PullEvents<'_>,
) -> Result<Image, PullError> {
    pull_with(store, reference, options, true, Some(events))
}

// ANCHOR: pull
fn pull_with(
    store: &Store,
    reference: &Reference,
    options: RegistryOptions,
    quiet: bool,
    events: Option<PullEvents<'_>>,
) -> Result<Image, PullError> {
    let client = Client::new(options)?;
    let say = |line: String| {
        if !quiet {
            println!("{line}");
        }
    };
    let report = |event: PullEvent| {
        if let Some(events) = events {
            events(event);
        }
    };
    let id = reference.tag.as_deref().unwrap_or("latest");
    say(format!("{id}: Pulling from {}", reference.repository));
    let mut fetched = client.manifest(reference)?;
    let named_digest = fetched.digest.clone();
    if is_index(&fetched.media_type) {
        let (os, architecture) = host_platform();
        let digest = pick_platform(&fetched.bytes, os, architecture)?;
        fetched = client.manifest_by_digest(reference, &digest)?;
    }
    let (config, layers) = blobs_of(reference, &fetched.bytes)?;
    let id = match (&reference.tag, &reference.digest) {
        (None, Some(digest)) => digest.to_string(),
        _ => id.to_owned(),
    };
    report(PullEvent::Pulling {
        id,
        repository: reference.repository.clone(),
    });
    // Already this name's image: docker says so, and nothing is fetched.
    let current = store.index()?.images.get(&reference.to_string()).cloned();
    let up_to_date = current.as_deref() == Some(fetched.digest.to_string().as_str());
    let progress = PullProgress::new();
    // Layers this store already has (from another image) are not downloaded again.
    let missing: Vec<&(Digest, u64)> = layers.iter().filter(|(d, _)| !store.has_blob(d)).collect();
    for (digest, _) in layers.iter().filter(|(d, _)| store.has_blob(d)) {
        say(format!("{}: Already exists", digest.short()));
        if !up_to_date {
            report(PullEvent::AlreadyExists {
                layer: digest.short().to_owned(),
            });
        }
    }
    for (digest, _) in &missing {
        report(PullEvent::Waiting {
            layer: digest.short().to_owned(),
        });
    }
    std::thread::scope(|scope| -> Result<(), PullError> {
        for chunk in missing.chunks(PARALLEL_DOWNLOADS) {
            let handles: Vec<_> = chunk
                .iter()
                .map(|(digest, size)| {
                    scope.spawn(|| fetch_blob(&client, store, reference, (digest, *size), &progress, events))
                })
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
        fetch_blob(
            &client,
            store,
            reference,
            (&config.0, config.1),
            &PullProgress::hidden(),
            None,
        )?;
    }
    let manifest_digest = store.put_blob(&fetched.bytes)?;
    let image = store.image(&manifest_digest)?;
    match events {
        Some(events) => {
            let downloaded: Vec<Sized> = missing.into_iter().cloned().collect();
            unpack_reporting(store, &image, &downloaded, events)?;
        }
        None => {
            store.ensure_unpacked(&image)?;
        }
    }
    store.tag(reference, &manifest_digest)?;
    say(format!("Digest: {}", fetched.digest));
    say(format!("Status: Downloaded newer image for {}", reference.familiar()));
    report(PullEvent::Digest(named_digest));
    report(PullEvent::Tagged { updated: !up_to_date });
    Ok(image)
}
// ANCHOR_END: pull
