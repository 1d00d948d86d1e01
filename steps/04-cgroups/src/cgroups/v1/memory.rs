//! v1 memory: `memory.limit_in_bytes`, and `memory.memsw.limit_in_bytes` for memory+swap.

use std::path::Path;
use step03_mount_ns::step02_pid_ns::step01_unshare::oci_spec::runtime::LinuxMemory;

use crate::cgroups::files;
use crate::cgroups::CgroupError;

// ANCHOR: apply
pub fn apply(dir: &Path, memory: &LinuxMemory) -> Result<(), CgroupError> {
    let Some(swap) = memory.swap() else {
        if let Some(limit) = memory.limit() {
            files::write(dir, "memory.limit_in_bytes", &limit.to_string())?;
        }
        return Ok(());
    };
    // memsw is memory + swap, like docker's --memory-swap; it exists only with swap
    // accounting enabled in the kernel.
    if !dir.join("memory.memsw.limit_in_bytes").exists() {
        return Err(CgroupError::NoController {
            controller: "memory+swap (memsw)",
            where_: format!("in {}", dir.display()),
            fix: "boot with swapaccount=1, or leave out --memory-swap",
        });
    }
    // The kernel refuses any write that would leave the limit above memsw, so on an update
    // the order matters: memsw first when it grows, the limit first when it shrinks.
    let current = files::read_u64(dir, "memory.memsw.limit_in_bytes");
    let write_limit = || match memory.limit() {
        Some(limit) => files::write(dir, "memory.limit_in_bytes", &limit.to_string()),
        None => Ok(()),
    };
    if memsw_first(swap, current) {
        files::write(dir, "memory.memsw.limit_in_bytes", &swap.to_string())?;
        write_limit()
    } else {
        write_limit()?;
        files::write(dir, "memory.memsw.limit_in_bytes", &swap.to_string())
    }
}
// ANCHOR_END: apply

/// Whether the new memsw limit goes before the memory limit: when it does not shrink (-1 is
/// unlimited). Then the current limit, at most the current memsw, fits under the new memsw;
/// otherwise the new limit, at most the new memsw, fits under the current one.
pub fn memsw_first(new_memsw: i64, current_memsw: Option<u64>) -> bool {
    match u64::try_from(new_memsw) {
        Err(_) => true,
        Ok(new) => current_memsw.is_some_and(|current| new >= current),
    }
}
// ANCHOR_END: apply

/// `oom_kill N` in memory.oom_control (kernels since 4.13).
pub fn oom_kills(dir: &Path) -> u64 {
    files::keyed(dir, "memory.oom_control", "oom_kill").unwrap_or(0)
}

pub fn peak(dir: &Path) -> Option<u64> {
    files::read_u64(dir, "memory.max_usage_in_bytes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use step03_mount_ns::step02_pid_ns::step01_unshare::oci_spec::runtime::LinuxMemoryBuilder;

    #[test]
    fn memsw_goes_first_when_it_grows_and_last_when_it_shrinks() {
        const MIB: u64 = 1 << 20;
        // The kernel's "unlimited" reads as a huge number: any limit is a shrink from it.
        assert!(!memsw_first(64 << 20, Some(9_223_372_036_854_771_712)));
        assert!(memsw_first(512 << 20, Some(128 * MIB)));
        assert!(memsw_first(128 << 20, Some(128 * MIB)));
        assert!(!memsw_first(48 << 20, Some(512 * MIB)));
        assert!(memsw_first(-1, Some(128 * MIB)), "unlimited");
        assert!(!memsw_first(64 << 20, None), "unknown: the limit first");
    }

    #[test]
    fn both_limits_are_written_and_memsw_is_required_for_swap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let memory = LinuxMemoryBuilder::default()
            .limit(64i64 << 20)
            .swap(128i64 << 20)
            .build()
            .expect("memory");
        let error = apply(dir.path(), &memory).expect_err("no memsw file");
        assert!(error.to_string().contains("swapaccount=1"), "{error}");
        std::fs::write(dir.path().join("memory.memsw.limit_in_bytes"), "9223372036854771712\n").expect("write");
        apply(dir.path(), &memory).expect("apply");
        let read = |f| std::fs::read_to_string(dir.path().join(f)).expect("read");
        assert_eq!(read("memory.limit_in_bytes"), (64u64 << 20).to_string());
        assert_eq!(read("memory.memsw.limit_in_bytes"), (128u64 << 20).to_string());
    }
}
