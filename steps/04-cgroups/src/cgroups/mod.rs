//! Control groups: the kernel's accounting and limits for a group of processes.
//!
//! Two versions are in use. cgroup v2 (every current distribution) has one tree, mounted at
//! `/sys/fs/cgroup`, and each directory lists its controllers. cgroup v1 has one tree per
//! controller (`/sys/fs/cgroup/memory`, `/sys/fs/cgroup/cpu`...); "hybrid" machines mount
//! the v1 trees and an (often empty) cgroup2 tree beside them. [`Layout`] finds out which,
//! once; [`Cgroup`] is what the container needs, implemented once per version, with a file
//! per controller per version.
//!
//! Besides running a container, the trait has what an OCI runtime (runc's command line) needs
//! on a container that already runs: `pause`/`resume` (the freezer), `update`, `ps` and
//! `kill --all` (its processes), `delete` (destroy, from a cgroup reopened by path).

pub mod files;
pub mod layout;
pub mod systemd_path;
pub mod v1;
pub mod v2;

use nix::unistd::Pid;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use step03_mount_ns::step02_pid_ns::step01_unshare::oci_spec::runtime::{
    LinuxCpu, LinuxMemory, LinuxPids, LinuxResources,
};
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
    #[error("the cgroup {0} does not exist")]
    Missing(PathBuf),
    #[error("{path} did not become {wanted} in {seconds} s (it is {state}): is a process stuck in the kernel, or a parent cgroup frozen?", seconds = FREEZE_TIMEOUT.as_secs())]
    Freeze {
        path: PathBuf,
        wanted: &'static str,
        state: String,
    },
    #[error("systemd cgroups path {path:?}: {why} (runc's --systemd-cgroup form is slice:prefix:name, e.g. system.slice:docker:abc)")]
    BadSystemdPath { path: String, why: String },
}

/// How long `freeze` and `thaw` wait for the kernel. Freezing waits for each process to
/// reach a point where it can stop, which under load takes more than a moment.
pub const FREEZE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// What a container used, read from its cgroup when it ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub memory_peak: Option<u64>,
    pub cpu_usec: Option<u64>,
    pub pids_peak: Option<u64>,
}

/// One container's cgroup, whatever the version. Nothing is kept in memory but its paths:
/// another process (a runtime's `pause`, `delete`...) reopens it with [`open`] and the same
/// path and [`Layout`].
pub trait Cgroup {
    /// Where it lives, for messages: one directory in v2, one per controller tree in v1.
    fn paths(&self) -> Vec<PathBuf>;
    /// Creates the cgroup and writes the limits, before any process is in it: the
    /// directories, then [`Cgroup::update`].
    fn create(&self, resources: &LinuxResources) -> Result<(), CgroupError>;
    /// Writes the limits to the existing cgroup (`runc update`): memory (limit, swap), cpu
    /// (shares, quota, period) and pids, each only when given. The rest of `resources`
    /// (devices, cpuset, block I/O...) is accepted and ignored: keel does not manage it.
    fn update(&self, resources: &LinuxResources) -> Result<(), CgroupError>;
    /// Stops every process of the cgroup and its descendants, and returns once all are
    /// stopped (`runc pause`). v1: the freezer tree; v2: `cgroup.freeze`.
    fn freeze(&self) -> Result<(), CgroupError>;
    /// Lets them run again (`runc resume`), and returns once they do.
    fn thaw(&self) -> Result<(), CgroupError>;
    /// Whether the cgroup is frozen: all its processes stopped (runc's `paused` status). A
    /// freeze still in progress is not frozen yet.
    fn is_frozen(&self) -> bool;
    /// Every process in the cgroup and the cgroups below it, each once, in pid order (`runc
    /// ps`, `kill --all`). A signal to a frozen process waits for the thaw, SIGKILL included
    /// on v1: to kill a paused container there, signal it, then thaw it.
    fn processes(&self) -> Result<Vec<Pid>, CgroupError>;
    /// Whether the cgroup's directory exists (on v1: in any of its trees, so that what is
    /// left of a half-removed cgroup still counts and can be destroyed).
    fn exists(&self) -> bool;
    /// Moves `pid` into the cgroup (nothing to do when it is there already).
    fn add(&self, pid: Pid) -> Result<(), CgroupError>;
    /// The cgroup's directory, open, for a child to be born in it (`clone3` with
    /// `CLONE_INTO_CGROUP`): v2 only, `None` on v1, where a process joins each tree by pid.
    fn birth_dir(&self) -> Result<Option<OwnedFd>, CgroupError>;
    /// v1: each tree's `tasks` file, open for writing, for a child that moves itself there
    /// by writing "0" (its own thread). A thread moving itself skips the kernel lock that
    /// moving another process by pid takes, and that lock waits for an RCU grace period
    /// (5-9 ms here). v2: none (its child is born in the cgroup instead).
    fn self_join_files(&self) -> Result<Vec<OwnedFd>, CgroupError>;
    /// How many times the kernel's OOM killer killed a process of this cgroup.
    fn oom_kills(&self) -> u64;
    fn stats(&self) -> Stats;
    /// Kills whatever still runs in the cgroup (frozen or not) and removes it, with the
    /// cgroups below it. Nothing to remove is not an error.
    fn destroy(&self) -> Result<(), CgroupError>;
}

/// The parts of [`LinuxResources`] keel writes, each only when it sets something: a `cpu`
/// with nothing but `cpus`/`mems` (cpuset, not managed) needs no cpu controller, and asking
/// for one a v2 tree does not offer would fail for nothing.
pub(crate) struct Wanted<'a> {
    pub memory: Option<&'a LinuxMemory>,
    pub cpu: Option<&'a LinuxCpu>,
    pub pids: Option<&'a LinuxPids>,
}

impl<'a> Wanted<'a> {
    pub fn of(resources: &'a LinuxResources) -> Self {
        Self {
            memory: resources
                .memory()
                .as_ref()
                .filter(|m| m.limit().is_some() || m.swap().is_some()),
            cpu: resources
                .cpu()
                .as_ref()
                .filter(|c| c.shares().is_some() || c.quota().is_some() || c.period().is_some()),
            pids: resources.pids().as_ref(),
        }
    }

    /// The controllers that writing these needs.
    pub fn controllers(&self) -> Vec<&'static str> {
        let mut needed = Vec::new();
        if self.memory.is_some() {
            needed.push("memory");
        }
        if self.cpu.is_some() {
            needed.push("cpu");
        }
        if self.pids.is_some() {
            needed.push("pids");
        }
        needed
    }
}

/// The cgroup at `path` (relative to the hierarchy roots) for this machine's layout. Only
/// paths are computed: nothing is read or created, so this is how a cgroup made earlier, by
/// another process, is found again. A systemd-style `slice:prefix:name` goes through
/// [`systemd_path::to_cgroupfs`] first.
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
