//! `doctor`: can this machine run the whole workshop? Each finding says what was seen and,
//! when something is wrong, the fix. It only reads files under /proc, /sys and /bin.

use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC, TMPFS_MAGIC};
use std::fmt;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub check: &'static str,
    pub level: Level,
    pub detail: String,
    pub fix: Option<String>,
}

impl Finding {
    fn ok(check: &'static str, detail: impl Into<String>) -> Self {
        Self {
            check,
            level: Level::Ok,
            detail: detail.into(),
            fix: None,
        }
    }
    fn with(check: &'static str, level: Level, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            check,
            level,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        write!(f, "{level:<5} {:<11} {}", self.check, self.detail)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n{:17} fix: {fix}", "")?;
        }
        Ok(())
    }
}

/// Every check, in the order the workshop needs them.
pub fn findings() -> Vec<Finding> {
    vec![kernel(), privileges(), container(), cgroups(), overlay(), busybox()]
}

/// Prints the findings; the exit status is 1 when any check failed.
pub fn report() -> i32 {
    println!("Checking that this machine can run every step of keel:");
    let findings = findings();
    for finding in &findings {
        println!("  {finding}");
    }
    if findings.iter().any(|f| f.level == Level::Fail) {
        println!("Some checks failed: fix them before the workshop (each FAIL names the fix).");
        1
    } else {
        println!("Ready.");
        0
    }
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

fn kernel() -> Finding {
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut numbers = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse::<u32>().ok());
    let version = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    if version >= (5, 4) {
        Finding::ok(
            "kernel",
            format!("{release}: namespaces, cgroup v2 and overlayfs are all there"),
        )
    } else {
        Finding::with(
            "kernel",
            Level::Warn,
            format!("{release} is older than 5.4: cgroup v2 controllers and overlayfs features may be missing"),
            "use a VM with a current distribution (Debian 12, Ubuntu 24.04)",
        )
    }
}

fn privileges() -> Finding {
    if nix::unistd::geteuid().is_root() {
        return Finding::ok("privileges", "running as root: every step can run");
    }
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return Finding::with(
            "privileges",
            Level::Fail,
            "not root, and user namespaces are disabled (max_user_namespaces = 0)",
            "run as root (sudo), or: sysctl -w user.max_user_namespaces=15000",
        );
    }
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return Finding::with(
            "privileges",
            Level::Fail,
            "not root, and unprivileged user namespaces are disabled",
            "run as root (sudo), or: sysctl -w kernel.unprivileged_userns_clone=1",
        );
    }
    if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        return Finding::with(
            "privileges",
            Level::Fail,
            "not root, and AppArmor restricts unprivileged user namespaces (Ubuntu 23.10 and later)",
            "run as root (sudo), or: sysctl -w kernel.apparmor_restrict_unprivileged_userns=0",
        );
    }
    Finding::with(
        "privileges",
        Level::Warn,
        "not root: step 01 works rootless in a user namespace, the later steps need root",
        "run the workshop as root (sudo -i)",
    )
}

fn container() -> Finding {
    // /proc/1/cgroup names the engine's cgroup when PID 1 runs in a container. A lone
    // /.dockerenv is not enough: VM images built from Docker images keep that file.
    let pid1_cgroup = read("/proc/1/cgroup").unwrap_or_default();
    let engine = if pid1_cgroup.contains("docker") {
        Some("Docker")
    } else if pid1_cgroup.contains("libpod") || Path::new("/run/.containerenv").exists() {
        Some("Podman")
    } else if pid1_cgroup.contains("kubepods") {
        Some("Kubernetes")
    } else if pid1_cgroup.contains("containerd") {
        Some("containerd")
    } else {
        None
    };
    match engine {
        None => Finding::ok("container", "not inside a container"),
        Some(engine) => Finding::with(
            "container",
            Level::Warn,
            format!("running inside {engine}: its seccomp profile blocks new namespaces and overlay on overlay fails"),
            "use a VM, or start the container with --privileged and a volume for /var/lib/keel",
        ),
    }
}

/// How the cgroup hierarchies are mounted: what step 04 must drive.
pub fn cgroup_layout() -> &'static str {
    match statfs("/sys/fs/cgroup").map(|s| s.filesystem_type()) {
        Ok(t) if t == CGROUP2_SUPER_MAGIC => "v2 (unified)",
        Ok(t) if t == TMPFS_MAGIC => {
            let unified = statfs("/sys/fs/cgroup/unified").map(|s| s.filesystem_type());
            if matches!(unified, Ok(u) if u == CGROUP2_SUPER_MAGIC) {
                "hybrid (v1 controllers, cgroup2 at /sys/fs/cgroup/unified)"
            } else {
                "v1"
            }
        }
        _ => "none",
    }
}

fn cgroups() -> Finding {
    let layout = cgroup_layout();
    let available: Vec<String> = if layout.starts_with("v2") {
        read("/sys/fs/cgroup/cgroup.controllers")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    } else {
        // /proc/cgroups: "name hierarchy num_cgroups enabled"
        read("/proc/cgroups")
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let fields: Vec<&str> = l.split_whitespace().collect();
                (fields.len() == 4 && fields[3] == "1").then(|| fields[0].to_owned())
            })
            .collect()
    };
    let missing: Vec<&str> = ["memory", "cpu", "pids"]
        .into_iter()
        .filter(|c| !available.iter().any(|a| a == c))
        .collect();
    if layout == "none" {
        Finding::with(
            "cgroups",
            Level::Fail,
            "no cgroup filesystem at /sys/fs/cgroup",
            "mount -t cgroup2 none /sys/fs/cgroup",
        )
    } else if missing.is_empty() {
        Finding::ok(
            "cgroups",
            format!("{layout}; memory, cpu and pids controllers available"),
        )
    } else {
        Finding::with(
            "cgroups",
            Level::Fail,
            format!("{layout}; missing controllers: {}", missing.join(", ")),
            "boot with the controllers enabled (e.g. cgroup_enable=memory on the kernel command line)",
        )
    }
}

fn overlay() -> Finding {
    let filesystems = read("/proc/filesystems").unwrap_or_default();
    if filesystems
        .lines()
        .any(|l| l.split_whitespace().last() == Some("overlay"))
    {
        return Finding::ok("overlay", "overlayfs is available");
    }
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    if Path::new(&format!("/lib/modules/{release}/kernel/fs/overlayfs")).exists() {
        Finding::with(
            "overlay",
            Level::Warn,
            "overlayfs is a module, not loaded yet",
            "modprobe overlay",
        )
    } else {
        Finding::with(
            "overlay",
            Level::Fail,
            "this kernel has no overlayfs: step 05 and later cannot run",
            "use a kernel with CONFIG_OVERLAY_FS (every current distribution kernel has it)",
        )
    }
}

/// The static busybox the embedded rootfs is built from (Debian's `busybox-static`).
pub fn find_busybox() -> Option<&'static str> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// An ELF file without a PT_INTERP program header needs no dynamic loader: it runs in an
/// empty root filesystem.
pub fn is_static_elf(path: &Path) -> bool {
    let Ok(bytes) = std::fs::read(path) else { return false };
    let field = |at: usize, len: usize| -> Option<u64> {
        let slice = bytes.get(at..at + len)?;
        Some(slice.iter().rev().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    };
    // 64-bit little-endian ELF only: the header fields we need sit at fixed offsets.
    if bytes.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1][..]) {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (field(0x20, 8), field(0x36, 2), field(0x38, 2)) else {
        return false;
    };
    const PT_INTERP: u64 = 3;
    (0..phnum).all(|i| field((phoff + i * phentsize) as usize, 4) != Some(PT_INTERP))
}

fn busybox() -> Finding {
    match find_busybox() {
        Some(path) if is_static_elf(Path::new(path)) => {
            Finding::ok("busybox", format!("{path} is static: the embedded rootfs can be built"))
        }
        Some(path) => Finding::with(
            "busybox",
            Level::Fail,
            format!("{path} is dynamically linked: it cannot run in an empty rootfs"),
            "apt-get install busybox-static",
        ),
        None => Finding::with(
            "busybox",
            Level::Fail,
            "no busybox: the embedded rootfs is built from it",
            "apt-get install busybox-static",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finding_prints_its_fix_under_it() {
        let finding = Finding::with("busybox", Level::Fail, "missing", "apt-get install busybox-static");
        assert_eq!(
            finding.to_string(),
            "FAIL  busybox     missing\n                  fix: apt-get install busybox-static"
        );
    }

    #[test]
    fn a_dynamic_executable_is_not_static() {
        // The test binary itself is linked against the host's libc.
        let me = std::env::current_exe().expect("current exe");
        assert!(!is_static_elf(&me));
        assert!(!is_static_elf(Path::new("/proc/self/status")));
    }
}
