//! The engine's API fuzzed with schemathesis (PyPI) from its own OpenAPI document
//! (steps/07-engine-api/openapi.yaml): a bounded number of generated requests, valid and
//! invalid, for every operation; none may get a 5xx or take the engine down, and the real
//! `docker` CLI must still list what the fuzzer left behind.
//!
//! Safety: the engine runs in a network namespace this test makes (`unshare -n`, only `lo`):
//! a pull or push it attempts cannot leave the machine, and its bridge and rules die with
//! the namespace. Its unix socket is bridged to 127.0.0.1 by socat for schemathesis. What
//! could reach the host is kept out of the fuzzer's hands (see `HOOKS`), and some
//! operations are not fuzzed at all (see `EXCLUDED`).

use keel_tests::{binary, needs_root, stdout};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Generated cases per operation and phase: ~2000 requests, about 30 s on two cores.
const MAX_EXAMPLES: &str = "25";

/// The same cases on every run (a failure can be replayed); `KEEL_FUZZ_SEED` picks others.
const DEFAULT_SEED: &str = "1";

/// Operations not fuzzed, and why:
/// - SystemEvents: a stream that ends only when the client goes (every case would time out);
/// - ContainerAttach, ExecStart: they hijack the connection into a raw stream (HTTP 101);
/// - ContainerWait: a long poll by design (`condition=next-exit` waits for an exit that may
///   never come, `removed` for a removal);
/// - ImagePush: a fuzzed name is a registry somewhere else, and tests send no traffic
///   beyond the loopback; `push_of_an_unknown_image_is_refused_before_any_traffic` checks
///   what needs no registry, step07_images.rs pushes to a local one.
const EXCLUDED: [&str; 5] = [
    "SystemEvents",
    "ContainerAttach",
    "ExecStart",
    "ContainerWait",
    "ImagePush",
];

/// schemathesis hooks: tar bodies sent as the fuzzer's bytes, and a container create that
/// cannot ask for anything of the host's.
const HOOKS: &str = r#"import schemathesis

# Layers, image tarballs and archive uploads are bytes: send the fuzzer's binary data.
schemathesis.serializer.alias("application/x-tar", "application/octet-stream")

# What a created container could ask of the host is taken out of the body: bind mounts of
# host paths (created if missing), privileges, devices, security options, a cgroup anywhere
# in the host's hierarchy, other namespaces. The image is the store's own, so the rest of
# the body gets past "no such image" into the spec's conversion.
HOST_REACHING = ("Binds", "Mounts", "Privileged", "CapAdd", "Devices", "SecurityOpt",
                 "CgroupParent", "VolumesFrom", "Sysctls", "PidMode", "IpcMode", "UTSMode")


@schemathesis.hook
def map_body(ctx, body):
    if ctx.operation.path != "/containers/create" or not isinstance(body, dict):
        return body
    host = body.get("HostConfig")
    if isinstance(host, dict):
        for key in HOST_REACHING:
            host.pop(key, None)
    body.pop("Volumes", None)
    body["Image"] = "busybox"
    return body
"#;

/// A process of ours, killed (by its pid) and reaped when dropped.
struct Owned(Child);

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The engine in a network namespace of its own, with its data in `dir`.
struct IsolatedEngine {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl IsolatedEngine {
    fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("keel-test-fuzz-")
            .tempdir()
            .expect("temp dir");
        let log = std::fs::File::create(dir.path().join("engine.log")).expect("engine log");
        let engine = binary("step07-engine-api");
        // `unshare -n` execs the shell, which execs the engine: the child is the engine.
        let child = Command::new("unshare")
            .args(["--net", "sh", "-c", r#"ip link set lo up && exec "$@""#, "sh"])
            .arg(engine)
            .arg("serve")
            .arg("--socket")
            .arg(dir.path().join("keel.sock"))
            .arg("--root")
            .arg(dir.path().join("root"))
            .arg("--runtime-root")
            .arg(dir.path().join("run"))
            .args(["--bridge", "kfuzz0", "--bridge-subnet", "172.31.251.0/24"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("unshare");
        let engine = Self {
            dir,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while UnixStream::connect(engine.socket()).is_err() {
            assert!(
                Instant::now() < deadline,
                "the engine did not come up: {}",
                engine.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        engine
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("keel.sock")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("engine.log")).unwrap_or_default()
    }

    fn alive(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    fn docker(&self, args: &[&str]) -> Output {
        let output = Command::new("docker")
            .env("DOCKER_HOST", format!("unix://{}", self.socket().display()))
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .env_remove("DOCKER_CONTEXT")
            .args(args)
            .stdin(Stdio::null())
            .output();
        output.expect("docker")
    }

    /// `GET /_ping` over the socket, by hand: the engine's answer, or why there is none.
    fn ping(&self) -> Result<String, std::io::Error> {
        let mut stream = UnixStream::connect(self.socket())?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(b"GET /_ping HTTP/1.1\r\nHost: keel\r\nConnection: close\r\n\r\n")?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer)
    }
}

impl Drop for IsolatedEngine {
    fn drop(&mut self) {
        // Containers first: their monitors would keep running (and the namespace alive).
        if self.alive() {
            let _ = self.docker(&["container", "prune", "-f"]);
            let ids = stdout(&self.docker(&["ps", "-aq"]));
            for id in ids.split_whitespace() {
                let _ = self.docker(&["rm", "-f", id]);
            }
            let _ = self.docker(&["network", "prune", "-f"]);
        }
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A free port on 127.0.0.1 (the kernel's choice, released for socat to take).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// socat: 127.0.0.1:PORT to the engine's socket, one connection each.
fn bridge(socket: &Path) -> (Owned, u16) {
    let port = free_port();
    let child = Command::new("socat")
        .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"))
        .arg(format!("UNIX-CONNECT:{}", socket.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("socat (scripts/setup.sh installs it)");
    let socat = Owned(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "socat did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    (socat, port)
}

fn tools_present() {
    for (tool, args) in [
        ("schemathesis", ["--version"]),
        ("socat", ["-V"]),
        ("unshare", ["--version"]),
    ] {
        let found = Command::new(tool).args(args).output().is_ok_and(|o| o.status.success());
        assert!(found, "{tool} is missing: run scripts/setup.sh");
    }
}

#[test]
fn fuzzing_the_api_gets_no_5xx_and_the_engine_stays_up() {
    if !needs_root() {
        return;
    }
    tools_present();
    let mut engine = IsolatedEngine::start();
    // Something for the fuzzer to find: an ended container and a network of its own.
    let ran = engine.docker(&["run", "--name", "keel-fuzz", "busybox", "true"]);
    assert!(ran.status.success(), "{ran:?}\n{}", engine.log());
    let made = engine.docker(&["network", "create", "keel-fuzz-net"]);
    assert!(made.status.success(), "{made:?}");
    let (_socat, port) = bridge(&engine.socket());

    let work = engine.dir.path().join("schemathesis");
    std::fs::create_dir_all(&work).expect("work dir");
    std::fs::write(work.join("keel_fuzz_hooks.py"), HOOKS).expect("hooks");
    let seed = std::env::var("KEEL_FUZZ_SEED").unwrap_or_else(|_| DEFAULT_SEED.to_owned());
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("steps/07-engine-api/openapi.yaml");
    let mut command = Command::new("schemathesis");
    command
        .current_dir(&work)
        .env("SCHEMATHESIS_HOOKS", "keel_fuzz_hooks")
        .env("PYTHONPATH", &work)
        .arg("run")
        .arg(&schema)
        .args(["--url", &format!("http://127.0.0.1:{port}/v1.41")])
        .args(["--checks", "not_a_server_error"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", MAX_EXAMPLES, "--seed", &seed])
        .args(["--workers", "2", "--request-timeout", "20", "--no-color"])
        .args(["--report", "junit", "--report-dir", "report"]);
    for operation in EXCLUDED {
        command.args(["--exclude-operation-id", operation]);
    }
    let started = Instant::now();
    let fuzz = command.output().expect("schemathesis (scripts/setup.sh installs it)");
    let report = stdout(&fuzz);
    let summary: Vec<&str> = report
        .lines()
        .filter(|l| l.contains("generated") || l.contains("Tested:") || l.contains("Selected:"))
        .map(str::trim)
        .collect();
    eprintln!("schemathesis in {:?}: {}", started.elapsed(), summary.join("; "));
    assert!(
        fuzz.status.success(),
        "schemathesis found failures (seed {seed}):\n{report}\n{}\nengine log:\n{}",
        String::from_utf8_lossy(&fuzz.stderr),
        engine.log()
    );
    assert!(report.contains(" passed"), "no case ran:\n{report}");

    // Still there, still answering, and what the fuzzer left is still readable by docker.
    assert!(engine.alive(), "the engine died:\n{}", engine.log());
    let ping = engine.ping().expect("ping");
    assert!(ping.starts_with("HTTP/1.1 200") && ping.ends_with("OK"), "{ping}");
    let listed = engine.docker(&["ps", "-a"]);
    assert!(listed.status.success(), "docker ps after the fuzzing: {listed:?}");
    let networks = engine.docker(&["network", "ls"]);
    assert!(networks.status.success(), "docker network ls: {networks:?}");
    assert!(!engine.log().contains("panicked"), "{}", engine.log());
}

/// One request over the engine's socket; the whole answer.
fn request(engine: &IsolatedEngine, method: &str, path: &str, body: &str) -> String {
    let mut stream = UnixStream::connect(engine.socket()).expect("connect");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: keel\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("write");
    stream.write_all(body.as_bytes()).expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    answer
}

#[test]
fn what_the_fuzzer_found_stays_fixed() {
    if !needs_root() {
        return;
    }
    let engine = IsolatedEngine::start();
    // A label that is not a string was kept and listed back, and `docker ps` failed for
    // every container ("cannot unmarshal number into ... Labels of type string").
    let answer = request(
        &engine,
        "POST",
        "/v1.41/containers/create",
        r#"{"Image": "busybox", "Labels": {"a": 1}}"#,
    );
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains("Labels must be an object whose values are strings"),
        "{answer}"
    );
    let listed = engine.docker(&["ps", "-a"]);
    assert!(listed.status.success(), "{listed:?}");
}

#[test]
fn push_of_an_unknown_image_is_refused_before_any_traffic() {
    if !needs_root() {
        return;
    }
    let engine = IsolatedEngine::start();
    let answer = request(&engine, "POST", "/v1.41/images/localhost:1/nothing/push?tag=v1", "");
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(
        answer.contains(r#"{"message":"An image does not exist locally with the tag: localhost:1/nothing:v1"}"#),
        "{answer}"
    );
    let answer = request(&engine, "POST", "/v1.41/images/UPPER/push?tag=v1", "");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
}
