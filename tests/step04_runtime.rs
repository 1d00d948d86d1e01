//! Step 04 as an OCI runtime, driven the way containerd drives runc: a bundle, `create`,
//! `start`, `state`, `kill`, `delete`, `exec`, and the details the shim relies on (the pid
//! file, JSON error lines, runc's error wording, no descriptor leaks, joining namespaces by
//! path, hooks). The containerd scenarios themselves are in runtime_containerd.rs.

use keel_tests::{binary, needs_root, stderr, stdout, wait_for, TestRootfs, PROBE_IN_ROOTFS};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// The runtime with its own state directory, removed (with any container left) on drop.
struct Runtime {
    root: tempfile::TempDir,
}

impl Runtime {
    fn new() -> Self {
        let root = tempfile::Builder::new()
            .prefix("keel-runtime-")
            .tempdir()
            .expect("state dir");
        Self { root }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(binary("step04-cgroups"));
        command.arg("--root").arg(self.root.path()).args(args);
        command
    }

    /// Runs the runtime with stdout and stderr in files, not pipes: a detached container
    /// inherits them (as it inherits the shim's), and a pipe would not see EOF until the
    /// container ends.
    fn run(&self, args: &[&str]) -> Output {
        let out = tempfile::tempfile().expect("stdout file");
        let err = tempfile::tempfile().expect("stderr file");
        let status = self
            .command(args)
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(err.try_clone().expect("dup"))
            .status()
            .expect("runtime");
        Output {
            status,
            stdout: read_all(out),
            stderr: read_all(err),
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "{args:?} failed: {}{}",
            stdout(&output),
            stderr(&output)
        );
        stdout(&output)
    }

    fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).expect("state is JSON")
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        for entry in std::fs::read_dir(self.root.path()).into_iter().flatten().flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            let _ = self.run(&["delete", "--force", &id]);
        }
    }
}

/// A bundle around a fresh busybox rootfs, with the spec `runc spec` writes (namespaces,
/// the usual mounts), running `args`.
fn bundle(rootfs: &TestRootfs, args: &[&str], edit: impl FnOnce(&mut Value)) -> PathBuf {
    let bundle = rootfs.path().parent().expect("bundle dir").to_owned();
    let mut config = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/"
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "runtime-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]
        }
    });
    edit(&mut config);
    std::fs::write(bundle.join("config.json"), config.to_string()).expect("config.json");
    bundle
}

fn read_all(mut file: std::fs::File) -> Vec<u8> {
    use std::io::{Read, Seek};
    let mut bytes = Vec::new();
    let _ = file.rewind();
    let _ = file.read_to_end(&mut bytes);
    bytes
}

fn unique(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

fn wait_until(mut condition: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

#[test]
fn create_waits_for_start_and_delete_removes_everything() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let marker = rootfs.path().join("started");
    let bundle = bundle(&rootfs, &["sh", "-c", "touch /started; exec sleep 60"], |_| {});
    let runtime = Runtime::new();
    let id = unique("lifecycle");
    let pid_file = rootfs.scratch("run").join("init.pid");
    let bundle_arg = bundle.display().to_string();
    let pid_arg = pid_file.display().to_string();
    let quiet = runtime.ok(&["create", "--bundle", &bundle_arg, "--pid-file", &pid_arg, &id]);
    assert_eq!(quiet, "", "create is silent on success");

    let pid_text = std::fs::read_to_string(&pid_file).expect("pid file");
    assert!(
        !pid_text.ends_with('\n'),
        "containerd parses the pid file with Atoi: no newline"
    );
    let pid: i32 = pid_text.parse().expect("a number");
    let state = runtime.state(&id);
    assert_eq!(state["status"], "created");
    assert_eq!(state["pid"], pid);
    assert_eq!(state["id"], id.as_str());
    assert_eq!(state["bundle"], bundle_arg.as_str());
    std::thread::sleep(Duration::from_millis(200));
    assert!(!marker.exists(), "the command ran before start");

    runtime.ok(&["start", &id]);
    assert!(wait_until(|| marker.exists()), "the command did not run after start");
    assert_eq!(runtime.state(&id)["status"], "running");
    let again = runtime.run(&["start", &id]);
    assert!(!again.status.success(), "a running container cannot be started twice");

    let refused = runtime.run(&["delete", &id]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("is running"), "{}", stderr(&refused));

    runtime.ok(&["kill", &id, "KILL"]);
    assert!(wait_until(|| runtime.state(&id)["status"] == "stopped"));
    let not_running = runtime.run(&["kill", &id, "9"]);
    assert!(
        stderr(&not_running).contains("container not running"),
        "{}",
        stderr(&not_running)
    );
    runtime.ok(&["delete", &id]);
    assert!(!runtime.root.path().join(&id).exists(), "state left behind");
    let gone = runtime.run(&["state", &id]);
    assert!(stderr(&gone).contains("container does not exist"), "{}", stderr(&gone));
    assert_eq!(runtime.run(&["delete", "--force", &id]).status.code(), Some(0));
}

/// `kill ID KILL && delete ID` (the book's run-it block, and what a user types) must not race
/// the kernel, which ends the process after kill(2) returns. The first process of a PID
/// namespace is the slowest to end: it becomes a zombie only once every other process in the
/// namespace is gone, so 300 sleeping children make the race certain for a kill that does not
/// wait.
#[test]
fn kill_with_sigkill_returns_once_the_container_has_ended() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let children = "for i in $(seq 300); do sleep 1000 & done; touch /started; exec sleep 1000";
    let bundle = bundle(&rootfs, &["sh", "-c", children], |_| {});
    let runtime = Runtime::new();
    let id = unique("killwait");
    runtime.ok(&["create", "--bundle", &bundle.display().to_string(), &id]);
    let pid = runtime.state(&id)["pid"].as_i64().expect("a pid");
    runtime.ok(&["start", &id]);
    assert!(wait_for(&rootfs.path().join("started")), "the children did not start");

    runtime.ok(&["kill", &id, "KILL"]);
    // Read at once, from /proc: a zombie (Z, X) or no process at all is an ended one.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit(") ").next().and_then(|rest| rest.chars().next());
    assert!(
        matches!(state, None | Some('Z' | 'X')),
        "kill KILL returned while the first process was still in state {state:?}"
    );
    assert_eq!(runtime.state(&id)["status"], "stopped");
    runtime.ok(&["delete", &id]);
}

#[test]
fn errors_are_json_lines_for_containerd_and_name_the_problem() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let bundle = bundle(&rootfs, &["/no/such/command"], |_| {});
    let runtime = Runtime::new();
    let log = rootfs.scratch("log").join("log.json");
    let log_arg = log.display().to_string();
    let output = Command::new(binary("step04-cgroups"))
        .args([
            "--root",
            &runtime.root.path().display().to_string(),
            "--log",
            &log_arg,
            "--log-format",
            "json",
        ])
        .args(["create", "--bundle", &bundle.display().to_string(), "missing"])
        .output()
        .expect("runtime");
    assert_eq!(output.status.code(), Some(1));
    let last = std::fs::read_to_string(&log).expect("log file");
    let line: Value = serde_json::from_str(last.lines().last().expect("a line")).expect("a JSON line");
    assert_eq!(line["level"], "error");
    let message = line["msg"].as_str().expect("msg");
    assert!(message.contains("/no/such/command"), "{message}");
    assert!(
        !runtime.root.path().join("missing").exists(),
        "a failed create left state behind"
    );

    let unknown = runtime.run(&["kill", "nobody", "9"]);
    assert!(stderr(&unknown).contains("container does not exist"));
    let bad_id = runtime.run(&["create", "--bundle", &bundle.display().to_string(), "../escape"]);
    assert!(stderr(&bad_id).contains("invalid container id"), "{}", stderr(&bad_id));
}

#[test]
fn no_descriptor_of_the_caller_reaches_the_container() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let bundle = bundle(&rootfs, &["sh", "-c", "ls /proc/self/fd > /fds"], |_| {});
    let runtime = Runtime::new();
    let id = unique("fds");
    // The shell gives the runtime an extra descriptor 7, as containerd's shim leaks fd 3.
    let script = format!(
        "exec 7</etc/hostname; {} --root {} run --bundle {} {}",
        binary("step04-cgroups").display(),
        runtime.root.path().display(),
        bundle.display(),
        id
    );
    let output = Command::new("sh")
        .args(["-c", &script])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("sh");
    assert!(output.status.success(), "{}", stderr(&output));
    let fds = std::fs::read_to_string(rootfs.path().join("fds")).expect("fds");
    let fds: Vec<&str> = fds.lines().collect();
    // 0, 1, 2 and the descriptor ls opened on /proc/self/fd itself.
    assert_eq!(fds, ["0", "1", "2", "3"], "a descriptor leaked into the container");
}

#[test]
fn exec_joins_the_container_and_a_second_container_can_join_its_network() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let bundle_a = bundle(&rootfs, &["sleep", "60"], |_| {});
    let runtime = Runtime::new();
    let a = unique("pod");
    runtime.ok(&["run", "--detach", "--bundle", &bundle_a.display().to_string(), &a]);
    let pid = runtime.state(&a)["pid"].as_i64().expect("pid");

    // exec: same namespaces, same cgroup, exit status passed on.
    let inside = runtime.ok(&[
        "exec",
        &a,
        "sh",
        "-c",
        "hostname; readlink /proc/self/ns/net; cat /proc/1/cmdline",
    ]);
    let lines: Vec<&str> = inside.lines().collect();
    let host_view = std::fs::read_link(format!("/proc/{pid}/ns/net")).expect("ns link");
    assert_eq!(lines[0], "runtime-test");
    assert_eq!(lines[1], host_view.display().to_string());
    assert!(lines[2].starts_with("sleep"), "{inside}");
    assert_eq!(runtime.run(&["exec", &a, "sh", "-c", "exit 7"]).status.code(), Some(7));

    // A second container joins A's network namespace by path, as a pod's containers do.
    let rootfs_b = TestRootfs::new();
    let net = format!("/proc/{pid}/ns/net");
    let bundle_b = bundle(
        &rootfs_b,
        &["sh", "-c", "readlink /proc/self/ns/net > /net"],
        |config| {
            config["linux"]["namespaces"] =
                json!([{"type": "pid"}, {"type": "network", "path": net}, {"type": "mount"}]);
            config.as_object_mut().expect("object").remove("hostname");
        },
    );
    let b = unique("member");
    runtime.ok(&["run", "--bundle", &bundle_b.display().to_string(), &b]);
    let joined = std::fs::read_to_string(rootfs_b.path().join("net")).expect("net");
    assert_eq!(joined.trim(), host_view.display().to_string());

    runtime.ok(&["delete", "--force", &a]);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists() || wait_until(|| !Path::new(&format!("/proc/{pid}/ns")).exists())
    );
}

#[test]
fn hooks_run_at_their_points_with_the_state_on_stdin() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let logs = rootfs.scratch("hooks");
    let hook =
        |name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}/{name}", logs.display())]});
    let (prestart, poststart, poststop) = (hook("prestart"), hook("poststart"), hook("poststop"));
    let bundle = bundle(&rootfs, &["true"], |config| {
        config["hooks"] = json!({"prestart": [prestart], "poststart": [poststart], "poststop": [poststop]});
    });
    let runtime = Runtime::new();
    let id = unique("hooks");
    runtime.ok(&["create", "--bundle", &bundle.display().to_string(), &id]);
    let state: Value = serde_json::from_str(&std::fs::read_to_string(logs.join("prestart")).expect("prestart ran"))
        .expect("state JSON on stdin");
    assert_eq!(state["id"], id.as_str());
    assert!(state["pid"].as_i64().unwrap_or(0) > 0);
    assert!(!logs.join("poststart").exists(), "poststart ran before start");
    runtime.ok(&["start", &id]);
    assert!(logs.join("poststart").exists());
    assert!(wait_until(|| runtime.state(&id)["status"] == "stopped"));
    runtime.ok(&["delete", &id]);
    assert!(logs.join("poststop").exists());

    // A failing hook fails create, and nothing is left.
    let failing = bundle_with_failing_hook(&rootfs);
    let output = runtime.run(&["create", "--bundle", &failing.display().to_string(), "failing"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("hook"), "{}", stderr(&output));
    assert!(!runtime.root.path().join("failing").exists());
}

fn bundle_with_failing_hook(rootfs: &TestRootfs) -> PathBuf {
    bundle(rootfs, &["true"], |config| {
        config["hooks"] = json!({"createRuntime": [{"path": "/bin/false"}]});
    })
}

#[test]
fn the_probe_reports_a_container_made_from_a_bundle() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let bundle = bundle(&rootfs, &[PROBE_IN_ROOTFS, "hostname", "pid"], |_| {});
    let runtime = Runtime::new();
    let output = runtime.run(&["run", "--bundle", &bundle.display().to_string(), &unique("probe")]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report = keel_tests::redact_namespaces(&stdout(&output));
    assert!(report.contains("hostname: runtime-test"), "{report}");
    assert!(report.contains("pid: 1"), "{report}");
}

/// The freezer state of the container's cgroup as the kernel reports it.
fn v1_freezer_state(id: &str) -> String {
    std::fs::read_to_string(format!("/sys/fs/cgroup/freezer/keel/{id}/freezer.state"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

#[test]
fn pause_resume_update_ps_and_kill_all_work_on_the_cgroup() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let bundle = bundle(&rootfs, &["sh", "-c", "sleep 60 & sleep 61 & wait"], |config| {
        config["linux"]["resources"]["memory"] = json!({"limit": 64 << 20});
        // With a cgroup namespace, /sys/fs/cgroup inside shows the container's own cgroup.
        config["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces")
            .push(json!({"type": "cgroup"}));
    });
    let runtime = Runtime::new();
    let id = unique("control");
    runtime.ok(&["run", "--detach", "--bundle", &bundle.display().to_string(), &id]);
    let pid = runtime.state(&id)["pid"].as_i64().expect("pid");

    let pids: Vec<i64> = serde_json::from_str(&runtime.ok(&["ps", "--format", "json", &id])).expect("a JSON array");
    assert!(
        wait_until(|| {
            let pids: Vec<i64> =
                serde_json::from_str(&runtime.ok(&["ps", "--format", "json", &id])).unwrap_or_default();
            pids.len() == 3
        }),
        "expected sh and two sleeps, got {pids:?}"
    );
    assert!(runtime.ok(&["ps", &id]).contains("sleep 61"));

    runtime.ok(&["pause", &id]);
    assert_eq!(runtime.state(&id)["status"], "paused");
    if Path::new("/sys/fs/cgroup/freezer").exists() {
        assert_eq!(v1_freezer_state(&id), "FROZEN");
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    assert!(
        stat.contains(") S ") || stat.contains(") D "),
        "a frozen process sleeps: {stat}"
    );
    runtime.ok(&["resume", &id]);
    assert_eq!(runtime.state(&id)["status"], "running");

    let mut update = runtime.command(&["update", "--resources", "-", &id]);
    let mut child = update
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("update");
    std::io::Write::write_all(
        child.stdin.as_mut().expect("stdin"),
        br#"{"devices":[{"allow":false,"access":"rwm"}],"memory":{"limit":134217728},"pids":{"limit":50}}"#,
    )
    .expect("write");
    drop(child.stdin.take());
    assert!(child.wait().expect("wait").success());
    let limit = runtime.ok(&["exec", &id, "sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max 2>/dev/null; cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null; true"]);
    assert!(limit.contains("134217728"), "{limit}");
    assert!(limit.contains("50"), "{limit}");

    runtime.ok(&["kill", "--all", &id, "KILL"]);
    assert!(wait_until(|| runtime.state(&id)["status"] == "stopped"));
    runtime.ok(&["delete", &id]);
    assert!(
        !Path::new(&format!("/sys/fs/cgroup/memory/keel/{id}")).exists(),
        "cgroup left behind"
    );
}

#[test]
fn on_cgroup2_pause_freezes_the_container_and_delete_removes_its_cgroup() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let bundle = bundle(&rootfs, &["sleep", "60"], |config| {
        config["linux"]["cgroupsPath"] = json!("/keel-test-v2/runtime");
    });
    let runtime = Runtime::new();
    let rt = format!(
        "{} --root {}",
        binary("step04-cgroups").display(),
        runtime.root.path().display()
    );
    let script = format!(
        "set -e; mount -t cgroup2 none /sys/fs/cgroup; \
         {rt} run --detach --bundle {} v2 >/dev/null; \
         {rt} pause v2; {rt} state v2 | grep -o '\"status\": \"[a-z]*\"'; \
         cat /sys/fs/cgroup/keel-test-v2/runtime/cgroup.freeze; \
         {rt} resume v2; {rt} state v2 | grep -o '\"status\": \"[a-z]*\"'; \
         {rt} delete --force v2; test ! -e /sys/fs/cgroup/keel-test-v2/runtime && echo removed",
        bundle.display()
    );
    let output = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("unshare");
    let text = stdout(&output);
    assert!(output.status.success(), "{text}{}", stderr(&output));
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["\"status\": \"paused\"", "1", "\"status\": \"running\"", "removed"]
    );
}

#[test]
fn rlimits_oom_score_sysctls_and_masked_paths_from_the_spec_are_applied() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let script = "ulimit -n; cat /proc/self/oom_score_adj; cat /proc/sys/kernel/shmmax; \
                  wc -c < /proc/timer_list; ls /sys/firmware | wc -l; \
                  echo 1 > /proc/sys/kernel/shmall 2>/dev/null && echo writable || echo read-only";
    let bundle = bundle(&rootfs, &["sh", "-c", script], |config| {
        config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456}]);
        config["process"]["oomScoreAdj"] = json!(500);
        config["linux"]["sysctl"] = json!({"kernel.shmmax": "65536"});
        config["linux"]["maskedPaths"] = json!(["/proc/timer_list", "/sys/firmware", "/proc/does-not-exist"]);
        config["linux"]["readonlyPaths"] = json!(["/proc/sys"]);
    });
    let runtime = Runtime::new();
    let output = runtime.run(&["run", "--bundle", &bundle.display().to_string(), &unique("extras")]);
    assert!(output.status.success(), "{}{}", stdout(&output), stderr(&output));
    assert_eq!(
        stdout(&output).lines().collect::<Vec<_>>(),
        ["123", "500", "65536", "0", "0", "read-only"]
    );
    // The host's value is untouched: the sysctl belongs to the container's IPC namespace.
    assert_ne!(
        std::fs::read_to_string("/proc/sys/kernel/shmmax")
            .expect("host shmmax")
            .trim(),
        "65536"
    );

    let refused = bundle_with(&rootfs, json!({"vm.swappiness": "10"}));
    let output = runtime.run(&["run", "--bundle", &refused.display().to_string(), &unique("sysctl")]);
    assert!(stderr(&output).contains("not namespaced"), "{}", stderr(&output));
}

fn bundle_with(rootfs: &TestRootfs, sysctl: Value) -> PathBuf {
    bundle(rootfs, &["true"], |config| config["linux"]["sysctl"] = sysctl)
}
