//! Runs after every other test binary (cargo runs them in name order): nothing of keel's may
//! be left on the machine: no cgroup, no mount of a test rootfs, no test directory.

use keel_tests::needs_root;

#[test]
fn the_suite_left_no_cgroup_mount_or_temp_dir() {
    if !needs_root() {
        return;
    }
    let mut left = Vec::new();
    for tree in std::fs::read_dir("/sys/fs/cgroup").expect("/sys/fs/cgroup").flatten() {
        for dir in std::fs::read_dir(tree.path()).into_iter().flatten().flatten() {
            let name = dir.file_name().to_string_lossy().into_owned();
            if name.starts_with("keel") && dir.path().is_dir() {
                left.push(dir.path().display().to_string());
            }
        }
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    left.extend(
        mountinfo
            .lines()
            .filter(|l| l.contains("keel-test-"))
            .map(str::to_owned),
    );
    let tmp = std::env::temp_dir();
    for entry in std::fs::read_dir(&tmp).expect("temp dir").flatten() {
        if entry.file_name().to_string_lossy().starts_with("keel-test-") {
            left.push(entry.path().display().to_string());
        }
    }
    assert!(left.is_empty(), "left behind:\n{}", left.join("\n"));
}
