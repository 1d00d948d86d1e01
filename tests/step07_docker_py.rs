//! docker-py, the Python SDK, is a second real client: it calls the API differently from
//! the CLI (unversioned /version, logs after the fact instead of attach, N+1 inspects).

use keel_tests::engine::Engine;
use keel_tests::needs_root;

#[test]
fn docker_py_runs_lists_execs_and_stops() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/docker_py.py");
    let output = std::process::Command::new("python3")
        .arg(script)
        .env("DOCKER_HOST", format!("unix://{}", engine.socket().display()))
        .output()
        .expect("python3 (docker-py is installed by scripts/setup.sh)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}\nengine:\n{}", engine.log());
    insta::assert_snapshot!("docker_py", stdout);
}

#[test]
fn docker_py_pulls_from_a_local_registry() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    // The engine's busybox, saved (keel's save holds an OCI layout) and pushed by skopeo.
    let archive = engine.scratch("busybox.tar");
    let saved = engine.run(&["save", "-o", archive.to_str().expect("utf-8"), "busybox"]);
    assert!(saved.status.success(), "{saved:?}");
    let layout = engine.scratch("layout");
    std::fs::create_dir_all(&layout).expect("mkdir");
    tar::Archive::new(std::fs::File::open(&archive).expect("open"))
        .unpack(&layout)
        .expect("unpack");
    let registry = keel_tests::registry::Registry::start(false, false);
    registry.push(&layout, "latest", "sdk/busybox:1");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/docker_py_pull.py");
    let output = std::process::Command::new("python3")
        .arg(script)
        .env("DOCKER_HOST", format!("unix://{}", engine.socket().display()))
        .env("KEEL_REGISTRY", registry.host())
        .output()
        .expect("python3");
    assert!(output.status.success(), "{output:?}\nengine:\n{}", engine.log());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "pulled ['sdk/busybox:1']\nrun from-pulled\n"
    );
}
