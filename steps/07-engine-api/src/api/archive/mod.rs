//! `docker cp`, both ways: `HEAD`, `GET` and `PUT /containers/{id}/archive?path=PATH`.
//!
//! * `HEAD` answers with the `X-Docker-Container-Path-Stat` header: base64 of
//!   `{"name","size","mode","mtime","linkTarget"}`, `mode` being a Go `os.FileMode`.
//! * `GET` adds a tar of the file or directory, its top entry named after the path's last
//!   element (`docker cp bg:/etc out` gets `etc/`, `etc/hostname`...).
//! * `PUT` extracts a tar (streamed: an upload is never held whole in memory) into the
//!   directory `path`, refusing to replace a directory by a non-directory or the reverse
//!   when `noOverwriteDirNonDir` is set.
//!
//! The paths come from the user and the container's files from whoever runs in it, so the
//! point of this module is that **nothing is ever looked up through the host's root**.
//! Every lookup starts from a directory file descriptor of the container's root and goes
//! one name at a time (`openat`/`fstatat` with `O_NOFOLLOW`/`AT_SYMLINK_NOFOLLOW`); a
//! symlink is read and followed by this code, as if the container's root were `/` (an
//! absolute target restarts at the container's root, `..` stops there). A process in the
//! container that swaps a directory for a symlink while we walk makes the walk fail with
//! `ELOOP`/`ENOTDIR`, never leave the root. Files are created with
//! `O_CREAT|O_EXCL|O_NOFOLLOW` in a directory we hold open, and their metadata is set
//! through their own descriptors, never by path. Tar entries are cleaned like Docker's
//! (`filepath.Join(dest, name)`): an absolute name is taken relative to `path`, a `..` that
//! would climb above `path` is refused, and symlinks in the archive are created as they
//! are, to be followed (inside the root) by later entries, as in Docker's chroot.
//!
//! Which root: a running container's is `/proc/<pid>/root`, its overlay as its own mount
//! namespace sees it (writes land in the snapshot's upper dir, bind mounts included). A
//! stopped container has no mount: its snapshot is read as overlayfs would (the upper dir
//! over each lower layer, top-down; a 0:0 character device is a whiteout, a directory
//! marked `trusted.overlay.opaque=y` hides the ones below), and writes go to the upper dir,
//! copying up the directories they land in.
//!
//! A running container's pseudo file systems (its `/proc`, `/sys`...) are out of reach:
//! Docker copies from the root file system, where they are empty directories, and the
//! container's procfs would hand the engine things like `/proc/kcore`.
//!
//! The modules, one job each: `walk` resolves paths inside the root, over the files
//! `layers` shows (a running container's root, or a stopped one's snapshot), through the
//! descriptor-only operations of `files`; `stat` finds the path of a `HEAD`/`GET` and
//! makes its header, `download` writes its tar; `entries` reads an upload's tar,
//! `upload` says where each entry goes, `create` makes it. Tars are read and written with
//! the `tar` crate, but never unpacked by it: every entry is made by this code, in a
//! directory reached by the walk.

mod create;
mod download;
mod entries;
mod files;
mod layers;
mod stat;
mod upload;
mod walk;

use axum::body::Body;
use axum::extract::Path as UrlPath;
use axum::http::{header, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use std::io;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

use super::body::body_reader;
use super::error::{ApiError, ApiResult};
use super::query::{flag, Query};
use super::State;
use layers::{Access, Tree};
pub use stat::{go_file_mode, PathStat, STAT_HEADER};
pub use upload::entry_names;

/// `HEAD /containers/{id}/archive?path=`: the stat header alone.
pub async fn head(state: State, UrlPath(id): UrlPath<String>, query: Query) -> ApiResult<Response> {
    let engine = state.0;
    let container = engine.find(&id)?;
    let path = wanted_path(&query)?;
    let stat = blocking(move || {
        let (tree, _guard) = Tree::open(&engine, &container, Access::Read)?;
        tree.find(&path, &id).map(|found| found.stat)
    })
    .await?;
    Response::builder()
        .status(StatusCode::OK)
        .header(STAT_HEADER, stat.encoded())
        .body(Body::empty())
        .map_err(ApiError::internal)
}

/// `GET /containers/{id}/archive?path=`: the stat header and a tar of the path.
pub async fn get(state: State, UrlPath(id): UrlPath<String>, query: Query) -> ApiResult<Response> {
    let engine = state.0;
    let container = engine.find(&id)?;
    let path = wanted_path(&query)?;
    let (ready, found) = oneshot::channel::<ApiResult<PathStat>>();
    let (sender, receiver) = mpsc::channel::<io::Result<Bytes>>(8);
    let task_engine = Arc::clone(&engine);
    let task_container = Arc::clone(&container);
    tokio::task::spawn_blocking(move || {
        let prepared = Tree::open(&task_engine, &task_container, Access::Read)
            .and_then(|(tree, _guard)| tree.find(&path, &id).map(|found| (tree, found)));
        let (tree, found) = match prepared {
            Ok(prepared) => prepared,
            Err(error) => {
                let _ = ready.send(Err(error));
                return;
            }
        };
        if ready.send(Ok(found.stat.clone())).is_err() {
            return;
        }
        if let Err(error) = download::send(&tree, &found, sender.clone()) {
            // Half-way, the answer cannot be an HTTP error any more: the body breaks off.
            tracing::warn!("archiving {path} of {}: {error}", task_container.id);
            let _ = sender.blocking_send(Err(error));
        }
    });
    let stat = found
        .await
        .map_err(|_| ApiError::internal("the copy ended before it began"))??;
    engine.event(&container, "archive-path", &[]);
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/x-tar")
        .header(STAT_HEADER, stat.encoded())
        .body(Body::from_stream(stream))
        .map_err(ApiError::internal)
}

/// `PUT /containers/{id}/archive?path=DIR[&noOverwriteDirNonDir=true]`: extracts the tar
/// of the body (gzip-compressed or plain) into DIR.
pub async fn put(state: State, UrlPath(id): UrlPath<String>, query: Query, body: Body) -> ApiResult<StatusCode> {
    let engine = state.0;
    let container = engine.find(&id)?;
    let path = wanted_path(&query)?;
    let no_overwrite = flag(&query, "noOverwriteDirNonDir");
    let reader = body_reader(body);
    let task_engine = Arc::clone(&engine);
    let task_container = Arc::clone(&container);
    blocking(move || {
        // A stopped container stays stopped while its upper dir is written.
        let (tree, _guard) = Tree::open(&task_engine, &task_container, Access::Write)?;
        tree.extract(&path, &id, no_overwrite, reader)
    })
    .await?;
    engine.event(&container, "extract-to-dir", &[]);
    Ok(StatusCode::OK)
}

fn wanted_path(query: &Query) -> ApiResult<String> {
    match query.get("path") {
        Some(path) if !path.is_empty() => Ok(path.clone()),
        _ => Err(ApiError::bad_request("path cannot be empty")),
    }
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> ApiResult<T> + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(work).await.map_err(ApiError::internal)?
}

/// The request's path as Docker reads it (`archive.PreserveTrailingDotOrSeparator(
/// filepath.Join("/", path), path)`): absolute, cleaned, keeping a trailing `/` or `/.`
/// (which mean "the directory itself, symlink followed"); and its name (`filepath.Base`).
pub fn request_path(raw: &str) -> (String, String) {
    let mut parts: Vec<&str> = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    let mut abs = format!("/{}", parts.join("/"));
    let base_is_dot = raw == "." || raw.ends_with("/.");
    if base_is_dot {
        if !abs.ends_with('/') {
            abs.push('/');
        }
        abs.push('.');
    } else if raw.ends_with('/') && !abs.ends_with('/') {
        abs.push('/');
    }
    let name = if base_is_dot {
        ".".to_owned()
    } else {
        parts.last().map_or_else(|| "/".to_owned(), |p| (*p).to_owned())
    };
    (abs, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_paths_clean_like_dockers() {
        assert_eq!(
            request_path("/tmp/hostfile.txt"),
            ("/tmp/hostfile.txt".into(), "hostfile.txt".into())
        );
        assert_eq!(request_path("/tmp/"), ("/tmp/".into(), "tmp".into()));
        assert_eq!(request_path("/tmp/."), ("/tmp/.".into(), ".".into()));
        assert_eq!(request_path("tmp/../../etc"), ("/etc".into(), "etc".into()));
        assert_eq!(request_path("/"), ("/".into(), "/".into()));
        assert_eq!(request_path("/tmp/escape/.."), ("/tmp".into(), "tmp".into()));
    }
}
