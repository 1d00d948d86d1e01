//! Which manifest formats keel asks for, and what it got.
//!
//! One image name can resolve to four kinds of JSON: an OCI index or a Docker manifest list
//! (one manifest per platform), or an OCI manifest or a Docker schema 2 manifest (a config
//! and layers). The client lists all four in `Accept`; without that, a registry may fall
//! back to Docker's long-gone schema 1, which keel does not read.

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Everything keel reads, indexes first (the registry returns the index when there is one).
pub const SUPPORTED: [&str; 4] = [OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST];

/// Whether `media_type` lists manifests per platform (rather than being one image).
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

// ANCHOR: negotiate
/// The `Accept` header of a manifest request: every format keel reads.
pub fn accept() -> String {
    SUPPORTED.join(", ")
}

/// The media type of a fetched manifest: the `Content-Type` the registry sent, or, when
/// that says nothing (missing, `application/json`), the JSON's own `mediaType`, or, when
/// that is absent too (OCI made it optional at first), what the JSON's shape says.
/// `Err` carries the type that is not one keel reads.
pub fn media_type_of(content_type: Option<&str>, bytes: &[u8]) -> Result<String, String> {
    // "application/vnd.oci.image.index.v1+json; charset=utf-8" is still an index.
    let header = content_type
        .map(|value| value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .filter(|value| {
            !matches!(
                value.as_str(),
                "" | "application/json" | "text/plain" | "application/octet-stream"
            )
        });
    let chosen = header.or_else(|| {
        let json: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        if let Some(declared) = json["mediaType"].as_str() {
            return Some(declared.to_owned());
        }
        if json["manifests"].is_array() {
            Some(OCI_INDEX.to_owned())
        } else if json["config"].is_object() && json["layers"].is_array() {
            Some(OCI_MANIFEST.to_owned())
        } else {
            None
        }
    });
    match chosen {
        Some(media_type) if SUPPORTED.contains(&media_type.as_str()) => Ok(media_type),
        Some(other) => Err(other),
        None => Err(content_type.unwrap_or("none").to_owned()),
    }
}
// ANCHOR_END: negotiate

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::MediaType;

    #[test]
    fn the_constants_are_the_spec_names() {
        assert_eq!(MediaType::ImageIndex.to_string(), OCI_INDEX);
        assert_eq!(MediaType::ImageManifest.to_string(), OCI_MANIFEST);
    }

    #[test]
    fn accept_lists_all_four_formats() {
        let accept = accept();
        for media_type in [OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST] {
            assert!(accept.contains(media_type), "{accept} lacks {media_type}");
        }
        assert!(!accept.contains("v1+prettyjws"), "schema 1 is not asked for");
        assert_eq!(accept.split(", ").count(), 4);
    }

    #[test]
    fn the_content_type_wins_then_the_json() {
        assert_eq!(media_type_of(Some(DOCKER_MANIFEST), b"{}"), Ok(DOCKER_MANIFEST.into()));
        assert_eq!(
            media_type_of(Some(&format!("{OCI_INDEX}; charset=utf-8")), b"{}"),
            Ok(OCI_INDEX.into())
        );
        let docker_list = format!(r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_LIST}","manifests":[]}}"#);
        assert_eq!(
            media_type_of(Some("application/json"), docker_list.as_bytes()),
            Ok(DOCKER_MANIFEST_LIST.into())
        );
        assert_eq!(
            media_type_of(None, docker_list.as_bytes()),
            Ok(DOCKER_MANIFEST_LIST.into())
        );
        assert_eq!(
            media_type_of(None, br#"{"schemaVersion":2,"manifests":[]}"#),
            Ok(OCI_INDEX.into())
        );
        assert_eq!(
            media_type_of(None, br#"{"schemaVersion":2,"config":{},"layers":[]}"#),
            Ok(OCI_MANIFEST.into())
        );
    }

    #[test]
    fn other_formats_are_refused_by_name() {
        let schema1 = "application/vnd.docker.distribution.manifest.v1+prettyjws";
        assert_eq!(media_type_of(Some(schema1), b"{}"), Err(schema1.into()));
        assert_eq!(media_type_of(Some("text/html"), b"<html>"), Err("text/html".into()));
        assert_eq!(media_type_of(None, b"{}"), Err("none".into()));
        assert!(is_index(OCI_INDEX) && is_index(DOCKER_MANIFEST_LIST) && !is_index(OCI_MANIFEST));
    }
}
