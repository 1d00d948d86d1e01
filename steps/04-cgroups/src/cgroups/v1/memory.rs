//! v1 memory: `memory.limit_in_bytes`, and `memory.memsw.limit_in_bytes` for memory+swap.

use std::path::Path;
use step03_mount_ns::step02_pid_ns::step01_unshare::oci_spec::runtime::LinuxMemory;

use crate::cgroups::files;
use crate::cgroups::CgroupError;

// ANCHOR: apply
pub fn apply(dir: &Path, memory: &LinuxMemory) -> Result<(), CgroupError> {
    if let Some(limit) = memory.limit() {
        files::write(dir, "memory.limit_in_bytes", &limit.to_string())?;
    }
    if let Some(swap) = memory.swap() {
        // memsw is memory + swap, like docker's --memory-swap; it exists only with swap
        // accounting enabled in the kernel.
        if !dir.join("memory.memsw.limit_in_bytes").exists() {
            return Err(CgroupError::NoController {
                controller: "memory+swap (memsw)",
                where_: format!("in {}", dir.display()),
                fix: "boot with swapaccount=1, or leave out --memory-swap",
            });
        }
        files::write(dir, "memory.memsw.limit_in_bytes", &swap.to_string())?;
    }
    Ok(())
}
// ANCHOR_END: apply

/// `oom_kill N` in memory.oom_control (kernels since 4.13).
pub fn oom_kills(dir: &Path) -> u64 {
    files::keyed(dir, "memory.oom_control", "oom_kill").unwrap_or(0)
}

pub fn peak(dir: &Path) -> Option<u64> {
    files::read_u64(dir, "memory.max_usage_in_bytes")
}
