//! Least privilege by default: a container's root keeps Docker's fourteen capabilities and
//! has no_new_privs. Each check shows the attack failing by default and working with the
//! measure turned off (`--privileged`, `--cap-add`), so the test can fail.

use keel_tests::engine::Engine;
use keel_tests::{binary, needs_root, stdout, step, TestRootfs, PROBE_IN_ROOTFS};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

/// Docker's default set as the kernel shows it in /proc/PID/status.
const DOCKER_DEFAULT: &str = "00000000a80425fb";

fn run_in(rootfs: &TestRootfs, flags: &[&str], command: &[&str]) -> std::process::Output {
    let root = rootfs.path();
    let mut args = vec!["run", "--rootfs", root.to_str().expect("utf-8")];
    args.extend_from_slice(flags);
    args.push("--");
    args.extend_from_slice(command);
    step("step03-mount-ns").args(&args).output().expect("run")
}

fn in_container(flags: &[&str], script: &str) -> std::process::Output {
    run_in(&TestRootfs::new(), flags, &["sh", "-c", script])
}

/// The probe's `caps` report without the seccomp line (another measure's business).
fn caps(output: &std::process::Output) -> String {
    assert!(output.status.success(), "{output:?}");
    stdout(output)
        .lines()
        .filter(|l| !l.starts_with("Seccomp"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// This test process's own permitted set: all that `--privileged` can give.
fn own_permitted() -> String {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let line = status.lines().find(|l| l.starts_with("CapPrm:")).expect("CapPrm");
    line.split_whitespace().nth(1).expect("mask").to_owned()
}

#[test]
fn the_default_set_is_dockers_and_no_new_privs_is_on() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let default = caps(&run_in(&rootfs, &[], &[PROBE_IN_ROOTFS, "caps"]));
    assert_eq!(
        default,
        format!(
            "CapInh: 0000000000000000\nCapPrm: {DOCKER_DEFAULT}\nCapEff: {DOCKER_DEFAULT}\n\
             CapBnd: {DOCKER_DEFAULT}\nCapAmb: 0000000000000000\nNoNewPrivs: 1\n"
        )
    );
    let all = own_permitted();
    let privileged = caps(&run_in(&rootfs, &["--privileged"], &[PROBE_IN_ROOTFS, "caps"]));
    assert_eq!(
        privileged,
        format!(
            "CapInh: 0000000000000000\nCapPrm: {all}\nCapEff: {all}\nCapBnd: {all}\n\
             CapAmb: 0000000000000000\nNoNewPrivs: 0\n"
        )
    );
}

#[test]
fn mounting_needs_sys_admin_which_a_container_lacks() {
    if !needs_root() {
        return;
    }
    let attack = "mount -t tmpfs escape /tmp && echo mounted";
    let default = in_container(&[], attack);
    assert!(!default.status.success(), "{default:?}");
    assert!(!stdout(&default).contains("mounted"));
    let added = in_container(&["--cap-add", "SYS_ADMIN"], attack);
    assert_eq!(stdout(&added), "mounted\n", "{added:?}");
    let privileged = in_container(&["--privileged"], attack);
    assert_eq!(stdout(&privileged), "mounted\n", "{privileged:?}");
}

#[test]
fn a_dropped_capability_is_gone_for_good() {
    if !needs_root() {
        return;
    }
    let attack = "touch /tmp/f && chown 1:1 /tmp/f && echo chowned";
    assert_eq!(stdout(&in_container(&[], attack)), "chowned\n");
    let dropped = in_container(&["--cap-drop", "CHOWN"], attack);
    assert!(!dropped.status.success(), "{dropped:?}");
    // Out of the bounding set: not even a new exec brings it back.
    let bounding = stdout(&in_container(
        &["--cap-drop", "CAP_CHOWN"],
        "grep CapBnd /proc/self/status",
    ));
    assert_eq!(bounding, "CapBnd:\t00000000a80425fa\n");
    let none = stdout(&in_container(&["--cap-drop", "ALL"], "grep CapEff /proc/self/status"));
    assert_eq!(none, "CapEff:\t0000000000000000\n");
}

/// A setuid-root copy of the probe in the rootfs: what `su` or `sudo` would be.
fn setuid_probe(rootfs: &TestRootfs) -> &'static str {
    let inside = "/bin/keel-probe-setuid";
    let path = rootfs.path().join(inside.trim_start_matches('/'));
    std::fs::copy(rootfs.path().join(PROBE_IN_ROOTFS.trim_start_matches('/')), &path).expect("copy");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o4755)).expect("chmod u+s");
    assert!(Path::new(&path).exists());
    inside
}

#[test]
fn no_new_privs_keeps_a_setuid_binary_from_making_a_user_root() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let probe = setuid_probe(&rootfs);
    let ids = |flags: &[&str]| {
        let output = run_in(&rootfs, flags, &[probe, "ids"]);
        assert!(output.status.success(), "{output:?}");
        stdout(&output).lines().next().unwrap_or_default().to_owned()
    };
    // Uid: real effective saved filesystem.
    assert_eq!(ids(&["-u", "1000:1000"]), "Uid: 1000 1000 1000 1000");
    assert_eq!(ids(&["-u", "1000:1000", "--privileged"]), "Uid: 1000 0 0 0");
}

#[test]
fn a_user_other_than_root_starts_without_capabilities_even_with_every_one_dropped() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    // The switch to the user needs CAP_SETUID and CAP_SETGID: it happens before the drop.
    for flags in [&["-u", "1000:1000"][..], &["-u", "1000:1000", "--cap-drop", "ALL"]] {
        let output = run_in(&rootfs, flags, &[PROBE_IN_ROOTFS, "ids", "caps"]);
        let report = stdout(&output);
        assert!(output.status.success(), "{flags:?}: {output:?}");
        assert!(report.contains("Uid: 1000 1000 1000 1000\n"), "{flags:?}: {report}");
        assert!(report.contains("CapEff: 0000000000000000\n"), "{flags:?}: {report}");
        assert!(report.contains("CapPrm: 0000000000000000\n"), "{flags:?}: {report}");
    }
    // step 02's init runs as the user too, with the same (lack of) privileges.
    let output = step("step03-mount-ns")
        .args(["run", "--rootfs", rootfs.path().to_str().expect("utf-8")])
        .args(["--init", "-u", "1000:1000", "--", "sh", "-c"])
        .arg("grep -E '^(Uid|CapEff)' /proc/1/status")
        .output()
        .expect("run");
    assert_eq!(
        stdout(&output),
        "Uid:\t1000\t1000\t1000\t1000\nCapEff:\t0000000000000000\n",
        "{output:?}"
    );
}

/// A runc bundle around `rootfs` running `sleep`, with `process` fields merged in.
fn bundle(rootfs: &TestRootfs, process: serde_json::Value) -> std::path::PathBuf {
    let dir = rootfs.path().parent().expect("bundle dir").to_owned();
    let mut config = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {"user": {"uid": 0, "gid": 0}, "args": ["sleep", "30"], "cwd": "/",
                    "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
        "root": {"path": "rootfs"},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}]}
    });
    for (key, value) in process.as_object().expect("object") {
        config["process"][key] = value.clone();
    }
    std::fs::write(dir.join("config.json"), config.to_string()).expect("config.json");
    dir
}

#[test]
fn the_runtime_applies_the_bundles_sets_and_exec_cannot_get_around_them() {
    if !needs_root() {
        return;
    }
    let state = tempfile::tempdir().expect("state");
    let runtime = |args: &[&str]| {
        step("step04-cgroups")
            .arg("--root")
            .arg(state.path())
            .args(args)
            .output()
            .expect("runtime")
    };
    // As runc: no process.capabilities means none at all.
    let rootfs = TestRootfs::new();
    let bare = bundle(&rootfs, serde_json::json!({"args": [PROBE_IN_ROOTFS, "caps"]}));
    let output = runtime(&["run", "--bundle", bare.to_str().expect("utf-8"), "keel-caps-bare"]);
    let report = caps(&output);
    assert!(
        report.contains("CapEff: 0000000000000000\nCapBnd: 0000000000000000\n"),
        "{report}"
    );

    // A user other than root with an ambient capability (how Kubernetes lets a non-root
    // process bind port 80): it survives the switch to the user and the exec.
    let rootfs = TestRootfs::new();
    let set = serde_json::json!(["CAP_NET_BIND_SERVICE"]);
    let ambient = bundle(
        &rootfs,
        serde_json::json!({
            "args": [PROBE_IN_ROOTFS, "caps"], "user": {"uid": 1000, "gid": 1000}, "noNewPrivileges": true,
            "capabilities": {"bounding": set, "effective": set, "permitted": set, "inheritable": set, "ambient": set}
        }),
    );
    let report = caps(&runtime(&[
        "run",
        "--bundle",
        ambient.to_str().expect("utf-8"),
        "keel-caps-ambient",
    ]));
    assert_eq!(
        report,
        "CapInh: 0000000000000400\nCapPrm: 0000000000000400\nCapEff: 0000000000000400\n\
         CapBnd: 0000000000000400\nCapAmb: 0000000000000400\nNoNewPrivs: 1\n"
    );

    // `exec` gets the container's sets, not the runtime's; runc's --cap adds one.
    let rootfs = TestRootfs::new();
    let default = serde_json::to_value(keel_tests::docker_default_capabilities()).expect("json");
    let detached = bundle(&rootfs, serde_json::json!({"capabilities": default}));
    let id = "keel-caps-exec";
    // Its stdio elsewhere than our pipes, which would stay open for as long as it runs.
    let created = std::process::Command::new(binary("step04-cgroups"))
        .arg("--root")
        .arg(state.path())
        .args(["run", "--detach", "--bundle", detached.to_str().expect("utf-8"), id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("runtime");
    assert!(created.success(), "run --detach: {created:?}");
    let attack = "mount -t tmpfs x /tmp && echo mounted";
    let refused = runtime(&["exec", id, "sh", "-c", attack]);
    assert!(!refused.status.success(), "{refused:?}");
    let allowed = runtime(&["exec", "--cap", "CAP_SYS_ADMIN", id, "sh", "-c", attack]);
    assert_eq!(stdout(&allowed), "mounted\n", "{allowed:?}");
    let deleted = runtime(&["delete", "--force", id]);
    assert!(deleted.status.success(), "{deleted:?}");
}

#[test]
fn docker_cap_add_and_privileged_reach_the_engines_containers() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    let text = |output: &std::process::Output| String::from_utf8_lossy(&output.stdout).into_owned();
    let attack = "ip addr add 10.254.254.254/32 dev lo && echo added";
    let default = engine.run(&["run", "--rm", "busybox", "sh", "-c", attack]);
    assert!(!default.status.success(), "{default:?}");
    let added = engine.run(&["run", "--rm", "--cap-add", "NET_ADMIN", "busybox", "sh", "-c", attack]);
    assert_eq!(text(&added), "added\n", "{added:?}");
    let dropped = engine.run(&[
        "run",
        "--rm",
        "--cap-drop",
        "NET_RAW",
        "busybox",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert_eq!(text(&dropped), "CapEff:\t00000000a80405fb\n", "{dropped:?}");
    let eff = engine.run(&["run", "--rm", "busybox", "grep", "CapEff", "/proc/self/status"]);
    assert_eq!(text(&eff), format!("CapEff:\t{DOCKER_DEFAULT}\n"));
    let all = engine.run(&[
        "run",
        "--rm",
        "--privileged",
        "busybox",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert_eq!(text(&all), format!("CapEff:\t{}\n", own_permitted()), "{all:?}");
    let privileged = engine.run(&[
        "run",
        "--rm",
        "--privileged",
        "busybox",
        "sh",
        "-c",
        "mount -t tmpfs x /tmp && echo mounted",
    ]);
    assert_eq!(text(&privileged), "mounted\n", "{privileged:?}");
    // A user other than root: no capabilities, and it starts (create, then start through
    // the start fifo, which that user must be able to open).
    let user = engine.run(&[
        "run",
        "--rm",
        "-u",
        "1000:1000",
        "busybox",
        "sh",
        "-c",
        "id -u; grep CapEff /proc/self/status",
    ]);
    assert_eq!(text(&user), "1000\nCapEff:\t0000000000000000\n", "{user:?}");
}

#[test]
fn docker_exec_has_the_containers_capabilities_unless_privileged() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    let text = |output: &std::process::Output| String::from_utf8_lossy(&output.stdout).into_owned();
    let name = "keel-caps-exec";
    // Without the seccomp filter, which refuses mount(2) to a container created without
    // CAP_SYS_ADMIN even when an exec gets it (as Docker's): this test is about capabilities.
    let started = engine.run(&[
        "run",
        "-d",
        "--security-opt",
        "seccomp=unconfined",
        "--name",
        name,
        "busybox",
        "sleep",
        "60",
    ]);
    assert!(started.status.success(), "{started:?}");
    let attack = "mount -t tmpfs x /tmp && echo mounted";
    let refused = engine.run(&["exec", name, "sh", "-c", attack]);
    assert!(!refused.status.success(), "{refused:?}");
    let eff = engine.run(&["exec", name, "grep", "-E", "^(CapEff|NoNewPrivs)", "/proc/self/status"]);
    assert_eq!(
        text(&eff),
        format!("CapEff:\t{DOCKER_DEFAULT}\nNoNewPrivs:\t1\n"),
        "{eff:?}"
    );
    let privileged = engine.run(&["exec", "--privileged", name, "sh", "-c", attack]);
    assert_eq!(text(&privileged), "mounted\n", "{privileged:?}");
    let removed = engine.run(&["rm", "-f", name]);
    assert!(removed.status.success(), "{removed:?}");
}
