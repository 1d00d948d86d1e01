//! cgroup v2: one tree. A controller works in a directory only when every ancestor lists it
//! in `cgroup.subtree_control`, so creating the cgroup enables the controllers on the way down.

pub mod cpu;
pub mod freezer;
pub mod memory;
pub mod pids;

use nix::unistd::Pid;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use step03_mount_ns::step02_pid_ns::step01_unshare::oci_spec::runtime::LinuxResources;

use super::files;
use super::{Cgroup, CgroupError, Stats, Wanted, FREEZE_TIMEOUT};

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

impl CgroupV2 {
    /// Fails, naming the controller, when the tree does not offer one of `needed` (on a
    /// hybrid machine the v1 trees hold them).
    fn check_offered(&self, needed: &[&'static str]) -> Result<(), CgroupError> {
        let root = &self.root;
        let available = files::read(root, "cgroup.controllers").unwrap_or_default();
        if let Some(missing) = needed.iter().find(|c| !available.split_whitespace().any(|a| a == **c)) {
            return Err(CgroupError::NoController {
                controller: missing,
                where_: format!("in the cgroup v2 tree at {} (it offers: {})", root.display(), available.trim()),
                fix: "on a hybrid machine the controller is bound to its v1 tree: run where /sys/fs/cgroup shows the v1 trees, or boot with systemd.unified_cgroup_hierarchy=1 for pure v2",
            });
        }
        Ok(())
    }
}

impl Cgroup for CgroupV2 {
    fn paths(&self) -> Vec<PathBuf> {
        vec![self.dir.clone()]
    }

    fn create(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        let needed = Wanted::of(resources).controllers();
        self.check_offered(&needed)?;
        create_enabled(&self.root, &self.dir, &needed)?;
        self.update(resources)
    }

    fn update(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        if !self.exists() {
            return Err(CgroupError::Missing(self.dir.clone()));
        }
        let wanted = Wanted::of(resources);
        let needed = wanted.controllers();
        self.check_offered(&needed)?;
        // A limit the cgroup was created without needs its controller enabled now. The
        // directories exist: create_enabled only writes the parents' subtree_control.
        let enabled = files::read(&self.dir, "cgroup.controllers").unwrap_or_default();
        let missing: Vec<&str> = needed
            .into_iter()
            .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
            .collect();
        if !missing.is_empty() {
            create_enabled(&self.root, &self.dir, &missing)?;
        }
        if let Some(memory) = wanted.memory {
            memory::apply(&self.dir, memory)?;
        }
        if let Some(cpu) = wanted.cpu {
            cpu::apply(&self.dir, cpu)?;
        }
        if let Some(pids) = wanted.pids {
            pids::apply(&self.dir, pids)?;
        }
        Ok(())
    }

    fn freeze(&self) -> Result<(), CgroupError> {
        freezer::set(&self.dir, true, FREEZE_TIMEOUT)
    }

    fn thaw(&self) -> Result<(), CgroupError> {
        freezer::set(&self.dir, false, FREEZE_TIMEOUT)
    }

    fn is_frozen(&self) -> bool {
        freezer::is_frozen(&self.dir)
    }

    fn processes(&self) -> Result<Vec<Pid>, CgroupError> {
        files::processes(&self.dir)
    }

    fn exists(&self) -> bool {
        self.dir.is_dir()
    }

    fn add(&self, pid: Pid) -> Result<(), CgroupError> {
        // A child born here (clone3) is in already: writing its pid again would take the
        // kernel's lock, and wait for a grace period, for nothing.
        if files::processes_here(&self.dir).contains(&pid) {
            return Ok(());
        }
        files::write(&self.dir, "cgroup.procs", &pid.to_string())
    }

    fn birth_dir(&self) -> Result<Option<OwnedFd>, CgroupError> {
        files::open_dir(&self.dir).map(Some)
    }

    fn self_join_files(&self) -> Result<Vec<OwnedFd>, CgroupError> {
        Ok(Vec::new())
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
        // cgroup.kill (5.14+) kills the whole subtree at once, racing no fork. A frozen
        // process dies too: on v2 a fatal signal ends the freeze.
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
        LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder,
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

    /// A fake v2 cgroup `keel/c1` that exists, with `enabled` controllers.
    fn fake_cgroup(enabled: &str) -> (tempfile::TempDir, CgroupV2) {
        let root = fake_root();
        let dir = root.path().join("keel/c1");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("cgroup.controllers"), enabled).expect("write");
        let cgroup = CgroupV2::new(root.path(), Path::new("keel/c1"));
        (root, cgroup)
    }

    fn read(path: PathBuf) -> String {
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn an_update_writes_the_limits_of_an_existing_cgroup() {
        let (root, cgroup) = fake_cgroup("cpu memory pids");
        let resources = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(128i64 << 20)
                    .build()
                    .expect("memory"),
            )
            .cpu(
                LinuxCpuBuilder::default()
                    .shares(512u64)
                    .quota(20_000i64)
                    .period(100_000u64)
                    .build()
                    .expect("cpu"),
            )
            .pids(LinuxPidsBuilder::default().limit(-1).build().expect("pids"))
            .build()
            .expect("resources");
        cgroup.update(&resources).expect("update");
        let dir = root.path().join("keel/c1");
        assert_eq!(read(dir.join("memory.max")), "134217728");
        assert_eq!(read(dir.join("cpu.weight")), "20");
        assert_eq!(read(dir.join("cpu.max")), "20000 100000");
        assert_eq!(read(dir.join("pids.max")), "max");
        assert!(
            !root.path().join("cgroup.subtree_control").exists(),
            "the controllers were already enabled"
        );
    }

    #[test]
    fn an_update_enables_a_controller_the_cgroup_was_created_without() {
        let (root, cgroup) = fake_cgroup("memory");
        let resources = LinuxResourcesBuilder::default()
            .pids(LinuxPidsBuilder::default().limit(30).build().expect("pids"))
            .build()
            .expect("resources");
        cgroup.update(&resources).expect("update");
        assert_eq!(read(root.path().join("cgroup.subtree_control")), "+pids");
        assert_eq!(read(root.path().join("keel/cgroup.subtree_control")), "+pids");
        assert_eq!(read(root.path().join("keel/c1/pids.max")), "30");
    }

    #[test]
    fn what_keel_does_not_manage_is_accepted_and_ignored() {
        let (root, cgroup) = fake_cgroup("");
        // What the CRI sends: deny every device. And a cpuset, which keel does not manage.
        let deny_all = LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .expect("device");
        let resources = LinuxResourcesBuilder::default()
            .devices(vec![deny_all])
            .cpu(LinuxCpuBuilder::default().cpus("0").build().expect("cpu"))
            .build()
            .expect("resources");
        cgroup.update(&resources).expect("update");
        let dir = root.path().join("keel/c1");
        let files: Vec<String> = std::fs::read_dir(&dir)
            .expect("read_dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files, ["cgroup.controllers"], "nothing written");
    }

    #[test]
    fn updating_a_cgroup_that_is_gone_says_so_and_creates_nothing() {
        let root = fake_root();
        let cgroup = CgroupV2::new(root.path(), Path::new("keel/gone"));
        assert!(!cgroup.exists());
        let resources = LinuxResourcesBuilder::default()
            .pids(LinuxPidsBuilder::default().limit(30).build().expect("pids"))
            .build()
            .expect("resources");
        let error = cgroup.update(&resources).expect_err("gone");
        assert!(matches!(error, CgroupError::Missing(_)), "{error}");
        assert!(error.to_string().contains("keel/gone does not exist"), "{error}");
        assert!(!root.path().join("keel").exists());
    }

    #[test]
    fn processes_are_those_of_the_cgroup_and_below_each_once() {
        let (root, cgroup) = fake_cgroup("");
        let dir = root.path().join("keel/c1");
        std::fs::create_dir_all(dir.join("sub/deeper")).expect("mkdir");
        std::fs::write(dir.join("cgroup.procs"), "30\n10\n").expect("write");
        std::fs::write(dir.join("sub/cgroup.procs"), "").expect("write");
        std::fs::write(dir.join("sub/deeper/cgroup.procs"), "20\n10\n").expect("write");
        // Not below: a sibling's processes are not ours.
        std::fs::create_dir_all(root.path().join("keel/c2")).expect("mkdir");
        std::fs::write(root.path().join("keel/c2/cgroup.procs"), "99\n").expect("write");
        let pids: Vec<i32> = cgroup
            .processes()
            .expect("processes")
            .iter()
            .map(|p| p.as_raw())
            .collect();
        assert_eq!(pids, [10, 20, 30]);
        let gone = CgroupV2::new(root.path(), Path::new("keel/gone"));
        assert!(matches!(gone.processes(), Err(CgroupError::Missing(_))));
    }
}
