//! The runtime's own command line on an OCI bundle, with no containerd in between:
//! `create`, `state`, `start`, `ps`, `pause`, `resume`, `kill`, `delete`, called the way
//! containerd-shim-runc-v2 calls them (global `--root DIR --log FILE --log-format json`
//! before the verb, the bundle as cwd, `--pid-file`, numeric signals). The bundle's
//! config.json is `runc spec`'s default with the process, the rootfs and a cgroup of ours.
//!
//! Each scenario runs against runc (the reference) and against keel (step 04's binary);
//! one more test compares their `state` JSON.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use keel_tests::containerd::{self, alive, cgroup_dir, cgroup_path, describe, poll, remove_cgroups, wait_or_kill};
use keel_tests::{binary, needs_root, TestRootfs};
use serde_json::Value;

/// Stands for the container's id in the arguments of `Container::call`.
const ID: &str = "ID";

const TIMEOUT: Duration = Duration::from_secs(20);

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn keel() -> PathBuf {
    binary("step04-cgroups")
}

/// One container of one runtime: a bundle (config.json, rootfs) in a temporary directory,
/// the runtime's `--root` and `--log` beside it, a unique id and cgroup. Dropping it
/// deletes the container (`delete --force`), kills whatever is left in its cgroup and
/// removes the cgroup, before the directory goes.
struct Container {
    runtime: PathBuf,
    id: String,
    cgroup: String,
    bundle: PathBuf,
    root: PathBuf,
    rootfs: TestRootfs,
}

impl Container {
    fn new(runtime: &Path, args: &[&str]) -> Self {
        assert!(runtime.exists(), "no runtime at {}", runtime.display());
        let rootfs = TestRootfs::new();
        let id = format!(
            "lifecycle-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let cgroup = format!("/keel-test-{id}");
        let bundle = rootfs.scratch("bundle");
        // Not created here: the runtime must make its --root itself (runc does).
        let root = rootfs.scratch("state").join("runtime-root");
        let spec = assert_cmd::Command::new(containerd::runc())
            .arg("spec")
            .arg("--bundle")
            .arg(&bundle)
            .timeout(TIMEOUT)
            .output()
            .expect("runc spec");
        assert!(spec.status.success(), "runc spec: {}", describe(&spec));
        let path = bundle.join("config.json");
        let mut config: Value = serde_json::from_slice(&std::fs::read(&path).expect("config.json")).expect("json");
        config["process"]["terminal"] = Value::Bool(false);
        config["process"]["args"] = args.iter().map(|a| Value::from(*a)).collect();
        config["root"]["path"] = Value::from(rootfs.path().display().to_string());
        config["linux"]["cgroupsPath"] = Value::from(cgroup.clone());
        std::fs::write(&path, serde_json::to_vec_pretty(&config).expect("json")).expect("write config.json");
        Self {
            runtime: runtime.to_owned(),
            id,
            cgroup,
            bundle,
            root,
            rootfs,
        }
    }

    fn log_path(&self) -> PathBuf {
        self.bundle.join("log.json")
    }

    fn pid_file(&self) -> PathBuf {
        self.bundle.join("init.pid")
    }

    /// The runtime with the global flags the shim passes, in the bundle, with a timeout.
    fn runtime(&self) -> assert_cmd::Command {
        let mut command = assert_cmd::Command::new(&self.runtime);
        command
            .arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(self.log_path())
            .args(["--log-format", "json"])
            .current_dir(&self.bundle)
            .env_remove("RUST_BACKTRACE")
            .timeout(TIMEOUT);
        command
    }

    /// `RUNTIME --root … --log … --log-format json ARGS…`, where `ID` in ARGS is the id.
    fn call(&self, args: &[&str]) -> Output {
        assert!(args.contains(&ID), "no ID in {args:?}");
        let args = args.iter().map(|a| if *a == ID { self.id.as_str() } else { a });
        self.runtime().args(args).output().expect("runtime")
    }

    fn call_ok(&self, verb: &[&str]) -> Output {
        let output = self.call(verb);
        assert!(
            output.status.success(),
            "{} {}: {}\n--- log ---\n{}",
            self.runtime.display(),
            verb.join(" "),
            describe(&output),
            self.log()
        );
        output
    }

    /// `create --bundle B --pid-file B/init.pid ID` with stdin /dev/null and stdout/stderr
    /// files, as the container's own stdio (it keeps them: a pipe would never see EOF).
    /// Returns the status and what create itself wrote to stderr.
    fn create(&self) -> (std::process::ExitStatus, String) {
        let stdout = std::fs::File::create(self.bundle.join("stdout")).expect("stdout file");
        let stderr = std::fs::File::create(self.bundle.join("stderr")).expect("stderr file");
        let mut child = Command::new(&self.runtime)
            .arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(self.log_path())
            .args(["--log-format", "json"])
            .arg("create")
            .arg("--bundle")
            .arg(&self.bundle)
            .arg("--pid-file")
            .arg(self.pid_file())
            .arg(&self.id)
            .current_dir(&self.bundle)
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("runtime create");
        // create must return while the init waits for `start`.
        let status = wait_or_kill(&mut child, TIMEOUT, "create");
        (status, self.container_stderr())
    }

    fn create_ok(&self) -> u32 {
        let (status, stderr) = self.create();
        assert!(
            status.success(),
            "create: {status}\n{stderr}\n--- log ---\n{}",
            self.log()
        );
        let text = std::fs::read_to_string(self.pid_file()).expect("the pid file");
        assert!(
            !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()),
            "the pid file must be the decimal pid and nothing else (go-runc: strconv.Atoi): {text:?}"
        );
        text.parse().expect("pid")
    }

    fn container_stdout(&self) -> String {
        std::fs::read_to_string(self.bundle.join("stdout")).unwrap_or_default()
    }

    fn container_stderr(&self) -> String {
        std::fs::read_to_string(self.bundle.join("stderr")).unwrap_or_default()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The `msg` of every `"level":"error"` line of the log, checking that each line is a
    /// JSON object with string `level` and `msg` (what the shim parses).
    fn log_errors(&self) -> Vec<String> {
        let mut errors = Vec::new();
        for line in self.log().lines().filter(|l| !l.trim().is_empty()) {
            let entry: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
            let level = entry["level"]
                .as_str()
                .unwrap_or_else(|| panic!("no string level: {line}"));
            let msg = entry["msg"].as_str().unwrap_or_else(|| panic!("no string msg: {line}"));
            if level == "error" {
                errors.push(msg.to_owned());
            }
        }
        errors
    }

    fn state(&self) -> Value {
        let output = self.call_ok(&["state", ID]);
        serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("state is not JSON ({e}): {}", describe(&output)))
    }

    fn wait_for_status(&self, status: &str) -> Value {
        let mut state = Value::Null;
        let reached = poll(Duration::from_secs(10), || {
            state = self.state();
            state["status"] == status
        });
        assert!(reached, "never {status}: {state}");
        state
    }

    /// The runtime's own state entries under `--root`.
    fn root_entries(&self) -> Vec<String> {
        std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }

    fn cgroup_dirs(&self) -> Vec<PathBuf> {
        containerd::cgroup_mounts()
            .into_iter()
            .map(|(mount, _, _)| mount.join(self.cgroup.trim_start_matches('/')))
            .filter(|d| d.exists())
            .collect()
    }

    /// A failing call: its stderr must contain `text`, and so must the log's last error.
    fn assert_fails_with(&self, verb: &[&str], text: &str) {
        let output = self.call(verb);
        assert!(
            !output.status.success(),
            "{} should fail: {}",
            verb.join(" "),
            describe(&output)
        );
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(text),
            "{}: stderr should contain {text:?}: {}",
            verb.join(" "),
            describe(&output)
        );
        let errors = self.log_errors();
        assert!(
            errors.last().is_some_and(|m| m.contains(text)),
            "{}: the log's last error should contain {text:?}: {errors:?}",
            verb.join(" ")
        );
    }

    /// Nothing of the container is left: no state entry, no cgroup, no process.
    fn assert_gone(&self, pid: Option<u32>) {
        self.assert_fails_with(&["state", ID], "does not exist");
        assert!(
            !self.root_entries().contains(&self.id),
            "state dir left: {:?}",
            self.root_entries()
        );
        assert!(
            poll(Duration::from_secs(5), || self.cgroup_dirs().is_empty()),
            "cgroups left: {:?}",
            self.cgroup_dirs()
        );
        if let Some(pid) = pid {
            assert!(poll(Duration::from_secs(5), || !alive(pid)), "process {pid} left");
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self
            .runtime()
            .args(["delete", "--force"])
            .arg(&self.id)
            .timeout(Duration::from_secs(10))
            .output();
        remove_cgroups(&self.cgroup);
    }
}

// ---------------------------------------------------------------------------------------
// The scenarios.

/// The whole life of a container, checked at each step against what the shim relies on.
fn scenario_lifecycle(runtime: &Path) {
    let c = Container::new(runtime, &["/bin/sh", "-c", "echo started; exec /bin/sleep 1000"]);
    let pid = c.create_ok();
    assert_eq!(c.container_stderr(), "", "create must write nothing on success");
    assert_eq!(c.container_stdout(), "", "create must write nothing on success");
    assert!(alive(pid), "the init must wait for start");
    assert_eq!(
        cgroup_path(pid, "memory").as_deref(),
        Some(c.cgroup.as_str()),
        "cgroupsPath, exactly"
    );

    let state = c.state();
    assert_eq!(state["status"], "created", "{state}");
    assert_eq!(state["id"], c.id.as_str(), "{state}");
    assert_eq!(state["pid"], pid, "{state}");
    assert_eq!(state["bundle"], c.bundle.display().to_string(), "{state}");
    assert_eq!(state["rootfs"], c.rootfs.path().display().to_string(), "{state}");
    assert!(state["ociVersion"].is_string(), "{state}");
    assert!(state["created"].is_string(), "{state}");
    assert!(
        c.root_entries().contains(&c.id),
        "no state under --root: {:?}",
        c.root_entries()
    );

    let output = c.call_ok(&["start", ID]);
    assert_eq!(output.stdout, b"", "{}", describe(&output));
    assert!(
        poll(Duration::from_secs(5), || c.container_stdout() == "started\n"),
        "the process did not run with create's stdout: {:?}",
        c.container_stdout()
    );
    assert_eq!(c.state()["status"], "running");

    // go-runc reads `ps --format json` as combined output: JSON on stdout, nothing on stderr.
    let output = c.call_ok(&["ps", "--format", "json", ID]);
    assert_eq!(output.stderr, b"", "{}", describe(&output));
    let pids: Vec<u32> =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&output)));
    assert_eq!(pids, vec![pid]);

    c.call_ok(&["pause", ID]);
    assert_eq!(c.state()["status"], "paused");
    let freezer = cgroup_dir(pid, "freezer").expect("freezer cgroup");
    let frozen = std::fs::read_to_string(freezer.join("freezer.state"))
        .or_else(|_| std::fs::read_to_string(freezer.join("cgroup.freeze")))
        .expect("freezer state");
    assert!(matches!(frozen.trim(), "FROZEN" | "1"), "freezer: {frozen}");
    c.call_ok(&["resume", ID]);
    assert_eq!(c.state()["status"], "running");

    // The shim sends signals as numbers.
    c.call_ok(&["kill", ID, "9"]);
    let state = c.wait_for_status("stopped");
    assert!(!alive(pid) || state["pid"] == 0, "{state}");
    // containerd maps "container not running" to NotFound (checkKillError).
    c.assert_fails_with(&["kill", ID, "9"], "container not running");

    c.call_ok(&["delete", ID]);
    c.assert_gone(Some(pid));
}

/// Unknown ids, `delete --force`, and a create that fails: the error texts containerd
/// matches ("does not exist"), in the JSON log the shim reads.
fn scenario_errors(runtime: &Path) {
    let c = Container::new(runtime, &["/nonexistent"]);
    for verb in [
        &["state", ID][..],
        &["kill", ID, "9"],
        &["delete", ID],
        &["start", ID],
        &["pause", ID],
        &["ps", "--format", "json", ID],
    ] {
        c.assert_fails_with(verb, "does not exist");
    }
    // The shim's cleanup always runs `delete --force`, even for a container that is gone.
    c.call_ok(&["delete", "--force", ID]);

    let (status, stderr) = c.create();
    assert!(!status.success(), "create of /nonexistent succeeded\n{stderr}");
    let errors = c.log_errors();
    // runc: `runc create failed: unable to start container process: exec: "/nonexistent":
    // stat /nonexistent: no such file or directory`; the shim shows it after
    // "OCI runtime create failed: ".
    assert!(
        errors.last().is_some_and(|m| m.contains("/nonexistent")),
        "the log's last error must name the command: {errors:?}\n{}",
        c.log()
    );
    c.call_ok(&["delete", "--force", ID]);
    c.assert_gone(None);
}

/// Signals by name as well as by number (runtime-tools sends `KILL`, `TERM`).
fn scenario_signal_names(runtime: &Path) {
    let c = Container::new(runtime, &["/bin/sleep", "1000"]);
    let pid = c.create_ok();
    c.call_ok(&["start", ID]);
    c.wait_for_status("running");
    c.call_ok(&["kill", ID, "KILL"]);
    c.wait_for_status("stopped");
    c.call_ok(&["delete", ID]);
    c.assert_gone(Some(pid));

    let c = Container::new(runtime, &["/bin/sleep", "1000"]);
    let pid = c.create_ok();
    c.call_ok(&["start", ID]);
    c.call_ok(&["kill", ID, "SIGKILL"]);
    c.wait_for_status("stopped");
    c.call_ok(&["delete", ID]);
    c.assert_gone(Some(pid));
}

// ---------------------------------------------------------------------------------------
// The tests.

#[test]
fn runc_lifecycle() {
    if needs_root() {
        scenario_lifecycle(&containerd::runc());
    }
}

#[test]
fn keel_lifecycle() {
    if needs_root() {
        scenario_lifecycle(&keel());
    }
}

#[test]
fn runc_errors() {
    if needs_root() {
        scenario_errors(&containerd::runc());
    }
}

#[test]
fn keel_errors() {
    if needs_root() {
        scenario_errors(&keel());
    }
}

#[test]
fn runc_signal_names() {
    if needs_root() {
        scenario_signal_names(&containerd::runc());
    }
}

#[test]
fn keel_signal_names() {
    if needs_root() {
        scenario_signal_names(&keel());
    }
}

/// The same bundle created by runc and by keel: `state` has the same keys, both `created`,
/// `ociVersion` a string, and each its own id, bundle, rootfs and pid.
#[test]
fn state_after_create_matches_runc() {
    if !needs_root() {
        return;
    }
    let args = ["/bin/sleep", "1000"];
    let reference = Container::new(&containerd::runc(), &args);
    let ours = Container::new(&keel(), &args);
    let states: Vec<(Value, &Container, u32)> = [&reference, &ours]
        .into_iter()
        .map(|c| {
            let pid = c.create_ok();
            (c.state(), c, pid)
        })
        .collect();
    let keys = |state: &Value| -> Vec<String> {
        let mut keys: Vec<String> = state.as_object().expect("an object").keys().cloned().collect();
        keys.sort();
        keys
    };
    let (runc_state, keel_state) = (&states[0].0, &states[1].0);
    assert_eq!(
        keys(keel_state),
        keys(runc_state),
        "runc: {runc_state}\nkeel: {keel_state}"
    );
    for (state, c, pid) in &states {
        assert_eq!(state["status"], "created", "{state}");
        assert!(state["ociVersion"].is_string(), "{state}");
        assert_eq!(state["id"], c.id.as_str(), "{state}");
        assert_eq!(state["bundle"], c.bundle.display().to_string(), "{state}");
        assert_eq!(state["rootfs"], c.rootfs.path().display().to_string(), "{state}");
        assert_eq!(state["pid"], *pid, "{state}");
        for key in ["created", "owner"] {
            assert_eq!(
                state[key].is_string(),
                runc_state[key].is_string(),
                "{key}: runc {runc_state}\nkeel {state}"
            );
        }
    }
}
