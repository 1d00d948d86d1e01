//! cgroup v2: one tree. A controller works in a directory only when every ancestor lists it
//! in `cgroup.subtree_control`, so creating the cgroup enables the controllers on the way down.

pub mod cpu;
pub mod memory;
pub mod pids;

use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use step03_mount_ns::step02_pid_ns::step01_unshare::oci_spec::runtime::LinuxResources;

use super::files;
use super::{Cgroup, CgroupError, Stats};

pub struct CgroupV2 {
    /// The tree's root (its mount point).
    root: PathBuf,
    /// The container's cgroup, under `root`.
    dir: PathBuf,
}

impl CgroupV2 {
    pub fn new(root: &Path, relative: &Path) -> Self {
        Self {
            root: root.to_owned(),
            dir: root.join(relative),
        }
    }
}

/// Which controllers the resources need.
fn needed(resources: &LinuxResources) -> Vec<&'static str> {
    let mut needed = Vec::new();
    if resources.memory().is_some() {
        needed.push("memory");
    }
    if resources.cpu().is_some() {
        needed.push("cpu");
    }
    if resources.pids().is_some() {
        needed.push("pids");
    }
    needed
}

// ANCHOR: create
/// Creates each directory from the root down to `dir`, enabling the controllers that
/// `dir` needs in each parent's `cgroup.subtree_control` first.
fn create_enabled(root: &Path, dir: &Path, controllers: &[&str]) -> Result<(), CgroupError> {
    let enable: String = controllers.iter().map(|c| format!("+{c} ")).collect();
    let mut current = root.to_path_buf();
    let relative = dir.strip_prefix(root).unwrap_or(dir);
    for component in relative.components() {
        if !enable.is_empty() {
            files::write(&current, "cgroup.subtree_control", enable.trim_end())?;
        }
        current.push(component);
        files::create_dir(&current)?;
    }
    Ok(())
}
// ANCHOR_END: create

impl Cgroup for CgroupV2 {
    fn paths(&self) -> Vec<PathBuf> {
        vec![self.dir.clone()]
    }

    fn create(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        let root = &self.root;
        let available = files::read(root, "cgroup.controllers").unwrap_or_default();
        let needed = needed(resources);
        if let Some(missing) = needed.iter().find(|c| !available.split_whitespace().any(|a| a == **c)) {
            return Err(CgroupError::NoController {
                controller: missing,
                where_: format!("in the cgroup v2 tree at {} (it offers: {})", root.display(), available.trim()),
                fix: "on a hybrid machine the controller is bound to its v1 tree: run where /sys/fs/cgroup shows the v1 trees, or boot with systemd.unified_cgroup_hierarchy=1 for pure v2",
            });
        }
        create_enabled(root, &self.dir, &needed)?;
        if let Some(memory) = resources.memory() {
            memory::apply(&self.dir, memory)?;
        }
        if let Some(cpu) = resources.cpu() {
            cpu::apply(&self.dir, cpu)?;
        }
        if let Some(pids) = resources.pids() {
            pids::apply(&self.dir, pids)?;
        }
        Ok(())
    }

    fn add(&self, pid: Pid) -> Result<(), CgroupError> {
        files::write(&self.dir, "cgroup.procs", &pid.to_string())
    }

    fn oom_kills(&self) -> u64 {
        memory::oom_kills(&self.dir)
    }

    fn stats(&self) -> Stats {
        Stats {
            memory_peak: memory::peak(&self.dir),
            cpu_usec: cpu::usage_usec(&self.dir),
            pids_peak: pids::peak(&self.dir),
        }
    }

    fn destroy(&self) -> Result<(), CgroupError> {
        // cgroup.kill (5.14+) kills the whole subtree at once, racing no fork.
        if self.dir.join("cgroup.kill").exists() {
            let _ = files::write(&self.dir, "cgroup.kill", "1");
        }
        let result = files::kill_all_and_remove(&self.dir);
        if let Some(parent) = self.dir.parent() {
            if parent != self.root {
                files::remove_if_unused(parent);
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use step03_mount_ns::step02_pid_ns::step01_unshare::oci_spec::runtime::{
        LinuxMemoryBuilder, LinuxResourcesBuilder,
    };

    /// A fake v2 tree: a root that offers memory, cpu and pids.
    fn fake_root() -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::write(root.path().join("cgroup.controllers"), "cpu memory pids\n").expect("write");
        root
    }

    #[test]
    fn creating_enables_the_needed_controllers_on_the_way_down() {
        let root = fake_root();
        let dir = root.path().join("keel/c1");
        let relative = Path::new("keel/c1");
        let memory = LinuxMemoryBuilder::default()
            .limit(32i64 << 20)
            .build()
            .expect("memory");
        let resources = LinuxResourcesBuilder::default()
            .memory(memory)
            .build()
            .expect("resources");
        let cgroup = CgroupV2::new(root.path(), relative);
        // The fake tree has no kernel behind it: mark the new directories as cgroups ourselves.
        std::fs::create_dir_all(root.path().join("keel")).expect("mkdir");
        std::fs::write(root.path().join("keel/cgroup.controllers"), "memory").expect("write");
        cgroup.create(&resources).expect("create");
        assert_eq!(
            std::fs::read_to_string(root.path().join("cgroup.subtree_control")).expect("read"),
            "+memory"
        );
        assert_eq!(
            std::fs::read_to_string(root.path().join("keel/cgroup.subtree_control")).expect("read"),
            "+memory"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("memory.max")).expect("read"),
            "33554432"
        );
    }

    #[test]
    fn a_controller_the_tree_does_not_offer_is_named_in_the_error() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::write(root.path().join("cgroup.controllers"), "hugetlb\n").expect("write");
        let memory = LinuxMemoryBuilder::default().limit(1i64 << 20).build().expect("memory");
        let resources = LinuxResourcesBuilder::default()
            .memory(memory)
            .build()
            .expect("resources");
        let error = CgroupV2::new(root.path(), Path::new("keel/c1"))
            .create(&resources)
            .expect_err("no memory");
        assert!(
            error.to_string().contains("the memory controller is not available"),
            "{error}"
        );
        assert!(
            !root.path().join("keel").exists(),
            "nothing may be created before the check"
        );
    }
}
