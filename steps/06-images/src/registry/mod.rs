//! A blocking client for the OCI distribution spec: what `pull` and `push` say to a registry.
//!
//! The conversation, for `localhost:5000/app:1`:
//!
//! 1. `GET /v2/app/manifests/1` with `Accept` listing the four manifest formats keel reads
//!    (OCI index and manifest, Docker manifest list and schema 2 manifest). The answer's
//!    `Content-Type` says which one came back; `Docker-Content-Digest` says its digest, which
//!    the client checks against the bytes.
//! 2. The registry may answer `401` with a challenge in `WWW-Authenticate`. For `Bearer`, the
//!    client fetches a token for `repository:app:pull` from the challenge's realm (with the
//!    user's password when given) and asks again with `Authorization: Bearer`; for `Basic`
//!    it sends the password itself. The answer is kept per repository for the next requests.
//! 3. An index lists one manifest per platform: the caller picks this machine's
//!    ([`pick_platform`]) and asks for that manifest by digest.
//! 4. The manifest names a config and layers by digest and size: `GET /v2/app/blobs/<digest>`
//!    for each (often redirected to storage elsewhere), streamed to a file, and kept only if
//!    the bytes hash to the digest and count the size.
//!
//! Plain HTTP is used only for registries named with `--insecure-registry`, as docker does.
//!
//! A push (`upload.rs`) is the same conversation the other way round: blobs the registry
//! lacks, each in one `PUT`, then the manifest, with a `pull,push` token.

pub mod auth;
mod client;
mod error;
pub mod media;
pub mod platform;
mod progress;
mod upload;

use std::path::PathBuf;

pub use client::{Client, MANIFEST_LIMIT, USER_AGENT};
pub use error::RegistryError;
pub use platform::{host_platform, pick_platform};
pub use progress::{watching, PullProgress};

use crate::digest::Digest;

/// How to reach registries: the flags of `keel pull`.
#[derive(Clone, Default)]
pub struct RegistryOptions {
    /// Registries (host[:port]) to reach over plain HTTP instead of HTTPS (docker's --insecure-registry).
    pub insecure: Vec<String>,
    /// Extra CA certificate (PEM file) to trust, e.g. a registry's self-signed one.
    pub ca_cert: Option<PathBuf>,
    /// user, password for basic auth (sent directly on a Basic challenge, or to the token endpoint on a Bearer challenge).
    pub credentials: Option<(String, String)>,
}

// By hand, so that a debug print never shows the password.
impl std::fmt::Debug for RegistryOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryOptions")
            .field("insecure", &self.insecure)
            .field("ca_cert", &self.ca_cert)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|(user, _)| (user, "<hidden>")),
            )
            .finish()
    }
}

/// A manifest (or index) as the registry sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// One of [`media::SUPPORTED`].
    pub media_type: String,
    pub bytes: Vec<u8>,
    /// The digest of `bytes` (checked against the reference's and the registry's).
    pub digest: Digest,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_password() {
        let options = RegistryOptions {
            credentials: Some(("keel".into(), "s3cret".into())),
            ..Default::default()
        };
        let shown = format!("{options:?}");
        assert!(shown.contains("keel") && !shown.contains("s3cret"), "{shown}");
    }
}
