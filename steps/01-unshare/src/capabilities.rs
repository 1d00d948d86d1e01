//! Capabilities and `no_new_privs`: the last privileges a container's process gives up before
//! it runs. Root inside a container is not all of root: it keeps Docker's default fourteen
//! capabilities (no CAP_SYS_ADMIN, so no mounts; no CAP_NET_ADMIN, so no network changes...),
//! drops the rest from its bounding set so nothing can bring them back, and with
//! `no_new_privs` a setuid binary cannot raise them either.
//!
//! Everything is computed before the clone as bit sets; the child only makes the calls.

use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities, Spec};
use rustix::thread::{CapabilitySet, CapabilitySets};
use std::str::FromStr;

use crate::child_error::ChildError;
use crate::stage::{ChildContext, Stage, StageOrder};

/// After everything that needs privilege (namespaces, mounts, cgroups, the terminal,
/// rlimits), before step 02's init (900) starts the command.
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

fn bits(set: &Option<Capabilities>) -> CapabilitySet {
    set.iter()
        .flatten()
        .filter_map(|c| CapabilitySet::from_name(&c.to_string()))
        .fold(CapabilitySet::empty(), |all, c| all | c)
}

/// The stage: the spec's capability sets and `noNewPrivileges`, as bits.
pub struct Privileges {
    bounding: CapabilitySet,
    sets: CapabilitySets,
    ambient: CapabilitySet,
    no_new_privs: bool,
}

impl Privileges {
    /// `None` when the spec says nothing of capabilities: the process keeps what it has.
    pub fn from_spec(spec: &Spec) -> Option<Self> {
        let process = spec.process().as_ref()?;
        let no_new_privs = process.no_new_privileges().unwrap_or(false);
        let Some(capabilities) = process.capabilities() else {
            return no_new_privs.then(Self::no_new_privs_only);
        };
        // A container cannot have more than its launcher: "all" means all that root has here
        // (a sandbox may withhold some). Without root, the sets apply inside a new user
        // namespace, where the launcher's own sets say nothing.
        let have = if nix::unistd::geteuid().is_root() {
            rustix::thread::capabilities(None).map_or(CapabilitySet::all(), |sets| sets.permitted)
        } else {
            CapabilitySet::all()
        };
        Some(Self {
            bounding: bits(capabilities.bounding()) & have,
            sets: CapabilitySets {
                effective: bits(capabilities.effective()) & have,
                permitted: bits(capabilities.permitted()) & have,
                inheritable: bits(capabilities.inheritable()) & have,
            },
            ambient: bits(capabilities.ambient()) & have,
            no_new_privs,
        })
    }

    /// Only `no_new_privs`: the sets are left as they are (marked by an all-ones bounding).
    fn no_new_privs_only() -> Self {
        Self {
            bounding: CapabilitySet::all(),
            sets: CapabilitySets {
                effective: CapabilitySet::empty(),
                permitted: CapabilitySet::empty(),
                inheritable: CapabilitySet::empty(),
            },
            ambient: CapabilitySet::empty(),
            no_new_privs: true,
        }
    }
}

fn failed(error: rustix::io::Errno, what: &'static [u8]) -> ChildError {
    ChildError::setup(nix::errno::Errno::from_raw(error.raw_os_error()), &[what])
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
        let only_no_new_privs = self.bounding == CapabilitySet::all() && self.sets.permitted.is_empty();
        if !only_no_new_privs {
            // Out of the bounding set, a capability can never come back, not even by exec.
            for capability in (CapabilitySet::all() - self.bounding).iter() {
                match rustix::thread::remove_capability_from_bounding_set(capability) {
                    // A capability this kernel does not have is not in any set anyway.
                    Ok(()) | Err(rustix::io::Errno::INVAL) => {}
                    Err(error) => return Err(failed(error, b"dropping from the bounding set: prctl(PR_CAPBSET_DROP)")),
                }
            }
            rustix::thread::set_capabilities(None, self.sets)
                .map_err(|error| failed(error, b"setting the capability sets: capset"))?;
            rustix::thread::clear_ambient_capability_set()
                .map_err(|error| failed(error, b"clearing the ambient set: prctl(PR_CAP_AMBIENT)"))?;
            // As runc: raising an ambient capability is best effort (the kernel refuses one
            // that is not also inheritable, which `runc spec`'s own default asks for).
            for capability in self.ambient.iter() {
                let _ = rustix::thread::configure_capability_in_ambient_set(capability, true);
            }
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
}
