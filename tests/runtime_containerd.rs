//! A runtime driven by a real containerd, as Docker and Kubernetes drive one: containerd 1.6
//! and its `containerd-shim-runc-v2`, told by `ctr run --runc-binary RUNTIME` to call RUNTIME
//! where it would call runc. Every scenario is a function of the runtime's path; each has a
//! `runc_…` test (the reference) and a `keel_…` test (step 04's binary as the runtime).
//!
//! Each scenario starts its own containerd (own namespace, so its cgroups `/NS/ID` are its
//! own), uses its own copy of the busybox rootfs with `ctr run --rootfs` (no image import),
//! and ends by checking that nothing is left: no task, no container, no shim, no runtime
//! state under `--runc-root`, no cgroup.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use keel_tests::containerd::{self, cgroup_dir, cgroup_path, describe, parent_pid, poll, Containerd};
use keel_tests::{binary, needs_root, TestRootfs};

const LIMIT: u64 = 64 * 1024 * 1024;

/// The keel runtime: step 04's binary with the runc command line.
fn keel() -> PathBuf {
    binary("step04-cgroups")
}

/// One containerd, one rootfs, one runtime: what every scenario needs.
/// (Fields drop in order: containerd, and the tasks it still has, go before the rootfs.)
struct Setup {
    containerd: Containerd,
    rootfs: TestRootfs,
    runtime: PathBuf,
}

impl Setup {
    fn new(runtime: &Path) -> Self {
        assert!(runtime.exists(), "no runtime at {}", runtime.display());
        Self {
            containerd: Containerd::start(),
            rootfs: TestRootfs::new(),
            runtime: runtime.to_owned(),
        }
    }

    /// `run --rootfs --runc-binary RUNTIME --runc-root DIR --fifo-dir DIR FLAGS ROOTFS ID CMD…`
    fn run_args(&self, flags: &[&str], id: &str, command: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "run".into(),
            "--rootfs".into(),
            "--runc-binary".into(),
            self.runtime.display().to_string(),
            "--runc-root".into(),
            self.containerd.runtime_root().display().to_string(),
            "--fifo-dir".into(),
            self.containerd.fifo_dir().display().to_string(),
        ];
        args.extend(flags.iter().map(|f| f.to_string()));
        args.push(self.rootfs.path().display().to_string());
        args.push(id.into());
        args.extend(command.iter().map(|c| c.to_string()));
        args
    }

    /// `ctr run …` in the foreground, with a timeout.
    fn run(&self, flags: &[&str], id: &str, command: &[&str]) -> std::process::Output {
        self.containerd
            .ctr()
            .args(self.run_args(flags, id, command))
            .output()
            .expect("ctr run")
    }

    /// `ctr run -d …`; waits for RUNNING and returns the task's (init's) pid.
    fn run_detached(&self, flags: &[&str], id: &str, command: &[&str]) -> u32 {
        let mut all = vec!["--detach"];
        all.extend_from_slice(flags);
        let output = self.run(&all, id, command);
        assert!(
            output.status.success(),
            "ctr run -d {id}: {}\n{}",
            describe(&output),
            self.containerd.log()
        );
        self.containerd.wait_for_status(id, "RUNNING").pid
    }

    /// `ctr task exec --fifo-dir DIR --exec-id EXEC FLAGS ID CMD…`
    fn exec_args(&self, flags: &[&str], id: &str, exec_id: &str, command: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "task".into(),
            "exec".into(),
            "--fifo-dir".into(),
            self.containerd.fifo_dir().display().to_string(),
            "--exec-id".into(),
            exec_id.into(),
        ];
        args.extend(flags.iter().map(|f| f.to_string()));
        args.push(id.into());
        args.extend(command.iter().map(|c| c.to_string()));
        args
    }

    fn exec(&self, flags: &[&str], id: &str, exec_id: &str, command: &[&str]) -> std::process::Output {
        self.containerd
            .ctr()
            .args(self.exec_args(flags, id, exec_id, command))
            .output()
            .expect("ctr task exec")
    }

    /// `ctr ARGS` run under `script`, so that ctr has a terminal to put in raw mode and
    /// relay (`-t`). script's own exit status is ctr's (`-e`).
    fn under_terminal(&self, args: &[String]) -> std::process::Output {
        let line: Vec<String> = std::iter::once("ctr".to_owned())
            .chain(self.containerd.ctr_args())
            .chain(args.iter().cloned())
            .map(|a| shell_quote(&a))
            .collect();
        assert_cmd::Command::new("script")
            .args(["--quiet", "--return", "--command"])
            .arg(line.join(" "))
            .arg("/dev/null")
            .env("SHELL", "/bin/sh")
            .timeout(containerd::CTR_TIMEOUT)
            .output()
            .expect("script (util-linux)")
    }

    /// Kills task `id` if it is there, deletes it and its container, and checks that
    /// nothing of it is left.
    fn remove(&self, id: &str) {
        if let Some(task) = self.containerd.task(id) {
            if task.status != "STOPPED" {
                self.containerd.ctr_ok(&["task", "kill", "--signal", "SIGKILL", id]);
                self.containerd.wait_for_status(id, "STOPPED");
            }
            self.containerd.ctr_ok(&["task", "delete", id]);
        }
        if self.containerd.containers().iter().any(|c| c == id) {
            self.containerd.ctr_ok(&["container", "rm", id]);
        }
        self.containerd.assert_nothing_left(id);
    }
}

fn shell_quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The `/dev/pts/N` a `tty` printed, out of a terminal's output (CRs and ctr's noise around).
fn pts(output: &str) -> Option<String> {
    let at = output.find("/dev/pts/")?;
    let digits: String = output[at + 9..].chars().take_while(char::is_ascii_digit).collect();
    (!digits.is_empty()).then(|| format!("/dev/pts/{digits}"))
}

/// The memory limit of the cgroup of `pid`: memory.limit_in_bytes on v1, memory.max on v2.
fn memory_limit(pid: u32) -> (PathBuf, String) {
    let dir = cgroup_dir(pid, "memory").expect("the task's memory cgroup");
    let v1 = dir.join("memory.limit_in_bytes");
    let file = if v1.exists() { v1 } else { dir.join("memory.max") };
    let value = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    (file, value.trim().to_owned())
}

/// Whether the cgroup of `pid` is frozen: freezer.state FROZEN on v1, cgroup.freeze 1 on v2.
fn freezer_state(pid: u32) -> String {
    let dir = cgroup_dir(pid, "freezer").expect("the task's freezer cgroup");
    std::fs::read_to_string(dir.join("freezer.state"))
        .or_else(|_| std::fs::read_to_string(dir.join("cgroup.freeze")))
        .expect("freezer.state or cgroup.freeze")
        .trim()
        .to_owned()
}

/// The pids in the cgroup of `pid` (its `pids` hierarchy, or the cgroup2 one).
fn cgroup_procs(pid: u32) -> Vec<u32> {
    let dir = cgroup_dir(pid, "pids").expect("the task's pids cgroup");
    let mut procs: Vec<u32> = std::fs::read_to_string(dir.join("cgroup.procs"))
        .expect("cgroup.procs")
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    procs.sort_unstable();
    procs
}

/// Whether `pid`'s parent is a shim of this containerd (the runtime must leave its
/// processes to the shim, which is their subreaper, and keep no monitor of its own).
fn assert_child_of_shim(setup: &Setup, pid: u32, id: &str) {
    let parent = parent_pid(pid).unwrap_or_else(|| panic!("process {pid} is gone"));
    let shims = setup.containerd.shims();
    assert!(
        shims.iter().any(|s| s.pid == parent && s.id == id),
        "process {pid}'s parent is {parent}, not the shim of {id}: {shims:?}"
    );
}

// ---------------------------------------------------------------------------------------
// The scenarios.

/// The container's stdout and stderr reach ctr's stdout and stderr, each on its own.
fn scenario_stdout_and_stderr_apart(runtime: &Path) {
    let setup = Setup::new(runtime);
    let output = setup.run(
        &["--rm"],
        "out-err",
        &["/bin/sh", "-c", "echo to-stdout; echo to-stderr >&2"],
    );
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(text(&output.stdout), "to-stdout\n", "{}", describe(&output));
    assert_eq!(text(&output.stderr), "to-stderr\n", "{}", describe(&output));
    setup.containerd.assert_nothing_left("out-err");
    setup.containerd.assert_all_clean();
}

/// The container's exit status is ctr's; a command that cannot be started is an error that
/// names it (the shim reads the runtime's last `"level":"error"` log line).
fn scenario_exit_codes(runtime: &Path) {
    let setup = Setup::new(runtime);
    let output = setup.run(&["--rm"], "exit7", &["/bin/sh", "-c", "exit 7"]);
    assert_eq!(output.status.code(), Some(7), "{}", describe(&output));
    assert_eq!(text(&output.stdout), "", "{}", describe(&output));
    setup.containerd.assert_nothing_left("exit7");

    let output = setup.run(&["--rm"], "true", &["/bin/true"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    setup.containerd.assert_nothing_left("true");

    // runc: `ctr: failed to create shim task: OCI runtime create failed: runc create failed:
    // unable to start container process: exec: "/nonexistent": stat /nonexistent: no such
    // file or directory: unknown`
    let output = setup.run(&["--rm"], "missing", &["/nonexistent"]);
    assert!(!output.status.success(), "{}", describe(&output));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("OCI runtime create failed") && stderr.contains("/nonexistent"),
        "the runtime's own error message must reach ctr: {}",
        describe(&output)
    );
    setup.containerd.assert_nothing_left("missing");
    setup.containerd.assert_all_clean();
}

/// What is written to ctr's stdin reaches the container's.
fn scenario_stdin_passed_through(runtime: &Path) {
    let setup = Setup::new(runtime);
    let args = setup.run_args(&["--rm"], "stdin", &["/bin/cat"]);
    let mut run = setup.containerd.spawn_ctr(&args, true);
    run.stdin()
        .as_mut()
        .expect("stdin")
        .write_all(b"hi\n")
        .expect("writing to ctr");
    // ctr 1.6 closes the task's stdin on EOF only once the task exists (an EOF read before
    // is lost, and `echo hi | ctr run … cat` then hangs): close ours once it runs.
    setup.containerd.wait_for_status("stdin", "RUNNING");
    drop(run.stdin().take());
    let output = run.finish(containerd::CTR_TIMEOUT);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(text(&output.stdout), "hi\n", "{}", describe(&output));
    setup.containerd.assert_nothing_left("stdin");
    setup.containerd.assert_all_clean();
}

/// `ctr run -t`: the container gets a terminal of its own (the runtime sends the pty master
/// over `--console-socket`), and its exit status still comes back.
fn scenario_tty(runtime: &Path) {
    let setup = Setup::new(runtime);
    let args = setup.run_args(&["--rm", "--tty"], "tty", &["/bin/sh", "-c", "/usr/bin/tty; exit 5"]);
    let output = setup.under_terminal(&args);
    let printed = text(&output.stdout);
    assert!(pts(&printed).is_some(), "no /dev/pts/N in: {}", describe(&output));
    assert_eq!(output.status.code(), Some(5), "{}", describe(&output));
    setup.containerd.assert_nothing_left("tty");
    setup.containerd.assert_all_clean();
}

/// `--env` and `--cwd` reach the process; `ctr task exec --user 1000:1000` runs as that
/// user (ctr 1.6's `run` has no `--user`), with the container's env and `--cwd`.
fn scenario_env_cwd_user(runtime: &Path) {
    let setup = Setup::new(runtime);
    let output = setup.run(
        &["--rm", "--env", "KEEL_TEST=yes", "--cwd", "/tmp"],
        "env",
        &[
            "/bin/sh",
            "-c",
            "echo \"$KEEL_TEST\"; pwd; /usr/bin/id -u; /usr/bin/id -g",
        ],
    );
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(text(&output.stdout), "yes\n/tmp\n0\n0\n", "{}", describe(&output));
    setup.containerd.assert_nothing_left("env");

    setup.run_detached(&["--env", "KEEL_TEST=yes"], "user", &["/bin/sleep", "1000"]);
    let output = setup.exec(
        &["--user", "1000:1000", "--cwd", "/etc"],
        "user",
        "as-1000",
        &["/bin/sh", "-c", "/usr/bin/id; pwd; echo \"$KEEL_TEST\""],
    );
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(
        text(&output.stdout),
        "uid=1000 gid=1000 groups=1000\n/etc\nyes\n",
        "{}",
        describe(&output)
    );
    setup.remove("user");
    setup.containerd.assert_all_clean();
}

/// `ctr run -d --memory-limit`: the task's cgroup is exactly `/NAMESPACE/ID` (the shim reads
/// /proc/PID/cgroup for metrics and OOM events) and has the limit; the init is the shim's child.
fn scenario_detached_with_memory_limit(runtime: &Path) {
    let setup = Setup::new(runtime);
    let limit = LIMIT.to_string();
    let pid = setup.run_detached(&["--memory-limit", &limit], "limited", &["/bin/sleep", "1000"]);
    let expected = format!("/{}/limited", setup.containerd.namespace());
    assert_eq!(cgroup_path(pid, "memory").as_deref(), Some(expected.as_str()));
    let (file, value) = memory_limit(pid);
    assert_eq!(value, limit, "{}", file.display());
    assert_child_of_shim(&setup, pid, "limited");
    // The shim's bundle has the init's pid file: the decimal pid, no newline.
    let pid_file = std::fs::read_to_string(setup.containerd.bundle("limited").join("init.pid")).expect("init.pid");
    assert_eq!(pid_file, pid.to_string(), "init.pid");
    let ps = setup.containerd.task_ps("limited");
    assert_eq!(ps, vec![(pid, "-".to_owned())]);
    setup.remove("limited");
    setup.containerd.assert_all_clean();
}

/// `ctr task exec`: plain (stdout/stderr apart, exit status), `--tty`, `--detach` (the
/// process is the shim's child, in the container's cgroup), and one that cannot start.
fn scenario_exec(runtime: &Path) {
    let setup = Setup::new(runtime);
    let pid = setup.run_detached(&[], "exec", &["/bin/sleep", "1000"]);

    let output = setup.exec(
        &[],
        "exec",
        "plain",
        &["/bin/sh", "-c", "echo exec-out; echo exec-err >&2; exit 3"],
    );
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
    assert_eq!(text(&output.stdout), "exec-out\n", "{}", describe(&output));
    assert_eq!(text(&output.stderr), "exec-err\n", "{}", describe(&output));

    let output = setup.under_terminal(&setup.exec_args(&["--tty"], "exec", "tty", &["/usr/bin/tty"]));
    assert!(
        pts(&text(&output.stdout)).is_some(),
        "no /dev/pts/N in: {}",
        describe(&output)
    );
    assert!(output.status.success(), "{}", describe(&output));

    let output = setup.exec(&["--detach"], "exec", "sleeper", &["/bin/sleep", "999"]);
    assert!(output.status.success(), "{}", describe(&output));
    let ps = setup.containerd.task_ps("exec");
    let sleeper = ps
        .iter()
        .find(|(_, info)| info.contains("ExecID:sleeper"))
        .unwrap_or_else(|| panic!("no exec `sleeper` in ctr task ps: {ps:?}"))
        .0;
    assert_child_of_shim(&setup, sleeper, "exec");
    assert!(
        cgroup_procs(pid).contains(&sleeper),
        "exec not in the container's cgroup"
    );

    // runc: `ctr: OCI runtime exec failed: exec failed: unable to start container process:
    // exec: "/nonexistent": stat /nonexistent: no such file or directory: unknown`
    let output = setup.exec(&[], "exec", "missing", &["/nonexistent"]);
    assert!(!output.status.success(), "{}", describe(&output));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("OCI runtime exec failed") && stderr.contains("/nonexistent"),
        "the runtime's own error message must reach ctr: {}",
        describe(&output)
    );
    assert_eq!(setup.containerd.wait_for_status("exec", "RUNNING").pid, pid);
    setup.remove("exec");
    setup.containerd.assert_all_clean();
}

/// `ctr task ps` (the runtime's `ps --format json`) lists every process of the container:
/// exactly what is in its cgroup, the init and an exec marked as such.
fn scenario_task_ps(runtime: &Path) {
    let setup = Setup::new(runtime);
    let pid = setup.run_detached(&[], "ps", &["/bin/sh", "-c", "/bin/sleep 1001 & exec /bin/sleep 1000"]);
    let output = setup.exec(&["--detach"], "ps", "extra", &["/bin/sleep", "1002"]);
    assert!(output.status.success(), "{}", describe(&output));
    let mut listed = Vec::new();
    let mut procs = Vec::new();
    let agree = poll(Duration::from_secs(5), || {
        listed = setup.containerd.task_ps("ps");
        procs = cgroup_procs(pid);
        let mut pids: Vec<u32> = listed.iter().map(|(p, _)| *p).collect();
        pids.sort_unstable();
        pids == procs && pids.len() == 3
    });
    assert!(agree, "ctr task ps {listed:?} vs cgroup.procs {procs:?}");
    assert!(listed.contains(&(pid, "-".to_owned())), "{listed:?}");
    assert!(
        listed.iter().any(|(_, info)| info.contains("ExecID:extra")),
        "{listed:?}"
    );
    setup.remove("ps");
    setup.containerd.assert_all_clean();
}

/// `ctr task kill --exec-id` ends that exec and nothing else.
fn scenario_kill_exec(runtime: &Path) {
    let setup = Setup::new(runtime);
    let pid = setup.run_detached(&[], "killexec", &["/bin/sleep", "1000"]);
    let output = setup.exec(&["--detach"], "killexec", "victim", &["/bin/sleep", "999"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(setup.containerd.task_ps("killexec").len(), 2);
    setup
        .containerd
        .ctr_ok(&["task", "kill", "--exec-id", "victim", "--signal", "SIGKILL", "killexec"]);
    let mut ps = Vec::new();
    let gone = poll(Duration::from_secs(10), || {
        ps = setup.containerd.task_ps("killexec");
        ps == vec![(pid, "-".to_owned())]
    });
    assert!(gone, "after killing the exec, ctr task ps shows {ps:?}");
    assert_eq!(setup.containerd.wait_for_status("killexec", "RUNNING").pid, pid);
    setup.remove("killexec");
    setup.containerd.assert_all_clean();
}

/// `ctr task pause` freezes the cgroup (PAUSED, FROZEN); `resume` thaws it (RUNNING).
fn scenario_pause_resume(runtime: &Path) {
    let setup = Setup::new(runtime);
    let pid = setup.run_detached(&[], "pause", &["/bin/sleep", "1000"]);
    setup.containerd.ctr_ok(&["task", "pause", "pause"]);
    setup.containerd.wait_for_status("pause", "PAUSED");
    let state = freezer_state(pid);
    assert!(state == "FROZEN" || state == "1", "freezer: {state}");
    setup.containerd.ctr_ok(&["task", "resume", "pause"]);
    setup.containerd.wait_for_status("pause", "RUNNING");
    let state = freezer_state(pid);
    assert!(state == "THAWED" || state == "0", "freezer: {state}");
    setup.remove("pause");
    setup.containerd.assert_all_clean();
}

/// SIGKILL ends a task with status 137: the foreground `ctr run` exits 137, a detached
/// task goes STOPPED and `ctr task delete` reports 137. Killing it again is "not found".
fn scenario_kill_137(runtime: &Path) {
    let setup = Setup::new(runtime);
    let args = setup.run_args(&[], "foreground", &["/bin/sleep", "1000"]);
    let run = setup.containerd.spawn_ctr(&args, false);
    setup.containerd.wait_for_status("foreground", "RUNNING");
    setup
        .containerd
        .ctr_ok(&["task", "kill", "--signal", "SIGKILL", "foreground"]);
    let output = run.finish(containerd::CTR_TIMEOUT);
    assert_eq!(output.status.code(), Some(137), "{}", describe(&output));
    // ctr run deleted the task on its way out; the container record stays (no --rm).
    assert!(setup.containerd.task("foreground").is_none());
    setup.remove("foreground");

    setup.run_detached(&[], "detached", &["/bin/sleep", "1000"]);
    setup
        .containerd
        .ctr_ok(&["task", "kill", "--signal", "SIGKILL", "detached"]);
    setup.containerd.wait_for_status("detached", "STOPPED");
    // ctr 1.6 has no `task wait`; `task delete` returns the exit status as a warning.
    let output = setup.containerd.ctr_ok(&["task", "delete", "detached"]);
    assert!(text(&output.stderr).contains("exit code 137"), "{}", describe(&output));
    setup.remove("detached");
    setup.containerd.assert_all_clean();
}

/// `ctr task delete`: of a stopped task (exit 0, no warning), not of a running one without
/// `--force`, with `--force` of a running one; then the task is gone ("not found").
fn scenario_delete(runtime: &Path) {
    let setup = Setup::new(runtime);
    let output = setup.run(&["--detach"], "done", &["/bin/true"]);
    assert!(output.status.success(), "{}", describe(&output));
    setup.containerd.wait_for_status("done", "STOPPED");
    let output = setup.containerd.ctr_ok(&["task", "delete", "done"]);
    assert!(!text(&output.stderr).contains("exit code"), "{}", describe(&output));
    assert!(setup.containerd.task("done").is_none());
    let again = setup
        .containerd
        .ctr()
        .args(["task", "delete", "done"])
        .output()
        .expect("ctr");
    assert!(!again.status.success(), "{}", describe(&again));
    assert!(text(&again.stderr).contains("not found"), "{}", describe(&again));
    setup.remove("done");

    setup.run_detached(&[], "busy", &["/bin/sleep", "1000"]);
    let refused = setup
        .containerd
        .ctr()
        .args(["task", "delete", "busy"])
        .output()
        .expect("ctr");
    assert!(!refused.status.success(), "{}", describe(&refused));
    assert_eq!(setup.containerd.wait_for_status("busy", "RUNNING").id, "busy");
    setup.containerd.ctr_ok(&["task", "delete", "--force", "busy"]);
    assert!(setup.containerd.task("busy").is_none());
    setup.remove("busy");
    setup.containerd.assert_all_clean();
}

/// `ctr task kill --all` (the runtime's `kill --all ID 9`) ends every process of the container.
fn scenario_kill_all(runtime: &Path) {
    let setup = Setup::new(runtime);
    let pid = setup.run_detached(&[], "all", &["/bin/sh", "-c", "/bin/sleep 1001 & exec /bin/sleep 1000"]);
    for exec_id in ["one", "two"] {
        let output = setup.exec(&["--detach"], "all", exec_id, &["/bin/sleep", "999"]);
        assert!(output.status.success(), "{}", describe(&output));
    }
    let cgroup = cgroup_dir(pid, "pids").expect("cgroup");
    assert!(
        poll(Duration::from_secs(5), || cgroup_procs(pid).len() == 4),
        "expected 4 processes: {:?}",
        cgroup_procs(pid)
    );
    setup
        .containerd
        .ctr_ok(&["task", "kill", "--all", "--signal", "SIGKILL", "all"]);
    setup.containerd.wait_for_status("all", "STOPPED");
    let procs = || std::fs::read_to_string(cgroup.join("cgroup.procs")).unwrap_or_default();
    assert!(
        poll(Duration::from_secs(5), || procs().trim().is_empty()),
        "still in the cgroup: {}",
        procs()
    );
    assert_eq!(setup.containerd.task_ps("all"), vec![]);
    setup.remove("all");
    setup.containerd.assert_all_clean();
}

/// Killing a task that has exited is NotFound: the shim still calls `RUNTIME kill ID 15`,
/// and containerd's checkKillError turns an error whose output (go-runc: stdout and stderr
/// together) says "container not running" (or "no such process") into `ctr: process already
/// finished: not found`. Any other text gives "unknown error after kill".
fn scenario_kill_stopped_is_not_found(runtime: &Path) {
    let setup = Setup::new(runtime);
    let output = setup.run(&["--detach"], "stopped", &["/bin/true"]);
    assert!(output.status.success(), "{}", describe(&output));
    setup.containerd.wait_for_status("stopped", "STOPPED");
    for signal in ["SIGTERM", "SIGKILL"] {
        let output = setup
            .containerd
            .ctr()
            .args(["task", "kill", "--signal", signal, "stopped"])
            .output()
            .expect("ctr");
        assert!(!output.status.success(), "{}", describe(&output));
        assert!(
            text(&output.stderr).contains("process already finished: not found"),
            "{}",
            describe(&output)
        );
    }
    setup.remove("stopped");
    setup.containerd.assert_all_clean();
}

// ---------------------------------------------------------------------------------------
// The tests: each scenario against runc (the reference) and against keel.

#[test]
fn runc_stdout_and_stderr_apart() {
    if needs_root() {
        scenario_stdout_and_stderr_apart(&containerd::runc());
    }
}

#[test]
fn keel_stdout_and_stderr_apart() {
    if needs_root() {
        scenario_stdout_and_stderr_apart(&keel());
    }
}

#[test]
fn runc_exit_codes() {
    if needs_root() {
        scenario_exit_codes(&containerd::runc());
    }
}

#[test]
fn keel_exit_codes() {
    if needs_root() {
        scenario_exit_codes(&keel());
    }
}

#[test]
fn runc_stdin_passed_through() {
    if needs_root() {
        scenario_stdin_passed_through(&containerd::runc());
    }
}

#[test]
fn keel_stdin_passed_through() {
    if needs_root() {
        scenario_stdin_passed_through(&keel());
    }
}

#[test]
fn runc_tty() {
    if needs_root() {
        scenario_tty(&containerd::runc());
    }
}

#[test]
fn keel_tty() {
    if needs_root() {
        scenario_tty(&keel());
    }
}

#[test]
fn runc_env_cwd_user() {
    if needs_root() {
        scenario_env_cwd_user(&containerd::runc());
    }
}

#[test]
fn keel_env_cwd_user() {
    if needs_root() {
        scenario_env_cwd_user(&keel());
    }
}

#[test]
fn runc_detached_with_memory_limit() {
    if needs_root() {
        scenario_detached_with_memory_limit(&containerd::runc());
    }
}

#[test]
fn keel_detached_with_memory_limit() {
    if needs_root() {
        scenario_detached_with_memory_limit(&keel());
    }
}

#[test]
fn runc_exec() {
    if needs_root() {
        scenario_exec(&containerd::runc());
    }
}

#[test]
fn keel_exec() {
    if needs_root() {
        scenario_exec(&keel());
    }
}

#[test]
fn runc_task_ps() {
    if needs_root() {
        scenario_task_ps(&containerd::runc());
    }
}

#[test]
fn keel_task_ps() {
    if needs_root() {
        scenario_task_ps(&keel());
    }
}

#[test]
fn runc_kill_exec() {
    if needs_root() {
        scenario_kill_exec(&containerd::runc());
    }
}

#[test]
fn keel_kill_exec() {
    if needs_root() {
        scenario_kill_exec(&keel());
    }
}

#[test]
fn runc_pause_resume() {
    if needs_root() {
        scenario_pause_resume(&containerd::runc());
    }
}

#[test]
fn keel_pause_resume() {
    if needs_root() {
        scenario_pause_resume(&keel());
    }
}

#[test]
fn runc_kill_137() {
    if needs_root() {
        scenario_kill_137(&containerd::runc());
    }
}

#[test]
fn keel_kill_137() {
    if needs_root() {
        scenario_kill_137(&keel());
    }
}

#[test]
fn runc_delete() {
    if needs_root() {
        scenario_delete(&containerd::runc());
    }
}

#[test]
fn keel_delete() {
    if needs_root() {
        scenario_delete(&keel());
    }
}

#[test]
fn runc_kill_all() {
    if needs_root() {
        scenario_kill_all(&containerd::runc());
    }
}

#[test]
fn keel_kill_all() {
    if needs_root() {
        scenario_kill_all(&keel());
    }
}

#[test]
fn runc_kill_stopped_is_not_found() {
    if needs_root() {
        scenario_kill_stopped_is_not_found(&containerd::runc());
    }
}

#[test]
fn keel_kill_stopped_is_not_found() {
    if needs_root() {
        scenario_kill_stopped_is_not_found(&keel());
    }
}
