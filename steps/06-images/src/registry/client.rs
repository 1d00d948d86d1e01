//! The HTTP side of a pull: one reqwest client (so connections are reused), the URLs of the
//! distribution API, authentication retries, and checking every byte against its digest.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::blocking::Response;
use reqwest::header::{HeaderMap, ACCEPT, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::StatusCode;

use super::auth::{self, Asker, AuthCache};
use super::error::{cause, is_tls, registry_errors, tls_fix};
use super::{media, Fetched, RegistryError, RegistryOptions};
use crate::digest::{Digest, Hashing};
use crate::reference::Reference;

pub const USER_AGENT: &str = "keel/0.1";

/// The largest manifest accepted: the distribution spec asks registries to take manifests of
/// at least 4 MiB, and a client need not read more (a registry could send endless bytes).
pub const MANIFEST_LIMIT: u64 = 4 * 1024 * 1024;

/// Error bodies are read only this far: the first messages are all that is shown.
const ERROR_BODY_LIMIT: u64 = 64 * 1024;

/// A client for the registries of one pull (or of many: it holds no per-image state besides
/// the tokens).
pub struct Client {
    pub(super) http: reqwest::blocking::Client,
    options: RegistryOptions,
    auth: AuthCache,
}

/// `https`, unless the registry was named with `--insecure-registry` (by the name in the
/// image reference or by the host actually reached).
pub(crate) fn scheme_for(reference: &Reference, insecure: &[String]) -> &'static str {
    let listed = |host: &str| {
        insecure.iter().any(|entry| {
            // Tolerate "http://localhost:5000/" for "localhost:5000".
            let entry = entry.trim();
            let entry = entry
                .strip_prefix("http://")
                .or_else(|| entry.strip_prefix("https://"))
                .unwrap_or(entry);
            entry.trim_end_matches('/').eq_ignore_ascii_case(host)
        })
    };
    if listed(&reference.domain) || listed(reference.registry_host()) {
        "http"
    } else {
        "https"
    }
}

/// At most `limit + 1` bytes of a body: enough to tell that it is longer than `limit`.
pub(crate) fn read_limited(response: Response, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    response.take(limit + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// `dest` + ".partial", removed when dropped unless kept: no half blob outlives an error.
struct Partial {
    path: PathBuf,
    keep: bool,
}

impl Partial {
    fn new(dest: &Path) -> Self {
        let mut path = dest.as_os_str().to_owned();
        path.push(".partial");
        Self {
            path: PathBuf::from(path),
            keep: false,
        }
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// What a client asks a registry for access to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    Pull,
    Push,
}

impl Access {
    /// The actions of a token's scope.
    fn actions(self) -> &'static str {
        match self {
            Access::Pull => "pull",
            Access::Push => "pull,push",
        }
    }
}

/// What a request was for, to say what failed.
pub(super) enum Target<'a> {
    /// The reference as shown: `localhost:5000/x:tag` or `...@sha256:...`.
    Manifest(&'a str),
    Blob(&'a Digest),
}

impl Client {
    /// A client with the options' CA certificate and insecure registries.
    pub fn new(options: RegistryOptions) -> Result<Self, RegistryError> {
        let mut builder = reqwest::blocking::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(30))
            // Registries send blobs to their storage (S3, a CDN) with a redirect; reqwest drops
            // the Authorization header when the redirect leaves the registry's host.
            .redirect(reqwest::redirect::Policy::limited(10));
        if let Some(path) = &options.ca_cert {
            let bad = |why: String| RegistryError::CaCert {
                path: path.clone(),
                why,
            };
            let pem = std::fs::read(path).map_err(|e| bad(cause(&e)))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(cause(&e)))?;
            if certificates.is_empty() {
                return Err(bad("no certificate in it (a PEM file is expected)".to_owned()));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder.build().map_err(|e| RegistryError::Client(cause(&e)))?;
        Ok(Self {
            http,
            options,
            auth: AuthCache::default(),
        })
    }

    /// `https://host/v2/<repository>`, the root of a repository's API.
    pub(super) fn base(&self, reference: &Reference) -> String {
        format!(
            "{}://{}/v2/{}",
            scheme_for(reference, &self.options.insecure),
            reference.registry_host(),
            reference.repository
        )
    }

    /// A GET, answering one authentication challenge if the registry asks.
    fn get(&self, reference: &Reference, url: &str, accept: Option<&str>) -> Result<Response, RegistryError> {
        self.send(reference, Access::Pull, || {
            let request = self.http.get(url);
            match accept {
                Some(accept) => request.header(ACCEPT, accept),
                None => request,
            }
        })
    }

    /// A request made by `build` (called again for the retry, so a body can be made anew),
    /// answering one authentication challenge if the registry asks.
    pub(super) fn send(
        &self,
        reference: &Reference,
        access: Access,
        build: impl Fn() -> reqwest::blocking::RequestBuilder,
    ) -> Result<Response, RegistryError> {
        // Pull and push tokens are kept apart: a pull token does not allow a push.
        let key = format!(
            "{}/{}#{}",
            reference.registry_host(),
            reference.repository,
            access.actions()
        );
        let credentials = self.options.credentials.as_ref();
        let send = |answer: Option<&auth::Auth>| {
            auth::apply(build(), answer, credentials)
                .send()
                .map_err(|e| self.unreachable(reference, &e))
        };
        // The cached answer first: after the manifest, every blob request needs it.
        let response = send(self.auth.get(&key).as_ref())?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        // No answer yet, or an expired token: answer this challenge and try once more.
        let challenges = challenges(response.headers());
        let name = reference.familiar_name();
        let asker = Asker {
            http: &self.http,
            credentials,
            name: &name,
            repository: &reference.repository,
            actions: access.actions(),
        };
        let answer = auth::answer(&asker, &challenges)?;
        self.auth.put(&key, answer.clone());
        send(Some(&answer))
    }

    fn unreachable(&self, reference: &Reference, error: &reqwest::Error) -> RegistryError {
        let host = reference.registry_host().to_owned();
        let secure = scheme_for(reference, &self.options.insecure) == "https";
        if secure && error.is_connect() && is_tls(error) {
            let why = cause(error);
            let fix = tls_fix(&reference.domain, &why);
            return RegistryError::Tls { host, why, fix };
        }
        let hint = if secure {
            format!(
                " (is it running? for plain HTTP use --insecure-registry {})",
                reference.domain
            )
        } else {
            " (is it running?)".to_owned()
        };
        RegistryError::Unreachable {
            host,
            why: cause(error),
            hint,
        }
    }

    /// The error for an answer that is not a success.
    pub(super) fn failure(&self, reference: &Reference, response: Response, target: Target<'_>) -> RegistryError {
        let name = reference.familiar_name();
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return match &self.options.credentials {
                Some((user, _)) => RegistryError::Denied {
                    name,
                    user: user.clone(),
                },
                None => RegistryError::Unauthorized { name },
            };
        }
        let body = read_limited(response, ERROR_BODY_LIMIT).unwrap_or_default();
        let (codes, detail) = registry_errors(&body);
        if status == StatusCode::NOT_FOUND {
            if codes.iter().any(|c| c == "NAME_UNKNOWN") {
                return RegistryError::RepositoryUnknown { name };
            }
            return match target {
                Target::Manifest(shown) => RegistryError::ManifestUnknown {
                    reference: shown.to_owned(),
                },
                Target::Blob(digest) => RegistryError::BlobUnknown {
                    name,
                    digest: digest.clone(),
                },
            };
        }
        let what = match target {
            Target::Manifest(shown) => shown.to_owned(),
            Target::Blob(digest) => format!("blob {digest} from {name}"),
        };
        let speaks_https = String::from_utf8_lossy(&body).contains("HTTPS server");
        let detail = if status == StatusCode::BAD_REQUEST && speaks_https {
            // Go's answer to plain HTTP on a TLS port: "Client sent an HTTP request to an HTTPS server."
            format!(": it speaks HTTPS (drop --insecure-registry {})", reference.domain)
        } else if status == StatusCode::TOO_MANY_REQUESTS {
            format!("{detail} (the pull rate limit: wait, or give --user USER:PASSWORD)")
        } else {
            detail
        };
        RegistryError::Http {
            what,
            status: status.to_string(),
            detail,
        }
    }

    /// GET /v2/<repository>/manifests/<tag or digest>.
    pub fn manifest(&self, reference: &Reference) -> Result<Fetched, RegistryError> {
        self.fetch_manifest(reference, &reference.manifest_reference(), reference.digest.as_ref())
    }

    /// The manifest `digest` in the same repository (one platform's, from an index).
    pub fn manifest_by_digest(&self, reference: &Reference, digest: &Digest) -> Result<Fetched, RegistryError> {
        self.fetch_manifest(reference, &digest.to_string(), Some(digest))
    }

    fn fetch_manifest(
        &self,
        reference: &Reference,
        tag_or_digest: &str,
        expected: Option<&Digest>,
    ) -> Result<Fetched, RegistryError> {
        let name = reference.familiar_name();
        let shown = match expected {
            Some(digest) => format!("{name}@{digest}"),
            None => format!("{name}:{tag_or_digest}"),
        };
        let url = format!("{}/manifests/{tag_or_digest}", self.base(reference));
        let response = self.get(reference, &url, Some(&media::accept()))?;
        if !response.status().is_success() {
            return Err(self.failure(reference, response, Target::Manifest(&shown)));
        }
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let announced = content_digest(response.headers());
        let bytes = read_limited(response, MANIFEST_LIMIT).map_err(|e| RegistryError::Download {
            what: shown.clone(),
            why: cause(&e),
        })?;
        if bytes.len() as u64 > MANIFEST_LIMIT {
            return Err(RegistryError::ManifestTooLarge {
                reference: shown,
                limit: MANIFEST_LIMIT,
            });
        }
        let digest = Digest::of(&bytes);
        // A digest reference is a promise about the bytes: check it, whatever the registry says.
        for claimed in expected.into_iter().chain(announced.as_ref()) {
            if *claimed != digest {
                return Err(RegistryError::DigestMismatch {
                    what: "manifest",
                    name,
                    digest: claimed.clone(),
                    got: digest,
                });
            }
        }
        let media_type = media::media_type_of(content_type.as_deref(), &bytes).map_err(|media_type| {
            RegistryError::UnsupportedMediaType {
                reference: shown,
                media_type,
            }
        })?;
        Ok(Fetched {
            media_type,
            bytes,
            digest,
        })
    }

    /// GET /v2/<repository>/blobs/<digest> into `dest`, checked against `digest` and `size`.
    pub fn blob(
        &self,
        reference: &Reference,
        digest: &Digest,
        size: u64,
        dest: &Path,
        progress: &indicatif::ProgressBar,
    ) -> Result<(), RegistryError> {
        let name = reference.familiar_name();
        let url = format!("{}/blobs/{digest}", self.base(reference));
        let response = self.get(reference, &url, None)?;
        if !response.status().is_success() {
            return Err(self.failure(reference, response, Target::Blob(digest)));
        }
        let size_mismatch = |got: String| RegistryError::SizeMismatch {
            name: name.clone(),
            digest: digest.clone(),
            expected: size,
            got,
        };
        if let Some(length) = response.content_length() {
            if length != size {
                return Err(size_mismatch(length.to_string()));
            }
        }
        let partial = Partial::new(dest);
        let what = format!("blob {digest} from {name}");
        let io = |action: &'static str| {
            let (what, path) = (what.clone(), partial.path.clone());
            move |source| RegistryError::Io {
                what,
                action,
                path,
                source,
            }
        };
        let file = File::create(&partial.path).map_err(io("create"))?;
        let mut writer = Hashing::new(BufWriter::new(file));
        // One byte more than promised is enough to know the blob is too big.
        let mut body = response.take(size + 1);
        let mut buffer = vec![0u8; 64 * 1024];
        progress.set_message("Downloading");
        loop {
            let n = match body.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(RegistryError::Download {
                        what: what.clone(),
                        why: cause(&e),
                    })
                }
            };
            writer.write_all(&buffer[..n]).map_err(io("write"))?;
            progress.inc(n as u64);
        }
        let (got, count, writer) = writer.finish();
        if count != size {
            return Err(size_mismatch(if count > size {
                format!("more than {size}")
            } else {
                count.to_string()
            }));
        }
        if got != *digest {
            return Err(RegistryError::DigestMismatch {
                what: "blob",
                name,
                digest: digest.clone(),
                got,
            });
        }
        let file = writer.into_inner().map_err(|e| io("write")(e.into_error()))?;
        // On disk before it gets its name: a crash must not leave a named, empty blob.
        file.sync_all().map_err(io("sync"))?;
        drop(file);
        std::fs::rename(&partial.path, dest).map_err(|source| RegistryError::Io {
            what,
            action: "rename to",
            path: dest.to_owned(),
            source,
        })?;
        let mut partial = partial;
        partial.keep = true;
        Ok(())
    }
}

/// The digest a registry says it has for a manifest (`Docker-Content-Digest`). Only sha256
/// can be checked; another algorithm is left to the digest computed from the bytes.
pub(super) fn content_digest(headers: &HeaderMap) -> Option<Digest> {
    headers
        .get("Docker-Content-Digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<Digest>().ok())
}

/// The `WWW-Authenticate` values of an answer (a registry may send several).
fn challenges(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(text: &str) -> Reference {
        text.parse().expect("reference")
    }

    #[test]
    fn plain_http_only_for_insecure_registries() {
        let insecure = vec!["localhost:5000".to_owned(), "http://Registry.Example:8080/".to_owned()];
        assert_eq!(scheme_for(&reference("localhost:5000/x"), &insecure), "http");
        assert_eq!(scheme_for(&reference("registry.example:8080/a/b"), &insecure), "http");
        assert_eq!(scheme_for(&reference("localhost:5001/x"), &insecure), "https");
        assert_eq!(scheme_for(&reference("localhost/x"), &insecure), "https");
        assert_eq!(scheme_for(&reference("busybox"), &insecure), "https");
        assert_eq!(scheme_for(&reference("localhost:5000/x"), &[]), "https");
    }

    #[test]
    fn urls_follow_the_distribution_api() {
        let client = Client::new(RegistryOptions {
            insecure: vec!["localhost:5000".into()],
            ..Default::default()
        })
        .expect("client");
        assert_eq!(
            client.base(&reference("localhost:5000/a/b:1")),
            "http://localhost:5000/v2/a/b"
        );
        // Docker Hub's API is on another host than its name, and official images are library/.
        assert_eq!(
            client.base(&reference("busybox")),
            "https://registry-1.docker.io/v2/library/busybox"
        );
    }

    #[test]
    fn the_partial_file_is_next_to_the_destination_and_goes_away() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("blob");
        let partial = Partial::new(&dest);
        assert_eq!(partial.path, dir.path().join("blob.partial"));
        std::fs::write(&partial.path, b"half").expect("write");
        drop(partial);
        assert!(!dir.path().join("blob.partial").exists());
    }

    #[test]
    fn a_missing_ca_certificate_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("ca.pem");
        let options = RegistryOptions {
            ca_cert: Some(missing.clone()),
            ..Default::default()
        };
        let e = Client::new(options).err().expect("no file");
        assert!(
            e.to_string()
                .starts_with(&format!("CA certificate {}: ", missing.display())),
            "{e}"
        );
        std::fs::write(&missing, b"not pem").expect("write");
        let options = RegistryOptions {
            ca_cert: Some(missing),
            ..Default::default()
        };
        let e = Client::new(options).err().expect("not pem");
        assert!(e.to_string().contains("no certificate"), "{e}");
    }

    #[test]
    fn nothing_listening_is_unreachable_with_the_fix() {
        // A port that was free a moment ago: the connection is refused at once, on 127.0.0.1.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let host = format!("127.0.0.1:{port}");
        let client = Client::new(RegistryOptions::default()).expect("client");
        let e = client
            .manifest(&reference(&format!("{host}/x:1")))
            .expect_err("refused");
        assert_eq!(
            e.to_string(),
            format!("cannot reach registry {host}: connection refused (is it running? for plain HTTP use --insecure-registry {host})")
        );
        let client = Client::new(RegistryOptions {
            insecure: vec![host.clone()],
            ..Default::default()
        })
        .expect("client");
        let e = client
            .manifest(&reference(&format!("{host}/x:1")))
            .expect_err("refused");
        assert_eq!(
            e.to_string(),
            format!("cannot reach registry {host}: connection refused (is it running?)")
        );
    }
}
