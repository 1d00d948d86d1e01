//! A real containerd for the tests that drive an OCI runtime the way Docker and Kubernetes
//! do: Debian's containerd 1.6 with a config of its own (root, state, sockets, all under a
//! temporary directory; no CRI, nothing that needs the network), its own containerd namespace
//! (`keel-test-PID-N`, so that the cgroups it makes, `/NAMESPACE/ID`, are unique), and `ctr`
//! to drive it. The runtime under test is chosen per container with
//! `ctr run --runc-binary PATH --runc-root DIR`, so one containerd serves runc and keel alike.
//!
//! Dropping it (also when a test panics) kills what is left: tasks through ctr, then
//! containerd, then any shim of this containerd and any process left in its cgroups, all by
//! pid; it removes its cgroups, unmounts what is mounted under its directory and deletes it.

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use sha2::{Digest, Sha256};

/// How long one `ctr` command may take before the test fails (it is then killed).
pub const CTR_TIMEOUT: Duration = Duration::from_secs(30);

/// Where containerd-shim-runc-v2 (1.6) puts its socket, whatever containerd's own state dir:
/// `/run/containerd/s/<sha256 of ADDRESS/NAMESPACE/ID>`.
const SHIM_SOCKET_DIR: &str = "/run/containerd/s";

/// The plugins this containerd does without: CRI (it wants CNI and a sandbox image from the
/// network), the snapshotters that are not there on this machine, and tracing.
const DISABLED_PLUGINS: &[&str] = &[
    "io.containerd.grpc.v1.cri",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.internal.v1.tracing",
];

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The reference runtime: runc from the distribution (`/usr/sbin/runc`, or the first on PATH).
pub fn runc() -> PathBuf {
    let usual = PathBuf::from("/usr/sbin/runc");
    if usual.exists() {
        return usual;
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("runc"))
        .find(|path| path.exists())
        .expect("runc is missing (apt-get install runc)")
}

/// The process's status, stdout and stderr, for a failure message.
pub fn describe(output: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Waits for `child` at most `timeout`; past it, kills it (by its pid), reaps it and panics.
pub fn wait_or_kill(child: &mut Child, timeout: Duration, what: &str) -> ExitStatus {
    crate::wait_within(child, timeout).unwrap_or_else(|_| panic!("{what} did not finish within {timeout:?}: killed"))
}

/// Polls `check` every 50 ms until it is true or `timeout` has passed; returns the last result.
pub fn poll(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The cgroup hierarchies mounted on the host: `(mount point, is cgroup2, super options)`.
pub fn cgroup_mounts() -> Vec<(PathBuf, bool, String)> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split(' ').nth(4)?;
            let mut fields = right.split(' ');
            let fstype = fields.next()?;
            let options = fields.nth(1).unwrap_or_default();
            match fstype {
                "cgroup" => Some((PathBuf::from(mount_point), false, options.to_owned())),
                "cgroup2" => Some((PathBuf::from(mount_point), true, options.to_owned())),
                _ => None,
            }
        })
        .collect()
}

/// Where the `controller` files of process `pid` are (`memory`, `freezer`…): the v1
/// hierarchy with that controller if there is one, else the cgroup2 one. `None` if the
/// process is gone.
pub fn cgroup_dir(pid: u32, controller: &str) -> Option<PathBuf> {
    let table = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let mounts = cgroup_mounts();
    for line in table.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if controllers.split(',').any(|c| c == controller) {
            let (mount, _, _) = mounts
                .iter()
                .find(|(_, v2, options)| !v2 && options.split(',').any(|o| o == controller))?;
            return Some(mount.join(path.trim_start_matches('/')));
        }
    }
    let path = table.lines().find_map(|line| line.strip_prefix("0::"))?;
    let (mount, _, _) = mounts.iter().find(|(_, v2, _)| *v2)?;
    Some(mount.join(path.trim_start_matches('/')))
}

/// The path of process `pid` in the hierarchy of `controller` (as /proc/PID/cgroup says it).
pub fn cgroup_path(pid: u32, controller: &str) -> Option<String> {
    let table = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let v1 = table.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers.split(',').any(|c| c == controller).then(|| path.to_owned())
    });
    v1.or_else(|| table.lines().find_map(|l| l.strip_prefix("0::")).map(str::to_owned))
}

/// The parent pid of `pid`, from /proc/PID/status.
pub fn parent_pid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:")?.trim().parse().ok())
}

/// The command line of `pid`, split at its NULs.
fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| {
            bytes
                .split(|b| *b == 0)
                .filter(|arg| !arg.is_empty())
                .map(|arg| String::from_utf8_lossy(arg).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect()
}

/// Whether `pid` runs (a zombie does not).
pub fn alive(pid: u32) -> bool {
    // A zombie is as good as gone: its parent (the shim, or init) reaps it.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Empties and removes the cgroup `relative` (`/a/b`), and every cgroup below it, in every
/// hierarchy: thawed, its processes killed by pid, removed deepest first. Never panics.
pub fn remove_cgroups(relative: &str) {
    fn below(dir: PathBuf, into: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.path().is_dir() {
                below(entry.path(), into);
            }
        }
        into.push(dir);
    }
    let mut dirs = Vec::new();
    for (mount, _, _) in cgroup_mounts() {
        let dir = mount.join(relative.trim_start_matches('/'));
        if dir.is_dir() {
            below(dir, &mut dirs);
        }
    }
    if dirs.is_empty() {
        return;
    }
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for dir in &dirs {
        let _ = std::fs::write(dir.join("freezer.state"), "THAWED");
        let _ = std::fs::write(dir.join("cgroup.freeze"), "0");
    }
    let procs = |dir: &Path| -> Vec<u32> {
        std::fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect()
    };
    let mut reported = std::collections::BTreeSet::new();
    poll(Duration::from_secs(5), || {
        let left: Vec<u32> = dirs.iter().flat_map(|d| procs(d)).filter(|p| alive(*p)).collect();
        for pid in &left {
            if reported.insert(*pid) {
                eprintln!("test harness: killing leftover container process {pid}");
            }
            let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
        }
        left.is_empty()
    });
    for dir in &dirs {
        poll(Duration::from_secs(2), || {
            std::fs::remove_dir(dir).is_ok() || !dir.exists()
        });
    }
}

/// A shim started by this containerd: its pid and the container id it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shim {
    pub pid: u32,
    pub namespace: String,
    pub id: String,
}

/// A task as `ctr task ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub id: String,
    pub pid: u32,
    pub status: String,
}

pub struct Containerd {
    child: Child,
    dir: tempfile::TempDir,
    namespace: String,
}

impl Containerd {
    /// Starts containerd and waits until `ctr version` gets an answer from it.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("keel-test-containerd-")
            .tempdir()
            .expect("temp dir");
        let namespace = format!(
            "keel-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let base = dir.path().display().to_string();
        let disabled: Vec<String> = DISABLED_PLUGINS.iter().map(|p| format!("\"{p}\"")).collect();
        // No [cgroup] path: containerd stays where it is started, and the tasks' cgroups are
        // the runtime's business (cgroupsPath /NAMESPACE/ID, as ctr sets it).
        let config = format!(
            r#"version = 2
root = "{base}/root"
state = "{base}/state"
oom_score = 0
disabled_plugins = [{disabled}]

[grpc]
  address = "{base}/containerd.sock"

[ttrpc]
  address = "{base}/containerd.sock.ttrpc"

[debug]
  level = "info"

[plugins."io.containerd.internal.v1.opt"]
  path = "{base}/opt"
"#,
            disabled = disabled.join(", ")
        );
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, config).expect("writing containerd's config");
        for sub in ["runtime-root", "fifo"] {
            std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
        }
        let log = std::fs::File::create(dir.path().join("containerd.log")).expect("containerd.log");
        let mut command = Command::new("containerd");
        command
            .arg("--config")
            .arg(&config_path)
            .current_dir(dir.path())
            // keel's own tests run the step binaries without it (harness::step does the same).
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log);
        // If the test process dies without dropping us (killed), containerd goes with it.
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, || {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
            });
        }
        let child = command
            .spawn()
            .expect("containerd is missing (apt-get install containerd runc)");
        // From here on Drop cleans up, whatever panics below.
        let mut containerd = Self { child, dir, namespace };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = containerd.child.try_wait().expect("try_wait") {
                panic!("containerd exited at start ({status}):\n{}", containerd.log());
            }
            let version = assert_cmd::Command::new("ctr")
                .arg("--address")
                .arg(containerd.socket())
                .arg("version")
                .timeout(Duration::from_secs(5))
                .output()
                .expect("ctr is missing (apt-get install containerd)");
            if version.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "containerd did not answer within 30 s:\n{}\n{}",
                describe(&version),
                containerd.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        containerd
    }

    /// containerd's grpc socket (what `ctr --address` and the shims' `-address` name).
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    /// The containerd namespace of this instance (also the first level of its cgroups).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// What containerd has logged so far (less its plugin loading).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log"))
            .unwrap_or_default()
            .lines()
            .filter(|line| !line.contains("msg=\"loading plugin "))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The directory given as `ctr run --runc-root`: the shim passes `--root DIR/NAMESPACE`
    /// to the runtime.
    pub fn runtime_root(&self) -> PathBuf {
        self.dir.path().join("runtime-root")
    }

    /// What the runtime has under its root (`--root`) for this namespace: its state dirs.
    pub fn runtime_state_entries(&self) -> Vec<String> {
        std::fs::read_dir(self.runtime_root().join(&self.namespace))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// The FIFO directory given as `ctr run/exec --fifo-dir`, to keep ctr's FIFOs in here too.
    pub fn fifo_dir(&self) -> PathBuf {
        self.dir.path().join("fifo")
    }

    /// The shim's bundle: `STATE/io.containerd.runtime.v2.task/NAMESPACE/ID` (the runtime's
    /// cwd, where config.json, init.pid and log.json are).
    pub fn bundle(&self, id: &str) -> PathBuf {
        self.dir
            .path()
            .join("state/io.containerd.runtime.v2.task")
            .join(&self.namespace)
            .join(id)
    }

    /// `ctr --address SOCKET --namespace NS`, as arguments (for `script -c` and spawn).
    pub fn ctr_args(&self) -> Vec<String> {
        vec![
            "--address".into(),
            self.socket().display().to_string(),
            "--namespace".into(),
            self.namespace.clone(),
        ]
    }

    /// `ctr` aimed at this containerd and namespace, killed after [`CTR_TIMEOUT`].
    pub fn ctr(&self) -> assert_cmd::Command {
        let mut command = assert_cmd::Command::new("ctr");
        command.args(self.ctr_args()).timeout(CTR_TIMEOUT);
        command
    }

    /// Runs `ctr ARGS`; panics, with ctr's output and containerd's log, unless it succeeds.
    pub fn ctr_ok(&self, args: &[&str]) -> Output {
        let output = self.ctr().args(args).output().expect("ctr");
        assert!(
            output.status.success(),
            "ctr {}: {}\n--- containerd log ---\n{}",
            args.join(" "),
            describe(&output),
            self.log()
        );
        output
    }

    /// Starts `ctr ARGS` in the background, its stdout and stderr going to files; with
    /// `stdin`, its stdin is a pipe the test writes to (and closes) itself.
    pub fn spawn_ctr(&self, args: &[String], stdin: bool) -> Background {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let out = self.dir.path().join(format!("background-{n}.out"));
        let err = self.dir.path().join(format!("background-{n}.err"));
        let mut child = Command::new("ctr")
            .args(self.ctr_args())
            .args(args)
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(std::fs::File::create(&out).expect("create"))
            .stderr(std::fs::File::create(&err).expect("create"))
            .spawn()
            .expect("ctr");
        Background {
            stdin: child.stdin.take(),
            child,
            out,
            err,
            what: format!("ctr {}", args.join(" ")),
        }
    }

    /// The tasks `ctr task ls` shows.
    pub fn tasks(&self) -> Vec<Task> {
        let output = self.ctr_ok(&["task", "ls"]);
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .skip(1)
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                Some(Task {
                    id: fields.next()?.to_owned(),
                    pid: fields.next()?.parse().ok()?,
                    status: fields.next()?.to_owned(),
                })
            })
            .collect()
    }

    pub fn task(&self, id: &str) -> Option<Task> {
        self.tasks().into_iter().find(|t| t.id == id)
    }

    /// Waits (10 s at most) until task `id` has `status` (RUNNING, PAUSED, STOPPED…).
    pub fn wait_for_status(&self, id: &str, status: &str) -> Task {
        let mut last = None;
        let reached = poll(Duration::from_secs(10), || {
            last = self.task(id);
            last.as_ref().is_some_and(|t| t.status == status)
        });
        assert!(reached, "task {id} did not become {status}: {last:?}\n{}", self.log());
        last.expect("task")
    }

    /// The pids `ctr task ps ID` lists, with the INFO column (`-` for the init,
    /// `&ProcessDetails{ExecID:…}` for an exec).
    pub fn task_ps(&self, id: &str) -> Vec<(u32, String)> {
        let output = self.ctr_ok(&["task", "ps", id]);
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .skip(1)
            .filter_map(|line| {
                let (pid, info) = line.trim().split_once(char::is_whitespace)?;
                Some((pid.parse().ok()?, info.trim().to_owned()))
            })
            .collect()
    }

    /// The ids of the containers containerd knows in this namespace.
    pub fn containers(&self) -> Vec<String> {
        let output = self.ctr_ok(&["container", "ls", "-q"]);
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The live shims of this containerd (found by the `-address` in their command line).
    pub fn shims(&self) -> Vec<Shim> {
        let socket = self.socket().display().to_string();
        pids()
            .into_iter()
            .filter(|pid| alive(*pid))
            .filter_map(|pid| {
                let argv = cmdline(pid);
                if !argv.first()?.ends_with("containerd-shim-runc-v2") {
                    return None;
                }
                let flag = |name: &str| {
                    let at = argv.iter().position(|a| a == name)?;
                    argv.get(at + 1).cloned()
                };
                (flag("-address")? == socket).then(|| Shim {
                    pid,
                    namespace: flag("-namespace").unwrap_or_default(),
                    id: flag("-id").unwrap_or_default(),
                })
            })
            .collect()
    }

    /// The socket the shim of container `id` listens on.
    pub fn shim_socket(&self, namespace: &str, id: &str) -> PathBuf {
        let key = format!("{}/{namespace}/{id}", self.socket().display());
        let digest = Sha256::digest(key.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        Path::new(SHIM_SOCKET_DIR).join(hex)
    }

    /// Every cgroup directory of this namespace (`/NAMESPACE`, or `/NAMESPACE/ID`), in
    /// every hierarchy mounted on the host.
    pub fn cgroup_dirs(&self, id: Option<&str>) -> Vec<PathBuf> {
        let relative = match id {
            Some(id) => format!("{}/{id}", self.namespace),
            None => self.namespace.clone(),
        };
        cgroup_mounts()
            .into_iter()
            .map(|(mount, _, _)| mount.join(&relative))
            .filter(|dir| dir.is_dir())
            .collect()
    }

    /// What container `id` has left behind: a task, a container record, a shim (process or
    /// socket), the shim's bundle, the runtime's state dir, a cgroup.
    pub fn leftovers(&self, id: &str) -> Vec<String> {
        let mut left = Vec::new();
        if let Some(task) = self.task(id) {
            left.push(format!("task {task:?}"));
        }
        if self.containers().iter().any(|c| c == id) {
            left.push(format!("container record {id}"));
        }
        for shim in self.shims().into_iter().filter(|s| s.id == id) {
            left.push(format!("shim process {shim:?}"));
        }
        let socket = self.shim_socket(&self.namespace, id);
        if socket.exists() {
            left.push(format!("shim socket {}", socket.display()));
        }
        if self.bundle(id).exists() {
            left.push(format!("shim bundle {}", self.bundle(id).display()));
        }
        if self.runtime_state_entries().iter().any(|e| e == id) {
            left.push(format!(
                "runtime state {}/{}/{id}",
                self.runtime_root().display(),
                self.namespace
            ));
        }
        for dir in self.cgroup_dirs(Some(id)) {
            left.push(format!("cgroup {}", dir.display()));
        }
        left
    }

    /// Fails unless container `id` has left nothing behind (given 10 s, as a shim exits
    /// after it has answered the last delete).
    pub fn assert_nothing_left(&self, id: &str) {
        let mut left = Vec::new();
        let clean = poll(Duration::from_secs(10), || {
            left = self.leftovers(id);
            left.is_empty()
        });
        assert!(
            clean,
            "container {id} left behind:\n{}\n--- containerd log ---\n{}",
            left.join("\n"),
            self.log()
        );
    }

    /// Fails unless nothing at all is left in this containerd: no task, no container, no
    /// shim, nothing under the runtime's root.
    pub fn assert_all_clean(&self) {
        let mut left = Vec::new();
        let clean = poll(Duration::from_secs(10), || {
            left.clear();
            left.extend(self.tasks().into_iter().map(|t| format!("task {t:?}")));
            left.extend(self.containers().into_iter().map(|c| format!("container {c}")));
            left.extend(self.shims().into_iter().map(|s| format!("shim {s:?}")));
            left.extend(
                self.runtime_state_entries()
                    .into_iter()
                    .map(|e| format!("runtime state entry {e}")),
            );
            left.extend(
                self.cgroup_dirs(None)
                    .iter()
                    .flat_map(|dir| std::fs::read_dir(dir).into_iter().flatten().flatten())
                    .filter(|e| e.path().is_dir())
                    .map(|e| format!("cgroup {}", e.path().display())),
            );
            left.is_empty()
        });
        assert!(
            clean,
            "left behind:\n{}\n--- containerd log ---\n{}",
            left.join("\n"),
            self.log()
        );
    }

    /// Kills and removes everything this containerd started; never panics (it runs in Drop).
    fn cleanup(&mut self) {
        let running = matches!(self.child.try_wait(), Ok(None));
        let quick = |args: &[&str]| {
            assert_cmd::Command::new("ctr")
                .args(self.ctr_args())
                .args(args)
                .timeout(Duration::from_secs(10))
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        };
        // 1. Politely, through containerd: every task killed and deleted, every container removed.
        if running {
            for id in quick(&["task", "ls", "-q"]).unwrap_or_default().lines() {
                let _ = quick(&["task", "resume", id]);
                let _ = quick(&["task", "kill", "--all", "--signal", "SIGKILL", id]);
                let _ = quick(&["task", "delete", "--force", id]);
            }
            for id in quick(&["container", "ls", "-q"]).unwrap_or_default().lines() {
                let _ = quick(&["container", "rm", id]);
            }
        }
        // 2. containerd itself, by its pid: SIGTERM, then SIGKILL after 10 s.
        let pid = Pid::from_raw(self.child.id() as i32);
        if running {
            let _ = kill(pid, Signal::SIGTERM);
            if !poll(Duration::from_secs(10), || matches!(self.child.try_wait(), Ok(Some(_)))) {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
        // 3. Shims still there (they were reparented away from containerd): by pid.
        let shims = self.shims();
        for shim in &shims {
            eprintln!("containerd test harness: killing leftover shim {shim:?}");
            let _ = kill(Pid::from_raw(shim.pid as i32), Signal::SIGKILL);
        }
        poll(Duration::from_secs(5), || self.shims().is_empty());
        for shim in &shims {
            let _ = std::fs::remove_file(self.shim_socket(&shim.namespace, &shim.id));
        }
        // 4. Container processes still in this namespace's cgroups, and the cgroups.
        remove_cgroups(&self.namespace);
        // 5. Anything mounted under the directory (a shim's rootfs mount), deepest first.
        let base = self.dir.path().display().to_string();
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&base))
            .map(str::to_owned)
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for mount in mounts {
            let _ = nix::mount::umount2(mount.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        // 6. The directory itself goes when `dir` is dropped, right after this.
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// A `ctr` command running in the background (a foreground `ctr run` that the test signals,
/// or feeds stdin to). Killed by its pid if dropped before it finished.
pub struct Background {
    child: Child,
    stdin: Option<ChildStdin>,
    out: PathBuf,
    err: PathBuf,
    what: String,
}

impl Background {
    /// Its stdin (when spawned with one); dropping it closes the pipe.
    pub fn stdin(&mut self) -> &mut Option<ChildStdin> {
        &mut self.stdin
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for it (panicking after `timeout`) and returns its status and output.
    pub fn finish(mut self, timeout: Duration) -> Output {
        drop(self.stdin.take());
        let status = wait_or_kill(&mut self.child, timeout, &self.what);
        Output {
            status,
            stdout: std::fs::read(&self.out).unwrap_or_default(),
            stderr: std::fs::read(&self.err).unwrap_or_default(),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
