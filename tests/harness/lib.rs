//! What the integration tests share: running the step binaries, the root requirement, a
//! fresh busybox rootfs with the probe inside, and turning a probe report into something
//! stable enough to snapshot (namespace inodes become `host` or `new`).

pub mod containerd;
pub mod engine;
pub mod registry;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Output};
use std::time::{Duration, Instant};

/// The static probe built by `tests/probe/build.rs`.
pub const PROBE: &str = env!("KEEL_PROBE");

/// Where the probe is found inside a test rootfs.
pub const PROBE_IN_ROOTFS: &str = "/bin/keel-probe";

/// The seven step binaries, in the order a workshop meets them.
pub const STEP_BINARIES: [&str; 7] = [
    "step01-unshare",
    "step02-pid-ns",
    "step03-mount-ns",
    "step04-cgroups",
    "step05-overlay",
    "step06-images",
    "step07-engine-api",
];

/// Waits for `child` at most `timeout`; past it, kills and reaps it. `Err` is the status of
/// a child that had to be killed.
pub fn wait_within(child: &mut Child, timeout: Duration) -> Result<ExitStatus, ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            return Err(child.wait().expect("reaping a killed child"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// [`wait_within`], reading the child's piped stdout and stderr meanwhile (a full pipe would
/// stall it). `Err` is the output of a child that had to be killed.
pub fn output_within(mut child: Child, timeout: Duration) -> Result<Output, Output> {
    fn drain(pipe: Option<impl std::io::Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    }
    let (stdout, stderr) = (drain(child.stdout.take()), drain(child.stderr.take()));
    let waited = wait_within(&mut child, timeout);
    let output = |status| Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    match waited {
        Ok(status) => Ok(output(status)),
        Err(status) => Err(output(status)),
    }
}

/// Most of what the tests check needs root. Without it a test must not pass: under CI it
/// fails with "needs root"; on a developer's machine it says it is skipped and returns false.
pub fn needs_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("needs root: run the tests as root (CI is set, so this test may not be skipped)");
    }
    eprintln!("skipped: needs root (run the tests as root)");
    false
}

/// The path of a step binary built in this workspace (`cargo build --workspace` first).
pub fn binary(name: &str) -> PathBuf {
    let path = assert_cmd::cargo::cargo_bin(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` before the tests",
        path.display()
    );
    path
}

/// A step binary as an assert_cmd command, with a timeout so a hung container fails the test.
pub fn step(name: &str) -> assert_cmd::Command {
    let mut command = assert_cmd::Command::new(binary(name));
    command.timeout(Duration::from_secs(30)).env_remove("RUST_BACKTRACE");
    command
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Bytes a command wrote, as text (invalid UTF-8 replaced).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The namespaces of the test process itself, which is on the host: `name -> inode`.
pub fn host_namespaces() -> BTreeMap<String, String> {
    let mut namespaces = BTreeMap::new();
    for entry in std::fs::read_dir("/proc/self/ns").expect("/proc/self/ns").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Ok(link) = std::fs::read_link(entry.path()) {
            namespaces.insert(name, link.display().to_string());
        }
    }
    namespaces
}

/// Replaces each `ns NAME: type:[inode]` line of a probe report by `ns NAME: host` or
/// `ns NAME: new`, which is what the snapshot is about (and does not change between runs).
pub fn redact_namespaces(report: &str) -> String {
    let host = host_namespaces();
    report
        .lines()
        .map(
            |line| match line.strip_prefix("ns ").and_then(|rest| rest.split_once(": ")) {
                Some((name, link)) => {
                    let same = host.get(name).map(String::as_str) == Some(link);
                    format!("ns {name}: {}", if same { "host" } else { "new" })
                }
                None => line.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("\n")
}

/// The mount points of the test process (on the host), to compare before and after a run.
pub fn host_mounts() -> Vec<String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(str::to_owned)
        .collect()
}

/// A fresh busybox rootfs in a temporary directory, built by step 03's own `rootfs`
/// command, with the probe copied in. Removed when dropped.
pub struct TestRootfs {
    dir: tempfile::TempDir,
}

impl TestRootfs {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("keel-test-")
            .tempdir()
            .expect("temp dir");
        let root = dir.path().join("rootfs");
        let output = step("step03-mount-ns")
            .arg("rootfs")
            .arg(&root)
            .output()
            .expect("rootfs");
        assert!(
            output.status.success(),
            "building the rootfs failed: {}",
            stderr(&output)
        );
        std::fs::copy(PROBE, root.join(PROBE_IN_ROOTFS.trim_start_matches('/'))).expect("copying the probe");
        Self { dir }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// A scratch directory beside the rootfs (for volumes), also removed on drop.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(&path).expect("scratch dir");
        path
    }
}

impl Default for TestRootfs {
    fn default() -> Self {
        Self::new()
    }
}

/// Waits until `path` exists (a container signalling that it is ready), at most 10 s.
pub fn wait_for(path: &Path) -> bool {
    for _ in 0..200 {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Docker's default capabilities as a spec's `process.capabilities`: what a bundle written
/// by hand gets in the tests, so that they compare keel with runc on the same set.
pub fn docker_default_capabilities() -> serde_json::Value {
    let names: Vec<String> = [
        "CHOWN",
        "DAC_OVERRIDE",
        "FSETID",
        "FOWNER",
        "MKNOD",
        "NET_RAW",
        "SETGID",
        "SETUID",
        "SETFCAP",
        "SETPCAP",
        "NET_BIND_SERVICE",
        "SYS_CHROOT",
        "KILL",
        "AUDIT_WRITE",
    ]
    .iter()
    .map(|n| format!("CAP_{n}"))
    .collect();
    serde_json::json!({"bounding": names, "effective": names, "permitted": names})
}

/// `step03-mount-ns run --rootfs ROOTFS FLAGS -- sh -c SCRIPT`, waited for.
pub fn sh_in_rootfs(rootfs: &TestRootfs, flags: &[&str], script: &str) -> Output {
    let root = rootfs.path();
    let mut args = vec!["run", "--rootfs", root.to_str().expect("utf-8")];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["--", "sh", "-c", script]);
    step("step03-mount-ns").args(&args).output().expect("run")
}
