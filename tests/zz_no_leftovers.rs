//! Runs after every other test binary (cargo runs them in name order): nothing of keel's may
//! be left on the machine: no cgroup, no mount of a test rootfs, no test directory, no veth,
//! bridge or port rule of a test engine.

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
    // The engines' networking: container veths (vk...), the tests' bridges (kt...), and
    // published-port rules (tagged keel:ID).
    for link in std::fs::read_dir("/sys/class/net").expect("/sys/class/net").flatten() {
        let name = link.file_name().to_string_lossy().into_owned();
        if name.starts_with("vk") || (name.starts_with("kt") && name[2..].starts_with(|c: char| c.is_ascii_digit())) {
            left.push(format!("network link {name}"));
        }
    }
    let rules = std::process::Command::new("iptables")
        .args(["-w", "5", "-t", "nat", "-S"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    left.extend(
        rules
            .lines()
            .filter(|r| r.contains("keel:"))
            .map(|r| format!("nat rule {r}")),
    );
    assert!(left.is_empty(), "left behind:\n{}", left.join("\n"));
}
