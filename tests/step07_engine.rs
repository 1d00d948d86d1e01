//! Step 07 as a docker user sees it: the real docker CLI against keel's engine.

use keel_tests::engine::{lines, Engine};
use keel_tests::needs_root;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn run_prints_both_streams_and_exits_with_the_containers_status() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    let output = engine.run(&["run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    assert_eq!(text(&output.stdout), "out\n");
    assert_eq!(text(&output.stderr), "err\n");
    // --rm is the engine's job: nothing is left.
    assert!(lines(&engine.run(&["ps", "-aq"])).is_empty());
}
