//! Step 05's stage: the container's snapshot, locked while it runs, removed when it ends
//! unless kept.

use nix::fcntl::Flock;
use std::ffi::CString;
use std::fs::File;
use step04_cgroups::step03_mount_ns::step02_pid_ns::step01_unshare::child_error::ChildError;
use step04_cgroups::step03_mount_ns::step02_pid_ns::step01_unshare::stage::{ChildContext, Stage, StageOrder};

use crate::store::Snapshot;

/// Just before step 03 (300), which mounts the overlay as its first mount: when the
/// overlay's options use paths relative to the snapshot, the child must be there by then.
pub const ORDER: StageOrder = StageOrder(290);

pub struct SnapshotStage {
    pub snapshot: Snapshot,
    pub keep: bool,
    /// Held while the container runs, so `snapshot rm` refuses.
    pub lock: Flock<File>,
    /// The directory the overlay's relative option paths start from, if they are relative.
    pub relative_to: Option<CString>,
}

impl Stage for SnapshotStage {
    fn name(&self) -> &'static str {
        "snapshot"
    }

    fn order(&self) -> StageOrder {
        ORDER
    }

    fn in_child(&self, _ctx: &ChildContext) -> Result<(), ChildError> {
        if let Some(dir) = &self.relative_to {
            nix::unistd::chdir(dir.as_c_str())
                .map_err(|errno| ChildError::setup(errno, &[b"entering the snapshot ", dir.as_bytes(), b": chdir"]))?;
        }
        Ok(())
    }

    fn after_exit(&self) -> Vec<String> {
        if self.keep {
            let id = &self.snapshot.id;
            vec![format!(
                "kept snapshot {id}: see `snapshot diff {id}`, `snapshot commit {id} DIR`, `snapshot rm {id}`"
            )]
        } else {
            Vec::new()
        }
    }

    fn cleanup(&self) {
        let result = if self.keep {
            // The work dir is overlayfs's scratch space: nothing in it is worth keeping.
            crate::store::remove_tree(&self.snapshot.work()).and_then(|()| std::fs::create_dir(self.snapshot.work()))
        } else {
            crate::store::remove_tree(&self.snapshot.dir)
        };
        if let Err(error) = result {
            eprintln!("warning: cleaning up snapshot {}: {error}", self.snapshot.dir.display());
        }
    }
}
