//! `linux.sysctl`: kernel parameters for the container, e.g. `net.ipv4.ip_forward` or
//! `kernel.shmmax`. Only the parameters that belong to one of the container's own
//! namespaces may be set, as runc allows: the others are the whole machine's. Files under
//! /proc/sys/net and /proc/sys/kernel/{shm,msg,sem}* answer for the namespace of the process
//! that opens them, so the child writes them right after `clone`, before anything else.

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::ffi::CString;
use std::os::fd::AsFd;

use crate::child_error::ChildError;
use crate::namespaces::clone_flag;
use crate::stage::{ChildContext, Stage, StageOrder};

/// Just after the namespaces exist (100), before the root filesystem changes /proc.
pub const ORDER: StageOrder = StageOrder(105);

#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    #[error("sysctl {0:?} is not namespaced: setting it would change the whole machine")]
    NotNamespaced(String),
    #[error("sysctl {0:?} needs the container's own {1} namespace: add it to linux.namespaces")]
    NeedsNamespace(String, LinuxNamespaceType),
    #[error("sysctl {0:?} or its value contains a NUL byte or a '/'")]
    Invalid(String),
}

/// The namespace a sysctl belongs to, if any (runc's list).
fn namespace_of(key: &str) -> Option<LinuxNamespaceType> {
    let ipc = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if ipc.contains(&key) || key.starts_with("fs.mqueue.") {
        return Some(LinuxNamespaceType::Ipc);
    }
    if key.starts_with("net.") {
        return Some(LinuxNamespaceType::Network);
    }
    if key == "kernel.hostname" || key == "kernel.domainname" {
        return Some(LinuxNamespaceType::Uts);
    }
    None
}

pub struct Sysctls {
    /// `/proc/sys/...` paths and the values to write, prepared in the parent.
    writes: Vec<(CString, CString)>,
}

impl Sysctls {
    /// The stage, when the spec sets sysctls; `created` are the namespaces the container gets.
    pub fn from_spec(spec: &Spec) -> Result<Option<Self>, SysctlError> {
        let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
            return Ok(None);
        };
        let own: CloneFlags = crate::namespaces::requested(spec)
            .into_iter()
            .fold(CloneFlags::empty(), |flags, t| flags | clone_flag(t));
        let mut keys: Vec<&String> = sysctl.keys().collect();
        keys.sort();
        let mut writes = Vec::new();
        for key in keys {
            let namespace = namespace_of(key).ok_or_else(|| SysctlError::NotNamespaced(key.clone()))?;
            if !own.contains(clone_flag(namespace)) {
                return Err(SysctlError::NeedsNamespace(key.clone(), namespace));
            }
            if key.contains('/') {
                return Err(SysctlError::Invalid(key.clone()));
            }
            let path = CString::new(format!("/proc/sys/{}", key.replace('.', "/")))
                .map_err(|_| SysctlError::Invalid(key.clone()))?;
            let value = CString::new(sysctl[key].as_str()).map_err(|_| SysctlError::Invalid(key.clone()))?;
            writes.push((path, value));
        }
        Ok((!writes.is_empty()).then_some(Self { writes }))
    }
}

impl Stage for Sysctls {
    fn name(&self) -> &'static str {
        "sysctls"
    }

    fn order(&self) -> StageOrder {
        ORDER
    }

    fn in_child(&self, _ctx: &ChildContext) -> Result<(), ChildError> {
        for (path, value) in &self.writes {
            let fail = |errno| ChildError::setup(errno, &[b"setting sysctl ", path.as_bytes(), b": write"]);
            let file =
                nix::fcntl::open(path.as_c_str(), OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty()).map_err(fail)?;
            nix::unistd::write(file.as_fd(), value.as_bytes()).map_err(fail)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_namespaced_sysctls_are_known() {
        assert_eq!(namespace_of("net.ipv4.ip_forward"), Some(LinuxNamespaceType::Network));
        assert_eq!(namespace_of("kernel.shmmax"), Some(LinuxNamespaceType::Ipc));
        assert_eq!(namespace_of("fs.mqueue.msg_max"), Some(LinuxNamespaceType::Ipc));
        assert_eq!(namespace_of("kernel.panic"), None);
        assert_eq!(namespace_of("vm.swappiness"), None);
    }
}
