//! An I/O error that says what was being done to which path: `creating /var/lib/keel/x:
//! Permission denied`, not a bare `Permission denied`. Every step's errors reuse it.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("{action} {}: {error}", path.display())]
pub struct PathError {
    pub action: &'static str,
    pub path: PathBuf,
    /// Kept in the message rather than as a `source`, so that a chain of errors prints
    /// it once.
    pub error: std::io::Error,
}

/// For `map_err`: `std::fs::create_dir(&dir).map_err(path_error("creating", &dir))?`.
pub fn path_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> PathError + 'a {
    move |error| PathError {
        action,
        path: path.to_owned(),
        error,
    }
}
