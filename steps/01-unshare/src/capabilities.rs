//! The process's identity and privileges, given up last before it runs: its user, its
//! capabilities and `no_new_privs`. Root inside a container is not all of root: it keeps
//! Docker's default fourteen capabilities (no CAP_SYS_ADMIN, so no mounts; no CAP_NET_ADMIN,
//! so no network changes...), drops the rest from its bounding set so nothing can bring them
//! back, and with `no_new_privs` a setuid binary cannot raise them either.
//!
//! The order is runc's: the bounding set first, then the user (with the permitted set kept
//! across `setuid`, which would otherwise empty it), then the process's own sets, so that
//! `--cap-drop ALL -u 1000` works (the switch itself needs CAP_SETUID and CAP_SETGID) and a
//! non-root user can be given capabilities. Everything is computed before the clone as bit
//! sets; the child only makes the calls.

use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities, Spec};
use rustix::thread::{CapabilitySet, CapabilitySets};
use std::str::FromStr;

use crate::child_error::ChildError;
use crate::stage::{ChildContext, Stage, StageOrder};

/// After everything that needs privilege (namespaces, mounts, cgroups, the terminal,
/// rlimits), before step 02's init (900) starts the command: the init runs with the
/// container's user and capabilities too, as Docker's `--init` does.
pub const ORDER: StageOrder = StageOrder(895);

// ANCHOR: default
/// Docker's default set for containers.
pub const DOCKER_DEFAULT: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];
// ANCHOR_END: default

#[derive(Debug, thiserror::Error)]
pub enum CapabilityError {
    #[error("unknown capability {0:?} (e.g. NET_ADMIN or CAP_NET_ADMIN, or ALL)")]
    Unknown(String),
}

/// Every capability both oci-spec and this kernel interface know.
pub fn all() -> Capabilities {
    CapabilitySet::all()
        .iter_names()
        .filter_map(|(name, _)| Capability::from_str(name).ok())
        .collect()
}

/// `NET_ADMIN`, `cap_net_admin`, `CAP_NET_ADMIN` → the capability.
pub fn parse(name: &str) -> Result<Capability, CapabilityError> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    Capability::from_str(bare).map_err(|_| CapabilityError::Unknown(name.to_owned()))
}

/// The process's sets as docker computes them: the default (or all, when privileged), then
/// `--cap-add`, then `--cap-drop` (`ALL` in either means every capability).
pub fn effective_set(privileged: bool, add: &[String], drop: &[String]) -> Result<Capabilities, CapabilityError> {
    let mut set: Capabilities = if privileged {
        all()
    } else {
        DOCKER_DEFAULT.into_iter().collect()
    };
    for name in add {
        if name.eq_ignore_ascii_case("ALL") {
            set = all();
        } else {
            set.insert(parse(name)?);
        }
    }
    for name in drop {
        if name.eq_ignore_ascii_case("ALL") {
            set.clear();
        } else {
            set.remove(&parse(name)?);
        }
    }
    Ok(set)
}

/// The spec's `process.capabilities` for `set`: bounding, effective and permitted; nothing
/// inheritable or ambient (as runc and Docker 25+).
pub fn linux_capabilities(set: &Capabilities) -> LinuxCapabilities {
    let mut capabilities = LinuxCapabilities::default();
    capabilities.set_bounding(Some(set.clone()));
    capabilities.set_effective(Some(set.clone()));
    capabilities.set_permitted(Some(set.clone()));
    capabilities.set_inheritable(Some(Capabilities::new()));
    capabilities.set_ambient(Some(Capabilities::new()));
    capabilities
}

/// As Docker does for a user other than root: the capabilities stay in the bounding set (a
/// setuid-root binary could use them, were it not for `no_new_privs`), but the process
/// itself has none, as `execve` would leave it anyway.
pub fn for_non_root_user(capabilities: &mut LinuxCapabilities) {
    capabilities.set_effective(Some(Capabilities::new()));
    capabilities.set_permitted(Some(Capabilities::new()));
}

fn bits(set: &Option<Capabilities>) -> CapabilitySet {
    set.iter()
        .flatten()
        .filter_map(|c| CapabilitySet::from_name(&c.to_string()))
        .fold(CapabilitySet::empty(), |all, c| all | c)
}

/// The capability sets of the spec, as bits.
struct Sets {
    bounding: CapabilitySet,
    process: CapabilitySets,
    ambient: CapabilitySet,
}

/// `process.user` when it is not plain root: the ids to take.
struct User {
    uid: Uid,
    gid: Gid,
    additional: Vec<Gid>,
}

/// The stage: the spec's user, capability sets and `noNewPrivileges`.
pub struct Privileges {
    /// As runc: a spec without `process.capabilities` asks for none at all.
    sets: Sets,
    user: Option<User>,
    no_new_privs: bool,
}

impl Privileges {
    /// `None` when the spec has no process.
    pub fn from_spec(spec: &Spec) -> Option<Self> {
        let process = spec.process().as_ref()?;
        let no_new_privs = process.no_new_privileges().unwrap_or(false);
        // A container cannot have more than its launcher: "all" means all that root has here
        // (a sandbox may withhold some). Without root, the sets apply inside a new user
        // namespace, where the launcher's own sets say nothing.
        let have = if nix::unistd::geteuid().is_root() {
            rustix::thread::capabilities(None).map_or(CapabilitySet::all(), |sets| sets.permitted)
        } else {
            CapabilitySet::all()
        };
        // (Not LinuxCapabilities::default(), which is `runc spec`'s three capabilities.)
        let capabilities = process
            .capabilities()
            .clone()
            .unwrap_or_else(|| linux_capabilities(&Capabilities::new()));
        let sets = Sets {
            bounding: bits(capabilities.bounding()) & have,
            process: CapabilitySets {
                effective: bits(capabilities.effective()) & have,
                permitted: bits(capabilities.permitted()) & have,
                inheritable: bits(capabilities.inheritable()) & have,
            },
            ambient: bits(capabilities.ambient()) & have,
        };
        let user = process.user();
        let additional: Vec<Gid> = user
            .additional_gids()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|g| Gid::from_raw(*g))
            .collect();
        let user = (user.uid() != 0 || user.gid() != 0 || !additional.is_empty()).then(|| User {
            uid: Uid::from_raw(user.uid()),
            gid: Gid::from_raw(user.gid()),
            additional,
        });
        Some(Self {
            sets,
            user,
            no_new_privs,
        })
    }
}

fn failed(error: rustix::io::Errno, what: &'static [u8]) -> ChildError {
    ChildError::setup(nix::errno::Errno::from_raw(error.raw_os_error()), &[what])
}

impl User {
    /// `setgroups`, `setgid`, `setuid`, keeping the permitted set (runc's order). Changing
    /// the user also resets the parent-death signal: it is put back.
    fn switch(&self) -> Result<(), ChildError> {
        let death_signal = nix::sys::prctl::get_pdeathsig().ok().flatten();
        rustix::thread::set_keep_capabilities(true)
            .map_err(|error| failed(error, b"keeping capabilities across setuid: prctl(PR_SET_KEEPCAPS)"))?;
        let switched = nix::unistd::setgroups(&self.additional)
            .map_err(|e| (e, &b"setgroups"[..]))
            .and_then(|()| nix::unistd::setgid(self.gid).map_err(|e| (e, &b"setgid"[..])))
            .and_then(|()| nix::unistd::setuid(self.uid).map_err(|e| (e, &b"setuid"[..])));
        if let Err((errno, call)) = switched {
            return Err(ChildError::setup(
                errno,
                &[b"switching to the user of process.user: ", call],
            ));
        }
        rustix::thread::set_keep_capabilities(false)
            .map_err(|error| failed(error, b"clearing keep-capabilities: prctl(PR_SET_KEEPCAPS)"))?;
        if let Some(signal) = death_signal {
            nix::sys::prctl::set_pdeathsig(signal).map_err(|errno| {
                ChildError::setup(errno, &[b"restoring the parent-death signal: prctl(PR_SET_PDEATHSIG)"])
            })?;
        }
        Ok(())
    }
}

impl Stage for Privileges {
    fn name(&self) -> &'static str {
        "capabilities"
    }

    fn order(&self) -> StageOrder {
        ORDER
    }

    // ANCHOR: in_child
    fn in_child(&self, _ctx: &ChildContext) -> Result<(), ChildError> {
        // Out of the bounding set, a capability can never come back, not even by exec.
        for capability in (CapabilitySet::all() - self.sets.bounding).iter() {
            match rustix::thread::remove_capability_from_bounding_set(capability) {
                // A capability this kernel does not have is not in any set anyway.
                Ok(()) | Err(rustix::io::Errno::INVAL) => {}
                Err(error) => return Err(failed(error, b"dropping from the bounding set: prctl(PR_CAPBSET_DROP)")),
            }
        }
        // The user next, while CAP_SETUID and CAP_SETGID are still there.
        if let Some(user) = &self.user {
            user.switch()?;
        }
        rustix::thread::set_capabilities(None, self.sets.process)
            .map_err(|error| failed(error, b"setting the capability sets: capset"))?;
        rustix::thread::clear_ambient_capability_set()
            .map_err(|error| failed(error, b"clearing the ambient set: prctl(PR_CAP_AMBIENT)"))?;
        // As runc: raising an ambient capability is best effort (the kernel refuses one
        // that is not also inheritable, which `runc spec`'s own default asks for).
        for capability in self.sets.ambient.iter() {
            let _ = rustix::thread::configure_capability_in_ambient_set(capability, true);
        }
        if self.no_new_privs {
            rustix::thread::set_no_new_privs(true)
                .map_err(|error| failed(error, b"setting no_new_privs: prctl(PR_SET_NO_NEW_PRIVS)"))?;
        }
        Ok(())
    }
    // ANCHOR_END: in_child
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockers_rules_for_add_drop_and_privileged() {
        let default = effective_set(false, &[], &[]).expect("default");
        assert_eq!(default.len(), 14);
        assert_eq!(bits(&Some(default)).bits(), 0xa80425fb, "Docker's CapEff mask");
        let set = effective_set(false, &["net_admin".into()], &["CAP_CHOWN".into()]).expect("set");
        assert!(set.contains(&Capability::NetAdmin) && !set.contains(&Capability::Chown));
        assert!(effective_set(false, &[], &["ALL".into()]).expect("none").is_empty());
        assert!(effective_set(true, &[], &[])
            .expect("all")
            .contains(&Capability::SysAdmin));
        assert!(matches!(parse("FLY"), Err(CapabilityError::Unknown(_))));
    }

    #[test]
    fn a_spec_without_capabilities_asks_for_none_as_with_runc() {
        let mut spec = crate::spec::base_spec(&["true".into()], None, &[]).expect("spec");
        if let Some(process) = spec.process_mut() {
            process.set_capabilities(None);
        }
        let privileges = Privileges::from_spec(&spec).expect("stage");
        assert!(privileges.sets.bounding.is_empty() && privileges.sets.process.permitted.is_empty());
        assert!(privileges.user.is_none());
    }

    #[test]
    fn a_user_other_than_root_keeps_the_bounding_set_only() {
        let mut capabilities = linux_capabilities(&DOCKER_DEFAULT.into_iter().collect());
        for_non_root_user(&mut capabilities);
        assert_eq!(bits(capabilities.bounding()).bits(), 0xa80425fb);
        assert!(bits(capabilities.effective()).is_empty() && bits(capabilities.permitted()).is_empty());
    }
}
