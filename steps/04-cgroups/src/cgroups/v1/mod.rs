//! cgroup v1: a tree per controller. The container's cgroup is one directory in each of the
//! trees it needs, and its process is added to each.

pub mod cpu;
pub mod memory;
pub mod pids;

use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use step03_mount_ns::step02_pid_ns::step01_unshare::oci_spec::runtime::LinuxResources;

use super::files;
use super::layout::CONTROLLERS;
use super::{Cgroup, CgroupError, Stats};

pub struct CgroupV1 {
    /// controller -> the container's directory in that controller's tree.
    dirs: BTreeMap<&'static str, PathBuf>,
}

impl CgroupV1 {
    pub fn new(hierarchies: &BTreeMap<String, PathBuf>, relative: &Path) -> Self {
        let dirs = CONTROLLERS
            .iter()
            .filter_map(|c| hierarchies.get(*c).map(|mount| (*c, mount.join(relative))))
            .collect();
        Self { dirs }
    }

    /// The directory for `controller`, or why there is none.
    fn dir(&self, controller: &'static str) -> Result<&Path, CgroupError> {
        self.dirs
            .get(controller)
            .map(PathBuf::as_path)
            .ok_or(CgroupError::NoController {
                controller,
                where_: "(no cgroup v1 tree is mounted for it)".to_owned(),
                fix: "mount it, e.g. mount -t cgroup -o CONTROLLER cgroup /sys/fs/cgroup/CONTROLLER",
            })
    }

    /// Each directory once: comounted controllers (cpu,cpuacct) share one.
    fn unique_dirs(&self) -> Vec<&Path> {
        let mut dirs: Vec<&Path> = self.dirs.values().map(PathBuf::as_path).collect();
        dirs.sort();
        dirs.dedup();
        dirs
    }
}

impl Cgroup for CgroupV1 {
    fn paths(&self) -> Vec<PathBuf> {
        self.unique_dirs().into_iter().map(Path::to_owned).collect()
    }

    fn create(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        for dir in self.unique_dirs() {
            files::create_dir(dir)?;
        }
        if let Some(memory) = resources.memory() {
            memory::apply(self.dir("memory")?, memory)?;
        }
        if let Some(cpu) = resources.cpu() {
            cpu::apply(self.dir("cpu")?, cpu)?;
        }
        if let Some(pids) = resources.pids() {
            pids::apply(self.dir("pids")?, pids)?;
        }
        Ok(())
    }

    fn add(&self, pid: Pid) -> Result<(), CgroupError> {
        for dir in self.unique_dirs() {
            files::write(dir, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    fn oom_kills(&self) -> u64 {
        self.dirs.get("memory").map_or(0, |dir| memory::oom_kills(dir))
    }

    fn stats(&self) -> Stats {
        Stats {
            memory_peak: self.dirs.get("memory").and_then(|d| memory::peak(d)),
            cpu_usec: self.dirs.get("cpuacct").and_then(|d| cpu::usage_usec(d)),
            pids_peak: self.dirs.get("pids").and_then(|d| pids::peak(d)),
        }
    }

    fn destroy(&self) -> Result<(), CgroupError> {
        let mut first_error = None;
        for dir in self.unique_dirs() {
            if let Err(e) = files::kill_all_and_remove(dir) {
                first_error.get_or_insert(e);
            }
            if let Some(parent) = dir.parent() {
                files::remove_if_unused(parent);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
