//! seccomp: the system calls a container may not make. Each check shows the attack failing
//! with keel's default filter and working with the filter turned off
//! (`--security-opt seccomp=unconfined` or `--privileged`), so the test can fail.

use keel_tests::engine::{ok, Engine};
use keel_tests::{needs_root, sh_in_rootfs, stderr, stdout, TestRootfs};

/// A new user namespace makes its creator root inside it, with every capability there: the
/// way back to mounts and most of the kernel's surface. It needs no capability at all.
const USER_NAMESPACE: &str = "unshare -U true && echo made";

#[test]
fn a_container_cannot_make_a_user_namespace_unless_unconfined() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let filtered = sh_in_rootfs(
        &rootfs,
        &[],
        &format!("grep Seccomp: /proc/self/status; {USER_NAMESPACE}"),
    );
    assert_eq!(stdout(&filtered), "Seccomp:\t2\n", "{filtered:?}");
    assert!(stderr(&filtered).contains("Operation not permitted"), "{filtered:?}");
    assert!(!filtered.status.success());
    for off in [&["--security-opt", "seccomp=unconfined"][..], &["--privileged"]] {
        let open = sh_in_rootfs(
            &rootfs,
            off,
            &format!("grep Seccomp: /proc/self/status; {USER_NAMESPACE}"),
        );
        assert_eq!(stdout(&open), "Seccomp:\t0\nmade\n", "{off:?}: {open:?}");
    }
    // CAP_SYS_ADMIN makes namespaces legitimate: the filter lets them through, as Docker's.
    let admin = sh_in_rootfs(&rootfs, &["--cap-add", "SYS_ADMIN"], USER_NAMESPACE);
    assert_eq!(stdout(&admin), "made\n", "{admin:?}");
}

#[test]
fn a_profile_in_dockers_format_is_what_the_container_gets() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let profile = rootfs.scratch("profiles").join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#,
    )
    .expect("profile");
    let option = format!("seccomp={}", profile.display());
    let denied = sh_in_rootfs(&rootfs, &["--security-opt", &option], "mkdir /tmp/d && echo made");
    assert!(
        stderr(&denied).contains("Permission denied"),
        "EACCES (13) as the profile says: {denied:?}"
    );
    let allowed = sh_in_rootfs(&rootfs, &[], "mkdir /tmp/d && echo made");
    assert_eq!(stdout(&allowed), "made\n", "{allowed:?}");
    // A real allow-list profile (podman's, ~370 calls by name, default EPERM): a shell runs.
    let podman = "/usr/share/containers/seccomp.json";
    assert!(
        std::path::Path::new(podman).exists(),
        "{podman} comes with skopeo (Debian's golang-github-containers-common): run scripts/setup.sh"
    );
    let listed = sh_in_rootfs(
        &rootfs,
        &["--security-opt", &format!("seccomp={podman}")],
        "ls / >/dev/null && echo ran",
    );
    assert_eq!(stdout(&listed), "ran\n", "{listed:?}");
    let bad = sh_in_rootfs(&rootfs, &["--security-opt", "seccomp={not json"], "true");
    assert!(stderr(&bad).contains("seccomp profile"), "{bad:?}");
}

#[test]
fn through_the_engine_exec_and_run_get_the_filter_and_the_cli_sends_profiles() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    let denied = engine.run(&["run", "--rm", "busybox", "sh", "-c", USER_NAMESPACE]);
    assert!(
        !denied.status.success() && !stdout(&denied).contains("made"),
        "{denied:?}"
    );
    let unconfined = engine.run(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        "busybox",
        "sh",
        "-c",
        USER_NAMESPACE,
    ]);
    assert_eq!(ok(&unconfined), "made\n");
    // `docker exec` enters the container through the runtime: the same filter applies.
    let id = ok(&engine.run(&["run", "-d", "busybox", "sleep", "60"]));
    let id = id.trim();
    let exec = engine.run(&["exec", id, "sh", "-c", USER_NAMESPACE]);
    assert!(!exec.status.success() && !stdout(&exec).contains("made"), "{exec:?}");
    ok(&engine.run(&["rm", "-f", id]));
    // The CLI reads the profile file and sends its JSON: the engine passes it down.
    let profile = engine.scratch("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}"#,
    )
    .expect("profile");
    let custom = engine.run(&[
        "run",
        "--rm",
        "--security-opt",
        &format!("seccomp={}", profile.display()),
        "busybox",
        "sh",
        "-c",
        "mkdir /tmp/d && echo made",
    ]);
    assert!(stderr(&custom).contains("Operation not permitted"), "{custom:?}");
}
