//! The `filters` of `GET /images/json`, as dockerd reads them: `docker images busybox` sends
//! `reference=busybox`, `docker images -f dangling=true`, `-f label=k=v`, `-f before=IMAGE`,
//! `-f since=IMAGE`. Several values of one key are alternatives; several keys must all hold.

use globset::{GlobBuilder, GlobMatcher};
use std::collections::BTreeMap;

use super::super::error::{ApiError, ApiResult};
use crate::record::unix_seconds;
use step06_images::store::images::Image;
use step06_images::store::Store;

/// The filters of one listing, parsed and checked before anything is listed.
#[derive(Default)]
pub struct ImageFilter {
    references: Vec<GlobMatcher>,
    dangling: Option<bool>,
    labels: Vec<String>,
    /// Only images created before (or after) the named image's creation time (unix seconds).
    before: Option<i64>,
    since: Option<i64>,
}

impl ImageFilter {
    /// `resolve` finds the image a `before`/`since` value names (docker: 404 if unknown).
    pub fn parse(
        filters: &BTreeMap<String, Vec<String>>,
        resolve: impl Fn(&str) -> ApiResult<Image>,
    ) -> ApiResult<Self> {
        let mut filter = Self::default();
        for (key, values) in filters {
            match key.as_str() {
                "reference" => {
                    for pattern in values {
                        filter.references.push(glob(pattern)?);
                    }
                }
                "dangling" => filter.dangling = Some(dangling(values)?),
                "label" => filter.labels.clone_from(values),
                "before" | "since" => {
                    let Some(name) = values.first() else { continue };
                    let created = created(&resolve(name)?);
                    if key == "before" {
                        filter.before = Some(created);
                    } else {
                        filter.since = Some(created);
                    }
                }
                other => return Err(ApiError::bad_request(format!("invalid filter '{other}'"))),
            }
        }
        Ok(filter)
    }

    /// The names of `image` to list (all of them, or those a `reference` pattern matched), or
    /// `None` if the image is not to be listed at all.
    pub fn names_to_list(&self, image: &Image, names: Vec<String>) -> Option<Vec<String>> {
        // The store removes an image with its last name: nothing it lists is dangling.
        if self.dangling == Some(true) {
            return None;
        }
        let created = created(image);
        if self.before.is_some_and(|before| created >= before) || self.since.is_some_and(|since| created <= since) {
            return None;
        }
        if !self.labels.is_empty() && !self.labels.iter().any(|label| has_label(image, label)) {
            return None;
        }
        if self.references.is_empty() {
            return Some(names);
        }
        let matched: Vec<String> = names.into_iter().filter(|name| self.matches_reference(name)).collect();
        (!matched.is_empty()).then_some(matched)
    }

    /// docker's `FamiliarMatch`: the pattern against `busybox:latest`, then against `busybox`.
    fn matches_reference(&self, familiar: &str) -> bool {
        let without_tag = name_without_tag(familiar);
        self.references
            .iter()
            .any(|glob| glob.is_match(familiar) || glob.is_match(without_tag))
    }
}

/// A pattern as Go's `path.Match` reads it: `*` and `?` never match a `/`.
fn glob(pattern: &str) -> ApiResult<GlobMatcher> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map(|glob| glob.compile_matcher())
        .map_err(|e| ApiError::bad_request(format!("invalid reference filter {pattern:?}: {e}")))
}

fn dangling(values: &[String]) -> ApiResult<bool> {
    match values {
        [one] => match one.as_str() {
            "true" | "1" | "True" | "TRUE" => Ok(true),
            "false" | "0" | "False" | "FALSE" => Ok(false),
            other => Err(ApiError::bad_request(format!(
                "invalid filter 'dangling={other}': use true or false"
            ))),
        },
        _ => Err(ApiError::bad_request(
            "invalid filter 'dangling': give it one value, true or false",
        )),
    }
}

/// `busybox:latest` → `busybox`; `localhost:5000/x:1` → `localhost:5000/x`; `x@sha256:…` → `x`.
fn name_without_tag(familiar: &str) -> &str {
    let name = familiar.split_once('@').map_or(familiar, |(name, _)| name);
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[last_slash..].find(':') {
        Some(colon) => &name[..last_slash + colon],
        None => name,
    }
}

/// The labels of the image's config (`LABEL` in a Dockerfile, `--change` of an import).
pub fn labels(image: &Image) -> std::collections::HashMap<String, String> {
    image
        .config
        .config()
        .as_ref()
        .and_then(|c| c.labels().clone())
        .unwrap_or_default()
}

fn has_label(image: &Image, label: &str) -> bool {
    let labels = labels(image);
    match label.split_once('=') {
        Some((key, value)) => labels.get(key).is_some_and(|v| v == value),
        None => labels.contains_key(label),
    }
}

fn created(image: &Image) -> i64 {
    unix_seconds(&image.config.created().clone().unwrap_or_default())
}

/// `resolve` for [`ImageFilter::parse`] on a store.
pub fn resolver(store: &Store) -> impl Fn(&str) -> ApiResult<Image> + '_ {
    move |name| super::resolve(store, name).map(|(_, image)| image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_their_tag_but_keep_their_registry_port() {
        assert_eq!(name_without_tag("busybox:latest"), "busybox");
        assert_eq!(name_without_tag("localhost:5000/x:1"), "localhost:5000/x");
        assert_eq!(name_without_tag("localhost:5000/x"), "localhost:5000/x");
        assert_eq!(name_without_tag("x@sha256:abc"), "x");
    }

    #[test]
    fn patterns_match_like_go_path_match() {
        let filter = |pattern: &str| ImageFilter {
            references: vec![glob(pattern).expect("a pattern")],
            ..ImageFilter::default()
        };
        assert!(filter("busybox").matches_reference("busybox:latest"));
        assert!(filter("busybox:latest").matches_reference("busybox:latest"));
        assert!(filter("busy*").matches_reference("busybox:1"));
        assert!(!filter("busybox:1").matches_reference("busybox:latest"));
        assert!(
            !filter("*").matches_reference("localhost:5000/x:1"),
            "* stops at a slash"
        );
        assert!(filter("*/x").matches_reference("localhost:5000/x:1"));
    }

    #[test]
    fn dangling_takes_one_boolean() {
        assert!(dangling(&["true".to_owned()]).is_ok_and(|d| d));
        assert!(dangling(&["false".to_owned()]).is_ok_and(|d| !d));
        assert!(dangling(&["maybe".to_owned()]).is_err());
        assert!(dangling(&["true".to_owned(), "false".to_owned()]).is_err());
    }
}
