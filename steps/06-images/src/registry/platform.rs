//! Choosing this machine's image from a multi-platform index.
//!
//! An OCI index and a Docker manifest list have the same shape: `manifests`, each a
//! descriptor with a `platform` (`os`, `architecture`, maybe `variant`). Entries whose
//! platform is `unknown/unknown` are not images (buildx puts its attestations there).

use serde::Deserialize;

use super::RegistryError;
use crate::digest::Digest;

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    digest: String,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    variant: Option<String>,
}

impl Platform {
    fn name(&self) -> String {
        match &self.variant {
            Some(variant) if !variant.is_empty() => format!("{}/{}/{variant}", self.os, self.architecture),
            _ => format!("{}/{}", self.os, self.architecture),
        }
    }
}

/// The variant an architecture means when none is named (as containerd normalises them).
fn default_variant(architecture: &str) -> Option<&'static str> {
    match architecture {
        "arm64" => Some("v8"),
        "arm" => Some("v7"),
        _ => None,
    }
}

/// This machine's platform in OCI's names (Rust's `x86_64` is OCI's `amd64`).
pub fn host_platform() -> (&'static str, &'static str) {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    };
    ("linux", architecture)
}

// ANCHOR: pick_platform
/// The digest of the manifest for `os`/`architecture` in an index (OCI or Docker list).
/// `architecture` may name a variant (`arm/v6`); without one, an entry without a variant or
/// with the architecture's usual one is preferred. An index of a single entry without any
/// platform (as some OCI layouts are) is taken as it is.
pub fn pick_platform(index_bytes: &[u8], os: &str, architecture: &str) -> Result<Digest, RegistryError> {
    let index: Index = serde_json::from_slice(index_bytes).map_err(|e| RegistryError::BadIndex(e.to_string()))?;
    let (architecture, variant) = match architecture.split_once('/') {
        Some((architecture, variant)) => (architecture, Some(variant)),
        None => (architecture, None),
    };
    let parse = |entry: &Entry| {
        entry
            .digest
            .parse::<Digest>()
            .map_err(|e| RegistryError::BadIndex(e.to_string()))
    };
    if let [only] = index.manifests.as_slice() {
        if only.platform.is_none() {
            return parse(only);
        }
    }
    let candidates: Vec<(&Entry, &Platform)> = index
        .manifests
        .iter()
        .filter_map(|entry| entry.platform.as_ref().map(|platform| (entry, platform)))
        .filter(|(_, platform)| platform.os == os && platform.architecture == architecture)
        .collect();
    let entry_variant = |platform: &Platform| platform.variant.clone().filter(|v| !v.is_empty());
    let chosen = match variant {
        Some(wanted) => candidates
            .iter()
            .find(|(_, p)| entry_variant(p).as_deref() == Some(wanted))
            .or_else(|| {
                // Asking for the usual variant also accepts an entry that names none.
                (default_variant(architecture) == Some(wanted))
                    .then(|| candidates.iter().find(|(_, p)| entry_variant(p).is_none()))
                    .flatten()
            }),
        None => candidates
            .iter()
            .find(|(_, p)| {
                let v = entry_variant(p);
                v.is_none() || v.as_deref() == default_variant(architecture)
            })
            .or(candidates.first()),
    };
    if let Some((entry, _)) = chosen {
        return parse(entry);
    }
    let offered: Vec<String> = index
        .manifests
        .iter()
        .filter_map(|entry| entry.platform.as_ref())
        .filter(|platform| platform.os != "unknown" && platform.architecture != "unknown")
        .map(Platform::name)
        .collect();
    Err(RegistryError::NoPlatform {
        wanted: match variant {
            Some(variant) => format!("{os}/{architecture}/{variant}"),
            None => format!("{os}/{architecture}"),
        },
        offered: if offered.is_empty() {
            "none".to_owned()
        } else {
            offered.join(", ")
        },
    })
}
// ANCHOR_END: pick_platform

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(fill: char) -> String {
        format!("sha256:{}", fill.to_string().repeat(64))
    }

    fn oci_index() -> String {
        format!(
            r#"{{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "manifests": [
    {{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "{a}", "size": 1,
      "platform": {{"architecture": "amd64", "os": "linux"}}}},
    {{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "{b}", "size": 1,
      "platform": {{"architecture": "arm64", "os": "linux", "variant": "v8"}}}},
    {{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "{c}", "size": 1,
      "platform": {{"architecture": "unknown", "os": "unknown"}},
      "annotations": {{"vnd.docker.reference.type": "attestation-manifest"}}}}
  ]
}}"#,
            a = digest('a'),
            b = digest('b'),
            c = digest('c')
        )
    }

    fn docker_list() -> String {
        format!(
            r#"{{
  "schemaVersion": 2,
  "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
  "manifests": [
    {{"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": "{a}", "size": 527,
      "platform": {{"architecture": "arm", "os": "linux", "variant": "v6"}}}},
    {{"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": "{b}", "size": 527,
      "platform": {{"architecture": "arm", "os": "linux", "variant": "v7"}}}},
    {{"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": "{c}", "size": 527,
      "platform": {{"architecture": "s390x", "os": "linux"}}}},
    {{"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": "{d}", "size": 527,
      "platform": {{"architecture": "amd64", "os": "windows", "os.version": "10.0.17763.5329"}}}}
  ]
}}"#,
            a = digest('a'),
            b = digest('b'),
            c = digest('c'),
            d = digest('d')
        )
    }

    fn pick(index: &str, os: &str, architecture: &str) -> Result<String, String> {
        pick_platform(index.as_bytes(), os, architecture)
            .map(|d| d.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn an_oci_index_gives_the_hosts_manifest() {
        assert_eq!(pick(&oci_index(), "linux", "amd64"), Ok(digest('a')));
        // arm64 means arm64/v8 whether the entry names the variant or not.
        assert_eq!(pick(&oci_index(), "linux", "arm64"), Ok(digest('b')));
        assert_eq!(pick(&oci_index(), "linux", "arm64/v8"), Ok(digest('b')));
    }

    #[test]
    fn a_docker_manifest_list_with_variants() {
        assert_eq!(pick(&docker_list(), "linux", "arm/v6"), Ok(digest('a')));
        assert_eq!(pick(&docker_list(), "linux", "arm/v7"), Ok(digest('b')));
        // Without a variant, arm means v7.
        assert_eq!(pick(&docker_list(), "linux", "arm"), Ok(digest('b')));
        assert_eq!(pick(&docker_list(), "linux", "s390x"), Ok(digest('c')));
        assert_eq!(pick(&docker_list(), "windows", "amd64"), Ok(digest('d')));
    }

    #[test]
    fn a_missing_platform_lists_the_offered_ones() {
        assert_eq!(
            pick(&docker_list(), "linux", "amd64"),
            Err(
                "no manifest for platform linux/amd64 in the index (it offers linux/arm/v6, linux/arm/v7, \
                 linux/s390x, windows/amd64)"
                    .to_owned()
            )
        );
        // The attestation entry (unknown/unknown) is not offered as a platform.
        assert_eq!(
            pick(&oci_index(), "linux", "riscv64"),
            Err(
                "no manifest for platform linux/riscv64 in the index (it offers linux/amd64, linux/arm64/v8)"
                    .to_owned()
            )
        );
        assert_eq!(
            pick(r#"{"schemaVersion":2,"manifests":[]}"#, "linux", "amd64"),
            Err("no manifest for platform linux/amd64 in the index (it offers none)".to_owned())
        );
    }

    #[test]
    fn a_single_entry_without_platform_is_taken() {
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"digest":"{}","size":1}}]}}"#,
            digest('e')
        );
        assert_eq!(pick(&index, "linux", "amd64"), Ok(digest('e')));
    }

    #[test]
    fn bad_json_and_bad_digests_are_errors() {
        assert!(pick("not json", "linux", "amd64").is_err_and(|e| e.starts_with("the index is not valid")));
        let index = r#"{"manifests":[{"digest":"md5:00","platform":{"os":"linux","architecture":"amd64"}}]}"#;
        assert!(pick(index, "linux", "amd64").is_err());
    }

    #[test]
    fn the_host_platform_uses_oci_names() {
        let (os, architecture) = host_platform();
        assert_eq!(os, "linux");
        assert!(!["x86_64", "aarch64"].contains(&architecture), "{architecture}");
        if cfg!(target_arch = "x86_64") {
            assert_eq!(architecture, "amd64");
        }
    }
}
