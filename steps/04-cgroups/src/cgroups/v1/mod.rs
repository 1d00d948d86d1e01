//! cgroup v1: a tree per controller. The container's cgroup is one directory in each of the
//! trees it needs, and its process is added to each.

pub mod cpu;
pub mod freezer;
pub mod memory;
pub mod pids;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use step03_mount_ns::step02_pid_ns::step01_unshare::oci_spec::runtime::LinuxResources;

use super::files;
use super::layout::CONTROLLERS;
use super::{Cgroup, CgroupError, Stats, Wanted, FREEZE_TIMEOUT};

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
        // Every tree the limits need must be mounted: checked before anything is created.
        for controller in Wanted::of(resources).controllers() {
            self.dir(controller)?;
        }
        for dir in self.unique_dirs() {
            files::create_dir(dir)?;
        }
        self.update(resources)
    }

    fn update(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        if !self.exists() {
            return Err(CgroupError::Missing(
                self.paths().into_iter().next().unwrap_or_default(),
            ));
        }
        let wanted = Wanted::of(resources);
        // A tree the cgroup was not created in (mounted since) is not created by an update.
        for controller in wanted.controllers() {
            let dir = self.dir(controller)?;
            if !dir.is_dir() {
                return Err(CgroupError::Missing(dir.to_owned()));
            }
        }
        if let Some(memory) = wanted.memory {
            memory::apply(self.dir("memory")?, memory)?;
        }
        if let Some(cpu) = wanted.cpu {
            cpu::apply(self.dir("cpu")?, cpu)?;
        }
        if let Some(pids) = wanted.pids {
            pids::apply(self.dir("pids")?, pids)?;
        }
        Ok(())
    }

    fn freeze(&self) -> Result<(), CgroupError> {
        freezer::set(self.dir("freezer")?, freezer::FROZEN, FREEZE_TIMEOUT)
    }

    fn thaw(&self) -> Result<(), CgroupError> {
        freezer::set(self.dir("freezer")?, freezer::THAWED, FREEZE_TIMEOUT)
    }

    fn is_frozen(&self) -> bool {
        self.dirs
            .get("freezer")
            .and_then(|dir| freezer::state(dir))
            .is_some_and(|state| state == freezer::FROZEN)
    }

    fn processes(&self) -> Result<Vec<Pid>, CgroupError> {
        // The trees normally hold the same processes (the child writes itself into each,
        // `add` writes each for a process of `exec`); their union also
        // finds one that was moved out of some tree but not the others.
        let mut pids = Vec::new();
        let mut found = false;
        for dir in self.unique_dirs() {
            match files::processes(dir) {
                Ok(more) => {
                    pids.extend(more);
                    found = true;
                }
                Err(CgroupError::Missing(_)) => {}
                Err(e) => return Err(e),
            }
        }
        if !found {
            return Err(CgroupError::Missing(
                self.paths().into_iter().next().unwrap_or_default(),
            ));
        }
        pids.sort_by_key(|p| p.as_raw());
        pids.dedup();
        Ok(pids)
    }

    fn exists(&self) -> bool {
        self.unique_dirs().iter().any(|dir| dir.is_dir())
    }

    fn add(&self, pid: Pid) -> Result<(), CgroupError> {
        for dir in self.unique_dirs() {
            files::write(dir, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    fn birth_dir(&self) -> Result<Option<OwnedFd>, CgroupError> {
        Ok(None)
    }

    fn self_join_files(&self) -> Result<Vec<OwnedFd>, CgroupError> {
        self.unique_dirs()
            .into_iter()
            .map(|dir| files::open_for_writing(dir, "tasks"))
            .collect()
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
        // A process stopped by the v1 freezer does not act even on SIGKILL until thawed. So a
        // paused container is sent SIGKILL first and thawed after: it dies as it wakes,
        // without running (or forking) in between.
        if let Some(dir) = self.dirs.get("freezer") {
            if freezer::state(dir).is_some_and(|state| state != freezer::THAWED) {
                for pid in self.processes().unwrap_or_default() {
                    let _ = kill(pid, Signal::SIGKILL);
                }
                let _ = freezer::set(dir, freezer::THAWED, FREEZE_TIMEOUT);
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use step03_mount_ns::step02_pid_ns::step01_unshare::oci_spec::runtime::{
        LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder,
    };

    /// Fake v1 trees in `root`: cpu and cpuacct comounted, as most distributions do.
    fn fake_trees(root: &Path, controllers: &[&str]) -> BTreeMap<String, PathBuf> {
        controllers
            .iter()
            .map(|c| {
                let tree = if *c == "cpuacct" { "cpu" } else { c };
                (c.to_string(), root.join(tree))
            })
            .collect()
    }

    fn limits() -> LinuxResources {
        LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(64i64 << 20)
                    .build()
                    .expect("memory"),
            )
            .cpu(LinuxCpuBuilder::default().shares(512u64).build().expect("cpu"))
            .pids(LinuxPidsBuilder::default().limit(20).build().expect("pids"))
            .build()
            .expect("resources")
    }

    fn read(path: PathBuf) -> String {
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn creating_makes_a_directory_in_every_tree_the_freezer_too() {
        let root = tempfile::tempdir().expect("tempdir");
        let trees = fake_trees(root.path(), &["memory", "cpu", "cpuacct", "pids", "freezer"]);
        let cgroup = CgroupV1::new(&trees, Path::new("keel/c1"));
        assert!(!cgroup.exists());
        cgroup.create(&limits()).expect("create");
        for tree in ["memory", "cpu", "pids", "freezer"] {
            assert!(root.path().join(tree).join("keel/c1").is_dir(), "{tree}");
        }
        assert_eq!(cgroup.paths().len(), 4, "cpu,cpuacct once");
        assert!(cgroup.exists());
        assert_eq!(
            read(root.path().join("memory/keel/c1/memory.limit_in_bytes")),
            "67108864"
        );
        assert_eq!(read(root.path().join("cpu/keel/c1/cpu.shares")), "512");
        assert_eq!(read(root.path().join("pids/keel/c1/pids.max")), "20");
    }

    #[test]
    fn a_tree_the_limits_need_is_checked_before_anything_is_created() {
        let root = tempfile::tempdir().expect("tempdir");
        let trees = fake_trees(root.path(), &["memory", "freezer"]);
        let cgroup = CgroupV1::new(&trees, Path::new("keel/c1"));
        let error = cgroup.create(&limits()).expect_err("no cpu tree");
        assert!(
            error.to_string().contains("the cpu controller is not available"),
            "{error}"
        );
        assert!(!cgroup.exists(), "created before the check");
    }

    #[test]
    fn an_update_of_a_removed_cgroup_says_so() {
        let root = tempfile::tempdir().expect("tempdir");
        let trees = fake_trees(root.path(), &["memory", "cpu", "cpuacct", "pids", "freezer"]);
        let cgroup = CgroupV1::new(&trees, Path::new("keel/gone"));
        let error = cgroup.update(&limits()).expect_err("gone");
        assert!(matches!(error, CgroupError::Missing(_)), "{error}");
        assert!(!root.path().join("memory/keel").exists(), "created by an update");
    }

    #[test]
    fn the_freezer_tree_pauses_and_reports() {
        let root = tempfile::tempdir().expect("tempdir");
        let trees = fake_trees(root.path(), &["memory", "freezer"]);
        let cgroup = CgroupV1::new(&trees, Path::new("keel/c1"));
        cgroup.create(&LinuxResources::default()).expect("create");
        assert!(!cgroup.is_frozen(), "no freezer.state yet");
        cgroup.freeze().expect("freeze");
        assert!(cgroup.is_frozen());
        assert_eq!(read(root.path().join("freezer/keel/c1/freezer.state")), "FROZEN");
        cgroup.thaw().expect("thaw");
        assert!(!cgroup.is_frozen());
        let without = CgroupV1::new(&fake_trees(root.path(), &["memory"]), Path::new("keel/c1"));
        let error = without.freeze().expect_err("no freezer tree");
        assert!(
            error.to_string().contains("the freezer controller is not available"),
            "{error}"
        );
    }

    #[test]
    fn processes_are_the_union_of_the_trees() {
        let root = tempfile::tempdir().expect("tempdir");
        let trees = fake_trees(root.path(), &["memory", "pids", "freezer"]);
        let cgroup = CgroupV1::new(&trees, Path::new("keel/c1"));
        assert!(matches!(cgroup.processes(), Err(CgroupError::Missing(_))));
        cgroup.create(&LinuxResources::default()).expect("create");
        std::fs::write(root.path().join("memory/keel/c1/cgroup.procs"), "7\n5\n").expect("write");
        std::fs::write(root.path().join("pids/keel/c1/cgroup.procs"), "5\n").expect("write");
        std::fs::create_dir(root.path().join("freezer/keel/c1/sub")).expect("mkdir");
        std::fs::write(root.path().join("freezer/keel/c1/cgroup.procs"), "").expect("write");
        std::fs::write(root.path().join("freezer/keel/c1/sub/cgroup.procs"), "9\n").expect("write");
        let pids: Vec<i32> = cgroup
            .processes()
            .expect("processes")
            .iter()
            .map(|p| p.as_raw())
            .collect();
        assert_eq!(pids, [5, 7, 9]);
    }
}
