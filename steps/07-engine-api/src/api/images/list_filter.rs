//! The `filters` of `GET /images/json`, as dockerd reads them: `docker images busybox` sends
//! `reference=busybox`, `docker images -f dangling=true`, `-f label=k=v`, `-f before=IMAGE`,
//! `-f since=IMAGE`. Several values of one key are alternatives; several keys must all hold.

use globset::{GlobBuilder, GlobMatcher};
use std::collections::BTreeMap;

use super::super::error::{ApiError, ApiResult};
use crate::record::unix_seconds;
use step06_images::reference::Reference;
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
    /// The images `before`/`since` name are looked up in `store` (docker: 404 if unknown).
    pub fn parse(filters: &BTreeMap<String, Vec<String>>, store: &Store) -> ApiResult<Self> {
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
                    let created = created(&super::resolve(store, name)?.1);
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
    pub fn names_to_list(&self, image: &Image, names: Vec<Reference>) -> Option<Vec<String>> {
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
        let listed: Vec<String> = names
            .iter()
            .filter(|name| self.references.is_empty() || self.matches_reference(name))
            .map(Reference::familiar)
            .collect();
        // With a reference filter, an image none of whose names matched is not listed.
        if listed.is_empty() && !self.references.is_empty() {
            return None;
        }
        Some(listed)
    }

    /// docker's `FamiliarMatch`: the pattern against `busybox:latest`, then against `busybox`.
    fn matches_reference(&self, reference: &Reference) -> bool {
        let (familiar, name) = (reference.familiar(), reference.familiar_name());
        self.references
            .iter()
            .any(|glob| glob.is_match(&familiar) || glob.is_match(&name))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_like_go_path_match() {
        let reference = |text: &str| text.parse::<Reference>().expect("a reference");
        let filter = |pattern: &str| ImageFilter {
            references: vec![glob(pattern).expect("a pattern")],
            ..ImageFilter::default()
        };
        assert!(filter("busybox").matches_reference(&reference("busybox:latest")));
        assert!(filter("busybox:latest").matches_reference(&reference("busybox:latest")));
        assert!(filter("busy*").matches_reference(&reference("busybox:1")));
        assert!(!filter("busybox:1").matches_reference(&reference("busybox:latest")));
        assert!(
            !filter("*").matches_reference(&reference("localhost:5000/x:1")),
            "* stops at a slash"
        );
        assert!(filter("*/x").matches_reference(&reference("localhost:5000/x:1")));
    }

    #[test]
    fn dangling_takes_one_boolean() {
        assert!(dangling(&["true".to_owned()]).is_ok_and(|d| d));
        assert!(dangling(&["false".to_owned()]).is_ok_and(|d| !d));
        assert!(dangling(&["maybe".to_owned()]).is_err());
        assert!(dangling(&["true".to_owned(), "false".to_owned()]).is_err());
    }
}
