//! v1 freezer: `freezer.state` is written `FROZEN` or `THAWED` and reads `FREEZING` while the
//! kernel is still stopping processes. It sets no limit; it is what `pause` uses.

use std::path::Path;
use std::time::Duration;

use crate::cgroups::files;
use crate::cgroups::CgroupError;

pub const FROZEN: &str = "FROZEN";
pub const THAWED: &str = "THAWED";

/// The state as the kernel reports it (a cgroup whose parent is frozen reads FROZEN too).
pub fn state(dir: &Path) -> Option<String> {
    files::read(dir, "freezer.state").map(|s| s.trim().to_owned())
}

/// Writes `wanted` and waits until the cgroup reports it. A freeze that does not finish in
/// `timeout` is undone, so that the container is not left half-stopped.
pub fn set(dir: &Path, wanted: &'static str, timeout: Duration) -> Result<(), CgroupError> {
    if !dir.is_dir() {
        return Err(CgroupError::Missing(dir.to_owned()));
    }
    // Written again on every try, not once: each write asks every process of the cgroup to
    // stop, including one forked after the previous write, which it would otherwise miss.
    let reached = files::poll(timeout, || {
        files::write(dir, "freezer.state", wanted)?;
        Ok(state(dir).as_deref() == Some(wanted))
    })?;
    if reached {
        return Ok(());
    }
    let current = state(dir).unwrap_or_else(|| "unreadable".to_owned());
    if wanted == FROZEN {
        let _ = files::write(dir, "freezer.state", THAWED);
    }
    Err(CgroupError::Freeze {
        path: dir.join("freezer.state"),
        wanted,
        state: current,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_written_is_the_state_waited_for() {
        // A plain file reads back what was written, as a freezer that froze at once.
        let dir = tempfile::tempdir().expect("tempdir");
        set(dir.path(), FROZEN, Duration::from_millis(50)).expect("freeze");
        assert_eq!(state(dir.path()).as_deref(), Some("FROZEN"));
        set(dir.path(), THAWED, Duration::from_millis(50)).expect("thaw");
        assert_eq!(state(dir.path()).as_deref(), Some("THAWED"));
    }

    #[test]
    fn a_missing_cgroup_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gone = dir.path().join("gone");
        let error = set(&gone, FROZEN, Duration::from_millis(50)).expect_err("missing");
        assert!(matches!(error, CgroupError::Missing(ref p) if *p == gone), "{error}");
    }
}
