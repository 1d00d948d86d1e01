//! Image references as docker users type them, normalised the way docker does:
//! `busybox` is `docker.io/library/busybox:latest`, `localhost:5000/x` keeps its registry,
//! `name@sha256:...` pins a digest.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;

pub const DEFAULT_DOMAIN: &str = "docker.io";
pub const DEFAULT_TAG: &str = "latest";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reference {
    /// The registry: `docker.io`, `localhost:5000`, `ghcr.io`.
    pub domain: String,
    /// The repository in that registry: `library/busybox`.
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid reference {text:?}: {why}")]
pub struct BadReference {
    pub text: String,
    pub why: &'static str,
}

fn valid_component(c: &str) -> bool {
    !c.is_empty()
        && c.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && c.as_bytes()[0].is_ascii_alphanumeric()
        && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
}

fn valid_tag(tag: &str) -> bool {
    (1..=128).contains(&tag.len())
        && (tag.as_bytes()[0].is_ascii_alphanumeric() || tag.starts_with('_'))
        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

impl FromStr for Reference {
    type Err = BadReference;

    fn from_str(text: &str) -> Result<Self, BadReference> {
        let bad = |why| BadReference {
            text: text.to_owned(),
            why,
        };
        let (name, digest) = match text.split_once('@') {
            Some((name, digest)) => (
                name,
                Some(
                    digest
                        .parse::<Digest>()
                        .map_err(|_| bad("the digest must be sha256: and 64 hex digits"))?,
                ),
            ),
            None => (text, None),
        };
        // A ':' after the last '/' starts the tag; one before it is a registry's port.
        let (name, tag) = match name.rfind(':') {
            Some(at) if !name[at..].contains('/') => (&name[..at], Some(name[at + 1..].to_owned())),
            _ => (name, None),
        };
        if let Some(tag) = &tag {
            if !valid_tag(tag) {
                return Err(bad("a tag is 1 to 128 letters, digits, '_', '.' or '-'"));
            }
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
                (first.to_owned(), rest.to_owned())
            }
            _ => (DEFAULT_DOMAIN.to_owned(), name.to_owned()),
        };
        let domain = if domain == "index.docker.io" {
            DEFAULT_DOMAIN.to_owned()
        } else {
            domain
        };
        if path.is_empty() {
            return Err(bad("the name is empty"));
        }
        if !path.split('/').all(valid_component) {
            return Err(bad(
                "a name is lower-case letters, digits and separators ('.', '_', '-', '/')",
            ));
        }
        let repository = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        let tag = if tag.is_none() && digest.is_none() {
            Some(DEFAULT_TAG.to_owned())
        } else {
            tag
        };
        Ok(Self {
            domain,
            repository,
            tag,
            digest,
        })
    }
}

impl Reference {
    /// The name without tag or digest: `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.repository)
    }

    /// The short form docker shows without tag or digest (docker's `FamiliarName`): the
    /// repository as users write it, `busybox`, `localhost:5000/x`.
    pub fn familiar_name(&self) -> String {
        Reference {
            tag: None,
            digest: None,
            ..self.clone()
        }
        .familiar()
    }

    /// The short form docker shows: `busybox:latest`, `localhost:5000/x:1`.
    pub fn familiar(&self) -> String {
        let name = if self.domain == DEFAULT_DOMAIN {
            self.repository
                .strip_prefix("library/")
                .unwrap_or(&self.repository)
                .to_owned()
        } else {
            self.name()
        };
        match (&self.tag, &self.digest) {
            (Some(tag), _) => format!("{name}:{tag}"),
            (None, Some(digest)) => format!("{name}@{digest}"),
            (None, None) => name,
        }
    }

    /// The registry host to talk to (Docker Hub's API lives on another host than its name).
    pub fn registry_host(&self) -> &str {
        if self.domain == DEFAULT_DOMAIN {
            "registry-1.docker.io"
        } else {
            &self.domain
        }
    }

    /// What to ask the registry for: the digest when pinned, else the tag.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.clone(),
            (None, None) => DEFAULT_TAG.to_owned(),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(text: &str) -> String {
        text.parse::<Reference>().expect(text).to_string()
    }

    #[test]
    fn references_normalise_like_dockers() {
        assert_eq!(full("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(full("library/busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(full("docker.io/busybox"), "docker.io/library/busybox:latest");
        assert_eq!(
            full("index.docker.io/library/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(full("user/app:v1"), "docker.io/user/app:v1");
        assert_eq!(full("localhost:5000/x:tag"), "localhost:5000/x:tag");
        assert_eq!(full("localhost/x"), "localhost/x:latest");
        assert_eq!(full("ghcr.io/a/b/c"), "ghcr.io/a/b/c:latest");
        let pinned = "busybox@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            full(pinned),
            "docker.io/library/busybox@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn the_familiar_form_is_what_docker_prints() {
        let r: Reference = "busybox".parse().expect("valid");
        assert_eq!(r.familiar(), "busybox:latest");
        assert_eq!(r.registry_host(), "registry-1.docker.io");
        let r: Reference = "localhost:5000/x:1".parse().expect("valid");
        assert_eq!(r.familiar(), "localhost:5000/x:1");
    }

    #[test]
    fn the_familiar_name_has_no_tag_or_digest_but_keeps_the_registry_port() {
        let name = |text: &str| text.parse::<Reference>().expect("valid").familiar_name();
        assert_eq!(name("busybox:1.36"), "busybox");
        assert_eq!(name("busybox:latest"), "busybox");
        assert_eq!(name("localhost:5000/x:nope"), "localhost:5000/x");
        assert_eq!(name("localhost:5000/x"), "localhost:5000/x");
        let digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(name(&format!("x@{digest}")), "x");
    }

    #[test]
    fn bad_references_say_why() {
        for bad in ["", "UPPER", "a//b", "x:", "x:bad tag", "x@sha256:12", "-lead", "x:-t"] {
            assert!(bad.parse::<Reference>().is_err(), "{bad:?} accepted");
        }
    }
}
