//! Devices: a container may open the few devices step 03 puts in /dev, no other. Two
//! measures, on cgroup v1 and v2 alike: the seccomp filter refuses mknod of character and
//! block devices (CAP_MKNOD stays, for fifos), and the rootfs is mounted nodev, so a device
//! node an image carries opens nothing. Each check shows the attack working with the
//! measure off.
//!
//! The device is /dev/loop-control (10:237): harmless to open, and openable by root here
//! (this VM refuses its disk even to the host's root).

use keel_tests::{needs_root, sh_in_rootfs, stderr, stdout, TestRootfs};

const LOOP_CONTROL: (u64, u64) = (10, 237);

#[test]
fn a_container_cannot_make_a_device_node_unless_unconfined() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let (major, minor) = LOOP_CONTROL;
    let attack = format!("mknod /dev/stolen c {major} {minor} && exec 3</dev/stolen && echo opened");
    let refused = sh_in_rootfs(&rootfs, &[], &attack);
    assert!(stderr(&refused).contains("Operation not permitted"), "{refused:?}");
    assert!(!stdout(&refused).contains("opened"));
    let unconfined = sh_in_rootfs(&rootfs, &["--security-opt", "seccomp=unconfined"], &attack);
    assert_eq!(stdout(&unconfined), "opened\n", "{unconfined:?}");
    // Fifos are no devices: CAP_MKNOD still makes them.
    let fifo = sh_in_rootfs(&rootfs, &[], "mknod /tmp/pipe p && echo fifo");
    assert_eq!(stdout(&fifo), "fifo\n", "{fifo:?}");
}

#[test]
fn a_device_node_in_the_rootfs_opens_nothing() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let (major, minor) = LOOP_CONTROL;
    // What an image's layer could carry: the node, made on the host side.
    let node = rootfs.path().join("opt-device");
    let made = std::process::Command::new("mknod")
        .arg(&node)
        .args(["c", &major.to_string(), &minor.to_string()])
        .status()
        .expect("mknod");
    assert!(made.success());
    let attack = "exec 3</opt-device && echo opened";
    let refused = sh_in_rootfs(&rootfs, &[], attack);
    assert!(stderr(&refused).contains("Permission denied"), "{refused:?}");
    // The same node on a mount without nodev (a volume) opens: the mount flag is the measure.
    let volume = format!("{}:/opt-device", node.display());
    let opened = sh_in_rootfs(&rootfs, &["-v", &volume], attack);
    assert_eq!(stdout(&opened), "opened\n", "{opened:?}");
}
