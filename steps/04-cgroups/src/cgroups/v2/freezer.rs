//! v2 freezer: `cgroup.freeze` (1 or 0) in every cgroup but the root, no controller needed
//! (kernel 5.2+). The kernel reports the result in `cgroup.events` as `frozen 1` once every
//! process below is stopped, which is what the writer waits for.

use std::path::Path;
use std::time::Duration;

use crate::cgroups::files;
use crate::cgroups::CgroupError;

/// Whether every process of the cgroup (and of those below it) is stopped.
pub fn is_frozen(dir: &Path) -> bool {
    files::keyed(dir, "cgroup.events", "frozen") == Some(1)
}

// ANCHOR: freeze
/// Writes `frozen` to `cgroup.freeze` and waits until `cgroup.events` says so. A freeze that
/// does not finish in `timeout` is undone, so that the container is not left half-stopped.
pub fn set(dir: &Path, frozen: bool, timeout: Duration) -> Result<(), CgroupError> {
    if !dir.is_dir() {
        return Err(CgroupError::Missing(dir.to_owned()));
    }
    if !dir.join("cgroup.freeze").exists() {
        return Err(CgroupError::NoController {
            controller: "freezer (cgroup.freeze)",
            where_: format!("in {}", dir.display()),
            fix: "cgroup v2 freezes with kernel 5.2 or later",
        });
    }
    files::write(dir, "cgroup.freeze", if frozen { "1" } else { "0" })?;
    // Unlike v1's, one write is enough: the kernel freezes what is forked or moved in later.
    if files::poll(timeout, || Ok(is_frozen(dir) == frozen))? {
        return Ok(());
    }
    if frozen {
        let _ = files::write(dir, "cgroup.freeze", "0");
    }
    Err(CgroupError::Freeze {
        path: dir.join("cgroup.events"),
        wanted: if frozen { "frozen" } else { "thawed" },
        state: files::read(dir, "cgroup.events")
            .and_then(|events| events.lines().find(|l| l.starts_with("frozen ")).map(str::to_owned))
            .unwrap_or_else(|| "unreadable".to_owned()),
    })
}
// ANCHOR_END: freeze

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake cgroup whose `cgroup.events` says `frozen`, as the kernel would.
    fn fake(frozen: u8) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("cgroup.freeze"), "0\n").expect("write");
        std::fs::write(
            dir.path().join("cgroup.events"),
            format!("populated 1\nfrozen {frozen}\n"),
        )
        .expect("write");
        dir
    }

    #[test]
    fn a_freeze_the_kernel_reports_done_returns() {
        let dir = fake(1);
        set(dir.path(), true, Duration::from_millis(50)).expect("freeze");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("cgroup.freeze")).expect("read"),
            "1"
        );
        assert!(is_frozen(dir.path()));
    }

    #[test]
    fn a_freeze_that_never_completes_is_undone_and_reported() {
        let dir = fake(0);
        let error = set(dir.path(), true, Duration::from_millis(30)).expect_err("never frozen");
        let message = error.to_string();
        assert!(message.contains("cgroup.events did not become frozen"), "{message}");
        assert!(message.contains("(it is frozen 0)"), "{message}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("cgroup.freeze")).expect("read"),
            "0",
            "left half-frozen"
        );
    }

    #[test]
    fn without_cgroup_freeze_the_kernel_is_too_old() {
        let dir = tempfile::tempdir().expect("tempdir");
        let error = set(dir.path(), true, Duration::from_millis(30)).expect_err("old kernel");
        assert!(error.to_string().contains("kernel 5.2"), "{error}");
    }
}
