//! Step 04's cgroup operations for an OCI runtime (runc's `pause`, `resume`, `update`, `ps`,
//! `kill --all`, `delete`), on real cgroups: the host's v1 trees (this machine is hybrid), and
//! a private cgroup2 mount in a mount namespace, the pure v2 layout most users have. Each
//! test makes its own cgroup under `/keel-test-ops-…`, and removes it and kills the processes
//! it started, even when it fails.

use keel_tests::needs_root;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use step04_cgroups::cgroups::{self, systemd_path, Cgroup, CgroupError, Layout};
use step04_cgroups::step03_mount_ns::step02_pid_ns::step01_unshare::oci_spec::runtime::LinuxResources;

/// A cgroup for one test and the processes it runs; dropping it kills them and removes the
/// cgroup and its parent, whatever the test got to.
struct Scratch {
    layout: Layout,
    /// `/keel-test-ops-<tag>-<pid>`, or a systemd slice.
    parent: String,
    path: String,
    children: Vec<Child>,
}

impl Scratch {
    fn new(layout: &Layout, tag: &str) -> Self {
        let parent = format!("/keel-test-ops-{tag}-{}", std::process::id());
        Self::at(layout, &parent, &format!("{parent}/c"))
    }

    fn at(layout: &Layout, parent: &str, path: &str) -> Self {
        Self {
            layout: layout.clone(),
            parent: parent.to_owned(),
            path: path.to_owned(),
            children: Vec::new(),
        }
    }

    /// The cgroup as a runtime's later command finds it: from the path and the layout alone.
    fn open(&self) -> Box<dyn Cgroup> {
        cgroups::open(&self.layout, &self.path).expect("open")
    }

    /// Starts `command` and moves it into the cgroup (or `sub`, below it, in every tree).
    /// The command must `exec` (or loop in the shell): a process the shell forked before the
    /// move would be outside the cgroup. Its output goes nowhere, so that a stray process
    /// cannot hold the pipe of an inner test run open.
    fn run(&mut self, command: &str, sub: Option<&str>) -> Pid {
        let child = Command::new("sh")
            .args(["-c", command])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let pid = Pid::from_raw(child.id() as i32);
        self.children.push(child);
        match sub {
            None => self.open().add(pid).expect("add"),
            Some(sub) => {
                for dir in self.open().paths() {
                    let dir = dir.join(sub);
                    std::fs::create_dir_all(&dir).expect("mkdir sub-cgroup");
                    std::fs::write(dir.join("cgroup.procs"), pid.to_string()).expect("move into sub-cgroup");
                }
            }
        }
        pid
    }

    /// Every directory the parent has in the layout's trees.
    fn parent_dirs(&self) -> Vec<PathBuf> {
        let relative = self.parent.trim_start_matches('/');
        match &self.layout {
            Layout::V2 { root } => vec![root.join(relative)],
            Layout::V1 { hierarchies, .. } => hierarchies.values().map(|tree| tree.join(relative)).collect(),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let cgroup = self.open();
        let _ = cgroup.thaw();
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = cgroup.destroy();
        for dir in self.parent_dirs() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

const BUSY_LOOP: &str = "while :; do :; done";
const SLEEP: &str = "exec sleep 60";

/// User plus system CPU time of `pid`, in clock ticks.
fn cpu_ticks(pid: Pid) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // After the command name (in parentheses, which may hold spaces): state is first, utime
    // the 12th and stime the 13th.
    let fields: Vec<&str> = stat.rsplit_once(')').expect("comm").1.split_whitespace().collect();
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

/// Whether `pid` used any CPU over half a second.
fn runs(pid: Pid) -> bool {
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_millis(500));
    cpu_ticks(pid) > before
}

fn resources(json: &str) -> LinuxResources {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

/// What containerd's CRI plugin sends to `runc update` when it changes nothing but devices.
const CRI_DEVICES_ONLY: &str = r#"{"devices":[{"allow":false,"access":"rwm"}]}"#;

fn read(dir: &Path, file: &str) -> String {
    let path = dir.join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_owned()
}

// ---- the same checks on either version ----

/// runc pause / resume: the processes stop and start again; the state is the kernel's, seen
/// from a handle opened afterwards, as `runc state` would.
fn pause_and_resume(layout: &Layout, tag: &str) {
    let mut scratch = Scratch::new(layout, tag);
    scratch.open().create(&LinuxResources::default()).expect("create");
    let busy = scratch.run(BUSY_LOOP, None);
    assert!(!scratch.open().is_frozen());
    assert!(runs(busy), "the busy loop does not run before the pause");

    scratch.open().freeze().expect("freeze");
    let reopened = scratch.open();
    assert!(reopened.is_frozen(), "frozen, seen from another handle");
    assert!(!runs(busy), "a frozen process used CPU");
    for dir in reopened.paths() {
        // What containerd reads after a pause (v1), and what the kernel reports (v2).
        if dir.join("freezer.state").exists() {
            assert_eq!(read(&dir, "freezer.state"), "FROZEN");
        }
        if dir.join("cgroup.events").exists() {
            assert!(read(&dir, "cgroup.events").contains("frozen 1"));
        }
    }
    // Pausing twice is what a second `runc pause` does: not an error.
    reopened.freeze().expect("freeze again");

    scratch.open().thaw().expect("thaw");
    assert!(!scratch.open().is_frozen());
    assert!(runs(busy), "the busy loop did not run again after the thaw");
}

/// runc ps / kill --all / delete: every process below the cgroup is found, and `destroy`
/// from a reopened handle kills them all and removes the cgroup with the container's own
/// sub-cgroups.
fn processes_then_delete(layout: &Layout, tag: &str) {
    let mut scratch = Scratch::new(layout, tag);
    scratch.open().create(&LinuxResources::default()).expect("create");
    let top = scratch.run(SLEEP, None);
    let nested = scratch.run(SLEEP, Some("sub/deeper"));
    let mut expected = vec![top, nested];
    expected.sort_by_key(|p| p.as_raw());
    assert_eq!(scratch.open().processes().expect("processes"), expected);
    assert!(scratch.open().exists());

    let paths = scratch.open().paths();
    scratch.open().destroy().expect("destroy");
    for child in &mut scratch.children {
        let status = child.wait().expect("wait");
        assert_eq!(status.signal(), Some(Signal::SIGKILL as i32), "{status:?}");
    }
    assert!(!scratch.open().exists());
    for path in paths {
        assert!(!path.exists(), "{} left behind", path.display());
    }
    for parent in scratch.parent_dirs() {
        assert!(!parent.exists(), "the empty parent {} left behind", parent.display());
    }
    assert!(matches!(scratch.open().processes(), Err(CgroupError::Missing(_))));
    scratch
        .open()
        .destroy()
        .expect("destroying what is gone is not an error");
}

/// runc delete of a paused container (containerd does that: kill, then delete).
fn delete_while_paused(layout: &Layout, tag: &str) {
    let mut scratch = Scratch::new(layout, tag);
    scratch.open().create(&LinuxResources::default()).expect("create");
    scratch.run(SLEEP, None);
    scratch.run(SLEEP, Some("sub"));
    scratch.open().freeze().expect("freeze");
    scratch.open().destroy().expect("destroy a frozen cgroup");
    for child in &mut scratch.children {
        let status = child.wait().expect("wait");
        assert_eq!(status.signal(), Some(Signal::SIGKILL as i32), "{status:?}");
    }
    assert!(!scratch.open().exists());
}

/// --systemd-cgroup: the cgroup goes where systemd would put the scope; deleting it leaves
/// the slice, which is systemd's (here the test removes it).
fn systemd_cgroups_path(layout: &Layout, tag: &str) {
    // No '-' in the slice's own name: that would nest it in further slices.
    let slice = format!("keel_test_ops_{}_{}.slice", tag.replace('-', "_"), std::process::id());
    let path = systemd_path::to_cgroupfs(&format!("{slice}:keel:c1")).expect("systemd path");
    assert_eq!(path, format!("/{slice}/keel-c1.scope"));
    let mut scratch = Scratch::at(layout, &format!("/{slice}"), &path);
    scratch.open().create(&LinuxResources::default()).expect("create");
    let pid = scratch.run(SLEEP, None);
    assert_eq!(scratch.open().processes().expect("processes"), [pid]);
    scratch.open().destroy().expect("destroy");
    assert!(!scratch.open().exists());
    assert!(
        scratch.parent_dirs().iter().all(|d| d.exists()),
        "the slice was removed: it is systemd's"
    );
}

// ---- cgroup v1: the host's trees ----

/// The host's layout when it has v1 trees (skipped on a pure v2 machine: v1 trees cannot be
/// mounted while their controllers are bound to v2).
fn host_v1() -> Option<Layout> {
    if !needs_root() {
        return None;
    }
    let layout = Layout::detect().expect("layout");
    if !matches!(layout, Layout::V1 { .. }) {
        eprintln!("skipped: the host has no cgroup v1 trees ({})", layout.describe());
        return None;
    }
    Some(layout)
}

#[test]
fn v1_pause_stops_the_processes_and_resume_restarts_them() {
    if let Some(layout) = host_v1() {
        pause_and_resume(&layout, "v1-pause");
    }
}

#[test]
fn v1_processes_are_all_found_and_delete_removes_everything() {
    if let Some(layout) = host_v1() {
        processes_then_delete(&layout, "v1-ps");
    }
}

#[test]
fn v1_a_paused_container_can_be_deleted() {
    if let Some(layout) = host_v1() {
        delete_while_paused(&layout, "v1-del");
    }
}

#[test]
fn v1_a_systemd_cgroups_path_is_a_scope_in_its_slice() {
    if let Some(layout) = host_v1() {
        systemd_cgroups_path(&layout, "v1-sd");
    }
}

#[test]
fn v1_update_raises_and_lowers_memory_and_swap_in_the_right_order() {
    let Some(layout) = host_v1() else { return };
    let scratch = Scratch::new(&layout, "v1-update");
    let cgroup = scratch.open();
    cgroup
        .create(&resources(
            r#"{"memory":{"limit":67108864,"swap":134217728},"cpu":{"shares":1024,"quota":50000,"period":100000},"pids":{"limit":20}}"#,
        ))
        .expect("create");
    let memory = layout_dir(&layout, "memory", &scratch.path);
    let with_swap = memory.join("memory.memsw.limit_in_bytes").exists();
    if !with_swap {
        eprintln!("no swap accounting: memsw ordering not tested");
    }
    let update = |limit: u64, swap: u64| {
        let swap = if with_swap {
            format!(r#","swap":{swap}"#)
        } else {
            String::new()
        };
        scratch
            .open()
            .update(&resources(&format!(r#"{{"memory":{{"limit":{limit}{swap}}}}}"#)))
            .unwrap_or_else(|e| panic!("update to {limit}: {e}"));
    };
    // Up: the new limit (256m) is above the old memsw (128m), so memsw must go first.
    update(256 << 20, 512 << 20);
    assert_eq!(read(&memory, "memory.limit_in_bytes"), (256u64 << 20).to_string());
    if with_swap {
        assert_eq!(read(&memory, "memory.memsw.limit_in_bytes"), (512u64 << 20).to_string());
    }
    // Down: the new memsw (48m) is below the old limit (256m), so the limit must go first.
    update(32 << 20, 48 << 20);
    assert_eq!(read(&memory, "memory.limit_in_bytes"), (32u64 << 20).to_string());
    if with_swap {
        assert_eq!(read(&memory, "memory.memsw.limit_in_bytes"), (48u64 << 20).to_string());
    }

    let cpu = layout_dir(&layout, "cpu", &scratch.path);
    let pids = layout_dir(&layout, "pids", &scratch.path);
    scratch
        .open()
        .update(&resources(
            r#"{"cpu":{"shares":512,"quota":20000,"period":50000},"pids":{"limit":-1}}"#,
        ))
        .expect("update cpu and pids");
    assert_eq!(read(&cpu, "cpu.shares"), "512");
    assert_eq!(read(&cpu, "cpu.cfs_period_us"), "50000");
    assert_eq!(read(&cpu, "cpu.cfs_quota_us"), "20000");
    assert_eq!(read(&pids, "pids.max"), "max");

    scratch
        .open()
        .update(&resources(CRI_DEVICES_ONLY))
        .expect("what keel does not manage is ignored");
    assert_eq!(
        read(&memory, "memory.limit_in_bytes"),
        (32u64 << 20).to_string(),
        "untouched"
    );
}

/// The container's directory in `controller`'s v1 tree.
fn layout_dir(layout: &Layout, controller: &str, path: &str) -> PathBuf {
    let Layout::V1 { hierarchies, .. } = layout else {
        panic!("not v1")
    };
    hierarchies[controller].join(path.trim_start_matches('/'))
}

// ---- cgroup v2: a private cgroup2 mount ----

const INNER: &str = "KEEL_TEST_ON_CGROUP2";

/// Runs `body` where /sys/fs/cgroup is a cgroup2 mount: the test binary runs itself, only
/// the test `name`, in a new mount namespace (`unshare` cannot make one for a process with
/// threads, as the test harness is), and the inner run mounts cgroup2 and calls `body`.
fn on_cgroup2(name: &str, tag: &str, body: impl FnOnce(&Layout, &str)) {
    if std::env::var_os(INNER).is_some() {
        nix::mount::mount(
            Some("none"),
            "/sys/fs/cgroup",
            Some("cgroup2"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .expect("mount cgroup2 on /sys/fs/cgroup");
        let layout = Layout::detect().expect("layout");
        assert!(matches!(layout, Layout::V2 { .. }), "{layout:?}");
        body(&layout, tag);
        return;
    }
    if !needs_root() {
        return;
    }
    let exe = std::env::current_exe().expect("test binary");
    let output = assert_cmd::Command::new("unshare")
        .args(["--mount", "--propagation", "private"])
        .arg(exe)
        .args([name, "--exact", "--nocapture", "--test-threads", "1"])
        .env(INNER, "1")
        .timeout(Duration::from_secs(60))
        .output()
        .expect("unshare");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{report}");
    assert!(report.contains("1 passed"), "the test did not run inside:\n{report}");
    // The cgroup2 tree is the same in every mount namespace: nothing of this test (the
    // others run meanwhile) may be left in it.
    if let Some(root) = host_cgroup2() {
        let ours = [
            format!("keel-test-ops-{tag}-"),
            format!("keel_test_ops_{}_", tag.replace('-', "_")),
        ];
        let left: Vec<String> = std::fs::read_dir(&root)
            .expect("cgroup2 root")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| ours.iter().any(|o| n.starts_with(o.as_str())))
            .collect();
        assert!(left.is_empty(), "left in {}: {left:?}", root.display());
    }
}

/// Where the host's cgroup2 tree is mounted, if anywhere.
fn host_cgroup2() -> Option<PathBuf> {
    match Layout::detect().ok()? {
        Layout::V2 { root } => Some(root),
        Layout::V1 { unified, .. } => unified,
    }
}

#[test]
fn v2_pause_stops_the_processes_and_resume_restarts_them() {
    on_cgroup2(
        "v2_pause_stops_the_processes_and_resume_restarts_them",
        "v2-pause",
        pause_and_resume,
    );
}

#[test]
fn v2_processes_are_all_found_and_delete_removes_everything() {
    on_cgroup2(
        "v2_processes_are_all_found_and_delete_removes_everything",
        "v2-ps",
        processes_then_delete,
    );
}

#[test]
fn v2_a_paused_container_can_be_deleted() {
    on_cgroup2("v2_a_paused_container_can_be_deleted", "v2-del", delete_while_paused);
}

#[test]
fn v2_a_systemd_cgroups_path_is_a_scope_in_its_slice() {
    on_cgroup2(
        "v2_a_systemd_cgroups_path_is_a_scope_in_its_slice",
        "v2-sd",
        systemd_cgroups_path,
    );
}

#[test]
fn v2_update_writes_what_the_tree_offers_and_names_what_it_does_not() {
    on_cgroup2(
        "v2_update_writes_what_the_tree_offers_and_names_what_it_does_not",
        "v2-update",
        |layout, tag| {
            let Layout::V2 { root } = layout else { panic!("not v2") };
            let scratch = Scratch::new(layout, tag);
            let cgroup = scratch.open();
            cgroup.create(&LinuxResources::default()).expect("create");
            cgroup
                .update(&resources(CRI_DEVICES_ONLY))
                .expect("what keel does not manage is ignored");
            let offered = read(root, "cgroup.controllers");
            let offers = |c: &str| offered.split_whitespace().any(|o| o == c);
            let dir = root.join(scratch.path.trim_start_matches('/'));
            // On a hybrid machine the controllers belong to the v1 trees; on pure v2 they
            // are offered and enabled by the update, though create did not need them.
            let update = cgroup.update(&resources(
                r#"{"memory":{"limit":67108864},"cpu":{"shares":512,"quota":20000,"period":50000},"pids":{"limit":20}}"#,
            ));
            if offers("memory") && offers("cpu") && offers("pids") {
                update.expect("update");
                assert_eq!(read(&dir, "memory.max"), "67108864");
                assert_eq!(read(&dir, "cpu.weight"), "20");
                assert_eq!(read(&dir, "cpu.max"), "20000 50000");
                assert_eq!(read(&dir, "pids.max"), "20");
            } else {
                let error = update.expect_err("a controller the tree does not offer");
                assert!(
                    error
                        .to_string()
                        .contains("controller is not available in the cgroup v2 tree"),
                    "{error}"
                );
            }
            assert!(cgroup.exists(), "a refused update removed the cgroup");
        },
    );
}
