//! The `X-Docker-Container-Path-Stat` header of a `HEAD` or `GET`: the path asked for,
//! found in the container, described as moby's `container.PathStat` (base64 JSON).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rustix::fs::FileType;
use rustix::io::Errno;
use std::os::unix::ffi::OsStrExt;

use super::super::error::{ApiError, ApiResult};
use super::files::errno;
use super::layers::{Node, Tree};
use super::request_path;
use super::walk::Resolved;

/// The response header carrying the path's stat.
pub const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

/// What `X-Docker-Container-Path-Stat` says of a path (moby's `container.PathStat`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// A Go `os.FileMode`.
    pub mode: u32,
    /// RFC 3339 with nanoseconds, as Go writes a `time.Time`.
    pub mtime: String,
    /// For a symlink, its target resolved in the container.
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

impl PathStat {
    /// The header's value: standard base64, padded (Go's `base64.StdEncoding`).
    pub(super) fn encoded(&self) -> String {
        STANDARD.encode(serde_json::to_vec(self).unwrap_or_default())
    }
}

/// A Unix mode as Go's `os.FileMode`: the permission bits, and the type and special bits
/// high up (directory = 1<<31, symlink = 1<<27...).
pub fn go_file_mode(mode: u32) -> u32 {
    let mut go = mode & 0o777;
    for (unix, bit) in [(0o4000, 23), (0o2000, 22), (0o1000, 20)] {
        if mode & unix != 0 {
            go |= 1 << bit;
        }
    }
    go | match FileType::from_raw_mode(mode) {
        FileType::Directory => 1 << 31,
        FileType::Symlink => 1 << 27,
        FileType::BlockDevice => 1 << 26,
        FileType::CharacterDevice => (1 << 26) | (1 << 21),
        FileType::Fifo => 1 << 25,
        FileType::Socket => 1 << 24,
        _ => 0,
    }
}

/// Go's `time.Time` in JSON: RFC 3339, UTC, the fraction without its trailing zeros.
fn go_time(secs: i64, nanos: u32) -> String {
    let since = std::time::Duration::new(u64::try_from(secs).unwrap_or(0), nanos.min(999_999_999));
    let text = humantime::format_rfc3339_nanos(std::time::UNIX_EPOCH + since).to_string();
    match text.strip_suffix('Z').and_then(|t| t.split_once('.')) {
        Some((whole, fraction)) => match fraction.trim_end_matches('0') {
            "" => format!("{whole}Z"),
            fraction => format!("{whole}.{fraction}Z"),
        },
        None => text,
    }
}

/// A `GET`/`HEAD` path found.
pub(super) struct Found {
    pub(super) resolved: Resolved,
    pub(super) stat: PathStat,
    /// The name of the tar's top entry ("" for `/` and `dir/.`, whose entries go bare).
    pub(super) prefix: Vec<u8>,
}

impl Tree {
    /// The path of a `GET` or `HEAD`, and its stat.
    pub(super) fn find(&self, request: &str, container: &str) -> ApiResult<Found> {
        let (abs, name) = request_path(request);
        let not_found = || ApiError::not_found(format!("Could not find the file {request} in container {container}"));
        let resolved = match self.resolve(abs.as_bytes(), false) {
            Ok(resolved) => resolved,
            Err(e) if errno(&e, Errno::NOENT) || errno(&e, Errno::NOTDIR) => return Err(not_found()),
            Err(e) => return Err(ApiError::internal(format!("looking up {request}: {e}"))),
        };
        // What a pseudo file system of a running container holds (its /proc, /sys) is not
        // the container's files: Docker, which reads the root file system, finds nothing.
        if self.in_pseudo_fs(&resolved) {
            return Err(not_found());
        }
        let meta = match &resolved.node {
            Node::Missing => return Err(not_found()),
            Node::Dir(dir) => dir.meta,
            Node::Other { meta, .. } => *meta,
        };
        let link_target = if meta.is_symlink() {
            match self.resolve(resolved.path.as_os_str().as_bytes(), true) {
                Ok(target) => target.path.display().to_string(),
                Err(_) => self.read_link(&resolved).unwrap_or_default(),
            }
        } else {
            String::new()
        };
        let stat = PathStat {
            name: name.clone(),
            size: i64::try_from(meta.size).unwrap_or(i64::MAX),
            mode: go_file_mode(meta.mode),
            mtime: go_time(meta.mtime, meta.mtime_nsec),
            link_target,
        };
        let prefix = match name.as_str() {
            "/" | "." => Vec::new(),
            name => name.as_bytes().to_vec(),
        };
        Ok(Found { resolved, stat, prefix })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stat_header_is_what_the_cli_decodes() {
        // The capture's header for /tmp/hostfile.txt (45b-cp-from.log).
        let stat = PathStat {
            name: "hostfile.txt".into(),
            size: 18,
            mode: go_file_mode(0o100644),
            mtime: go_time(1_795_389_600, 0),
            link_target: String::new(),
        };
        assert_eq!(stat.mode, 420);
        assert_eq!(
            String::from_utf8_lossy(&serde_json::to_vec(&stat).expect("json")),
            r#"{"name":"hostfile.txt","size":18,"mode":420,"mtime":"2026-11-22T23:20:00Z","linkTarget":""}"#
        );
        assert_eq!(
            stat.encoded(),
            "eyJuYW1lIjoiaG9zdGZpbGUudHh0Iiwic2l6ZSI6MTgsIm1vZGUiOjQyMCwibXRpbWUiOiIyMDI2LTExLTIyVDIzOjIwOjAwWiIsImxpbmtUYXJnZXQiOiIifQ=="
        );
        assert_eq!(go_file_mode(0o040755), 2_147_484_141);
        assert_eq!(go_file_mode(0o120777), (1 << 27) | 0o777);
        assert_eq!(go_time(1, 500_000_000), "1970-01-01T00:00:01.5Z");
    }
}
