//! runc's CVEs as regression tests: each attack is run for real inside a container and must
//! fail; the same attack with the measure turned off (a `KEEL_TEST_ONLY_…` switch, read by
//! the code under test and documented there as for tests only) must succeed, so each test
//! can fail.
//!
//! - CVE-2019-5736: overwriting the runtime's binary through `/proc/PID/exe`
//!   (steps/04-cgroups/src/runtime/sealed_exe.rs, not_dumpable.rs);
//! - CVE-2024-21626: a host descriptor leaking into the container, as its working directory
//!   or after exec (steps/01-unshare/src/leaked_fds.rs);
//! - CVE-2021-30465: a symlink in the rootfs sending a mount to the host
//!   (steps/03-mount-ns/src/in_root.rs);
//! - hostile image layers writing outside the store (steps/06-images/src/unpack.rs): `../`,
//!   absolute paths, a file through a symlink and a hard link to a host file are in
//!   tests/step06_images.rs (`hostile_layers_are_refused_and_nothing_outside_the_store_changes`);
//!   the cases here are the ones it lacks.

use keel_tests::engine::Engine;
use keel_tests::{binary, needs_root, stderr, stdout, step, wait_for, TestRootfs};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

// --- helpers ------------------------------------------------------------------------------

/// The runtime's shared libraries copied into `root`, as a Debian-based image has them: the
/// runtime binary can then run inside the container, which CVE-2019-5736 needs.
fn add_runtime_libraries(root: &Path) {
    let ldd = Command::new("ldd").arg(binary("step04-cgroups")).output().expect("ldd");
    assert!(ldd.status.success(), "{ldd:?}");
    let libraries: Vec<String> = stdout(&ldd)
        .split_whitespace()
        .filter(|word| word.starts_with('/'))
        .map(str::to_owned)
        .collect();
    assert!(!libraries.is_empty(), "ldd found no library: {}", stdout(&ldd));
    for library in libraries {
        let inside = root.join(library.trim_start_matches('/'));
        std::fs::create_dir_all(inside.parent().expect("parent")).expect("lib dir");
        std::fs::copy(&library, &inside).expect("copying a library");
    }
}

/// A runc bundle around `rootfs` whose process is `args`, with Docker's capabilities.
fn bundle(rootfs: &TestRootfs, args: &[&str], cwd: &str) -> PathBuf {
    let dir = rootfs.path().parent().expect("bundle dir").to_owned();
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {"user": {"uid": 0, "gid": 0}, "args": args, "cwd": cwd,
                    "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "capabilities": keel_tests::docker_default_capabilities()},
        "root": {"path": "rootfs"},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}]}
    });
    std::fs::write(dir.join("config.json"), config.to_string()).expect("config.json");
    dir
}

/// The step 04 runtime, from `binary`, with its state in `state`.
struct Runtime {
    binary: PathBuf,
    state: tempfile::TempDir,
}

impl Runtime {
    fn new(binary: PathBuf) -> Self {
        let state = tempfile::Builder::new()
            .prefix("keel-test-cve-state-")
            .tempdir()
            .expect("state");
        Self { binary, state }
    }

    /// A command, waited for at most 30 s.
    fn command(&self, env: &[(&str, &str)], args: &[&str]) -> assert_cmd::Command {
        let mut command = assert_cmd::Command::new(&self.binary);
        command
            .arg("--root")
            .arg(self.state.path())
            .args(args)
            .envs(env.iter().copied())
            .timeout(Duration::from_secs(30));
        command
    }

    fn run(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        self.command(env, args).output().expect("runtime")
    }

    /// A command whose stdio is not ours: a detached process would hold our pipes open.
    fn detached(&self, args: &[&str]) {
        let status = Command::new(&self.binary)
            .arg("--root")
            .arg(self.state.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("runtime");
        assert!(status.success(), "{args:?}: {status:?}");
    }
}

/// A running container `id` of `runtime` whose process sleeps; deleted when dropped.
struct Container<'a> {
    runtime: &'a Runtime,
    id: &'static str,
}

impl<'a> Container<'a> {
    fn start(runtime: &'a Runtime, rootfs: &TestRootfs, id: &'static str) -> Self {
        let dir = bundle(rootfs, &["sleep", "120"], "/");
        runtime.detached(&["run", "--detach", "--bundle", dir.to_str().expect("utf-8"), id]);
        Self { runtime, id }
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = self.runtime.command(&[], &["delete", "--force", self.id]).output();
    }
}

/// Reads a file the container writes, once it is there (the scripts write it elsewhere and
/// rename it into place, so it appears whole).
fn result(path: &Path) -> String {
    assert!(wait_for(path), "{} never appeared", path.display());
    std::fs::read_to_string(path).expect("result").trim().to_owned()
}

// --- CVE-2019-5736 ------------------------------------------------------------------------

/// The attacker, a process of the container: it waits for a process whose command line is
/// the runtime's binary run as `/proc/self/exe` (`--root /tmp/none` marks it), opens that
/// process's `/proc/PID/exe`, lets it end (it blocks opening the FIFO /tmp/fifo as its log),
/// then reopens the descriptor for writing (`/proc/self/fd/3`), retrying while the binary is
/// still being executed (ETXTBSY). It never writes when the link names $1, the runtime the
/// other tests share: only to a memfd, a read-only overlay's file or the test's own copy of
/// the runtime. /result says what happened. (No /dev/null: the bundle allows no device.)
const OVERWRITE_EXE: &str = r#"shared="$1"
rm -f /tmp/fifo /result; mkfifo /tmp/fifo
while :; do
  for p in /proc/[0-9]*; do
    case "$(tr '\0' ' ' < $p/cmdline 2>/tmp/e)" in "/proc/self/exe --root /tmp/none"*) pid=${p#/proc/}; break 2;; esac
  done
  usleep 20000
done
link=$(readlink /proc/$pid/exe)
if ! exec 3< /proc/$pid/exe; then echo "open refused ($link)" > /result.tmp; mv /result.tmp /result; cat /tmp/fifo > /tmp/drained; exit 0; fi
cat /tmp/fifo > /tmp/drained
if [ "$link" = "$shared" ]; then echo "exposed ($link)" > /result.tmp; mv /result.tmp /result; exit 0; fi
for i in $(seq 250); do
  if (echo pwned > /proc/self/fd/3) 2>/tmp/err; then echo "overwrote ($link)" > /result.tmp; mv /result.tmp /result; exit 0; fi
  grep -q busy /tmp/err || break
  usleep 20000
done
echo "refused ($link): $(cat /tmp/err)" > /result.tmp; mv /result.tmp /result
"#;

/// The command the attack makes the runtime exec: its own binary, through the link, with
/// arguments that keep it running until the attacker opens the FIFO.
const RUNTIME_AS_COMMAND: [&str; 7] = [
    "/proc/self/exe",
    "--root",
    "/tmp/none",
    "--log",
    "/tmp/fifo",
    "state",
    "keel-block",
];

#[test]
fn cve_2019_5736_a_container_cannot_overwrite_the_runtime_through_proc_self_exe() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    add_runtime_libraries(&rootfs.path());
    std::fs::write(rootfs.path().join("attack.sh"), OVERWRITE_EXE).expect("attack.sh");
    // The runtime the attack may overwrite: a copy of the test's own, beside the rootfs.
    let copy = rootfs.scratch("bin").join("keel-runtime");
    std::fs::copy(binary("step04-cgroups"), &copy).expect("copying the runtime");
    let original = std::fs::read(&copy).expect("runtime");
    let runtime = Runtime::new(copy.clone());
    let container = Container::start(&runtime, &rootfs, "keel-cve-5736");
    let shared = binary("step04-cgroups").to_str().expect("utf-8").to_owned();

    let attack = |env: &[(&str, &str)]| {
        let _ = std::fs::remove_file(rootfs.path().join("result"));
        let _ = std::fs::remove_file(rootfs.path().join("tmp/fifo"));
        runtime.detached(&["exec", "--detach", container.id, "sh", "/attack.sh", &shared]);
        assert!(wait_for(&rootfs.path().join("tmp/fifo")), "the attacker did not start");
        let mut args = vec!["exec", container.id];
        args.extend(RUNTIME_AS_COMMAND);
        let output = runtime.run(env, &args);
        // The runtime's binary ran inside the container: "container does not exist" is its
        // `state keel-block`, said from in there.
        assert!(stderr(&output).contains("container does not exist"), "{output:?}");
        result(&rootfs.path().join("result"))
    };

    // Root gets the runtime's directory as a read-only overlay: the link names a file of a
    // mount that is nowhere in the tree, and writing it is refused.
    let protected = attack(&[]);
    assert!(
        protected.starts_with("refused (/keel-runtime)") && protected.contains("Read-only file system"),
        "{protected}"
    );
    // Without the overlay (a user without root): a sealed copy in memory.
    let sealed = attack(&[("KEEL_TEST_ONLY_SEALED_EXE_MEMFD", "1")]);
    assert!(
        sealed.starts_with("refused (/memfd:keel-runtime (deleted))"),
        "{sealed}"
    );
    assert!(
        std::fs::read(&copy).expect("runtime") == original,
        "the runtime was changed"
    );

    let exposed = attack(&[("KEEL_TEST_ONLY_UNSEALED_EXE", "1")]);
    assert_eq!(exposed, format!("overwrote ({})", copy.display()));
    assert_eq!(std::fs::read(&copy).expect("runtime"), b"pwned\n");
    // A runtime again, for the container's `delete` when it is dropped.
    std::fs::copy(binary("step04-cgroups"), &copy).expect("restoring the copy");
    drop(container);
}

/// The attacker looks at the process `exec` is making while it is held inside the container
/// (the test-only pause, after it took the container's capabilities, before it execs).
const PEEK: &str = r#"rm -f /tmp/pause /result; mkfifo /tmp/pause
while :; do
  for p in /proc/[0-9]*; do
    grep -q 'keel-paus[e]' $p/cmdline 2>/tmp/e && { pid=${p#/proc/}; break 2; }
  done
  usleep 20000
done
# Until it has the container's capabilities, the kernel keeps us out anyway (the capability
# sets of a process we may look at must be a subset of ours): wait for it to drop them.
own=$(grep CapEff /proc/self/status)
while [ "$(grep CapEff /proc/$pid/status)" != "$own" ]; do usleep 20000; done
if link=$(readlink /proc/$pid/exe 2>/tmp/e); then echo "exe: $link"; else echo "exe: denied"; fi > /result.tmp
if tr '\0' '\n' < /proc/$pid/environ 2>/tmp/e | grep -q '^KEEL_TEST_ONLY'; then echo "environ: read"; else echo "environ: denied"; fi >> /result.tmp
mv /result.tmp /result
echo go > /tmp/pause
"#;

#[test]
fn cve_2019_5736_the_process_entering_the_container_is_not_dumpable() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    std::fs::write(rootfs.path().join("peek.sh"), PEEK).expect("peek.sh");
    let runtime = Runtime::new(binary("step04-cgroups"));
    let container = Container::start(&runtime, &rootfs, "keel-cve-dumpable");
    let peek = |env: &[(&str, &str)]| {
        let _ = std::fs::remove_file(rootfs.path().join("result"));
        let _ = std::fs::remove_file(rootfs.path().join("tmp/pause"));
        runtime.detached(&["exec", "--detach", container.id, "sh", "/peek.sh"]);
        assert!(wait_for(&rootfs.path().join("tmp/pause")), "the attacker did not start");
        let mut env = env.to_vec();
        env.push(("KEEL_TEST_ONLY_EXEC_PAUSE_FIFO", "/tmp/pause"));
        let output = runtime.run(&env, &["exec", container.id, "echo", "keel-pause"]);
        assert_eq!(stdout(&output), "keel-pause\n", "{output:?}");
        result(&rootfs.path().join("result"))
    };
    assert_eq!(peek(&[]), "exe: denied\nenviron: denied");
    assert_eq!(
        peek(&[("KEEL_TEST_ONLY_DUMPABLE_EXEC", "1")]),
        "exe: /step04-cgroups\nenviron: read"
    );
}

#[test]
fn cve_2019_5736_docker_exec_runs_the_runtime_from_an_unwritable_view() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    let ok = |args: &[&str]| {
        let output = engine.run(args);
        assert!(output.status.success(), "{args:?}: {output:?}");
        output
    };
    let name = "keel-cve-docker-exec";
    ok(&["run", "-d", "--name", name, "busybox", "sleep", "120"]);
    // The runtime's libraries, so that its binary can run in the container.
    let ldd = Command::new("ldd").arg(binary("step04-cgroups")).output().expect("ldd");
    for library in stdout(&ldd).split_whitespace().filter(|w| w.starts_with('/')) {
        let dir = Path::new(library).parent().expect("dir").to_str().expect("utf-8");
        ok(&["exec", name, "mkdir", "-p", dir]);
        ok(&["cp", "-L", library, &format!("{name}:{library}")]);
    }
    let script = engine.scratch("attack.sh");
    std::fs::write(&script, OVERWRITE_EXE).expect("attack.sh");
    ok(&["cp", script.to_str().expect("utf-8"), &format!("{name}:/attack.sh")]);
    // The engine's runtime is the shared one: the attacker never writes to it.
    let shared = binary("step04-cgroups");
    ok(&["exec", "-d", name, "sh", "/attack.sh", shared.to_str().expect("utf-8")]);
    let started = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        engine.run(&["exec", name, "test", "-p", "/tmp/fifo"]).status.success()
    });
    assert!(started, "the attacker did not start");
    let mut args = vec!["exec", name];
    args.extend(RUNTIME_AS_COMMAND);
    let output = engine.run(&args);
    assert!(stderr(&output).contains("container does not exist"), "{output:?}");
    let mut report = String::new();
    for _ in 0..200 {
        report = stdout(&engine.run(&["exec", name, "cat", "/result"]));
        if !report.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        report.starts_with("refused (/step04-cgroups)") && report.contains("Read-only file system"),
        "{report}"
    );
    ok(&["rm", "-f", name]);
}

// --- CVE-2024-21626 -----------------------------------------------------------------------

/// `command` started with a directory of the host open as descriptor 7, without
/// close-on-exec: what a careless caller (or runc's own cgroup descriptor) leaks.
fn with_leaked_fd(dir: &Path, program: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = assert_cmd::Command::new("sh");
    command
        .arg("-c")
        .arg(r#"exec 7<"$0"; exec "$@""#)
        .arg(dir)
        .arg(program)
        .args(args)
        .envs(env.iter().copied())
        .timeout(Duration::from_secs(30));
    command.output().expect("sh")
}

/// A host directory with a secret, beside the rootfs.
fn host_secret(rootfs: &TestRootfs) -> PathBuf {
    let dir = rootfs.scratch("host");
    std::fs::write(dir.join("secret"), "host secret\n").expect("secret");
    dir
}

#[test]
fn cve_2024_21626_a_leaked_descriptor_does_not_reach_the_command() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let host = host_secret(&rootfs);
    let root = rootfs.path();
    // `cd -P`: busybox's cd would otherwise make `7/..` into `/proc/self/fd` by the letters.
    let attack = "ls /proc/$$/fd; cd -P /proc/self/fd/7/.. && cat host/secret || echo blocked";
    let args = [
        "run",
        "--rootfs",
        root.to_str().expect("utf-8"),
        "--",
        "sh",
        "-c",
        attack,
    ];
    let step03 = binary("step03-mount-ns");
    let protected = with_leaked_fd(&host, &step03, &args, &[]);
    assert_eq!(stdout(&protected), "0\n1\n2\nblocked\n", "{protected:?}");
    let exposed = with_leaked_fd(&host, &step03, &args, &[("KEEL_TEST_ONLY_LEAK_FDS", "1")]);
    let report = stdout(&exposed);
    assert!(
        report.contains("\n7\n") && report.ends_with("host secret\n"),
        "{exposed:?}"
    );
}

#[test]
fn cve_2024_21626_a_working_directory_on_a_leaked_descriptor_is_refused() {
    if !needs_root() {
        return;
    }
    // The CVE's own form: the image's working directory is /proc/self/fd/7, entered before
    // exec while the descriptor is still open (close-on-exec alone does not stop it).
    let rootfs = TestRootfs::new();
    let host = host_secret(&rootfs);
    let dir = bundle(&rootfs, &["cat", "../host/secret"], "/proc/self/fd/7");
    let runtime = binary("step04-cgroups");
    let state = tempfile::Builder::new()
        .prefix("keel-test-cve-state-")
        .tempdir()
        .expect("state");
    let run = |env: &[(&str, &str)]| {
        let args = [
            "--root",
            state.path().to_str().expect("utf-8"),
            "run",
            "--bundle",
            dir.to_str().expect("utf-8"),
            "keel-cve-21626",
        ];
        with_leaked_fd(&host, &runtime, &args, env)
    };
    let protected = run(&[]);
    assert!(!protected.status.success(), "{protected:?}");
    assert!(
        stderr(&protected).contains("working directory /proc/self/fd/7 is outside the container's root"),
        "{protected:?}"
    );
    assert!(!stdout(&protected).contains("host secret"));
    let exposed = run(&[("KEEL_TEST_ONLY_LEAK_FDS", "1")]);
    assert_eq!(stdout(&exposed), "host secret\n", "{exposed:?}");

    // `exec --cwd` too, and what an exec'd process has open.
    let rootfs = TestRootfs::new();
    let host = host_secret(&rootfs);
    let runtime = Runtime::new(binary("step04-cgroups"));
    let container = Container::start(&runtime, &rootfs, "keel-cve-21626-exec");
    let state = runtime.state.path().to_str().expect("utf-8");
    let exec = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["--root", state, "exec"];
        all.extend_from_slice(args);
        with_leaked_fd(&host, &runtime.binary, &all, env)
    };
    let refused = exec(
        &["--cwd", "/proc/self/fd/7", container.id, "cat", "../host/secret"],
        &[],
    );
    assert!(!refused.status.success(), "{refused:?}");
    assert!(stderr(&refused).contains("outside the container's root"), "{refused:?}");
    let exposed = exec(
        &["--cwd", "/proc/self/fd/7", container.id, "cat", "../host/secret"],
        &[("KEEL_TEST_ONLY_LEAK_FDS", "1")],
    );
    assert_eq!(stdout(&exposed), "host secret\n", "{exposed:?}");
    let fds = exec(&[container.id, "sh", "-c", "ls /proc/$$/fd; pwd"], &[]);
    assert_eq!(stdout(&fds), "0\n1\n2\n/\n", "{fds:?}");
}

#[test]
fn cve_2024_21626_docker_exec_gets_only_its_streams_and_a_cwd_inside() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    let name = "keel-cve-21626-docker";
    let started = engine.run(&["run", "-d", "--name", name, "busybox", "sleep", "120"]);
    assert!(started.status.success(), "{started:?}");
    let fds = engine.run(&["exec", name, "sh", "-c", "ls /proc/$$/fd; pwd"]);
    assert_eq!(stdout(&fds), "0\n1\n2\n/\n", "{fds:?}");
    let run = engine.run(&["run", "--rm", "busybox", "sh", "-c", "ls /proc/$$/fd; pwd"]);
    assert_eq!(stdout(&run), "0\n1\n2\n/\n", "{run:?}");
    // Whatever the runtime holds open while it starts the process, no -w reaches it.
    for n in 3..=12 {
        let cwd = format!("/proc/self/fd/{n}");
        let output = engine.run(&["exec", "-w", &cwd, name, "sh", "-c", "cd .. && ls"]);
        assert!(!output.status.success(), "-w {cwd}: {output:?}");
    }
    let removed = engine.run(&["rm", "-f", name]);
    assert!(removed.status.success(), "{removed:?}");
}

// --- CVE-2021-30465 -----------------------------------------------------------------------

#[test]
fn cve_2021_30465_a_symlink_in_the_rootfs_cannot_send_a_mount_to_the_host() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let root = rootfs.path();
    // The image's /evil points at a directory of the host (absolute), /up climbs with `..`.
    let host = rootfs.scratch("host");
    std::os::unix::fs::symlink(&host, root.join("evil")).expect("symlink");
    // One `..` from the rootfs's top: its parent, the test's temp dir (with more, the
    // measure-off run below would write in the host's `/`).
    std::os::unix::fs::symlink("..", root.join("up")).expect("symlink");
    // The same path inside the rootfs, where the link leads for the container.
    std::fs::create_dir_all(root.join(host.strip_prefix("/").expect("absolute"))).expect("mkdir");
    let source = rootfs.scratch("volume");
    std::fs::write(source.join("marker"), "volume\n").expect("marker");
    let file = rootfs.scratch("file-volume").join("file");
    std::fs::write(&file, "file volume\n").expect("file");
    let volume = |spec: &str| format!("{}:{spec}", source.display());
    let run = |env: &[(&str, &str)]| {
        step("step03-mount-ns")
            .args(["run", "--rootfs", root.to_str().expect("utf-8")])
            .args(["-v", &volume("/evil/sub")])
            .args(["-v", &format!("{}:/evil/file", file.display())])
            .args(["-v", &volume("/up/climbed")])
            .args(["--", "sh", "-c", "cat /evil/sub/marker /evil/file /climbed/marker"])
            .envs(env.iter().copied())
            .output()
            .expect("run")
    };
    let outside = root.parent().expect("rootfs parent").to_owned();
    let protected = run(&[]);
    assert_eq!(stdout(&protected), "volume\nfile volume\nvolume\n", "{protected:?}");
    assert_eq!(
        std::fs::read_dir(&host).expect("host dir").count(),
        0,
        "the host dir changed"
    );
    assert!(!outside.join("climbed").exists(), "`..` climbed out of the rootfs");

    let exposed = run(&[("KEEL_TEST_ONLY_MOUNT_THROUGH_SYMLINKS", "1")]);
    assert!(!exposed.status.success(), "{exposed:?}");
    assert!(host.join("sub").is_dir(), "the mount point was not made on the host");
    assert!(
        host.join("file").is_file(),
        "the file mount point was not made on the host"
    );
    assert!(outside.join("climbed").is_dir(), "`..` did not climb out");

    // A link to a path the rootfs lacks: refused, with the reason, nothing made.
    std::os::unix::fs::symlink("/keel-test-missing", root.join("dangling")).expect("symlink");
    let output = step("step03-mount-ns")
        .args(["run", "--rootfs", root.to_str().expect("utf-8")])
        .args(["-v", &volume("/dangling/x"), "--", "true"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(125), "{output:?}");
    assert!(
        stderr(&output).contains("mounting /dangling/x: a symlink to a path missing in the root"),
        "{output:?}"
    );
    assert!(!Path::new("/keel-test-missing").exists());
}

#[test]
fn an_images_dev_symlink_cannot_send_device_nodes_to_the_host() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let root = rootfs.path();
    // The image's /dev is an absolute link to a host directory that also exists inside.
    let host = rootfs.scratch("host-dev");
    std::fs::remove_dir_all(root.join("dev")).expect("rm dev");
    std::os::unix::fs::symlink(&host, root.join("dev")).expect("symlink");
    std::fs::create_dir_all(root.join(host.strip_prefix("/").expect("absolute"))).expect("mkdir");
    let protected = step("step03-mount-ns")
        .args(["run", "--rootfs", root.to_str().expect("utf-8")])
        .args(["--", "sh", "-c", "echo x > /dev/null && echo null-works"])
        .output()
        .expect("run");
    assert_eq!(stdout(&protected), "null-works\n", "{protected:?}");
    // No measure-off run: with the switch, /dev's tmpfs itself follows the link and hides
    // the host directory. The gap was devices.rs making nodes by path (rootfs/dev/null)
    // after the mounts were resolved in the root: this assertion failed with that code.
    assert_eq!(
        std::fs::read_dir(&host).expect("host dir").count(),
        0,
        "device nodes on the host"
    );
}

// --- hostile image layers -----------------------------------------------------------------

/// A one-layer rootfs tarball with these entries: (kind, name, link target).
fn layer(entries: &[(tar::EntryType, &str, Option<&str>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (kind, name, link) in entries {
        let mut header = tar::Header::new_old();
        {
            let bytes = header.as_old_mut();
            bytes.name[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(link) = link {
                bytes.linkname[..link.len()].copy_from_slice(link.as_bytes());
            }
        }
        header.set_entry_type(*kind);
        let data: &[u8] = if *kind == tar::EntryType::Regular { b"x" } else { b"" };
        header.set_size(data.len() as u64);
        header.set_mode(if *kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        header.set_cksum();
        builder.append(&header, data).expect("append");
    }
    builder.into_inner().expect("tar")
}

#[test]
fn hostile_layers_beyond_step06s_cases_are_refused_and_write_nothing_outside() {
    if !needs_root() {
        return;
    }
    use tar::EntryType::{Directory, Link, Regular, Symlink};
    let dir = tempfile::Builder::new()
        .prefix("keel-test-cve-layers-")
        .tempdir()
        .expect("tempdir");
    let store = dir.path().join("root");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).expect("outside");
    std::fs::write(outside.join("target"), "host file\n").expect("target");
    let out = outside.to_str().expect("utf-8");
    let target = format!("{out}/target");
    let nlink = || std::os::unix::fs::MetadataExt::nlink(&std::fs::metadata(outside.join("target")).expect("target"));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "hard link through a symlink of the layer",
            layer(&[(Symlink, "l", Some(out)), (Link, "stolen", Some("l/target"))]),
            "hard link to \"l/target\"",
        ),
        (
            "hard link climbing with ..",
            layer(&[(Link, "stolen", Some("../../../../../../etc/passwd"))]),
            "hard link to",
        ),
        (
            "directory through a symlink",
            layer(&[(Symlink, "l", Some(out)), (Directory, "l/made", None)]),
            "its parent l is a symlink",
        ),
        (
            "symlink through a symlink",
            layer(&[(Symlink, "l", Some(out)), (Symlink, "l/link", Some("/etc/shadow"))]),
            "its parent l is a symlink",
        ),
        (
            "a relative symlink climbing out, then a file through it",
            layer(&[
                (Symlink, "up", Some("../../../..")),
                (Regular, "up/keel-test-pwned", None),
            ]),
            "its parent up is a symlink",
        ),
        (
            "a file replacing a symlink's target",
            layer(&[(Symlink, "t", Some(target.as_str())), (Regular, "t", None)]),
            "",
        ),
    ];
    let before = nlink();
    for (what, bytes, reason) in cases {
        let tarball = dir.path().join("layer.tar");
        std::fs::write(&tarball, bytes).expect("write");
        let output = step("step06-images")
            .args(["import", "--root", store.to_str().expect("utf-8")])
            .args([tarball.to_str().expect("utf-8"), "hostile:1"])
            .output()
            .expect("import");
        if reason.is_empty() {
            // Not hostile in itself (a later entry replaces an earlier one); it must not
            // write through the link it replaces.
            assert!(output.status.success(), "{what}: {output:?}");
        } else {
            assert_eq!(output.status.code(), Some(125), "{what}: {output:?}");
            assert!(stderr(&output).contains(reason), "{what}: {}", stderr(&output));
        }
        assert_eq!(
            std::fs::read_dir(&outside).expect("outside").count(),
            1,
            "{what}: something was written outside"
        );
        assert_eq!(
            std::fs::read_to_string(outside.join("target")).expect("target"),
            "host file\n"
        );
        assert_eq!(nlink(), before, "{what}: a hard link to the host file was made");
    }
    assert!(!Path::new("/keel-test-pwned").exists());
}
