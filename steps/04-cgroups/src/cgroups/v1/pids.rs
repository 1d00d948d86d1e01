//! v1 pids: `pids.max`, the most processes the cgroup may hold at once.

use std::path::Path;
use step03_mount_ns::step02_pid_ns::step01_unshare::oci_spec::runtime::LinuxPids;

use crate::cgroups::files;
use crate::cgroups::CgroupError;

pub fn apply(dir: &Path, pids: &LinuxPids) -> Result<(), CgroupError> {
    files::write(dir, "pids.max", &limit(pids.limit()))
}

/// The kernel spells "no limit" as `max`.
pub fn limit(limit: i64) -> String {
    if limit > 0 {
        limit.to_string()
    } else {
        "max".to_owned()
    }
}

/// `pids.peak` exists on recent kernels only.
pub fn peak(dir: &Path) -> Option<u64> {
    files::read_u64(dir, "pids.peak")
}
