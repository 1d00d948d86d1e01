//! Step 04's primitive, as a stage: the container's cgroup, created with its limits and
//! joined before the command runs, reported on (OOM kills, usage) and removed at the end.

use nix::unistd::Pid;
use std::cell::OnceCell;
use std::os::fd::OwnedFd;
use std::path::Path;
use step03_mount_ns::step02_pid_ns::step01_unshare::child_error::ChildError;
use step03_mount_ns::step02_pid_ns::step01_unshare::oci_spec::runtime::{LinuxResources, Spec};
use step03_mount_ns::step02_pid_ns::step01_unshare::spec::annotated;
use step03_mount_ns::step02_pid_ns::step01_unshare::stage::{ChildContext, Stage, StageError, StageOrder};

use crate::cgroups::{self, Cgroup, CgroupError, Layout};
use crate::size::human;

/// With this annotation the container's resource usage is printed when it ends.
pub const STATS_ANNOTATION: &str = "org.keel.stats";

/// On v1 the child joins its cgroup itself, first after the namespaces, before the root
/// filesystem and long before the cgroup namespace (400), which must see it there.
pub const ORDER: StageOrder = StageOrder(120);

/// The cgroup path when the spec gives none: one cgroup per run, under /keel.
pub fn default_cgroups_path() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("/keel/run-{}-{nanos:08x}", std::process::id())
}

/// Removes the cgroups of earlier runs whose tool is gone (killed with SIGKILL, it could not
/// clean up; its container died with it, so the cgroup is empty). A run's cgroup is named
/// after its tool's pid: `run-<pid>-<nanos>`.
pub fn remove_stale(layout: &Layout, parent: &str) {
    let roots: Vec<std::path::PathBuf> = match layout {
        Layout::V2 { root } => vec![root.clone()],
        Layout::V1 { hierarchies, .. } => {
            let mut roots: Vec<_> = hierarchies.values().cloned().collect();
            roots.sort();
            roots.dedup();
            roots
        }
    };
    for dir in roots.iter().map(|root| root.join(parent.trim_start_matches('/'))) {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix("run-")
                .and_then(|rest| rest.split('-').next())
                .and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
                let _ = cgroups::files::kill_all_and_remove(&entry.path());
            }
        }
    }
}

pub struct Limits {
    cgroup: Box<dyn Cgroup>,
    resources: LinuxResources,
    show_stats: bool,
    /// How the child gets into it.
    join: Join,
}

impl Limits {
    pub fn from_spec(spec: &Spec, layout: &Layout) -> Result<Self, CgroupError> {
        let linux = spec.linux().as_ref();
        let path = linux
            .and_then(|l| l.cgroups_path().clone())
            .map(|p| p.display().to_string());
        let path = path.unwrap_or_else(default_cgroups_path);
        if let Some((parent, _)) = path.rsplit_once('/') {
            remove_stale(layout, parent);
        }
        let resources = linux.and_then(|l| l.resources().clone()).unwrap_or_default();
        Ok(Self {
            cgroup: cgroups::open(layout, &path)?,
            resources,
            show_stats: annotated(spec, STATS_ANNOTATION),
            join: Join::default(),
        })
    }

    fn memory_limit(&self) -> Option<u64> {
        self.resources
            .memory()
            .as_ref()
            .and_then(|m| m.limit())
            .and_then(|l| u64::try_from(l).ok())
    }
}

// ANCHOR: self_join
/// How a new process gets into an existing cgroup, the cheapest way the machine allows:
/// born in it (v2: `clone3` with `CLONE_INTO_CGROUP`), moving itself (v1: "0" to each tree's
/// `tasks` file, which moves the writing thread, the child's only one, without the lock a
/// move by pid waits on), or moved by pid from the parent (v2 on a kernel without `clone3`).
/// The container's first process and `exec`'s processes come in the same way.
#[derive(Default)]
pub struct Join {
    /// v1: the `tasks` files, opened before `clone` (see [`Cgroup::self_join_files`]).
    self_join: OnceCell<Vec<OwnedFd>>,
}

impl Join {
    /// Before `clone`: the files the child will write itself into, and the directory it
    /// can be born in.
    pub fn before_clone(&self, cgroup: &dyn Cgroup) -> Result<Option<OwnedFd>, CgroupError> {
        let _ = self.self_join.set(cgroup.self_join_files()?);
        cgroup.birth_dir()
    }

    /// After `clone`: nothing when the child moves itself; otherwise by pid (a child born in
    /// its cgroup is found there and not moved again).
    pub fn in_parent(&self, cgroup: &dyn Cgroup, child: Pid) -> Result<(), CgroupError> {
        if self.self_join.get().is_some_and(|files| !files.is_empty()) {
            return Ok(());
        }
        cgroup.add(child)
    }

    /// In the child, before anything else of the container runs.
    pub fn in_child(&self) -> Result<(), ChildError> {
        for file in self.self_join.get().into_iter().flatten() {
            nix::unistd::write(file, b"0")
                .map_err(|errno| ChildError::setup(errno, &[b"joining its cgroup: writing 0 to a v1 tasks file"]))?;
        }
        Ok(())
    }
}
// ANCHOR_END: self_join

/// A cgroup failure, as the cgroups stage's (the runtime's `exec` says the same).
pub(crate) fn stage_error(error: CgroupError) -> StageError {
    StageError::new("cgroups", error.to_string())
}

impl Stage for Limits {
    fn name(&self) -> &'static str {
        "cgroups"
    }

    fn order(&self) -> StageOrder {
        ORDER
    }

    // ANCHOR: join
    /// The cgroup is made before `clone`: on cgroup v2 the child is born in it; on v1 it
    /// gets each tree's `tasks` file, opened here, to move itself (see [`Join`]).
    fn birth_cgroup(&self) -> Result<Option<OwnedFd>, StageError> {
        self.cgroup.create(&self.resources).map_err(stage_error)?;
        self.join.before_clone(&*self.cgroup).map_err(stage_error)
    }

    /// The child waits for our go-ahead, so it is in its cgroup before running anything:
    /// there is no moment when it runs without its limits.
    fn in_parent(&self, child: Pid) -> Result<(), StageError> {
        self.join.in_parent(&*self.cgroup, child).map_err(stage_error)
    }

    fn in_child(&self, _ctx: &ChildContext) -> Result<(), ChildError> {
        self.join.in_child()
    }
    // ANCHOR_END: join

    // ANCHOR: oom
    fn after_exit(&self) -> Vec<String> {
        let mut notes = Vec::new();
        // The kernel counts OOM kills in the cgroup (memory.events / memory.oom_control):
        // read, not guessed from an exit status.
        let kills = self.cgroup.oom_kills();
        if kills > 0 {
            let limit = self
                .memory_limit()
                .map_or("its memory limit".to_owned(), |l| format!("the {} limit", human(l)));
            notes.push(format!(
                "out of memory: the kernel's OOM killer killed {kills} process(es) of the container at {limit}"
            ));
        }
        // ANCHOR_END: oom
        if self.show_stats {
            let stats = self.cgroup.stats();
            let or_na = |v: Option<String>| v.unwrap_or_else(|| "n/a".to_owned());
            notes.push(format!(
                "stats: peak memory {}, cpu time {}, peak pids {}",
                or_na(stats.memory_peak.map(human)),
                or_na(stats.cpu_usec.map(|us| format!("{:.3} s", us as f64 / 1e6))),
                or_na(stats.pids_peak.map(|p| p.to_string())),
            ));
        }
        notes
    }

    fn cleanup(&self) {
        if let Err(error) = self.cgroup.destroy() {
            let paths: Vec<String> = self.cgroup.paths().iter().map(|p| p.display().to_string()).collect();
            eprintln!("warning: the cgroup {} could not be removed: {error}", paths.join(", "));
        }
    }
}

/// Whether `path` is one of this container's cgroup directories (for tests and doctor).
pub fn is_ours(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("run-"))
}
