//! seccomp: the system calls a container may not make at all. Capabilities decide what root
//! in the container may do with a system call; a seccomp filter decides which calls reach the
//! kernel in the first place. Most of the kernel's attack surface sits behind calls no
//! ordinary program needs (`keyctl`, `bpf`, `kexec_load`, new user namespaces...), and
//! a filter closes them even for a capability the kernel forgets to check.
//!
//! The spec carries the filter as `linux.seccomp` (the OCI form, which runc and Docker's
//! bundles use too); [`profile`] makes keel's default and reads Docker's profile files,
//! [`compile`] turns it into BPF programs before the clone, and the stage below only hands
//! them to the kernel in the child.

pub mod compile;
pub mod profile;

use nix::errno::Errno;
use oci_spec::runtime::Spec;

use crate::child_error::ChildError;
use crate::stage::{ChildContext, Stage, StageOrder};

/// With `no_new_privs`, last of all before step 02's init (900): after the capabilities
/// stage (895), so the filter need not allow what that stage does.
pub const ORDER_WITH_NO_NEW_PRIVS: StageOrder = StageOrder(896);
/// Without `no_new_privs`, the kernel accepts a filter only from a process that holds
/// CAP_SYS_ADMIN: just before the capabilities stage drops it (runc does the same).
pub const ORDER_WITHOUT_NO_NEW_PRIVS: StageOrder = StageOrder(894);

/// The stage: the spec's filter, compiled, installed in the child.
pub struct Seccomp {
    programs: Vec<Vec<libc::sock_filter>>,
    order: StageOrder,
}

impl Seccomp {
    /// `None` when the spec has no `linux.seccomp` (unconfined).
    pub fn from_spec(spec: &Spec) -> Result<Option<Self>, compile::SeccompError> {
        let Some(seccomp) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else {
            return Ok(None);
        };
        let no_new_privs = spec
            .process()
            .as_ref()
            .and_then(|p| p.no_new_privileges())
            .unwrap_or(false);
        Ok(Some(Self {
            programs: compile::programs(seccomp)?,
            order: if no_new_privs {
                ORDER_WITH_NO_NEW_PRIVS
            } else {
                ORDER_WITHOUT_NO_NEW_PRIVS
            },
        }))
    }
}

impl Stage for Seccomp {
    fn name(&self) -> &'static str {
        "seccomp"
    }

    fn order(&self) -> StageOrder {
        self.order
    }

    // ANCHOR: in_child
    fn in_child(&self, _ctx: &ChildContext) -> Result<(), ChildError> {
        // One program per action of the profile; the kernel runs them all on every call and
        // takes the strictest answer (see compile.rs).
        for program in &self.programs {
            let fprog = libc::sock_fprog {
                len: program.len() as libc::c_ushort,
                filter: program.as_ptr().cast_mut(),
            };
            // SAFETY: seccomp(SECCOMP_SET_MODE_FILTER) reads `fprog` and the `len`
            // instructions it points to, both alive for the call, and copies them into the
            // kernel; it writes nothing of ours. No wrapper in nix or rustix exposes it.
            let result = unsafe {
                libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    0,
                    &fprog as *const libc::sock_fprog,
                )
            };
            if result != 0 {
                return Err(ChildError::setup(
                    Errno::last(),
                    &[b"installing the seccomp filter of linux.seccomp: seccomp(SECCOMP_SET_MODE_FILTER)"],
                ));
            }
        }
        Ok(())
    }
    // ANCHOR_END: in_child
}
