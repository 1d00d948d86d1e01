//! v1 cpu: CFS bandwidth (`cpu.cfs_quota_us` per `cpu.cfs_period_us`) and `cpu.shares`;
//! usage comes from the cpuacct tree.

use std::path::Path;
use step03_mount_ns::step02_pid_ns::step01_unshare::oci_spec::runtime::LinuxCpu;

use crate::cgroups::files;
use crate::cgroups::CgroupError;

pub fn apply(dir: &Path, cpu: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(shares) = cpu.shares() {
        files::write(dir, "cpu.shares", &shares.to_string())?;
    }
    if let Some(period) = cpu.period() {
        files::write(dir, "cpu.cfs_period_us", &period.to_string())?;
    }
    if let Some(quota) = cpu.quota() {
        files::write(dir, "cpu.cfs_quota_us", &quota.to_string())?;
    }
    Ok(())
}

/// cpuacct.usage is in nanoseconds.
pub fn usage_usec(dir: &Path) -> Option<u64> {
    files::read_u64(dir, "cpuacct.usage").map(|ns| ns / 1000)
}
