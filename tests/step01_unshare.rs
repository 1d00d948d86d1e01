//! Step 01 as a participant sees it: a new hostname, IPC and network stack inside; the host
//! unchanged; exit statuses and errors as docker's.

use keel_tests::{needs_root, redact_namespaces, stdout, step, PROBE};
use std::time::Duration;

const STEP: &str = "step01-unshare";

#[test]
fn inside_has_its_own_hostname_ipc_and_network() {
    if !needs_root() {
        return;
    }
    let host_before = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    let output = step(STEP)
        .args(["run", "--hostname", "box", "--", PROBE, "hostname", "ns", "net"])
        .output()
        .expect("run");
    assert!(output.status.success(), "{output:?}");
    insta::assert_snapshot!("inside", redact_namespaces(&stdout(&output)));
    let host_after = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    assert_eq!(host_before, host_after, "the host's hostname changed");
}

#[test]
fn the_commands_exit_status_becomes_the_tools() {
    if !needs_root() {
        return;
    }
    step(STEP).args(["run", "--", "sh", "-c", "exit 7"]).assert().code(7);
    step(STEP)
        .args(["run", "--", "sh", "-c", "kill -KILL $$"])
        .assert()
        .code(137);
}

#[test]
fn a_signal_to_the_tool_reaches_the_command() {
    if !needs_root() {
        return;
    }
    let mut child = std::process::Command::new(keel_tests::binary(STEP))
        .args(["run", "--", "sleep", "30"])
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(300));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(143), "SIGTERM should end sleep: 128 + 15");
}

#[test]
fn errors_name_the_problem_and_use_dockers_exit_codes() {
    if !needs_root() {
        return;
    }
    let cases: [(&[&str], i32, &str); 4] = [
        (
            &["run", "--", "no-such-command-anywhere"],
            127,
            "exec \"no-such-command-anywhere\": No such file or directory",
        ),
        (&["run", "--", "/etc"], 126, "exec \"/etc\": Permission denied"),
        (&["run"], 125, "required arguments were not provided"),
        (
            &["run", "--hostname", "bad name", "--", "true"],
            125,
            "the hostname \"bad name\" is not valid",
        ),
    ];
    for (args, code, message) in cases {
        let output = step(STEP).args(args).output().expect("run");
        assert_eq!(output.status.code(), Some(code), "{args:?}: {output:?}");
        assert!(
            keel_tests::stderr(&output).contains(message),
            "{args:?}: {}",
            keel_tests::stderr(&output)
        );
    }
}

#[test]
fn without_root_a_user_namespace_maps_the_caller_to_root() {
    if !needs_root() {
        return;
    }
    // Run as nobody through setpriv (util-linux) with a copy of the binary nobody can read.
    let dir = tempfile::tempdir().expect("tempdir");
    let binary = dir.path().join(STEP);
    std::fs::copy(keel_tests::binary(STEP), &binary).expect("copy");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let output = assert_cmd::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&binary)
        .args(["run", "--hostname", "rootless", "--", PROBE, "hostname", "ids", "ns"])
        .current_dir("/")
        .timeout(Duration::from_secs(30))
        .output()
        .expect("setpriv");
    assert!(output.status.success(), "{output:?}");
    insta::assert_snapshot!("rootless", redact_namespaces(&stdout(&output)));
}

#[test]
fn doctor_reports_every_check() {
    let output = step(STEP).arg("doctor").output().expect("doctor");
    let report = stdout(&output);
    for check in ["kernel", "privileges", "container", "cgroups", "overlay", "busybox"] {
        assert!(report.contains(check), "doctor does not check {check}:\n{report}");
    }
}

#[test]
fn the_command_gets_sigpipe_with_its_default_action() {
    if !needs_root() {
        return;
    }
    // Rust programs start with SIGPIPE ignored, and exec passes "ignore" on: `yes` would then
    // see EPIPE and complain instead of being ended quietly by the signal.
    let output = step(STEP)
        .args(["run", "--", "sh", "-c", "yes | head -n 1"])
        .output()
        .expect("run");
    assert_eq!(
        (stdout(&output).as_str(), keel_tests::stderr(&output).as_str()),
        ("y\n", ""),
        "{output:?}"
    );
}
