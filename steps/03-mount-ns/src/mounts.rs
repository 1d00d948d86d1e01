//! The spec's `mounts`: each one prepared in the parent (paths as C strings, options as
//! flags), then mounted in the child, inside its mount namespace, under the new root, on a
//! destination resolved inside that root ([`crate::in_root`]).

use nix::mount::{mount, MsFlags};
use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use step02_pid_ns::step01_unshare::child_error::ChildError;
use step02_pid_ns::step01_unshare::oci_spec::runtime::Mount;

use crate::in_root::{Failure, FdPath, InRoot, Kind};
use crate::mount_options::{self, MountOptions};

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("mount destination {0:?} must be an absolute path without '..'")]
    BadDestination(PathBuf),
    #[error("mount on {destination:?}: its source {from:?} does not exist")]
    MissingSource { destination: PathBuf, from: PathBuf },
    #[error("mount on {0:?} has a NUL byte in a path or option")]
    Nul(PathBuf),
}

/// One mount, ready for the child.
pub struct PreparedMount {
    /// The destination as the container sees it, for messages.
    destination: CString,
    /// The destination, to be resolved inside the root (see [`crate::in_root`]).
    target: InRoot,
    /// A bind mount of a file needs a file to mount on, not a directory.
    target_is_file: bool,
    source: Option<CString>,
    fstype: Option<CString>,
    data: Option<CString>,
    options: MountOptions,
}

/// `destination` under `root`, refusing anything that could climb out of it.
pub fn under_root(root: &Path, destination: &Path) -> Option<PathBuf> {
    if !destination.is_absolute() || destination.components().any(|c| c == Component::ParentDir) {
        return None;
    }
    Some(root.join(destination.strip_prefix("/").ok()?))
}

fn cstring(path: &Path, destination: &Path) -> Result<CString, MountError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| MountError::Nul(destination.to_owned()))
}

impl PreparedMount {
    pub fn from_spec(spec_mount: &Mount, root: &Path) -> Result<Self, MountError> {
        let destination = spec_mount.destination();
        if under_root(root, destination).is_none() {
            return Err(MountError::BadDestination(destination.to_owned()));
        }
        let target = InRoot::new(root, destination).map_err(|_| MountError::Nul(destination.to_owned()))?;
        let options = mount_options::parse(spec_mount.options().as_deref().unwrap_or_default());
        let bind = options.bind || spec_mount.typ().as_deref() == Some("bind");
        let options = MountOptions { bind, ..options };
        let mut target_is_file = false;
        if bind {
            let source = spec_mount.source().as_deref().unwrap_or(Path::new(""));
            match std::fs::metadata(source) {
                Ok(meta) => target_is_file = !meta.is_dir(),
                Err(_) => {
                    return Err(MountError::MissingSource {
                        destination: destination.to_owned(),
                        from: source.to_owned(),
                    })
                }
            }
        }
        let nul = |_| MountError::Nul(destination.to_owned());
        Ok(Self {
            destination: cstring(destination, destination)?,
            target,
            target_is_file,
            source: spec_mount
                .source()
                .as_deref()
                .map(|s| cstring(s, destination))
                .transpose()?,
            fstype: spec_mount.typ().as_deref().map(CString::new).transpose().map_err(nul)?,
            data: Some(options.data.as_str())
                .filter(|d| !d.is_empty())
                .map(CString::new)
                .transpose()
                .map_err(nul)?,
            options,
        })
    }

    /// In the child: resolve the mount point inside the root (creating it if need be), and
    /// mount on what was resolved.
    pub fn mount(&self) -> Result<(), ChildError> {
        let fail =
            |(errno, what): Failure| ChildError::setup(errno, &[b"mounting ", self.destination.as_bytes(), what]);
        let kind = if self.target_is_file {
            Kind::File
        } else {
            Kind::Directory
        };
        let target = self.target.open(kind).map_err(fail)?;
        let target = FdPath::new(&target);
        let options = &self.options;
        if options.bind {
            let recursive = if options.recursive {
                MsFlags::MS_REC
            } else {
                MsFlags::empty()
            };
            mount(
                self.source.as_deref(),
                target.as_c_str(),
                None::<&CStr>,
                MsFlags::MS_BIND | recursive,
                None::<&CStr>,
            )
            .map_err(|errno| fail((errno, b": bind mount")))?;
        } else {
            mount(
                self.source.as_deref(),
                target.as_c_str(),
                self.fstype.as_deref(),
                options.flags,
                self.data.as_deref(),
            )
            .map_err(|errno| fail((errno, b": mount")))?;
        }
        // What follows changes the new mount, not the directory under it: resolve it again.
        let mounted = self.target.reopen().map_err(fail)?;
        let mounted = FdPath::new(&mounted);
        // A bind mount ignores other flags: read-only and the rest need a remount.
        if options.bind && !options.flags.is_empty() {
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | options.flags;
            mount(None::<&CStr>, mounted.as_c_str(), None::<&CStr>, flags, None::<&CStr>)
                .map_err(|errno| fail((errno, b": remounting with its options")))?;
        }
        if !options.propagation.is_empty() {
            mount(
                None::<&CStr>,
                mounted.as_c_str(),
                None::<&CStr>,
                options.propagation,
                None::<&CStr>,
            )
            .map_err(|errno| fail((errno, b": setting propagation")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_stay_under_the_root() {
        let root = Path::new("/var/lib/keel/rootfs");
        assert_eq!(under_root(root, Path::new("/proc")), Some(root.join("proc")));
        assert_eq!(under_root(root, Path::new("/data/../../etc")), None);
        assert_eq!(under_root(root, Path::new("relative")), None);
    }
}
