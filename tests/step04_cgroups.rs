//! Step 04 as a participant sees it: limits enforced by the kernel and visible inside, an
//! OOM kill reported as such, nothing left in any cgroup tree afterwards, on the host's
//! layout (hybrid here) and on a real cgroup2 mount.

use keel_tests::{binary, needs_root, stderr, stdout, step, TestRootfs, PROBE_IN_ROOTFS};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::PathBuf;
use std::time::Duration;

const STEP: &str = "step04-cgroups";

/// Every place a cgroup named `parent` could be, in every tree mounted on the host.
fn cgroup_dirs(parent: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for tree in std::fs::read_dir("/sys/fs/cgroup").expect("/sys/fs/cgroup").flatten() {
        let dir = tree.path().join(parent);
        if dir.exists() {
            found.push(dir);
        }
    }
    found
}

fn run(rootfs: &TestRootfs, parent: &str, flags: &[&str], command: &[&str]) -> std::process::Output {
    let root = rootfs.path().display().to_string();
    let mut args = vec!["run", "--rootfs", &root, "--cgroup-parent", parent];
    args.extend_from_slice(flags);
    args.push("--");
    args.extend_from_slice(command);
    step(STEP).args(&args).output().expect("run")
}

#[test]
fn limits_asked_for_are_the_limits_seen_inside() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let flags = ["--memory", "64m", "--cpus", "0.5", "--pids-limit", "20"];
    let output = run(
        &rootfs,
        "keel-test-limits",
        &flags,
        &[PROBE_IN_ROOTFS, "cgroup", "limits"],
    );
    assert!(output.status.success(), "{output:?}");
    let report = stdout(&output);
    // The cgroup namespace makes the container's cgroup the root of every tree.
    assert!(
        report
            .lines()
            .filter(|l| l.starts_with("cgroup:"))
            .all(|l| l.ends_with(":/")),
        "{report}"
    );
    let v1 = report.contains("memory/memory.limit_in_bytes");
    insta::assert_snapshot!(if v1 { "limits_v1" } else { "limits_v2" }, report);
    assert!(
        cgroup_dirs("keel-test-limits").is_empty(),
        "left behind: {:?}",
        cgroup_dirs("keel-test-limits")
    );
}

#[test]
fn more_memory_than_the_limit_is_an_oom_kill_reported_as_such() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let output = run(
        &rootfs,
        "keel-test-oom",
        &["--memory", "32m"],
        &[PROBE_IN_ROOTFS, "alloc:64"],
    );
    assert_eq!(output.status.code(), Some(137), "{output:?}");
    assert!(
        stderr(&output).contains(
            "out of memory: the kernel's OOM killer killed 1 process(es) of the container at the 32.0 MiB limit"
        ),
        "{}",
        stderr(&output)
    );
    assert!(cgroup_dirs("keel-test-oom").is_empty());
}

#[test]
fn a_fork_loop_hits_the_pids_limit_and_the_container_survives() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let output = run(
        &rootfs,
        "keel-test-pids",
        &["--pids-limit", "8"],
        &[PROBE_IN_ROOTFS, "fork:20"],
    );
    assert!(output.status.success(), "{output:?}");
    // The probe itself is one of the 8.
    assert_eq!(stdout(&output), "forked 7 of 20, refused 13\n");
    assert!(cgroup_dirs("keel-test-pids").is_empty());
}

#[test]
fn half_a_cpu_is_a_quota_and_a_busy_loop_gets_about_half() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let output = run(
        &rootfs,
        "keel-test-cpu",
        &["--cpus", "0.5", "--stats"],
        &[PROBE_IN_ROOTFS, "limits", "burn:2"],
    );
    assert!(output.status.success(), "{output:?}");
    let report = stdout(&output);
    assert!(
        report.contains("limit cpu/cpu.cfs_quota_us: 50000") || report.contains("limit cpu.max: 50000 100000"),
        "{report}"
    );
    let share: u32 = report
        .lines()
        .find_map(|l| l.strip_prefix("cpu share: ")?.split('%').next()?.parse().ok())
        .expect("a cpu share");
    // Generous: the machine is shared and the accounting is in 10 ms ticks.
    assert!(
        (20..=65).contains(&share),
        "a busy loop under --cpus 0.5 got {share}% of a CPU"
    );
    assert!(stderr(&output).contains("stats: peak memory"), "{}", stderr(&output));
}

#[test]
fn bad_values_are_refused_before_anything_is_created() {
    if !needs_root() {
        return;
    }
    let cases: [&[&str]; 5] = [
        &["--memory", "-1"],
        &["--cpus", "0"],
        &["--memory", "12zz"],
        &["--memory-swap", "64m"],
        &["--memory", "64m", "--memory-swap", "32m"],
    ];
    for flags in cases {
        let mut args = vec!["run", "--cgroup-parent", "keel-test-bad"];
        args.extend_from_slice(flags);
        args.extend(["--", "true"]);
        let output = step(STEP).args(&args).output().expect("run");
        assert_eq!(output.status.code(), Some(125), "{flags:?}: {output:?}");
        assert_eq!(stderr(&output).lines().count().min(1), 1, "{flags:?} gave no message");
        assert!(cgroup_dirs("keel-test-bad").is_empty(), "{flags:?} created a cgroup");
    }
}

#[test]
fn the_cgroup_is_removed_when_the_tool_is_terminated() {
    if !needs_root() {
        return;
    }
    let mut child = std::process::Command::new(binary(STEP))
        .args([
            "run",
            "--init",
            "--cgroup-parent",
            "keel-test-term",
            "--memory",
            "64m",
            "--",
            "sleep",
            "30",
        ])
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(400));
    assert!(!cgroup_dirs("keel-test-term").is_empty(), "no cgroup while running");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("kill");
    assert_eq!(child.wait().expect("wait").code(), Some(143));
    assert!(
        cgroup_dirs("keel-test-term").is_empty(),
        "left behind: {:?}",
        cgroup_dirs("keel-test-term")
    );
}

/// Runs step 04 in a private mount namespace where /sys/fs/cgroup is a cgroup2 mount: the
/// pure v2 layout most users have, on this hybrid machine.
fn run_on_cgroup2(rootfs: &TestRootfs, flags: &str, command: &str) -> std::process::Output {
    run_on_cgroup2_with(rootfs, "", flags, command)
}

/// [`run_on_cgroup2`], with step 04 started by `wrapper` (strace...).
fn run_on_cgroup2_with(rootfs: &TestRootfs, wrapper: &str, flags: &str, command: &str) -> std::process::Output {
    let script = format!(
        "mount -t cgroup2 none /sys/fs/cgroup && exec {wrapper} {} run --rootfs {} --cgroup-parent keel-test-v2 {flags} -- {command}",
        binary(STEP).display(),
        rootfs.path().display()
    );
    assert_cmd::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .timeout(Duration::from_secs(30))
        .output()
        .expect("unshare")
}

/// `strace -ff -o DIR/t -e trace=SYSCALLS`: one file a process, so no call is ever split into
/// `<unfinished ...>` and `<... resumed>` lines by another process's calls.
fn strace(dir: &std::path::Path, syscalls: &str) -> [String; 5] {
    [
        "-ff".into(),
        "-o".into(),
        format!("{}/t", dir.display()),
        "-e".into(),
        format!("trace={syscalls}"),
    ]
}

/// Every process's trace from [`strace`], one after another.
fn traces(dir: &std::path::Path) -> String {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("the trace dir")
        .flatten()
        .map(|entry| entry.path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|file| std::fs::read_to_string(file).expect("a trace"))
        .collect()
}

#[test]
fn on_cgroup2_the_child_is_born_in_its_cgroup_instead_of_being_moved() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    // strace shows how the child got there: clone3 into the cgroup's directory, and no
    // write of its pid to cgroup.procs (the move that waits for an RCU grace period).
    let dir = rootfs.scratch("strace");
    let wrapper = format!("strace {}", strace(&dir, "clone3,openat").join(" "));
    let output = run_on_cgroup2_with(&rootfs, &wrapper, "", "true");
    assert!(output.status.success(), "{output:?}");
    let trace = traces(&dir);
    assert!(
        trace
            .lines()
            .any(|l| l.contains("clone3(") && l.contains("CLONE_INTO_CGROUP") && !l.contains("= -1")),
        "{trace}"
    );
    assert!(
        !trace.lines().any(|l| l.contains("cgroup.procs\", O_WRONLY")),
        "{trace}"
    );
    assert_nothing_left_on_cgroup2();
}

#[test]
fn on_cgroup_v1_the_child_moves_itself_into_each_tree() {
    if !needs_root() {
        return;
    }
    let trees = ["cpu", "cpuacct", "freezer", "memory", "pids"];
    if !std::path::Path::new("/sys/fs/cgroup/memory/tasks").exists() {
        // A pure cgroup v2 machine has no v1 tree to test (clone3 covers it, above).
        return;
    }
    let traced = tempfile::tempdir().expect("a dir for the traces");
    let dir = traced.path();
    let output = assert_cmd::Command::new("strace")
        .args(strace(dir, "openat,write"))
        .arg(binary(STEP))
        .args([
            "run",
            "--cgroup-parent",
            "keel-test-v1",
            "--memory",
            "32m",
            "--",
            "true",
        ])
        .timeout(Duration::from_secs(30))
        .output()
        .expect("strace");
    assert!(output.status.success(), "{output:?}");
    let trace = traces(dir);
    // The parent opens each tree's tasks file; the child writes "0" (itself) to each: the
    // move that skips the lock a write of its pid to cgroup.procs would wait on.
    let opened: Vec<&str> = trace.lines().filter(|l| l.contains("/tasks\", O_WRONLY")).collect();
    assert_eq!(opened.len(), trees.len(), "{trace}");
    let written = trace
        .lines()
        .filter(|l| l.contains("write(") && l.contains(", \"0\", 1)") && l.trim_end().ends_with("= 1"))
        .count();
    assert_eq!(written, trees.len(), "{trace}");
    assert!(
        !trace.lines().any(|l| l.contains("cgroup.procs\", O_WRONLY")),
        "{trace}"
    );
    assert!(cgroup_dirs("keel-test-v1").is_empty(), "left behind");
}

/// The runs on cgroup2 left no cgroup behind in the v2 tree.
fn assert_nothing_left_on_cgroup2() {
    if let Some(dir) = unified_dir("keel-test-v2") {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

fn unified_dir(parent: &str) -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let unified = mountinfo
        .lines()
        .find(|l| l.contains(" - cgroup2 "))?
        .split(' ')
        .nth(4)?
        .to_owned();
    Some(PathBuf::from(unified).join(parent))
}

#[test]
fn on_cgroup2_the_container_gets_its_own_cgroup_and_leaves_none() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let output = run_on_cgroup2(&rootfs, "--stats", &format!("{PROBE_IN_ROOTFS} cgroup"));
    assert!(output.status.success(), "{output:?}");
    // The kernel still lists its v1 trees in /proc/self/cgroup; in every one, and in the
    // v2 tree (0::), the container's cgroup is the root of its namespace.
    let report = stdout(&output);
    assert!(report.contains("cgroup: 0::/\n"), "{report}");
    assert!(report.lines().all(|l| l.ends_with(":/")), "{report}");
    let inside = run_on_cgroup2(&rootfs, "", "ls /sys/fs/cgroup");
    assert!(
        stdout(&inside).contains("cgroup.controllers"),
        "cgroup2 not mounted inside: {inside:?}"
    );
    assert_nothing_left_on_cgroup2();
}

#[test]
fn on_cgroup2_a_controller_it_does_not_offer_is_a_clear_error() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    // On this hybrid machine the memory controller belongs to the v1 tree; on a pure v2
    // machine it is offered and the run succeeds.
    let output = run_on_cgroup2(&rootfs, "--memory 32m", "true");
    let controllers = std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers").unwrap_or_default();
    if controllers.split_whitespace().any(|c| c == "memory") {
        assert!(output.status.success(), "{output:?}");
    } else {
        assert_eq!(output.status.code(), Some(125), "{output:?}");
        assert!(
            stderr(&output).contains("the memory controller is not available in the cgroup v2 tree"),
            "{}",
            stderr(&output)
        );
    }
    assert_nothing_left_on_cgroup2();
}

#[test]
fn the_cgroup_of_a_killed_tool_is_removed_by_the_next_run() {
    if !needs_root() {
        return;
    }
    let mut child = std::process::Command::new(binary(STEP))
        .args(["run", "--cgroup-parent", "keel-test-killed", "--", "sleep", "30"])
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(400));
    // SIGKILL: the tool cannot clean up, its container dies with it (PR_SET_PDEATHSIG).
    child.kill().expect("kill");
    let _ = child.wait();
    std::thread::sleep(Duration::from_millis(200));
    let stale = cgroup_dirs("keel-test-killed");
    assert!(!stale.is_empty(), "the killed run left no cgroup: nothing to test");
    let next = step(STEP)
        .args(["run", "--cgroup-parent", "keel-test-killed", "--", "true"])
        .output()
        .expect("run");
    assert!(next.status.success(), "{next:?}");
    assert!(
        cgroup_dirs("keel-test-killed").is_empty(),
        "left behind: {:?}",
        cgroup_dirs("keel-test-killed")
    );
}
