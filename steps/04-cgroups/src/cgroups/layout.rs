//! Which cgroup hierarchies this machine has, read once from `/proc/self/mountinfo`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::CgroupError;
use step03_mount_ns::step02_pid_ns::step01_unshare::path_error::PathError;

/// Where cgroup filesystems are mounted on every distribution.
pub const CANONICAL: &str = "/sys/fs/cgroup";

/// The controllers keel uses, and the v1 trees it needs for them. The freezer sets no limit
/// but pauses the container (v2 has it in every cgroup, as `cgroup.freeze`).
pub const CONTROLLERS: [&str; 5] = ["memory", "cpu", "cpuacct", "pids", "freezer"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// One tree (cgroup2) at `root`.
    V2 { root: PathBuf },
    /// A tree per controller (`controller -> mount point`, comounted controllers share one),
    /// and a cgroup2 tree beside them on hybrid machines.
    V1 {
        hierarchies: BTreeMap<String, PathBuf>,
        unified: Option<PathBuf>,
    },
}

impl Layout {
    pub fn detect() -> Result<Self, CgroupError> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").map_err(|source| {
            CgroupError::Io(PathError {
                action: "reading",
                path: "/proc/self/mountinfo".into(),
                error: source,
            })
        })?;
        Self::from_mountinfo(&mountinfo)
    }

    /// The layout described by a mountinfo text: v2 when a cgroup2 mount is at
    /// `/sys/fs/cgroup` or no v1 controller is mounted; otherwise v1 (hybrid when there is
    /// a cgroup2 mount too).
    pub fn from_mountinfo(mountinfo: &str) -> Result<Self, CgroupError> {
        let mut hierarchies = BTreeMap::new();
        let mut unified = None;
        for line in mountinfo.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let Some(dash) = fields.iter().position(|f| *f == "-") else {
                continue;
            };
            let (Some(mount_point), Some(fstype), Some(options)) =
                (fields.get(4), fields.get(dash + 1), fields.get(dash + 3))
            else {
                continue;
            };
            let mount_point = PathBuf::from(mount_point.replace("\\040", " "));
            match *fstype {
                // The first cgroup2 mount wins, unless a later one is the canonical place.
                "cgroup2" if unified.is_none() || mount_point == Path::new(CANONICAL) => unified = Some(mount_point),
                "cgroup" => {
                    for controller in options.split(',').filter(|o| CONTROLLERS.contains(o)) {
                        hierarchies
                            .entry(controller.to_owned())
                            .or_insert_with(|| mount_point.clone());
                    }
                }
                _ => {}
            }
        }
        match unified {
            Some(root) if hierarchies.is_empty() || root == Path::new(CANONICAL) => Ok(Layout::V2 { root }),
            unified if !hierarchies.is_empty() => Ok(Layout::V1 { hierarchies, unified }),
            _ => Err(CgroupError::NoCgroupFs),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Layout::V2 { root } => format!("cgroup v2 at {}", root.display()),
            Layout::V1 { unified: Some(u), .. } => format!("hybrid: cgroup v1 controllers, cgroup2 at {}", u.display()),
            Layout::V1 { unified: None, .. } => "cgroup v1".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
35 24 0:30 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
36 35 0:31 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
37 35 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
38 35 0:33 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
39 35 0:34 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 35 0:35 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 35 0:36 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
42 35 0:37 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices";

    const PURE_V2: &str = "30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate";

    #[test]
    fn a_hybrid_machine_uses_its_v1_controllers() {
        let Layout::V1 { hierarchies, unified } = Layout::from_mountinfo(HYBRID).expect("layout") else {
            panic!("not v1")
        };
        assert_eq!(unified, Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert_eq!(hierarchies["memory"], PathBuf::from("/sys/fs/cgroup/memory"));
        assert_eq!(hierarchies["cpu"], hierarchies["cpuacct"], "comounted");
        assert_eq!(
            hierarchies["freezer"],
            PathBuf::from("/sys/fs/cgroup/freezer"),
            "for pause"
        );
        assert!(!hierarchies.contains_key("systemd"));
        assert!(!hierarchies.contains_key("devices"));
    }

    #[test]
    fn a_cgroup2_mount_at_the_canonical_place_is_v2() {
        assert_eq!(
            Layout::from_mountinfo(PURE_V2).expect("layout"),
            Layout::V2 {
                root: "/sys/fs/cgroup".into()
            }
        );
        // A private cgroup2 mount over a hybrid machine's /sys/fs/cgroup is v2 too.
        let over = format!("{HYBRID}\n50 35 0:31 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw");
        assert!(matches!(Layout::from_mountinfo(&over), Ok(Layout::V2 { .. })));
    }

    #[test]
    fn no_cgroup_filesystem_is_an_error_with_the_fix() {
        let error = Layout::from_mountinfo("1 0 8:1 / / rw - ext4 /dev/sda1 rw").expect_err("none");
        assert!(error.to_string().contains("mount -t cgroup2"));
    }
}
