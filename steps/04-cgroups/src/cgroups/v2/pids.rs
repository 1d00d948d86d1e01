//! v2 pids: `pids.max`, as in v1.

use std::path::Path;
use step03_mount_ns::step02_pid_ns::step01_unshare::oci_spec::runtime::LinuxPids;

use crate::cgroups::files;
use crate::cgroups::v1::pids::limit;
use crate::cgroups::CgroupError;

pub fn apply(dir: &Path, pids: &LinuxPids) -> Result<(), CgroupError> {
    files::write(dir, "pids.max", &limit(pids.limit()))
}

pub fn peak(dir: &Path) -> Option<u64> {
    files::read_u64(dir, "pids.peak")
}
