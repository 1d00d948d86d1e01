//! **For tests only**: holds `exec`'s child inside the container, with the container's
//! capabilities, just before it execs the command, so a test can attack the runtime in that
//! window deterministically (see tests/hardening_cve.rs). Inert unless the variable is set.

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use step03_mount_ns::step02_pid_ns::step01_unshare::child_error::ChildError;
use step03_mount_ns::step02_pid_ns::step01_unshare::stage::{ChildContext, Stage, StageOrder};

/// A FIFO's path inside the container: the child blocks opening it until a writer does.
pub const TEST_ONLY_VARIABLE: &str = "KEEL_TEST_ONLY_EXEC_PAUSE_FIFO";

/// After the capabilities (895) and seccomp (896) stages: the child is as it will exec.
const ORDER: StageOrder = StageOrder(899);

pub struct TestPause(CString);

impl TestPause {
    pub fn from_env() -> Option<Self> {
        let path = std::env::var_os(TEST_ONLY_VARIABLE)?;
        CString::new(path.as_bytes()).ok().map(Self)
    }
}

impl Stage for TestPause {
    fn name(&self) -> &'static str {
        "test pause"
    }

    fn order(&self) -> StageOrder {
        ORDER
    }

    fn in_child(&self, _ctx: &ChildContext) -> Result<(), ChildError> {
        let fifo = open(self.0.as_c_str(), OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|errno| ChildError::setup(errno, &[b"test pause: open ", self.0.as_bytes()]))?;
        drop(fifo);
        Ok(())
    }
}
