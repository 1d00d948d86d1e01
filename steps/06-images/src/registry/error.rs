//! What can go wrong talking to a registry, each said in one line that names the registry,
//! the repository or the digest, and the fix when there is one.

use std::path::PathBuf;

use crate::digest::Digest;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Nothing answered (refused, no route, DNS, timeout). `hint` is the advice that fits.
    #[error("cannot reach registry {host}: {why}{hint}")]
    Unreachable { host: String, why: String, hint: String },

    /// The TLS handshake failed: a self-signed certificate, or a plain HTTP registry.
    /// `fix` is the advice that fits ([`tls_fix`]).
    #[error("cannot reach registry {host} over HTTPS: {why} ({fix})")]
    Tls { host: String, why: String, fix: String },

    /// A 401 and no credentials to answer it with.
    #[error("{name}: unauthorized: give --user USER:PASSWORD")]
    Unauthorized { name: String },

    /// A 401 (or 403) even with the credentials given.
    #[error("{name}: unauthorized: the registry refused user {user:?} (check --user USER:PASSWORD)")]
    Denied { name: String, user: String },

    /// The challenge in `WWW-Authenticate` cannot be answered.
    #[error("{name}: cannot authenticate: {why}")]
    BadChallenge { name: String, why: String },

    /// The token endpoint (`realm`) did not give a token.
    #[error("{name}: cannot get a token from {realm}: {why}")]
    Token { name: String, realm: String, why: String },

    #[error("{reference}: manifest unknown")]
    ManifestUnknown { reference: String },

    #[error("{name}: repository unknown (check the name)")]
    RepositoryUnknown { name: String },

    #[error("blob {digest} from {name}: blob unknown")]
    BlobUnknown { name: String, digest: Digest },

    /// Any other answer than the ones above; `detail` is the registry's own error text.
    #[error("{what}: the registry answered {status}{detail}")]
    Http {
        what: String,
        status: String,
        detail: String,
    },

    /// `what` is "blob" or "manifest".
    #[error("{what} {digest} from {name} does not match its digest (got {got})")]
    DigestMismatch {
        what: &'static str,
        name: String,
        digest: Digest,
        got: Digest,
    },

    #[error("blob {digest} from {name} is {got} bytes, not the {expected} its descriptor says")]
    SizeMismatch {
        name: String,
        digest: Digest,
        expected: u64,
        got: String,
    },

    #[error("{reference}: the manifest is larger than {limit} bytes")]
    ManifestTooLarge { reference: String, limit: u64 },

    #[error(
        "{reference}: unsupported media type {media_type:?} (keel reads OCI images and indexes, \
         Docker schema 2 manifests and manifest lists)"
    )]
    UnsupportedMediaType { reference: String, media_type: String },

    #[error("no manifest for platform {wanted} in the index (it offers {offered})")]
    NoPlatform { wanted: String, offered: String },

    #[error("the index is not valid: {0}")]
    BadIndex(String),

    /// The connection broke while reading an answer.
    #[error("{what}: the download broke off: {why}")]
    Download { what: String, why: String },

    /// Storing a download failed (a full disk, most often): `what` names the blob, `path`
    /// the file, so the message says which disk to free.
    #[error("{what}: cannot {action} {path}: {source}")]
    Io {
        what: String,
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("CA certificate {path}: {why}")]
    CaCert { path: PathBuf, why: String },

    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
}

/// The innermost cause of a reqwest error, as a short lower-case phrase: reqwest's own
/// message ("error sending request for url (...)") says nothing the user can act on.
pub(crate) fn cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost: &(dyn std::error::Error + 'static) = error;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    if let Some(io) = innermost.downcast_ref::<std::io::Error>() {
        match io.kind() {
            std::io::ErrorKind::ConnectionRefused => return "connection refused".to_owned(),
            std::io::ErrorKind::TimedOut => return "timed out".to_owned(),
            _ => {}
        }
    }
    if error
        .downcast_ref::<reqwest::Error>()
        .is_some_and(reqwest::Error::is_timeout)
    {
        return "timed out".to_owned();
    }
    let text = innermost.to_string();
    // "Connection reset by peer (os error 104)": the errno adds nothing for a reader.
    let text = match text.find(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_owned(),
        _ => text,
    };
    lower_first(&text)
}

fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Whether a failed connection failed in the TLS handshake (rather than reaching nobody).
pub(crate) fn is_tls(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        let text = e.to_string().to_lowercase();
        // rustls' words for a certificate it does not trust, and for an answer that is not
        // TLS at all (a plain HTTP server).
        if [
            "certificate",
            "tls",
            "handshake",
            "corrupt message",
            "invalidcontenttype",
        ]
        .iter()
        .any(|word| text.contains(word))
        {
            return true;
        }
        current = e.source();
    }
    false
}

/// What to do about a failed TLS handshake with `host`, given rustls' reason.
pub(crate) fn tls_fix(host: &str, why: &str) -> String {
    if why.contains("CaUsedAsEndEntity") {
        // Go's TLS (docker's) accepts a self-signed CA certificate as a server's own; rustls
        // does not, and `openssl req -x509` makes exactly that unless told otherwise.
        return "the registry's certificate is a CA certificate (CA:TRUE) used as its own, which is refused: \
                make it with -addext basicConstraints=critical,CA:FALSE, or sign it with a separate CA"
            .to_owned();
    }
    format!("for a self-signed certificate give --ca-cert FILE; for plain HTTP use --insecure-registry {host}")
}

/// The messages in a registry's error body (`{"errors":[{"code":..,"message":..}]}`), and
/// the codes, for telling "manifest unknown" from "repository unknown".
pub(crate) fn registry_errors(body: &[u8]) -> (Vec<String>, String) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (Vec::new(), String::new());
    };
    let errors = value["errors"].as_array().cloned().unwrap_or_default();
    let codes = errors
        .iter()
        .filter_map(|e| e["code"].as_str().map(str::to_owned))
        .collect();
    let messages: Vec<String> = errors
        .iter()
        .filter_map(|e| e["message"].as_str().map(str::to_owned))
        .filter(|m| !m.is_empty())
        .collect();
    let detail = if messages.is_empty() {
        String::new()
    } else {
        format!(": {}", messages.join("; "))
    };
    (codes, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(fill: char) -> Digest {
        format!("sha256:{}", fill.to_string().repeat(64))
            .parse()
            .expect("digest")
    }

    #[test]
    fn messages_name_the_thing_and_the_fix() {
        let e = RegistryError::Unreachable {
            host: "localhost:5999".into(),
            why: "connection refused".into(),
            hint: " (is it running? for plain HTTP use --insecure-registry localhost:5999)".into(),
        };
        assert_eq!(
            e.to_string(),
            "cannot reach registry localhost:5999: connection refused (is it running? for plain HTTP use \
             --insecure-registry localhost:5999)"
        );
        let e = RegistryError::Unauthorized {
            name: "localhost:5000/x".into(),
        };
        assert_eq!(
            e.to_string(),
            "localhost:5000/x: unauthorized: give --user USER:PASSWORD"
        );
        let e = RegistryError::ManifestUnknown {
            reference: "localhost:5000/x:nope".into(),
        };
        assert_eq!(e.to_string(), "localhost:5000/x:nope: manifest unknown");
        let e = RegistryError::DigestMismatch {
            what: "blob",
            name: "localhost:5000/x".into(),
            digest: digest('a'),
            got: digest('b'),
        };
        assert_eq!(
            e.to_string(),
            format!(
                "blob {} from localhost:5000/x does not match its digest (got {})",
                digest('a'),
                digest('b')
            )
        );
        let e = RegistryError::SizeMismatch {
            name: "localhost:5000/x".into(),
            digest: digest('a'),
            expected: 10,
            got: "12".into(),
        };
        assert!(
            e.to_string().ends_with("is 12 bytes, not the 10 its descriptor says"),
            "{e}"
        );
        let e = RegistryError::NoPlatform {
            wanted: "linux/amd64".into(),
            offered: "linux/arm64, linux/arm/v7".into(),
        };
        assert_eq!(
            e.to_string(),
            "no manifest for platform linux/amd64 in the index (it offers linux/arm64, linux/arm/v7)"
        );
        let e = RegistryError::Tls {
            host: "127.0.0.1:5000".into(),
            why: "invalid peer certificate: UnknownIssuer".into(),
            fix: tls_fix("127.0.0.1:5000", "invalid peer certificate: UnknownIssuer"),
        };
        assert!(e.to_string().contains("--ca-cert FILE"), "{e}");
        assert!(e.to_string().contains("--insecure-registry 127.0.0.1:5000"), "{e}");
        let why = "invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))";
        assert!(tls_fix("h", why).contains("basicConstraints=critical,CA:FALSE"));
        for e in [
            RegistryError::UnsupportedMediaType {
                reference: "x:1".into(),
                media_type: "text/html".into(),
            },
            RegistryError::BlobUnknown {
                name: "x".into(),
                digest: digest('c'),
            },
        ] {
            let text = e.to_string();
            assert!(
                !text.contains('\n') && text.starts_with(|c: char| !c.is_uppercase()),
                "{text}"
            );
        }
    }

    #[test]
    fn registry_error_bodies_give_codes_and_messages() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"nope"}}]}"#;
        let (codes, detail) = registry_errors(body);
        assert_eq!(codes, ["MANIFEST_UNKNOWN"]);
        assert_eq!(detail, ": manifest unknown");
        assert_eq!(registry_errors(b"<html>oops</html>"), (Vec::new(), String::new()));
    }
}
