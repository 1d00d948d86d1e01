//! Least privilege by default: a container's root keeps Docker's fourteen capabilities and
//! has no_new_privs. Each check shows the attack failing by default and working with the
//! measure turned off (`--privileged`, `--cap-add`), so the test can fail.

use keel_tests::engine::Engine;
use keel_tests::{needs_root, stdout, step, TestRootfs};

fn in_container(flags: &[&str], script: &str) -> std::process::Output {
    let rootfs = TestRootfs::new();
    let root = rootfs.path();
    let mut args = vec!["run", "--rootfs", root.to_str().expect("utf-8")];
    args.extend_from_slice(flags);
    args.extend(["--", "sh", "-c", script]);
    step("step03-mount-ns").args(&args).output().expect("run")
}

#[test]
fn the_default_set_is_dockers_and_no_new_privs_is_on() {
    if !needs_root() {
        return;
    }
    let status = "grep -E '^(CapEff|CapBnd|CapPrm|NoNewPrivs)' /proc/self/status";
    let default = stdout(&in_container(&[], status));
    assert_eq!(
        default,
        "CapPrm:\t00000000a80425fb\nCapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\nNoNewPrivs:\t1\n"
    );
    let privileged = stdout(&in_container(&["--privileged"], status));
    assert!(!privileged.contains("a80425fb"), "{privileged}");
    assert!(privileged.ends_with("NoNewPrivs:\t0\n"), "{privileged}");
}

#[test]
fn mounting_needs_sys_admin_which_a_container_lacks() {
    if !needs_root() {
        return;
    }
    let attack = "mount -t tmpfs escape /tmp && echo mounted";
    let default = in_container(&[], attack);
    assert!(!default.status.success(), "{default:?}");
    assert!(!stdout(&default).contains("mounted"));
    let privileged = in_container(&["--cap-add", "SYS_ADMIN"], attack);
    assert_eq!(stdout(&privileged), "mounted\n", "{privileged:?}");
}

#[test]
fn a_dropped_capability_is_gone_for_good() {
    if !needs_root() {
        return;
    }
    let attack = "touch /tmp/f && chown 1:1 /tmp/f && echo chowned";
    assert_eq!(stdout(&in_container(&[], attack)), "chowned\n");
    let dropped = in_container(&["--cap-drop", "CHOWN"], attack);
    assert!(!dropped.status.success(), "{dropped:?}");
    // Out of the bounding set: not even a new exec brings it back.
    let bounding = stdout(&in_container(&["--cap-drop", "CHOWN"], "grep CapBnd /proc/self/status"));
    assert_eq!(bounding, "CapBnd:\t00000000a80425fa\n");
}

#[test]
fn docker_cap_add_and_privileged_reach_the_engines_containers() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    let attack = "ip addr add 10.254.254.254/32 dev lo && echo added";
    let default = engine.run(&["run", "--rm", "busybox", "sh", "-c", attack]);
    assert!(!default.status.success(), "{default:?}");
    let added = engine.run(&["run", "--rm", "--cap-add", "NET_ADMIN", "busybox", "sh", "-c", attack]);
    assert_eq!(String::from_utf8_lossy(&added.stdout), "added\n", "{added:?}");
    let eff = engine.run(&["run", "--rm", "busybox", "grep", "CapEff", "/proc/self/status"]);
    assert_eq!(String::from_utf8_lossy(&eff.stdout), "CapEff:\t00000000a80425fb\n");
    let privileged = engine.run(&[
        "run",
        "--rm",
        "--privileged",
        "busybox",
        "sh",
        "-c",
        "mount -t tmpfs x /tmp && echo mounted",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&privileged.stdout),
        "mounted\n",
        "{privileged:?}"
    );
}
