//! `snapshot diff`: what a container added (A), changed (C) and deleted (D), read from its
//! upper dir and compared with the layers below, as `docker diff` prints it.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::whiteout::{is_opaque, is_whiteout};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    Added(PathBuf),
    Changed(PathBuf),
    Deleted(PathBuf),
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Added(p) => write!(f, "A /{}", p.display()),
            Change::Changed(p) => write!(f, "C /{}", p.display()),
            Change::Deleted(p) => write!(f, "D /{}", p.display()),
        }
    }
}

fn in_lowers(lowers: &[PathBuf], relative: &Path) -> bool {
    lowers.iter().any(|l| l.join(relative).symlink_metadata().is_ok())
}

/// Names under `relative` in any lower layer.
fn lower_names(lowers: &[PathBuf], relative: &Path) -> BTreeSet<std::ffi::OsString> {
    lowers
        .iter()
        .filter_map(|l| std::fs::read_dir(l.join(relative)).ok())
        .flat_map(|entries| entries.flatten().map(|e| e.file_name()))
        .collect()
}

/// The changes in `upper` over `lowers`, sorted by path.
pub fn diff(upper: &Path, lowers: &[PathBuf]) -> std::io::Result<Vec<Change>> {
    let mut changes = Vec::new();
    walk(upper, Path::new(""), lowers, &mut changes)?;
    changes.sort_by(|a, b| path(a).cmp(path(b)));
    Ok(changes)
}

fn path(change: &Change) -> &Path {
    match change {
        Change::Added(p) | Change::Changed(p) | Change::Deleted(p) => p,
    }
}

fn walk(upper: &Path, relative: &Path, lowers: &[PathBuf], changes: &mut Vec<Change>) -> std::io::Result<()> {
    let dir = upper.join(relative);
    let mut seen = BTreeSet::new();
    for entry in std::fs::read_dir(&dir)? {
        let entry = entry?;
        seen.insert(entry.file_name());
        let path = relative.join(entry.file_name());
        let meta = entry.path().symlink_metadata()?;
        if is_whiteout(&meta) {
            changes.push(Change::Deleted(path));
            continue;
        }
        changes.push(if in_lowers(lowers, &path) {
            Change::Changed(path.clone())
        } else {
            Change::Added(path.clone())
        });
        if meta.is_dir() {
            walk(upper, &path, lowers, changes)?;
        }
    }
    // An opaque directory hides everything of the lower layers beneath it.
    if !relative.as_os_str().is_empty() && is_opaque(&dir) {
        for name in lower_names(lowers, relative).difference(&seen) {
            changes.push(Change::Deleted(relative.join(name)));
        }
    }
    Ok(())
}
