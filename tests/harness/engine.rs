//! A keel engine of the test's own: its socket, data root and runtime state in a temp dir,
//! and the real `docker` CLI pointed at it. Dropping it removes every container it has
//! (their monitors would outlive it otherwise), stops it, and removes the dir.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::binary;

pub struct Engine {
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// The default network's bridge and subnet, the test's own: engines of tests that run
    /// at the same time must not share addresses.
    pub bridge: String,
    pub subnet: String,
    /// A tmpfs the data root lives on (`start_on_tmpfs`), unmounted when dropped.
    tmpfs: Option<PathBuf>,
}

static ENGINES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Engine {
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// An engine whose data root is a tmpfs of `size` (`"8m"`): a small disk that fills up.
    pub fn start_on_tmpfs(size: &str) -> Self {
        Self::start_with(Some(size))
    }

    fn start_with(tmpfs: Option<&str>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("keel-test-engine-")
            .tempdir()
            .expect("temp dir");
        std::fs::create_dir_all(dir.path().join("docker-config")).expect("docker config dir");
        let n = ENGINES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut engine = Self {
            dir,
            child: None,
            bridge: format!("kt{}x{n}", std::process::id() % 100_000),
            subnet: format!("172.30.{}.0/24", (std::process::id() + n) % 250),
            tmpfs: None,
        };
        if let Some(size) = tmpfs {
            let root = engine.root();
            std::fs::create_dir_all(&root).expect("root dir");
            mount_tmpfs(&root, size, nix::mount::MsFlags::empty());
            engine.tmpfs = Some(root);
        }
        engine.spawn();
        engine
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("keel.sock")
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn runtime_root(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// Gives the tmpfs of `start_on_tmpfs` a new size (its content stays).
    pub fn resize_tmpfs(&self, size: &str) {
        let root = self.tmpfs.as_ref().expect("an engine started with start_on_tmpfs");
        mount_tmpfs(root, size, nix::mount::MsFlags::MS_REMOUNT);
    }

    /// A scratch path inside the engine's temp dir (removed with it).
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn spawn(&mut self) {
        if let Err(error) = self.try_spawn() {
            panic!("{error}");
        }
    }

    /// Starts the engine and waits for its socket; no panic (Drop uses it too).
    fn try_spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("engine.log"))
            .map_err(|e| format!("engine log: {e}"))?;
        let child = Command::new(binary("step07-engine-api"))
            .arg("serve")
            .arg("--socket")
            .arg(self.socket())
            .arg("--root")
            .arg(self.root())
            .arg("--runtime-root")
            .arg(self.runtime_root())
            .arg("--bridge")
            .arg(&self.bridge)
            .arg("--bridge-subnet")
            .arg(&self.subnet)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting the engine: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::os::unix::net::UnixStream::connect(self.socket()).is_err() {
            if Instant::now() > deadline {
                return Err(format!("the engine did not come up: {}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("engine.log")).unwrap_or_default()
    }

    /// The real docker CLI, talking to this engine only.
    pub fn docker(&self) -> Command {
        let mut command = Command::new("docker");
        command
            .env("DOCKER_HOST", format!("unix://{}", self.socket().display()))
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_API_VERSION");
        command
    }

    /// `docker ARGS` started with `input` written to its stdin, which is then closed.
    pub fn spawn_with_stdin(&self, args: &[&str], input: &[u8]) -> Child {
        let mut child = self
            .docker()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("docker");
        let mut stdin = child.stdin.take().expect("stdin");
        // The engine may answer (and the CLI stop reading) before all of a bad input is sent.
        let _ = std::io::Write::write_all(&mut stdin, input);
        drop(stdin);
        child
    }

    /// `docker ARGS`, waited for (at most 60 s).
    pub fn run(&self, args: &[&str]) -> Output {
        let child = self
            .docker()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("docker");
        self.finish(child, args)
    }

    /// `docker ARGS` with `input` on its stdin, waited for (at most 60 s).
    pub fn run_with_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        self.finish(self.spawn_with_stdin(args, input), args)
    }

    /// Waits for a docker command (reading its output meanwhile), and fails the test with
    /// the engine's log if it takes more than 60 s.
    fn finish(&self, child: Child, args: &[&str]) -> Output {
        crate::output_within(child, Duration::from_secs(60))
            .unwrap_or_else(|output| panic!("docker {args:?} hung: {output:?}\nengine log:\n{}", self.log()))
    }

    /// `docker ARGS`, which must succeed; its stdout. A failure shows the engine's log.
    pub fn run_ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "docker {args:?}: {output:?}\nengine log:\n{}",
            self.log()
        );
        crate::text(&output.stdout)
    }

    /// SIGKILL, as a crash would: no cleanup runs.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// SIGTERM, as `systemctl stop` would; returns how long the engine took to exit.
    /// At most 10 s: an engine that does not stop by then is killed.
    pub fn terminate(&mut self) -> Duration {
        let start = Instant::now();
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            while child.try_wait().ok().flatten().is_none() && start.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        start.elapsed()
    }

    fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let mut child = child;
            let _ = child.wait();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // A test that stopped its engine and then failed still leaves containers running
        // under their monitors: an engine comes back to remove them.
        if self.child.is_none() {
            let _ = self.try_spawn();
        }
        if self.child.is_some() {
            let ids = self.run(&["ps", "-aq"]);
            let ids = String::from_utf8_lossy(&ids.stdout).into_owned();
            for id in ids.split_whitespace() {
                let _ = self.run(&["rm", "-f", id]);
            }
        }
        if self.child.is_some() {
            let _ = self.run(&["network", "prune", "-f"]);
        }
        self.stop();
        remove_bridge(&self.bridge);
        if let Some(tmpfs) = self.tmpfs.take() {
            let _ = nix::mount::umount2(&tmpfs, nix::mount::MntFlags::MNT_DETACH);
        }
        // Snapshots' work dirs hold d--------- entries overlayfs made: remove_dir_all copes.
        let _ = std::fs::remove_dir_all(self.dir.path());
    }
}

fn mount_tmpfs(path: &std::path::Path, size: &str, flags: nix::mount::MsFlags) {
    let options = format!("size={size},mode=0711");
    nix::mount::mount(Some("tmpfs"), path, Some("tmpfs"), flags, Some(options.as_str()))
        .unwrap_or_else(|e| panic!("mounting a tmpfs of {size} on {}: {e}", path.display()));
}

/// The stdout of a docker command that must have succeeded.
pub fn ok(output: &Output) -> String {
    assert!(output.status.success(), "{output:?}");
    crate::stdout(output)
}

/// The lines of a command's stdout.
pub fn lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The bridge an engine made, and keel's rules that name it (an engine leaves its default
/// bridge in place when it stops, as dockerd leaves docker0).
pub fn remove_bridge(bridge: &str) {
    let _ = Command::new("ip").args(["link", "del", bridge]).status();
    for (table, chain) in [
        ("filter", "KEEL-FORWARD"),
        ("filter", "KEEL-INPUT"),
        ("nat", "KEEL-POSTROUTING"),
    ] {
        let rules = Command::new("iptables")
            .args(["-w", "5", "-t", table, "-S", chain])
            .output();
        let rules = rules
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for rule in rules.lines().filter(|r| r.split_whitespace().any(|w| w == bridge)) {
            let mut args = vec!["-w", "5", "-t", table];
            let words: Vec<&str> = rule.split_whitespace().collect();
            if words.first() == Some(&"-A") {
                args.push("-D");
                args.extend(&words[1..]);
                let _ = Command::new("iptables").args(&args).status();
            }
        }
    }
}
