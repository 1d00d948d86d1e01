//! `linux.maskedPaths` and `linux.readonlyPaths`: parts of /proc and /sys that a container
//! must not read (`/proc/kcore` is the host's memory, `/proc/keys` its keyrings) or must not
//! write (`/proc/sys`, `/proc/sysrq-trigger`). A masked file gets /dev/null bound over it, a
//! masked directory an empty read-only tmpfs; a read-only path is bound onto itself and
//! remounted read-only. This runs after `pivot_root`, so every path resolves inside the
//! container's root: a symlink in the image cannot point the mounts at the host.

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{stat, SFlag};
use nix::sys::statvfs::{statvfs, FsFlags};
use std::ffi::CString;
use step02_pid_ns::step01_unshare::child_error::ChildError;
use step02_pid_ns::step01_unshare::oci_spec::runtime::Spec;
use step02_pid_ns::step01_unshare::stage::{ChildContext, Stage, StageOrder};

/// After the root filesystem and its /proc and /sys (300), before anything runs inside.
pub const ORDER: StageOrder = StageOrder(310);

#[derive(Debug, thiserror::Error)]
#[error("masked or read-only path {0:?} must be absolute and free of NUL bytes")]
pub struct MaskedPathError(String);

pub struct MaskedPaths {
    masked: Vec<CString>,
    read_only: Vec<CString>,
}

fn prepare(paths: Option<&Vec<String>>) -> Result<Vec<CString>, MaskedPathError> {
    paths
        .into_iter()
        .flatten()
        .map(|p| {
            if !p.starts_with('/') {
                return Err(MaskedPathError(p.clone()));
            }
            CString::new(p.as_str()).map_err(|_| MaskedPathError(p.clone()))
        })
        .collect()
}

impl MaskedPaths {
    /// The stage, when the spec has a root filesystem and paths to protect.
    pub fn from_spec(spec: &Spec) -> Result<Option<Self>, MaskedPathError> {
        let linux = spec.linux().as_ref();
        let masked = prepare(linux.and_then(|l| l.masked_paths().as_ref()))?;
        let read_only = prepare(linux.and_then(|l| l.readonly_paths().as_ref()))?;
        if spec.root().is_none() || (masked.is_empty() && read_only.is_empty()) {
            return Ok(None);
        }
        Ok(Some(Self { masked, read_only }))
    }
}

fn none() -> Option<&'static std::ffi::CStr> {
    None
}

impl Stage for MaskedPaths {
    fn name(&self) -> &'static str {
        "masked paths"
    }

    fn order(&self) -> StageOrder {
        ORDER
    }

    // ANCHOR: mask
    fn in_child(&self, _ctx: &ChildContext) -> Result<(), ChildError> {
        for path in &self.masked {
            let result = match stat(path.as_c_str()) {
                // Not there (no such file in this kernel): nothing to hide.
                Err(Errno::ENOENT) => continue,
                Err(errno) => Err(errno),
                Ok(st) if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR => mount(
                    Some(c"tmpfs"),
                    path.as_c_str(),
                    Some(c"tmpfs"),
                    MsFlags::MS_RDONLY,
                    none(),
                ),
                Ok(_) => mount(Some(c"/dev/null"), path.as_c_str(), none(), MsFlags::MS_BIND, none()),
            };
            result.map_err(|errno| ChildError::setup(errno, &[b"masking ", path.as_bytes(), b": mount"]))?;
        }
        for path in &self.read_only {
            let fail = |errno| ChildError::setup(errno, &[b"making ", path.as_bytes(), b" read-only: mount"]);
            match mount(
                Some(path.as_c_str()),
                path.as_c_str(),
                none(),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                none(),
            ) {
                Err(Errno::ENOENT) => continue,
                other => other.map_err(fail)?,
            }
            // A read-only remount must keep the flags the mount already has (nosuid, nodev,
            // noexec): in a user namespace, dropping a locked flag is refused.
            let kept = statvfs(path.as_c_str())
                .map(|s| locked_flags(s.flags()))
                .map_err(fail)?;
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | kept;
            mount(none(), path.as_c_str(), none(), flags, none()).map_err(fail)?;
        }
        Ok(())
    }
    // ANCHOR_END: mask
}

fn locked_flags(flags: FsFlags) -> MsFlags {
    let mut kept = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
    ] {
        if flags.contains(fs) {
            kept |= ms;
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_refused() {
        assert!(prepare(Some(&vec!["proc/kcore".to_owned()])).is_err());
        assert_eq!(
            prepare(Some(&vec!["/proc/kcore".to_owned()])).map(|v| v.len()).ok(),
            Some(1)
        );
    }
}
