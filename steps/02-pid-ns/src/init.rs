//! A minimal init for PID 1, like Docker's `--init` (tini).
//!
//! A command that was not written to be PID 1 neither reaps the orphans the kernel hands to
//! it (they stay zombies) nor handles SIGTERM (PID 1 gets no default actions). The init
//! forks: the child goes on to exec the command; PID 1 stays behind, forwards signals to it,
//! reaps every process that ends, and exits with the command's status once it ends.

use nix::unistd::{fork, ForkResult};
use step01_unshare::child_error::ChildError;
use step01_unshare::launch::exit_now;
use step01_unshare::oci_spec::runtime::Spec;
use step01_unshare::signals;
use step01_unshare::spec::annotated;
use step01_unshare::stage::{ChildContext, Stage, StageOrder};

/// The OCI spec has no field for an init; keel asks for one with this annotation.
pub const ANNOTATION: &str = "org.keel.init";

/// Last: PID 1 forks only once everything else (the root filesystem in step 03) is ready,
/// so the init and the command live in the finished container.
pub const ORDER: StageOrder = StageOrder(900);

pub struct Init;

impl Init {
    /// An init when the spec asks for one.
    pub fn from_spec(spec: &Spec) -> Option<Self> {
        annotated(spec, ANNOTATION).then_some(Init)
    }
}

impl Stage for Init {
    fn name(&self) -> &'static str {
        "init"
    }

    fn order(&self) -> StageOrder {
        ORDER
    }

    // ANCHOR: init
    fn in_child(&self, ctx: &ChildContext) -> Result<(), ChildError> {
        // SAFETY: the container's first process is single-threaded (a copy of the tool), so
        // the forked child may run the rest of the launch.
        match unsafe { fork() } {
            Err(errno) => Err(ChildError::setup(errno, &[b"starting the init: fork"])),
            // The command's side: go on to exec it.
            Ok(ForkResult::Child) => Ok(()),
            Ok(ForkResult::Parent { child }) => {
                // PID 1 must not hold the error pipe open: the tool learns that the command
                // started when the last writer (the command, at exec) closes it.
                ctx.close_launch_pipes();
                // In `ps` inside the container, PID 1 shows as what it is.
                let _ = nix::sys::prctl::set_name(c"keel-init");
                let code = match signals::supervise(child) {
                    Ok(status) => signals::exit_code(status),
                    Err(_) => 125,
                };
                exit_now(code)
            }
        }
    }
    // ANCHOR_END: init
}
