//! v2 cpu: `cpu.max` ("QUOTA PERIOD") and `cpu.weight` (1-10000, converted from shares).

use std::path::Path;
use step03_mount_ns::step02_pid_ns::step01_unshare::oci_spec::runtime::LinuxCpu;

use crate::cgroups::files;
use crate::cgroups::CgroupError;

pub fn apply(dir: &Path, cpu: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(shares) = cpu.shares() {
        files::write(dir, "cpu.weight", &weight(shares).to_string())?;
    }
    // cpu.max holds both. The kernel keeps the period when given a quota alone; a period
    // alone (an update) is written with the quota already set, to keep that too.
    let quota = match (cpu.quota(), cpu.period()) {
        (Some(quota), _) if quota > 0 => quota.to_string(),
        (Some(_), _) => "max".to_owned(),
        (None, Some(_)) => current_quota(dir).unwrap_or_else(|| "max".to_owned()),
        (None, None) => return Ok(()),
    };
    let value = match cpu.period() {
        Some(period) => format!("{quota} {period}"),
        None => quota,
    };
    files::write(dir, "cpu.max", &value)
}

/// The quota in `cpu.max` ("QUOTA PERIOD", QUOTA a number or `max`).
fn current_quota(dir: &Path) -> Option<String> {
    files::read(dir, "cpu.max")?
        .split_whitespace()
        .next()
        .map(str::to_owned)
}

/// v1 shares (2..262144, default 1024) to v2 weight (1..10000, default 100), as runc maps them.
pub fn weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

pub fn usage_usec(dir: &Path) -> Option<u64> {
    files::keyed(dir, "cpu.stat", "usage_usec")
}

#[cfg(test)]
mod tests {
    use super::*;
    use step03_mount_ns::step02_pid_ns::step01_unshare::oci_spec::runtime::LinuxCpuBuilder;

    #[test]
    fn half_a_cpu_is_a_quota_of_half_the_period() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cpu = LinuxCpuBuilder::default()
            .quota(50_000i64)
            .period(100_000u64)
            .build()
            .expect("cpu");
        apply(dir.path(), &cpu).expect("apply");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("cpu.max")).expect("read"),
            "50000 100000"
        );
    }

    #[test]
    fn a_period_alone_keeps_the_quota_already_set() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("cpu.max"), "50000 100000\n").expect("write");
        let cpu = LinuxCpuBuilder::default().period(200_000u64).build().expect("cpu");
        apply(dir.path(), &cpu).expect("apply");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("cpu.max")).expect("read"),
            "50000 200000"
        );
    }

    #[test]
    fn shares_map_onto_weights_at_both_ends() {
        assert_eq!(weight(2), 1);
        assert_eq!(weight(262_144), 10_000);
        assert_eq!(weight(1024), 39);
    }
}
