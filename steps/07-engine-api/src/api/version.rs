//! `/v1.41/containers/json` and `/containers/json` are the same endpoint: the prefix is
//! checked against the versions keel speaks, then stripped before routing.

use axum::extract::Request;
use axum::http::{StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// The version keel answers as (dockerd 20.10's), and the oldest it accepts (docker-py's
/// floor).
pub const API_VERSION: &str = "1.41";
pub const MIN_API_VERSION: &str = "1.24";

fn parse(version: &str) -> Option<(u32, u32)> {
    let (major, minor) = version.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Splits `/v1.41/rest` into the version and `/rest`.
pub fn split(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/v")?;
    let end = rest.find('/').unwrap_or(rest.len());
    let version = &rest[..end];
    parse(version)?;
    let tail = &rest[end..];
    Some((version, if tail.is_empty() { "/" } else { tail }))
}

// ANCHOR: rewrite
/// Middleware around the whole router: refuses versions out of range, strips the prefix.
pub async fn rewrite(mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if let Some((version, rest)) = split(&path) {
        let asked = parse(version).unwrap_or_default();
        if asked > parse(API_VERSION).unwrap_or_default() {
            return ApiError::bad_request(format!(
                "client version {version} is too new. Maximum supported API version is {API_VERSION}"
            ))
            .into_response();
        }
        if asked < parse(MIN_API_VERSION).unwrap_or_default() {
            return ApiError::bad_request(format!(
                "client version {version} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
            ))
            .into_response();
        }
        let query = request.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
        match format!("{rest}{query}").parse::<Uri>() {
            Ok(uri) => *request.uri_mut() = uri,
            Err(_) => return StatusCode::BAD_REQUEST.into_response(),
        }
    }
    next.run(request).await
}
// ANCHOR_END: rewrite

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_split_off_and_other_paths_left_alone() {
        assert_eq!(split("/v1.41/containers/json"), Some(("1.41", "/containers/json")));
        assert_eq!(split("/v1.24/_ping"), Some(("1.24", "/_ping")));
        assert_eq!(split("/version"), None);
        assert_eq!(split("/volumes"), None);
        assert_eq!(split("/vx.1/a"), None);
    }
}
