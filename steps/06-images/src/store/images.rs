//! Images in the store: a name (or id) resolves to a manifest, which names a config and
//! layers. Removing an image untags it; blobs and unpacked layers go once no image (and no
//! container snapshot) needs them.

use oci_spec::image::{ImageConfiguration, ImageManifest};
use std::collections::BTreeSet;
use std::path::PathBuf;

use super::{Store, StoreError};
use crate::digest::Digest;
use crate::reference::Reference;

#[derive(Debug, Clone)]
pub struct Image {
    pub manifest_digest: Digest,
    pub manifest: ImageManifest,
    pub config_digest: Digest,
    pub config: ImageConfiguration,
}

impl Image {
    /// docker's image id: the config's digest.
    pub fn id(&self) -> &Digest {
        &self.config_digest
    }

    /// The compressed size of its layers, as `docker images` shows.
    pub fn size(&self) -> u64 {
        self.manifest.layers().iter().map(|l| l.size()).sum()
    }

    /// The layers' diff ids (digests of the uncompressed tars), lowest first.
    pub fn diff_ids(&self) -> Result<Vec<Digest>, StoreError> {
        self.config
            .rootfs()
            .diff_ids()
            .iter()
            .map(|d| d.parse().map_err(|_| unsupported("diff id", d)))
            .collect()
    }

    /// The layer blobs' digests, lowest first.
    pub fn layer_digests(&self) -> Result<Vec<Digest>, StoreError> {
        self.manifest
            .layers()
            .iter()
            .map(|l| {
                l.digest()
                    .to_string()
                    .parse()
                    .map_err(|_| unsupported("layer digest", l.digest().as_ref()))
            })
            .collect()
    }
}

fn unsupported(what: &'static str, detail: &str) -> StoreError {
    StoreError::Unsupported {
        what,
        detail: detail.to_owned(),
    }
}

impl Store {
    /// The image whose manifest is `digest`, config included, both checked.
    pub fn image(&self, digest: &Digest) -> Result<Image, StoreError> {
        let bytes = self.read_blob(digest)?;
        let manifest: ImageManifest = serde_json::from_slice(&bytes).map_err(|source| StoreError::BadJson {
            what: "manifest",
            digest: digest.clone(),
            error: source,
        })?;
        let config_digest: Digest = manifest
            .config()
            .digest()
            .to_string()
            .parse()
            .map_err(|_| unsupported("config digest", manifest.config().digest().as_ref()))?;
        let config_bytes = self.read_blob(&config_digest)?;
        let config: ImageConfiguration =
            serde_json::from_slice(&config_bytes).map_err(|source| StoreError::BadJson {
                what: "image config",
                digest: config_digest.clone(),
                error: source,
            })?;
        Ok(Image {
            manifest_digest: digest.clone(),
            manifest,
            config_digest,
            config,
        })
    }

    /// Resolves what a user typed: a name (`busybox`, `localhost:5000/x:1`), a full image id
    /// (`sha256:...`) or a prefix of one (at least 4 hex digits).
    pub fn resolve(&self, text: &str) -> Result<(Option<Reference>, Image), StoreError> {
        let index = self.index()?;
        let parsed = text.parse::<Reference>();
        if let Ok(reference) = &parsed {
            if let Some(digest) = index.images.get(&reference.to_string()) {
                let digest = digest.parse().map_err(|_| unsupported("manifest digest", digest))?;
                return Ok((Some(reference.clone()), self.image(&digest)?));
            }
        }
        let hex = text.strip_prefix("sha256:").unwrap_or(text);
        if hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            for (name, digest) in &index.images {
                let Ok(digest) = digest.parse::<Digest>() else { continue };
                let image = self.image(&digest)?;
                if image.id().hex().starts_with(hex) {
                    return Ok((name.parse().ok(), image));
                }
            }
        }
        // Neither a known name nor an id: say why when it is not even a valid name.
        parsed?;
        Err(StoreError::UnknownImage(text.to_owned()))
    }

    /// Every name with its image, sorted by name.
    pub fn list(&self) -> Result<Vec<(Reference, Image)>, StoreError> {
        let index = self.index()?;
        let mut images = Vec::new();
        for (name, digest) in &index.images {
            let (Ok(reference), Ok(digest)) = (name.parse::<Reference>(), digest.parse::<Digest>()) else {
                continue;
            };
            images.push((reference, self.image(&digest)?));
        }
        Ok(images)
    }

    /// The unpacked layer dirs that container snapshots (running or kept) are built on.
    fn layers_in_use(&self) -> BTreeSet<PathBuf> {
        let snapshots = step05_overlay::store::Store::new(self.root());
        let ids = snapshots.list().unwrap_or_default();
        ids.iter()
            .filter_map(|id| snapshots.get(id).ok())
            .filter_map(|s| s.layers().ok())
            .flatten()
            .collect()
    }

    /// `rmi`: untags the name (or every name of an id); unless `force`, refuses while a
    /// container snapshot uses its layers. Returns docker's lines (`Untagged: ...`,
    /// `Deleted: ...`).
    pub fn remove_image(&self, text: &str, force: bool) -> Result<Vec<String>, StoreError> {
        let (name, image) = self.resolve(text)?;
        if !force {
            let in_use = self.layers_in_use();
            let dirs: Vec<PathBuf> = image.diff_ids()?.iter().map(|d| self.layer_dir(d)).collect();
            if dirs.iter().any(|d| in_use.contains(d)) {
                let snapshots = step05_overlay::store::Store::new(self.root())
                    .list()
                    .unwrap_or_default();
                return Err(StoreError::InUse(text.to_owned(), snapshots.join(", ")));
            }
        }
        let untagged = self.update_index(|index| {
            let names: Vec<String> = match &name {
                Some(reference) => vec![reference.to_string()],
                None => index
                    .images
                    .iter()
                    .filter(|(_, d)| **d == image.manifest_digest.to_string())
                    .map(|(n, _)| n.clone())
                    .collect(),
            };
            for n in &names {
                index.images.remove(n);
            }
            Ok(names)
        })?;
        let mut lines: Vec<String> = untagged
            .iter()
            .map(|n| {
                format!(
                    "Untagged: {}",
                    n.parse::<Reference>().map(|r| r.familiar()).unwrap_or(n.clone())
                )
            })
            .collect();
        self.collect_garbage()?;
        // Like docker: the image is deleted once its last name is gone.
        if !self.has_blob(&image.manifest_digest) {
            lines.push(format!("Deleted: {}", image.id()));
        }
        Ok(lines)
    }

    /// Removes blobs and unpacked layers that no named image needs and no snapshot uses;
    /// returns the removed manifest and config digests.
    pub fn collect_garbage(&self) -> Result<Vec<Digest>, StoreError> {
        let mut needed_blobs = BTreeSet::new();
        let mut needed_layers = self.layers_in_use();
        for (_, image) in self.list()? {
            needed_blobs.insert(image.manifest_digest.clone());
            needed_blobs.insert(image.config_digest.clone());
            needed_blobs.extend(image.layer_digests()?);
            needed_layers.extend(image.diff_ids()?.iter().map(|d| self.layer_dir(d)));
        }
        let mut removed = Vec::new();
        for digest in self.blob_digests() {
            if !needed_blobs.contains(&digest) {
                if self.image(&digest).is_ok() {
                    removed.push(digest.clone());
                }
                let _ = std::fs::remove_file(self.blob_path(&digest));
            }
        }
        for dir in self.layer_dirs() {
            if !needed_layers.contains(&dir) {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        Ok(removed)
    }
}
