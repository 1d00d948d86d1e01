//! v2 memory: `memory.max`, and `memory.swap.max` (swap alone, unlike v1's memory+swap).

use std::path::Path;
use step03_mount_ns::step02_pid_ns::step01_unshare::oci_spec::runtime::LinuxMemory;

use crate::cgroups::files;
use crate::cgroups::CgroupError;

// ANCHOR: apply
pub fn apply(dir: &Path, memory: &LinuxMemory) -> Result<(), CgroupError> {
    if let Some(limit) = memory.limit() {
        files::write(dir, "memory.max", &limit.to_string())?;
    }
    if let Some(total) = memory.swap() {
        // The spec (and docker) give memory + swap; v2 wants the swap part alone.
        let swap = match (total, memory.limit()) {
            (t, _) if t < 0 => "max".to_owned(),
            (t, Some(limit)) => t.saturating_sub(limit).max(0).to_string(),
            (t, None) => t.to_string(),
        };
        files::write(dir, "memory.swap.max", &swap)?;
    }
    Ok(())
}
// ANCHOR_END: apply

pub fn oom_kills(dir: &Path) -> u64 {
    files::keyed(dir, "memory.events", "oom_kill").unwrap_or(0)
}

pub fn peak(dir: &Path) -> Option<u64> {
    files::read_u64(dir, "memory.peak")
}

#[cfg(test)]
mod tests {
    use super::*;
    use step03_mount_ns::step02_pid_ns::step01_unshare::oci_spec::runtime::LinuxMemoryBuilder;

    #[test]
    fn swap_is_written_without_the_memory_part() {
        let dir = tempfile::tempdir().expect("tempdir");
        let memory = LinuxMemoryBuilder::default()
            .limit(64i64 << 20)
            .swap(96i64 << 20)
            .build()
            .expect("memory");
        apply(dir.path(), &memory).expect("apply");
        let read = |f| std::fs::read_to_string(dir.path().join(f)).expect("read");
        assert_eq!(read("memory.max"), (64u64 << 20).to_string());
        assert_eq!(read("memory.swap.max"), (32u64 << 20).to_string());
    }

    #[test]
    fn oom_kills_come_from_memory_events() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        )
        .expect("write");
        assert_eq!(oom_kills(dir.path()), 1);
    }
}
