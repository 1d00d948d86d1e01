//! Control groups: the kernel's accounting and limits for a group of processes.
//!
//! Two versions are in use. cgroup v2 (every current distribution) has one tree, mounted at
//! `/sys/fs/cgroup`, and each directory lists its controllers. cgroup v1 has one tree per
//! controller (`/sys/fs/cgroup/memory`, `/sys/fs/cgroup/cpu`...); "hybrid" machines mount
//! the v1 trees and an (often empty) cgroup2 tree beside them. [`Layout`] finds out which,
//! once; [`Cgroup`] is what the container needs, implemented once per version, with a file
//! per controller per version.

pub mod files;
pub mod layout;
pub mod v1;
pub mod v2;

use nix::unistd::Pid;
use std::path::PathBuf;
use step03_mount_ns::step02_pid_ns::step01_unshare::oci_spec::runtime::LinuxResources;
use step03_mount_ns::step02_pid_ns::step01_unshare::path_error::PathError;

pub use layout::Layout;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error(transparent)]
    Io(#[from] PathError),
    #[error("the {controller} controller is not available {where_}: {fix}")]
    NoController {
        controller: &'static str,
        where_: String,
        fix: &'static str,
    },
    #[error("no cgroup filesystem is mounted: mount one (mount -t cgroup2 none /sys/fs/cgroup)")]
    NoCgroupFs,
    #[error("cgroups path {0:?} must name a cgroup below the root, without '.' or '..' (e.g. /keel/web)")]
    BadPath(String),
    #[error("processes of {0} did not exit after SIGKILL")]
    Busy(PathBuf),
}

/// What a container used, read from its cgroup when it ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub memory_peak: Option<u64>,
    pub cpu_usec: Option<u64>,
    pub pids_peak: Option<u64>,
}

/// One container's cgroup, whatever the version.
pub trait Cgroup {
    /// Where it lives, for messages: one directory in v2, one per controller tree in v1.
    fn paths(&self) -> Vec<PathBuf>;
    /// Creates the cgroup and writes the limits, before any process is in it.
    fn create(&self, resources: &LinuxResources) -> Result<(), CgroupError>;
    /// Moves `pid` into the cgroup.
    fn add(&self, pid: Pid) -> Result<(), CgroupError>;
    /// How many times the kernel's OOM killer killed a process of this cgroup.
    fn oom_kills(&self) -> u64;
    fn stats(&self) -> Stats;
    /// Kills whatever still runs in the cgroup and removes it.
    fn destroy(&self) -> Result<(), CgroupError>;
}

/// The cgroup at `path` (relative to the hierarchy roots) for this machine's layout.
pub fn open(layout: &Layout, path: &str) -> Result<Box<dyn Cgroup>, CgroupError> {
    let relative = relative_path(path)?;
    Ok(match layout {
        Layout::V2 { root } => Box::new(v2::CgroupV2::new(root, &relative)),
        Layout::V1 { hierarchies, .. } => Box::new(v1::CgroupV1::new(hierarchies, &relative)),
    })
}

/// `linux.cgroupsPath` as a relative path: `/keel/abc` and `keel/abc` are the same place.
pub fn relative_path(path: &str) -> Result<PathBuf, CgroupError> {
    let trimmed = path.trim_start_matches('/');
    if trimmed.is_empty() || trimmed.split('/').any(|c| c == ".." || c == ".") {
        return Err(CgroupError::BadPath(path.to_owned()));
    }
    Ok(PathBuf::from(trimmed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_paths_are_relative_and_cannot_climb() {
        assert_eq!(relative_path("/keel/a").ok(), Some(PathBuf::from("keel/a")));
        assert_eq!(relative_path("keel/a").ok(), Some(PathBuf::from("keel/a")));
        assert!(relative_path("/keel/../../etc").is_err());
        assert!(relative_path("/").is_err());
    }
}
