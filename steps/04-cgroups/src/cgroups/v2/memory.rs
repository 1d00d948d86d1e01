//! v2 memory: `memory.max`, and `memory.swap.max` (swap alone, unlike v1's memory+swap).

use std::path::Path;
use step03_mount_ns::step02_pid_ns::step01_unshare::oci_spec::runtime::LinuxMemory;

use crate::cgroups::files;
use crate::cgroups::CgroupError;

// ANCHOR: apply
pub fn apply(dir: &Path, memory: &LinuxMemory) -> Result<(), CgroupError> {
    if let Some(limit) = memory.limit() {
        files::write(dir, "memory.max", &max_or(limit))?;
    }
    if let Some(total) = memory.swap() {
        // The spec (and docker) give memory + swap; v2 wants the swap part alone. An update
        // may give swap alone: then the part is taken off the limit already set.
        let limit = memory.limit().or_else(|| current_limit(dir));
        let swap = match (total, limit) {
            (t, _) if t < 0 => "max".to_owned(),
            (t, Some(limit)) if limit > 0 => t.saturating_sub(limit).max(0).to_string(),
            (t, _) => t.to_string(),
        };
        // Without swap accounting there is no file, and no swap to limit: "none" and "no
        // limit" are what the kernel does anyway, anything else cannot be done.
        if !dir.join("memory.swap.max").exists() {
            if swap == "max" || swap == "0" {
                return Ok(());
            }
            return Err(CgroupError::NoController {
                controller: "swap (memory.swap.max)",
                where_: format!("in {}", dir.display()),
                fix: "enable swap accounting (swapaccount=1), or leave out the swap limit",
            });
        }
        files::write(dir, "memory.swap.max", &swap)?;
    }
    Ok(())
}
// ANCHOR_END: apply

/// v2 spells "no limit" `max`, not -1 as v1 and the spec do.
fn max_or(limit: i64) -> String {
    if limit < 0 {
        "max".to_owned()
    } else {
        limit.to_string()
    }
}

/// `memory.max` as a number, or `None` for `max` (or no file).
fn current_limit(dir: &Path) -> Option<i64> {
    files::read(dir, "memory.max")?.trim().parse().ok()
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
        std::fs::write(dir.path().join("memory.swap.max"), "max\n").expect("write");
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
    fn an_update_with_swap_alone_subtracts_the_limit_already_set() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("memory.max"), "67108864\n").expect("write");
        std::fs::write(dir.path().join("memory.swap.max"), "max\n").expect("write");
        let memory = LinuxMemoryBuilder::default().swap(96i64 << 20).build().expect("memory");
        apply(dir.path(), &memory).expect("apply");
        let read = |f| std::fs::read_to_string(dir.path().join(f)).expect("read");
        assert_eq!(read("memory.swap.max"), (32u64 << 20).to_string());
        assert_eq!(read("memory.max"), "67108864\n", "untouched");
    }

    #[test]
    fn unlimited_is_max_and_no_swap_file_is_fine_for_no_swap_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("memory.max"), "max\n").expect("write");
        let memory = LinuxMemoryBuilder::default()
            .limit(-1)
            .swap(-1)
            .build()
            .expect("memory");
        apply(dir.path(), &memory).expect("no swap accounting, nothing to limit");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("memory.max")).expect("read"),
            "max"
        );
        assert!(!dir.path().join("memory.swap.max").exists());
        let memory = LinuxMemoryBuilder::default()
            .limit(64i64 << 20)
            .swap(96i64 << 20)
            .build()
            .expect("memory");
        let error = apply(dir.path(), &memory).expect_err("a swap limit without swap accounting");
        assert!(error.to_string().contains("memory.swap.max"), "{error}");
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
