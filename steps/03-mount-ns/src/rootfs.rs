//! Step 03's primitive: a mount namespace, and a root filesystem entered with `pivot_root`.
//!
//! In its own mount namespace, with propagation made private, the container can mount what
//! it likes without the host seeing it, and the host's later mounts do not reach it. With a
//! rootfs, it gets fresh `/proc`, `/sys` and `/dev`, then `pivot_root` makes the rootfs `/`
//! and the old root is detached: nothing of the host's filesystem is left in its view.

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::CloneFlags;
use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use step02_pid_ns::step01_unshare::child_error::ChildError;
use step02_pid_ns::step01_unshare::namespaces::{flags_for, NamespaceError};
use step02_pid_ns::step01_unshare::oci_spec::runtime::{LinuxNamespaceType, Spec};
use step02_pid_ns::step01_unshare::stage::{ChildContext, Stage, StageOrder};

use crate::devices::Devices;
use crate::mount_options::propagation;
use crate::mounts::{MountError, PreparedMount};

/// After the hostname (nothing here depends on it), before the init forks: the init and the
/// command must both live in the new root.
pub const ORDER: StageOrder = StageOrder(300);

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    #[error("a root filesystem needs a mount namespace: add {{\"type\": \"mount\"}} to linux.namespaces")]
    NoMountNamespace,
    #[error("rootfs {0}: no such directory (build one with `step03-mount-ns rootfs {0}`)")]
    Missing(PathBuf),
    #[error("rootfs {0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("unknown rootfs propagation {0:?}: use private, rprivate, slave, rslave, shared or rshared")]
    Propagation(String),
    #[error(transparent)]
    Mount(#[from] MountError),
}

pub struct Rootfs {
    flags: CloneFlags,
    propagation: MsFlags,
    /// The new root, when the spec has one: else the container keeps the host's `/`.
    root: Option<CString>,
    read_only: bool,
    mounts: Vec<PreparedMount>,
    devices: Option<Devices>,
}

impl Rootfs {
    pub fn from_spec(spec: &Spec) -> Result<Self, RootfsError> {
        let flags = flags_for(spec, &[LinuxNamespaceType::Mount])?;
        let has_namespace = flags.contains(CloneFlags::CLONE_NEWNS);
        let root = spec.root().as_ref().map(|root| root.path().clone());
        if root.is_some() && !has_namespace {
            return Err(RootfsError::NoMountNamespace);
        }
        let linux = spec.linux().as_ref();
        let propagation_name = linux
            .and_then(|l| l.rootfs_propagation().clone())
            .unwrap_or("rprivate".into());
        let propagation = propagation(&propagation_name).ok_or(RootfsError::Propagation(propagation_name))?;
        let root = root.map(|path| checked_root(&path)).transpose()?;
        let base = root.as_deref().unwrap_or(Path::new("/"));
        let mounts = if has_namespace {
            spec.mounts().as_deref().unwrap_or_default()
        } else {
            &[]
        };
        let mounts = mounts
            .iter()
            .map(|m| PreparedMount::from_spec(m, base))
            .collect::<Result<_, _>>()?;
        // checked_root found the directory, so its path holds no NUL.
        let devices = match root.as_deref() {
            Some(root) => Some(Devices::new(root).map_err(|_| RootfsError::Missing(root.to_owned()))?),
            None => None,
        };
        Ok(Self {
            flags,
            propagation,
            devices,
            root: root.map(|r| CString::new(r.as_os_str().as_bytes()).unwrap_or_default()),
            read_only: spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false),
            mounts,
        })
    }
}

fn checked_root(path: &Path) -> Result<PathBuf, RootfsError> {
    match std::fs::metadata(path) {
        Err(_) => Err(RootfsError::Missing(path.to_owned())),
        Ok(meta) if !meta.is_dir() => Err(RootfsError::NotADirectory(path.to_owned())),
        Ok(_) => path.canonicalize().map_err(|_| RootfsError::Missing(path.to_owned())),
    }
}

fn none() -> Option<&'static CStr> {
    None
}

impl Stage for Rootfs {
    fn name(&self) -> &'static str {
        "rootfs"
    }

    fn clone_flags(&self) -> CloneFlags {
        self.flags
    }

    fn order(&self) -> StageOrder {
        ORDER
    }

    fn in_child(&self, _ctx: &ChildContext) -> Result<(), ChildError> {
        if !self.flags.contains(CloneFlags::CLONE_NEWNS) {
            return Ok(());
        }
        // ANCHOR: propagation
        // The new namespace starts with copies of the host's mounts, still connected to them
        // (shared propagation, systemd's default). Cut the connection first, recursively.
        mount(none(), c"/", none(), MsFlags::MS_REC | self.propagation, none())
            .map_err(|errno| ChildError::setup(errno, &[b"making mounts private: mount /"]))?;
        // ANCHOR_END: propagation
        if let Some(root) = &self.root {
            // pivot_root needs the new root to be a mount point: bind it onto itself.
            mount(
                Some(root.as_c_str()),
                root.as_c_str(),
                none(),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                none(),
            )
            .map_err(|errno| ChildError::setup(errno, &[b"entering rootfs ", root.as_bytes(), b": bind mount"]))?;
        }
        for spec_mount in &self.mounts {
            spec_mount.mount()?;
        }
        if let Some(devices) = &self.devices {
            devices.create()?;
        }
        if let Some(root) = &self.root {
            enter(root)?;
            // ANCHOR: nodev
            // nodev: a device node in the rootfs (an image's layer may carry any) opens
            // nothing. Devices are /dev's business, a mount of its own with the default list.
            let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NODEV;
            if self.read_only {
                flags |= MsFlags::MS_RDONLY;
            }
            mount(none(), c"/", none(), flags, none()).map_err(|errno| {
                ChildError::setup(errno, &[b"making the rootfs nodev (and read-only if asked): mount"])
            })?;
            // ANCHOR_END: nodev
        }
        Ok(())
    }
}

// ANCHOR: pivot_root
/// Makes `root` the process's `/` and detaches the old root.
///
/// `pivot_root(".", ".")` stacks the old root on top of the new one at `/`; unmounting `.`
/// then takes the old root away (lazily, as our own files may still be open on it). Unlike
/// `chroot`, nothing of the host's tree stays reachable through `..` or an open directory.
fn enter(root: &CStr) -> Result<(), ChildError> {
    let fail = |errno, call: &[u8]| ChildError::setup(errno, &[b"entering rootfs ", root.to_bytes(), call]);
    nix::unistd::chdir(root).map_err(|errno| fail(errno, b": chdir"))?;
    nix::unistd::pivot_root(c".", c".").map_err(|errno| fail(errno, b": pivot_root"))?;
    umount2(c".", MntFlags::MNT_DETACH).map_err(|errno| fail(errno, b": detaching the old root: umount2"))?;
    nix::unistd::chdir(c"/").map_err(|errno| fail(errno, b": chdir /"))
}
// ANCHOR_END: pivot_root
