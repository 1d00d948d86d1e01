//! Step 02 as a participant sees it: the command is PID 1 of its own PID namespace; with
//! --init, a minimal init is PID 1, passes signals on and exits with the command's status.

use keel_tests::{binary, needs_root, redact_namespaces, stdout, step, PROBE};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::process::{Child, Command};
use std::time::Duration;

const STEP: &str = "step02-pid-ns";

#[test]
fn the_command_is_pid_1_of_a_new_pid_namespace() {
    if !needs_root() {
        return;
    }
    let output = step(STEP)
        .args(["run", "--", PROBE, "pid", "ns"])
        .output()
        .expect("run");
    assert!(output.status.success(), "{output:?}");
    insta::assert_snapshot!("pid1", redact_namespaces(&stdout(&output)));
    let shell = step(STEP)
        .args(["run", "--", "sh", "-c", "echo $$"])
        .output()
        .expect("run");
    assert_eq!(stdout(&shell), "1\n");
}

#[test]
fn under_init_the_command_is_pid_2_child_of_pid_1() {
    if !needs_root() {
        return;
    }
    let output = step(STEP)
        .args(["run", "--init", "--", PROBE, "pid"])
        .output()
        .expect("run");
    assert_eq!(stdout(&output), "pid: 2\nppid: 1\n");
}

fn start(args: &[&str]) -> Child {
    let child = Command::new(binary(STEP)).args(args).spawn().expect("spawn");
    // Give the container time to exec its command before signalling.
    std::thread::sleep(Duration::from_millis(400));
    child
}

fn signal(child: &Child, signal: Signal) {
    kill(Pid::from_raw(child.id() as i32), signal).expect("kill");
}

fn wait(mut child: Child) -> Option<i32> {
    for _ in 0..100 {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn init_forwards_signals_and_exits_128_plus_n() {
    if !needs_root() {
        return;
    }
    for (sig, code) in [(Signal::SIGTERM, 143), (Signal::SIGINT, 130), (Signal::SIGUSR1, 138)] {
        let child = start(&["run", "--init", "--", "sleep", "30"]);
        signal(&child, sig);
        assert_eq!(wait(child), Some(code), "{sig} through the init");
    }
}

#[test]
fn a_command_that_handles_the_signal_as_pid_1_receives_it() {
    if !needs_root() {
        return;
    }
    let child = start(&[
        "run",
        "--",
        "sh",
        "-c",
        "trap 'exit 3' TERM; while true; do sleep 0.1; done",
    ]);
    signal(&child, Signal::SIGTERM);
    assert_eq!(wait(child), Some(3));
}

#[test]
fn without_init_pid_1_ignores_a_signal_it_has_no_handler_for() {
    if !needs_root() {
        return;
    }
    // The kernel gives PID 1 no default action for SIGTERM: sleep does not die.
    let child = start(&["run", "--", "sleep", "3"]);
    signal(&child, Signal::SIGTERM);
    std::thread::sleep(Duration::from_millis(500));
    let mut child = child;
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "sleep as PID 1 died of SIGTERM"
    );
    assert_eq!(wait(child), Some(0), "sleep ends normally after its 3 s");
}

#[test]
fn sigint_reaches_the_command_even_when_the_caller_ignored_it() {
    if !needs_root() {
        return;
    }
    // A shell without job control starts background jobs with SIGINT ignored; the tool must
    // still take it and pass it on (an ignored signal would never reach sigwait).
    let script = format!(
        "{} run --init -- sleep 30 & pid=$!; sleep 0.4; kill -INT $pid; wait $pid",
        binary(STEP).display()
    );
    let output = assert_cmd::Command::new("sh")
        .args(["-c", &script])
        .timeout(Duration::from_secs(20))
        .output()
        .expect("sh");
    assert_eq!(output.status.code(), Some(130), "{output:?}");
}

#[test]
fn the_container_does_not_outlive_a_killed_tool() {
    if !needs_root() {
        return;
    }
    let marker = format!("keel-test-orphan-{}", std::process::id());
    // `exec -a` is not in every sh: name the process through a symlink to sleep instead.
    let dir = tempfile::tempdir().expect("tempdir");
    let sleeper = dir.path().join(&marker);
    std::os::unix::fs::symlink("/bin/sleep", &sleeper).expect("symlink");
    let mut child = Command::new(binary(STEP))
        .args(["run", "--"])
        .arg(&sleeper)
        .arg("30")
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(400));
    child.kill().expect("SIGKILL the tool");
    let _ = child.wait();
    std::thread::sleep(Duration::from_millis(300));
    let alive = std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("cmdline")).ok())
        .any(|cmdline| cmdline.contains(&marker));
    assert!(!alive, "the container kept running after its tool was killed");
}
