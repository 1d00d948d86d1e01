//! A cgroup namespace: inside, the container's own cgroup is the root. `/proc/self/cgroup`
//! says `/`, and the cgroup filesystem mounted at `/sys/fs/cgroup` shows the container's
//! cgroup and its limits, not the host's tree.
//!
//! It must be created after the process joined its cgroup (the namespace's root is the
//! cgroup its creator is in), so the child unshares it rather than clone.

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::stat::Mode;
use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use step03_mount_ns::step02_pid_ns::step01_unshare::child_error::ChildError;
use step03_mount_ns::step02_pid_ns::step01_unshare::namespaces::{flags_for, NamespaceError};
use step03_mount_ns::step02_pid_ns::step01_unshare::oci_spec::runtime::{LinuxNamespaceType, Spec};
use step03_mount_ns::step02_pid_ns::step01_unshare::stage::{ChildContext, Stage, StageOrder};

use crate::cgroups::Layout;

/// After the rootfs (300): the cgroup filesystem is mounted inside the new root's /sys.
pub const ORDER: StageOrder = StageOrder(400);

/// The OCI mount types that mean "the cgroup filesystem".
pub const MOUNT_TYPES: [&str; 2] = ["cgroup", "cgroup2"];

const DIR: &CStr = c"/sys/fs/cgroup";

/// What to mount at /sys/fs/cgroup inside.
enum View {
    /// cgroup2, one mount.
    V2,
    /// A tmpfs holding one mount per v1 tree: `(directory, controllers)`.
    V1(Vec<(CString, CString)>),
}

pub struct CgroupNamespace {
    flags: CloneFlags,
    view: Option<View>,
}

impl CgroupNamespace {
    /// `mount_view`: the spec asks for the cgroup filesystem at /sys/fs/cgroup.
    pub fn from_spec(spec: &Spec, layout: &Layout, mount_view: bool) -> Result<Self, NamespaceError> {
        let flags = flags_for(spec, &[LinuxNamespaceType::Cgroup])?;
        let view = (mount_view && !flags.is_empty()).then(|| match layout {
            Layout::V2 { .. } => View::V2,
            Layout::V1 { hierarchies, .. } => {
                // Comounted controllers (cpu,cpuacct) share a tree: one mount for both.
                let mut trees: BTreeMap<&std::path::Path, Vec<&str>> = BTreeMap::new();
                for (controller, mount_point) in hierarchies {
                    trees.entry(mount_point).or_default().push(controller);
                }
                let mounts = trees
                    .into_iter()
                    .filter_map(|(mount_point, controllers)| {
                        let name = mount_point.file_name()?.to_string_lossy().into_owned();
                        let dir = CString::new(format!("/sys/fs/cgroup/{name}")).ok()?;
                        Some((dir, CString::new(controllers.join(",")).ok()?))
                    })
                    .collect();
                View::V1(mounts)
            }
        });
        Ok(Self { flags, view })
    }
}

fn fail(errno: Errno, parts: &[&[u8]]) -> ChildError {
    ChildError::setup(errno, parts)
}

const RO: MsFlags = MsFlags::MS_RDONLY
    .union(MsFlags::MS_NOSUID)
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

impl Stage for CgroupNamespace {
    fn name(&self) -> &'static str {
        "cgroup namespace"
    }

    fn namespaces(&self) -> CloneFlags {
        self.flags
    }

    fn order(&self) -> StageOrder {
        ORDER
    }

    fn in_child(&self, _ctx: &ChildContext) -> Result<(), ChildError> {
        if self.flags.is_empty() {
            return Ok(());
        }
        unshare(CloneFlags::CLONE_NEWCGROUP).map_err(|e| fail(e, &[b"creating the cgroup namespace: unshare"]))?;
        match &self.view {
            None => {}
            Some(View::V2) => mount(Some(c"cgroup2"), DIR, Some(c"cgroup2"), RO, None::<&CStr>)
                .map_err(|e| fail(e, &[b"mounting cgroup2 on /sys/fs/cgroup: mount"]))?,
            Some(View::V1(trees)) => {
                let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
                mount(Some(c"tmpfs"), DIR, Some(c"tmpfs"), flags, Some(c"mode=755"))
                    .map_err(|e| fail(e, &[b"mounting a tmpfs on /sys/fs/cgroup: mount"]))?;
                for (dir, controllers) in trees {
                    match nix::unistd::mkdir(dir.as_c_str(), Mode::from_bits_truncate(0o755)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(fail(e, &[b"creating ", dir.as_bytes(), b": mkdir"])),
                    }
                    mount(
                        Some(c"cgroup"),
                        dir.as_c_str(),
                        Some(c"cgroup"),
                        RO,
                        Some(controllers.as_c_str()),
                    )
                    .map_err(|e| fail(e, &[b"mounting the ", controllers.as_bytes(), b" cgroup tree: mount"]))?;
                }
                let remount = MsFlags::MS_REMOUNT | RO;
                mount(None::<&CStr>, DIR, None::<&CStr>, remount, Some(c"mode=755"))
                    .map_err(|e| fail(e, &[b"making /sys/fs/cgroup read-only: mount"]))?;
            }
        }
        Ok(())
    }
}
