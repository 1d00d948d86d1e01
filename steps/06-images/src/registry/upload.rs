//! The HTTP side of a push (OCI distribution spec, "Pushing blobs" and "Pushing manifests"):
//!
//! 1. `HEAD /v2/<repository>/blobs/<digest>`: a `200` means the registry has the blob
//!    already ("Layer already exists"), and nothing is sent.
//! 2. `POST /v2/<repository>/blobs/uploads/` opens an upload session; the answer's
//!    `Location` says where it lives (often relative, with state in its query).
//! 3. `PUT <location>?digest=<digest>` sends the whole blob in one request (the "monolithic"
//!    upload every registry takes); the registry checks the digest and answers `201`.
//! 4. `PUT /v2/<repository>/manifests/<tag>` with the manifest's own media type, once every
//!    blob it names is there. The registry answers with the digest it stored.
//!
//! Every request asks for a `pull,push` token: one challenge answered at the first request
//! serves the rest.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::StatusCode;

use super::client::{content_digest, Access, Target};
use super::{Client, RegistryError};
use crate::digest::Digest;
use crate::reference::Reference;

/// A file being sent, moving a bar along as its bytes go.
struct Counting {
    file: File,
    bar: indicatif::ProgressBar,
}

impl Read for Counting {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buffer)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

impl Client {
    /// Whether the repository has the blob `digest` already.
    pub fn has_blob(&self, reference: &Reference, digest: &Digest) -> Result<bool, RegistryError> {
        let url = format!("{}/blobs/{digest}", self.base(reference));
        let response = self.send(reference, Access::Push, || self.http.head(&url))?;
        match response.status() {
            status if status.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.failure(reference, response, Target::Blob(digest))),
        }
    }

    /// Uploads the file `path` as the blob `digest` of `size` bytes, moving `progress` along.
    pub fn upload_blob(
        &self,
        reference: &Reference,
        digest: &Digest,
        size: u64,
        path: &Path,
        progress: &indicatif::ProgressBar,
    ) -> Result<(), RegistryError> {
        let start = format!("{}/blobs/uploads/", self.base(reference));
        let response = self.send(reference, Access::Push, || {
            self.http.post(&start).header(CONTENT_LENGTH, "0")
        })?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(self.failure(reference, response, Target::Blob(digest)));
        }
        let bad_location = |detail: String| RegistryError::Http {
            what: format!("upload of blob {digest} to {}", reference.familiar_name()),
            status: response.status().to_string(),
            detail,
        };
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| bad_location(": no Location for the upload".to_owned()))?;
        // Relative to the URL that answered (after redirects), as HTTP says.
        let mut url = response
            .url()
            .join(location)
            .map_err(|e| bad_location(format!(": the upload Location {location:?} is not a URL: {e}")))?;
        url.query_pairs_mut().append_pair("digest", &digest.to_string());
        let io = |source| RegistryError::Io {
            what: format!("blob {digest}"),
            action: "read",
            path: path.to_owned(),
            source,
        };
        // Opened here to fail clearly; opened again for each attempt (a retry after a
        // challenge sends the body anew).
        File::open(path).map_err(io)?;
        let response = self.send(reference, Access::Push, || {
            let body: reqwest::blocking::Body = match File::open(path) {
                Ok(file) => {
                    progress.set_position(0);
                    let bar = progress.clone();
                    reqwest::blocking::Body::sized(Counting { file, bar }, size)
                }
                // Gone since the check above: an empty body, which the registry refuses
                // with a digest error.
                Err(_) => reqwest::blocking::Body::from(Vec::new()),
            };
            self.http
                .put(url.clone())
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(body)
        })?;
        if !response.status().is_success() {
            return Err(self.failure(reference, response, Target::Blob(digest)));
        }
        Ok(())
    }

    /// Puts the manifest `bytes` (of `media_type`) under the reference's tag; returns the
    /// digest of what was sent, which is what the tag now names.
    pub fn put_manifest(&self, reference: &Reference, media_type: &str, bytes: &[u8]) -> Result<Digest, RegistryError> {
        let tag = reference.manifest_reference();
        let url = format!("{}/manifests/{tag}", self.base(reference));
        let shown = format!("{}:{tag}", reference.familiar_name());
        let response = self.send(reference, Access::Push, || {
            self.http
                .put(&url)
                .header(CONTENT_TYPE, media_type)
                .body(bytes.to_vec())
        })?;
        if !response.status().is_success() {
            return Err(self.failure(reference, response, Target::Manifest(&shown)));
        }
        let digest = Digest::of(bytes);
        match content_digest(response.headers()) {
            Some(stored) if stored != digest => Err(RegistryError::DigestMismatch {
                what: "manifest",
                name: reference.familiar_name(),
                digest,
                got: stored,
            }),
            _ => Ok(digest),
        }
    }
}
