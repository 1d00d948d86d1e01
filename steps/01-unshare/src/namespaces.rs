//! Step 01's primitive: new UTS, IPC and network namespaces, and a user namespace when the
//! tool runs without root.
//!
//! `clone(2)` with `CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET` gives the child its own
//! hostname, System V IPC and network stack (only a `lo`, down). `CLONE_NEWUSER` gives an
//! unprivileged user the capabilities needed for the others, inside the namespace only.

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};
use std::ffi::{CString, OsStr};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::child_error::ChildError;
use crate::stage::{ChildContext, Stage, StageError, StageOrder};

/// The hostname is set first: it needs nothing but the UTS namespace, which exists from
/// `clone` on, and nothing later depends on it.
pub const ORDER: StageOrder = StageOrder(100);

/// The namespace types this stage creates.
pub const HANDLED: [LinuxNamespaceType; 4] = [
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::User,
];

#[derive(Debug, thiserror::Error)]
// ANCHOR: errors
pub enum NamespaceError {
    #[error("joining the {typ} namespace {}: {}{}", path.display(), errno.desc(), join_hint(*errno))]
    Join {
        typ: LinuxNamespaceType,
        path: PathBuf,
        errno: Errno,
    },
    #[error("a hostname needs a UTS namespace: add {{\"type\": \"uts\"}} to linux.namespaces")]
    HostnameWithoutUts,
    #[error("the hostname {0:?} is not valid: {1}")]
    BadHostname(String, &'static str),
}
// ANCHOR_END: errors

/// The clone flag for a namespace type (the OCI enum carries the kernel's own bit).
pub fn clone_flag(typ: LinuxNamespaceType) -> CloneFlags {
    CloneFlags::from_bits_truncate(typ as i32)
}

fn join_hint(errno: Errno) -> &'static str {
    match errno {
        Errno::ENOENT => " (the process that owned it is gone)",
        Errno::EINVAL => " (the path is not a namespace of that type)",
        Errno::EPERM => " (joining needs root, or CAP_SYS_ADMIN in the namespace's user namespace)",
        _ => "",
    }
}

/// The namespace types the spec asks to be created (those with a `path` are joined instead).
pub fn requested(spec: &Spec) -> Vec<LinuxNamespaceType> {
    let namespaces = spec.linux().as_ref().and_then(|linux| linux.namespaces().as_ref());
    namespaces
        .into_iter()
        .flatten()
        .filter(|ns| ns.path().is_none())
        .map(|ns| ns.typ())
        .collect()
}

/// The clone flags for those of `types` that the spec asks to be created. Namespaces given
/// by `path` are not created but joined, by [`Joins`], for every step alike.
pub fn flags_for(spec: &Spec, types: &[LinuxNamespaceType]) -> Result<CloneFlags, NamespaceError> {
    Ok(requested(spec)
        .into_iter()
        .filter(|typ| types.contains(typ))
        .fold(CloneFlags::empty(), |flags, typ| flags | clone_flag(typ)))
}

// ANCHOR: joins
/// Namespaces the spec gives by path, to be joined with `setns(2)` instead of created: how a
/// Kubernetes pod's containers share one network (`/proc/<sandbox pid>/ns/net`), or how
/// `exec` enters a running container. Opened in the parent, so a wrong path is the parent's
/// error, with its name; entered in the child.
pub struct Joins {
    /// A PID namespace cannot be entered by a running process, only by its future children:
    /// the parent enters it before `clone`.
    pid: Option<OwnedFd>,
    /// The others, entered by the child: the user namespace first (it grants the
    /// capabilities the other joins need), the mount namespace last (entering it changes
    /// the root, after which the other paths might not resolve; they are open fds anyway).
    others: Vec<(OwnedFd, CloneFlags)>,
}

impl Joins {
    pub fn open(spec: &Spec) -> Result<Self, NamespaceError> {
        let namespaces = spec.linux().as_ref().and_then(|linux| linux.namespaces().as_ref());
        let mut pid = None;
        let mut others = Vec::new();
        for ns in namespaces.into_iter().flatten() {
            let Some(path) = ns.path() else { continue };
            let typ = ns.typ();
            let error = |errno| NamespaceError::Join {
                typ,
                path: path.clone(),
                errno,
            };
            let fd =
                nix::fcntl::open(path.as_path(), OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).map_err(error)?;
            if typ == LinuxNamespaceType::Pid {
                pid = Some(fd);
            } else {
                others.push((fd, clone_flag(typ)));
            }
        }
        let rank = |flag: &CloneFlags| match *flag {
            CloneFlags::CLONE_NEWUSER => 0,
            CloneFlags::CLONE_NEWNS => 2,
            _ => 1,
        };
        others.sort_by_key(|(_, flag)| rank(flag));
        Ok(Self { pid, others })
    }

    /// In the parent, before `clone`: the child will be born in the PID namespace.
    pub fn enter_pid_namespace_for_children(&self) -> Result<(), Errno> {
        match &self.pid {
            Some(fd) => nix::sched::setns(fd.as_fd(), CloneFlags::CLONE_NEWPID),
            None => Ok(()),
        }
    }

    /// In the child, first thing after the go-ahead.
    pub fn enter(&self) -> Result<(), ChildError> {
        for (fd, flag) in &self.others {
            nix::sched::setns(fd.as_fd(), *flag)
                .map_err(|errno| ChildError::setup(errno, &[b"joining a namespace given by path: setns"]))?;
        }
        Ok(())
    }
}
// ANCHOR_END: joins

/// Step 01's stage: creates the namespaces, sets the hostname, maps user ids.
pub struct Namespaces {
    flags: CloneFlags,
    hostname: Option<CString>,
    uid_map: Option<String>,
    gid_map: Option<String>,
}

impl Namespaces {
    pub fn from_spec(spec: &Spec) -> Result<Self, NamespaceError> {
        let flags = flags_for(spec, &HANDLED)?;
        let hostname = match spec.hostname() {
            None => None,
            Some(_) if !flags.contains(CloneFlags::CLONE_NEWUTS) => return Err(NamespaceError::HostnameWithoutUts),
            Some(name) => Some(valid_hostname(name)?),
        };
        let (uid_map, gid_map) = if flags.contains(CloneFlags::CLONE_NEWUSER) {
            let linux = spec.linux().as_ref();
            let uids = linux.and_then(|l| l.uid_mappings().as_deref()).unwrap_or_default();
            let gids = linux.and_then(|l| l.gid_mappings().as_deref()).unwrap_or_default();
            (Some(id_map(uids)), Some(id_map(gids)))
        } else {
            (None, None)
        };
        Ok(Self {
            flags,
            hostname,
            uid_map,
            gid_map,
        })
    }
}

fn valid_hostname(name: &str) -> Result<CString, NamespaceError> {
    let bad = |why| NamespaceError::BadHostname(name.to_owned(), why);
    if name.is_empty() || name.len() > 64 {
        return Err(bad("it must be 1 to 64 bytes long"));
    }
    if name.starts_with('-')
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(bad("use letters, digits, '-' and '.', not starting with '-'"));
    }
    CString::new(name).map_err(|_| bad("it contains a NUL byte"))
}

/// The text the kernel expects in `/proc/PID/uid_map`: one `inside outside count` per line.
fn id_map(mappings: &[LinuxIdMapping]) -> String {
    mappings
        .iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

fn write_proc(child: Pid, file: &str, contents: &str) -> Result<(), StageError> {
    let path = format!("/proc/{child}/{file}");
    std::fs::write(&path, contents)
        .map_err(|e| StageError::new("namespaces", format!("writing {contents:?} to {path}: {e}")))
}

impl Stage for Namespaces {
    fn name(&self) -> &'static str {
        "namespaces"
    }

    fn clone_flags(&self) -> CloneFlags {
        self.flags
    }

    fn order(&self) -> StageOrder {
        ORDER
    }

    // ANCHOR: id_maps
    /// A new user namespace starts with no ids mapped: its process is "nobody" until the
    /// parent, outside, writes the maps. An unprivileged parent may only map its own ids, and
    /// only after giving up `setgroups` in the namespace.
    fn in_parent(&self, child: Pid) -> Result<(), StageError> {
        if let (Some(uid_map), Some(gid_map)) = (&self.uid_map, &self.gid_map) {
            if !nix::unistd::geteuid().is_root() {
                write_proc(child, "setgroups", "deny")?;
            }
            write_proc(child, "uid_map", uid_map)?;
            write_proc(child, "gid_map", gid_map)?;
        }
        Ok(())
    }
    // ANCHOR_END: id_maps

    // ANCHOR: in_child
    fn in_child(&self, _ctx: &ChildContext) -> Result<(), ChildError> {
        if let Some(hostname) = &self.hostname {
            // The child is alone in its UTS namespace: the host keeps its name.
            nix::unistd::sethostname(OsStr::from_bytes(hostname.as_bytes())).map_err(|errno| {
                ChildError::setup(errno, &[b"setting hostname ", hostname.as_bytes(), b": sethostname"])
            })?;
        }
        if self.flags.contains(CloneFlags::CLONE_NEWNET) {
            loopback_up()
                .map_err(|errno| ChildError::setup(errno, &[b"bringing lo up in the new network namespace: ioctl"]))?;
        }
        Ok(())
    }
    // ANCHOR_END: in_child
}

// ANCHOR: loopback
/// A new network namespace has one interface, `lo`, and it is down: nothing answers on
/// 127.0.0.1 until it is up. docker's containers have it up (runc leaves that to the engine,
/// which then starts `ip` in the namespace for it); keel brings it up here, where the
/// namespace is known to be new, with one `ioctl(SIOCSIFFLAGS)` instead of a process.
fn loopback_up() -> Result<(), Errno> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    use std::os::fd::AsRawFd;
    let socket = socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
    let mut name = [0 as libc::c_char; libc::IFNAMSIZ];
    name[0] = b'l' as libc::c_char;
    name[1] = b'o' as libc::c_char;
    let request = libc::ifreq {
        ifr_name: name,
        ifr_ifru: libc::__c_anonymous_ifr_ifru {
            ifru_flags: libc::IFF_UP as libc::c_short,
        },
    };
    // SAFETY: SIOCSIFFLAGS only reads `request`, an ifreq that lives until the call returns.
    let result = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &request) };
    Errno::result(result).map(drop)
}
// ANCHOR_END: loopback

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxBuilder, LinuxIdMappingBuilder, LinuxNamespaceBuilder, SpecBuilder};

    fn spec_with(types: &[LinuxNamespaceType], hostname: Option<&str>) -> Spec {
        let namespaces: Vec<_> = types
            .iter()
            .map(|t| LinuxNamespaceBuilder::default().typ(*t).build().expect("namespace"))
            .collect();
        let mut spec = SpecBuilder::default()
            .linux(LinuxBuilder::default().namespaces(namespaces).build().expect("linux"))
            .build()
            .expect("spec");
        spec.set_hostname(hostname.map(str::to_owned));
        spec
    }

    #[test]
    fn only_the_namespaces_of_this_step_become_clone_flags() {
        let spec = spec_with(&[LinuxNamespaceType::Uts, LinuxNamespaceType::Pid], None);
        let stage = Namespaces::from_spec(&spec).expect("stage");
        assert_eq!(stage.clone_flags(), CloneFlags::CLONE_NEWUTS);
    }

    #[test]
    fn a_hostname_without_a_uts_namespace_is_refused() {
        let spec = spec_with(&[LinuxNamespaceType::Network], Some("box"));
        assert!(matches!(
            Namespaces::from_spec(&spec),
            Err(NamespaceError::HostnameWithoutUts)
        ));
    }

    #[test]
    fn bad_hostnames_are_refused_with_the_reason() {
        for name in ["", "-lead", "has space", &"x".repeat(65)] {
            let spec = spec_with(&[LinuxNamespaceType::Uts], Some(name));
            let error = Namespaces::from_spec(&spec).err().expect("refused");
            assert!(error.to_string().contains("is not valid"), "{name:?}: {error}");
        }
    }

    #[test]
    fn id_maps_use_the_kernels_line_format() {
        let mapping = LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(1000u32)
            .size(1u32)
            .build()
            .expect("mapping");
        assert_eq!(id_map(&[mapping]), "0 1000 1\n");
    }
}
