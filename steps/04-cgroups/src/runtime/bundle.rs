//! An OCI bundle: a directory with `config.json` and (usually) the root filesystem beside it.
//! The spec is read once, at `create`, and made self-contained: paths absolute, the cgroup
//! path in cgroupfs form, so every later command can work from the saved copy.

use std::path::{Path, PathBuf};
use step03_mount_ns::step02_pid_ns::step01_unshare::oci_spec::runtime::Spec;

use super::RuntimeError;
use crate::cgroups;

/// runc's rule for ids: they become directory and cgroup names.
pub fn check_id(id: &str) -> Result<(), RuntimeError> {
    let valid = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(RuntimeError::BadId(id.to_owned()))
    }
}

/// The bundle's spec, with its root path absolute and its cgroups path resolved.
pub fn load(bundle: &Path, id: &str, systemd_cgroup: bool) -> Result<(PathBuf, Spec), RuntimeError> {
    let bundle = std::fs::canonicalize(bundle).map_err(|e| RuntimeError::io("opening the bundle", bundle, e))?;
    let config = bundle.join("config.json");
    let spec = Spec::load(&config).map_err(|e| RuntimeError::Bundle {
        path: bundle.clone(),
        reason: e.to_string(),
    })?;
    let mut spec = spec;
    if let Some(root) = spec.root().clone() {
        let mut root = root;
        if root.path().is_relative() {
            root.set_path(bundle.join(root.path()));
        }
        spec.set_root(Some(root));
    }
    if let Some(mut process) = spec.process().clone() {
        // runc gives the process a HOME when the spec has none (containerd's specs do not).
        let mut env = process.env().clone().unwrap_or_default();
        if !env.iter().any(|e| e.starts_with("HOME=")) {
            let home = if process.user().uid() == 0 { "/root" } else { "/" };
            env.push(format!("HOME={home}"));
            process.set_env(Some(env));
            spec.set_process(Some(process));
        }
    }
    let mut linux = spec.linux().clone().unwrap_or_default();
    let given = linux.cgroups_path().as_ref().map(|p| p.display().to_string());
    let path = match given {
        Some(path) if systemd_cgroup => cgroups::systemd_path::to_cgroupfs(&path)?,
        Some(path) => path,
        // runc puts a container without a path directly under the root, named after it.
        None => format!("/keel/{id}"),
    };
    linux.set_cgroups_path(Some(path.into()));
    spec.set_linux(Some(linux));
    Ok((bundle, spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_climb_out_of_the_state_dir_are_refused() {
        assert!(check_id("web-1.test_2+x").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "../x"] {
            assert!(check_id(bad).is_err(), "{bad:?} accepted");
        }
    }
}
