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
