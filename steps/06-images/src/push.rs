//! `push`: a pull the other way round. The image a name resolves to in the store goes to
//! the registry as it is: each layer blob the registry does not have yet, then the config,
//! then the manifest's own bytes under the tag, so the digest the registry reports is the
//! one the store already knows. The store keeps every blob it pulled, imported or loaded,
//! so nothing is compressed or rebuilt on the way out.
//!
//! The command line prints docker's lines; a caller that shows progress its own way (the
//! engine streams docker's JSON messages) passes a function that receives each step as a
//! [`PushEvent`] ([`push_reporting`]).

use std::time::Duration;

use crate::digest::Digest;
use crate::reference::Reference;
use crate::registry::media::media_type_of;
use crate::registry::{watching, Client, PullProgress, RegistryError, RegistryOptions};
use crate::store::{Store, StoreError};

/// How often an upload's progress is reported to a [`PushEvent`] receiver.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// docker's own words for a name the store does not have.
    #[error("An image does not exist locally with the tag: {0}")]
    NoSuchImage(String),
    #[error("cannot push {0}: a digest names content, push a tag (docker push NAME:TAG)")]
    DigestReference(String),
    #[error("the manifest of {0} is not one a registry takes: {1}")]
    BadManifest(String, String),
}

/// One step of a push, in the order docker reports them. `layer` is the short digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushEvent {
    /// `The push refers to repository [localhost:5000/app]`.
    Refers {
        repository: String,
    },
    Preparing {
        layer: String,
    },
    /// The registry had this layer: nothing was sent ("Layer already exists").
    AlreadyExists {
        layer: String,
    },
    Pushing {
        layer: String,
        current: u64,
        total: u64,
    },
    Pushed {
        layer: String,
    },
    /// The tag names this manifest now: `v1: digest: sha256:… size: 527`.
    Digest {
        tag: String,
        digest: Digest,
        size: u64,
    },
}

/// Receives a push's events.
pub type PushEvents<'a> = &'a (dyn Fn(PushEvent) + Sync);

/// Pushes the image `reference` names in `store` to its registry; prints docker's lines.
pub fn push(store: &Store, reference: &Reference, options: RegistryOptions) -> Result<Digest, PushError> {
    push_with(store, reference, options, None)
}

/// Pushes, printing nothing: each step goes to `events`. An error before the first event
/// means nothing was sent (no such image here, a reference with a digest).
pub fn push_reporting(
    store: &Store,
    reference: &Reference,
    options: RegistryOptions,
    events: PushEvents<'_>,
) -> Result<Digest, PushError> {
    push_with(store, reference, options, Some(events))
}

// ANCHOR: push
fn push_with(
    store: &Store,
    reference: &Reference,
    options: RegistryOptions,
    events: Option<PushEvents<'_>>,
) -> Result<Digest, PushError> {
    let report = |event: PushEvent| match events {
        Some(events) => events(event),
        None => println!("{}", line(&event)),
    };
    if reference.digest.is_some() {
        return Err(PushError::DigestReference(reference.familiar()));
    }
    let image = match store.resolve(&reference.to_string()) {
        Ok((Some(_), image)) => image,
        Ok((None, _)) | Err(StoreError::UnknownImage(_)) => return Err(PushError::NoSuchImage(reference.familiar())),
        Err(other) => return Err(other.into()),
    };
    let manifest = store.read_blob(&image.manifest_digest)?;
    let media_type = media_type_of(None, &manifest).map_err(|t| PushError::BadManifest(reference.familiar(), t))?;
    let client = Client::new(options)?;
    report(PushEvent::Refers {
        repository: reference.name(),
    });
    let layers = image
        .layer_digests()?
        .into_iter()
        .zip(image.manifest.layers().iter().map(|l| l.size()));
    // Top layer first, as docker lists them.
    let layers: Vec<(Digest, u64)> = layers.rev().collect();
    for (digest, _) in &layers {
        report(PushEvent::Preparing {
            layer: digest.short().to_owned(),
        });
    }
    for (digest, size) in &layers {
        let layer = digest.short().to_owned();
        if client.has_blob(reference, digest)? {
            report(PushEvent::AlreadyExists { layer });
            continue;
        }
        upload(&client, store, reference, (digest, *size), events)?;
        report(PushEvent::Pushed { layer });
    }
    // The config is a blob like the layers, not shown (docker does not show it either).
    let config_size = image.manifest.config().size();
    if !client.has_blob(reference, &image.config_digest)? {
        upload(&client, store, reference, (&image.config_digest, config_size), None)?;
    }
    let digest = client.put_manifest(reference, &media_type, &manifest)?;
    report(PushEvent::Digest {
        tag: reference.manifest_reference(),
        digest: digest.clone(),
        size: manifest.len() as u64,
    });
    Ok(digest)
}
// ANCHOR_END: push

/// Sends one blob from the store, reporting its progress now and then when there is a
/// receiver (the client moves a bar along; a watcher reads it).
fn upload(
    client: &Client,
    store: &Store,
    reference: &Reference,
    (digest, size): (&Digest, u64),
    events: Option<PushEvents<'_>>,
) -> Result<(), PushError> {
    let path = store.blob_path(digest);
    if !store.has_blob(digest) {
        return Err(StoreError::MissingBlob(digest.clone()).into());
    }
    let bar = PullProgress::hidden().layer(digest, size);
    let Some(events) = events else {
        client.upload_blob(reference, digest, size, &path, &bar)?;
        return Ok(());
    };
    let layer = digest.short().to_owned();
    let report = |current| {
        events(PushEvent::Pushing {
            layer: layer.clone(),
            current,
            total: size,
        })
    };
    watching(&bar, PROGRESS_EVERY, report, || {
        client.upload_blob(reference, digest, size, &path, &bar)
    })?;
    events(PushEvent::Pushing {
        layer,
        current: size,
        total: size,
    });
    Ok(())
}

/// An event as the command line prints it: docker's words, without the bars.
fn line(event: &PushEvent) -> String {
    match event {
        PushEvent::Refers { repository } => format!("The push refers to repository [{repository}]"),
        PushEvent::Preparing { layer } => format!("{layer}: Preparing"),
        PushEvent::AlreadyExists { layer } => format!("{layer}: Layer already exists"),
        PushEvent::Pushing { layer, current, total } => format!("{layer}: Pushing {current}/{total}"),
        PushEvent::Pushed { layer } => format!("{layer}: Pushed"),
        PushEvent::Digest { tag, digest, size } => format!("{tag}: digest: {digest} size: {size}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_dockers() {
        let digest = Digest::of(b"manifest");
        assert_eq!(
            line(&PushEvent::Refers {
                repository: "localhost:5000/busybox".into()
            }),
            "The push refers to repository [localhost:5000/busybox]"
        );
        assert_eq!(
            line(&PushEvent::Digest {
                tag: "v1".into(),
                digest: digest.clone(),
                size: 527
            }),
            format!("v1: digest: {digest} size: 527")
        );
    }

    #[test]
    fn a_name_the_store_lacks_is_dockers_error_and_nothing_is_sent() {
        let root = tempfile::tempdir().expect("tempdir");
        let store = Store::open(root.path()).expect("store");
        let reference: Reference = "localhost:1/nothing:v1".parse().expect("reference");
        let error = push(&store, &reference, RegistryOptions::default()).expect_err("no such image");
        assert_eq!(
            error.to_string(),
            "An image does not exist locally with the tag: localhost:1/nothing:v1"
        );
        let pinned: Reference = format!("localhost:1/x@{}", Digest::of(b"x"))
            .parse()
            .expect("reference");
        assert!(matches!(
            push(&store, &pinned, RegistryOptions::default()),
            Err(PushError::DigestReference(_))
        ));
    }
}
