//! Step 03 as a participant sees it: the container's own root, mounts and /proc; volumes;
//! a read-only root; the host's mount table untouched; bad input refused before anything.

use keel_tests::{host_mounts, needs_root, stderr, stdout, step, wait_for, TestRootfs, PROBE_IN_ROOTFS};
use std::path::Path;
use std::time::Duration;

const STEP: &str = "step03-mount-ns";

fn run_in(rootfs: &TestRootfs, extra: &[&str], command: &[&str]) -> std::process::Output {
    let root = rootfs.path();
    let mut args = vec!["run", "--rootfs", root.to_str().expect("utf-8 path")];
    args.extend_from_slice(extra);
    args.push("--");
    args.extend_from_slice(command);
    step(STEP).args(&args).output().expect("run")
}

#[test]
fn inside_sees_the_rootfs_and_only_its_own_mounts() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let listing = run_in(&rootfs, &[], &["ls", "/"]);
    let report = run_in(&rootfs, &[], &[PROBE_IN_ROOTFS, "pid", "mounts", "net"]);
    assert!(report.status.success(), "{report:?}");
    let seen = format!(
        "$ ls /\n{}$ keel-probe pid mounts net\n{}",
        stdout(&listing),
        stdout(&report)
    );
    insta::assert_snapshot!("inside", seen);
}

#[test]
fn dev_holds_the_default_devices() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let output = run_in(
        &rootfs,
        &[],
        &["sh", "-c", "ls /dev; echo x > /dev/null && head -c 4 /dev/zero | wc -c"],
    );
    insta::assert_snapshot!("dev", stdout(&output));
}

#[test]
fn proc_shows_only_the_containers_processes() {
    if !needs_root() {
        return;
    }
    // Without --rootfs the container keeps the host's files but its /proc is its own.
    let output = step(STEP)
        .args(["run", "--", "sh", "-c", "ls /proc | grep -c '^[0-9]'"])
        .output()
        .expect("run");
    // sh, and the grep/ls of the pipeline.
    let count: u32 = stdout(&output).trim().parse().expect("a number");
    assert!(count <= 3, "{count} processes visible: the host's /proc leaked in");
}

#[test]
fn orphans_are_reaped_by_init_and_left_as_zombies_without() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    // A grandchild is orphaned (its parent exits at once) and ends after 0.1 s: PID 1 has to
    // reap it. The shell then becomes `sleep`, which never waits for anything, while a
    // background probe lists the processes.
    let script = "sh -c 'sleep 0.1 &'; (sleep 0.5; keel-probe procs) & exec sleep 1";
    let with_init = run_in(&rootfs, &["--init"], &["sh", "-c", script]);
    let zombies = |out: &str| out.lines().filter(|l| l.ends_with(" Z")).count();
    assert_eq!(
        zombies(&stdout(&with_init)),
        0,
        "init left a zombie:\n{}",
        stdout(&with_init)
    );
    let without = run_in(&rootfs, &[], &["sh", "-c", script]);
    assert_eq!(
        zombies(&stdout(&without)),
        1,
        "sh as PID 1 should not reap:\n{}",
        stdout(&without)
    );
}

#[test]
fn volumes_are_writable_unless_ro_and_read_only_blocks_writes() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let data = rootfs.scratch("data");
    let rw = format!("{}:/data", data.display());
    let ro = format!("{}:/data:ro", data.display());
    let probe_rw = run_in(&rootfs, &["-v", &rw], &[PROBE_IN_ROOTFS, "write:/data/from-inside"]);
    assert_eq!(stdout(&probe_rw), "write /data/from-inside: ok\n");
    assert_eq!(
        std::fs::read_to_string(data.join("from-inside")).expect("written"),
        "probe\n"
    );
    let probe_ro = run_in(&rootfs, &["-v", &ro], &[PROBE_IN_ROOTFS, "write:/data/again"]);
    assert_eq!(stdout(&probe_ro), "write /data/again: ReadOnlyFilesystem\n");
    assert!(!data.join("again").exists());
    let read_only = run_in(
        &rootfs,
        &["--read-only"],
        &[PROBE_IN_ROOTFS, "write:/x", "write:/dev/shm/x"],
    );
    assert_eq!(
        stdout(&read_only),
        "write /x: ReadOnlyFilesystem\nwrite /dev/shm/x: ok\n"
    );
}

#[test]
fn mounts_do_not_cross_between_host_and_container() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let root = rootfs.path();
    let ready = rootfs.scratch("signals").join("ready");
    let signals = rootfs.scratch("signals");
    let volume = format!("{}:/signals", signals.display());
    // Inside: mount a tmpfs, say ready, wait for the host's mount, report what is seen.
    let script = "mount -t tmpfs inside /tmp && touch /signals/ready && sleep 1 && \
                  (ls /mnt/host-mount 2>&1 || true) && keel-probe mounts | grep -c /mnt/host-mount";
    let mut args = vec!["run".to_owned(), "--rootfs".to_owned(), root.display().to_string()];
    // Mounting inside needs CAP_SYS_ADMIN, which a container lacks by default.
    args.extend([
        "--cap-add".to_owned(),
        "SYS_ADMIN".to_owned(),
        "-v".to_owned(),
        volume,
        "--".to_owned(),
        "sh".to_owned(),
        "-c".to_owned(),
        script.to_owned(),
    ]);
    let child = std::process::Command::new(keel_tests::binary(STEP))
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    assert!(wait_for(&ready), "the container did not start");
    // The container's tmpfs is not in the host's table...
    let tmp_inside = root.join("tmp");
    assert!(
        !host_mounts().iter().any(|m| Path::new(m) == tmp_inside),
        "the container's mount is visible on the host"
    );
    // ...and a mount the host makes now under the rootfs does not appear inside.
    let host_mount = root.join("mnt/host-mount");
    std::fs::create_dir_all(&host_mount).expect("mkdir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "host", host_mount.to_str().expect("utf-8")])
        .status()
        .expect("mount");
    assert!(mounted.success());
    let output = child.wait_with_output().expect("wait");
    let _ = std::process::Command::new("umount").arg(&host_mount).status();
    assert_eq!(
        stdout(&output).lines().last(),
        Some("0"),
        "host mount seen inside: {}",
        stdout(&output)
    );
    std::thread::sleep(Duration::from_millis(10));
}

#[test]
fn bad_input_is_refused_clearly_and_leaves_no_mount() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let root = rootfs.path().display().to_string();
    let before = host_mounts();
    let cases: [(&str, &[&str], i32); 6] = [
        (
            "missing rootfs",
            &["run", "--rootfs", "/nonexistent/rootfs", "--", "true"],
            125,
        ),
        (
            "a file as rootfs",
            &["run", "--rootfs", "/etc/hostname", "--", "true"],
            125,
        ),
        (
            "bad volume syntax",
            &["run", "--rootfs", &root, "-v", "/tmp", "--", "true"],
            125,
        ),
        (
            "relative volume",
            &["run", "--rootfs", &root, "-v", "tmp:/data", "--", "true"],
            125,
        ),
        ("missing command", &["run", "--rootfs", &root], 125),
        (
            "unknown command",
            &["run", "--rootfs", &root, "--", "no-such-command"],
            127,
        ),
    ];
    let mut transcript = String::new();
    for (what, args, code) in cases {
        let output = step(STEP).args(args).output().expect("run");
        assert_eq!(output.status.code(), Some(code), "{what}: {output:?}");
        let first_line = stderr(&output)
            .lines()
            .next()
            .unwrap_or_default()
            .replace(&root, "<rootfs>");
        transcript.push_str(&format!("{what} (exit {code}):\n  {first_line}\n"));
    }
    insta::assert_snapshot!("errors", transcript);
    assert_eq!(before, host_mounts(), "a mount was left behind");
}

#[test]
fn the_command_runs_as_the_user_asked_for() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let output = run_in(
        &rootfs,
        &["--user", "65534:65534"],
        &[PROBE_IN_ROOTFS, "ids", "write:/root/x"],
    );
    assert!(output.status.success(), "{output:?}");
    let report = stdout(&output);
    assert!(
        report.starts_with("Uid: 65534 65534 65534 65534\nGid: 65534 65534 65534 65534\n"),
        "{report}"
    );
    assert!(report.ends_with("write /root/x: PermissionDenied\n"), "{report}");
}

#[test]
fn a_rootless_user_gets_a_rootfs_too() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    // nobody must be able to reach the rootfs and the binary.
    use std::os::unix::fs::PermissionsExt;
    let top = rootfs.path().parent().expect("parent").to_owned();
    std::fs::set_permissions(&top, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let binary = top.join(STEP);
    std::fs::copy(keel_tests::binary(STEP), &binary).expect("copy");
    let output = assert_cmd::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&binary)
        .args(["run", "--rootfs", rootfs.path().to_str().expect("utf-8"), "--"])
        .args([PROBE_IN_ROOTFS, "ids", "write:/dev/null", "mounts"])
        .current_dir("/")
        .timeout(Duration::from_secs(30))
        .output()
        .expect("setpriv");
    assert!(output.status.success(), "{output:?}");
    let report = stdout(&output);
    assert!(
        report.starts_with("Uid: 0 0 0 0\n"),
        "root inside a user namespace: {report}"
    );
    assert!(report.contains("uid_map: 0 65534 1"), "{report}");
    assert!(report.contains("write /dev/null: ok"), "{report}");
    assert!(report.contains("mount: /dev/pts devpts rw"), "{report}");
}
