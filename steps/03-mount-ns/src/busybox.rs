//! The embedded default root filesystem: the host's static busybox (Debian's
//! `busybox-static`) and a link for each of its applets, plus the few files in `/etc` that
//! programs expect. No network, no image: enough for a shell and the usual tools.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use step02_pid_ns::step01_unshare::path_error::{path_error, PathError};

/// Where `rootfs` builds it when given no directory.
pub const DEFAULT_ROOTFS: &str = "/var/lib/keel/rootfs";

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("no busybox found: install it with `apt-get install busybox-static`")]
    NoBusybox,
    #[error("{0} is dynamically linked: it cannot run in an empty rootfs (apt-get install busybox-static)")]
    NotStatic(PathBuf),
    #[error("{0} already exists: remove it, or pass --force to rebuild it")]
    Exists(PathBuf),
    #[error("listing the applets of {path}: {message}")]
    Applets { path: PathBuf, message: String },
    #[error(transparent)]
    Io(#[from] PathError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |error| path_error("building", path)(error).into()
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n";

/// The applets busybox provides, as paths relative to the root (`bin/ls`, `usr/bin/awk`).
fn applets(busybox: &Path) -> Result<Vec<PathBuf>, BuildError> {
    let failed = |message: String| BuildError::Applets {
        path: busybox.to_owned(),
        message,
    };
    let output = Command::new(busybox)
        .arg("--list-full")
        .output()
        .map_err(|e| failed(e.to_string()))?;
    if !output.status.success() {
        return Err(failed(String::from_utf8_lossy(&output.stderr).into_owned()));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(PathBuf::from)
        .collect())
}

/// Builds the rootfs at `dest` from `busybox` (found on the host when `None`). It is built
/// next to `dest` and renamed into place, so `dest` is never half-built.
pub fn build(dest: &Path, busybox: Option<&Path>, force: bool) -> Result<(), BuildError> {
    let found = step02_pid_ns::step01_unshare::doctor::find_busybox().map(Path::new);
    let busybox = busybox.or(found).ok_or(BuildError::NoBusybox)?;
    if !step02_pid_ns::step01_unshare::doctor::is_static_elf(busybox) {
        return Err(BuildError::NotStatic(busybox.to_owned()));
    }
    if dest.exists() && !force {
        return Err(BuildError::Exists(dest.to_owned()));
    }
    let parent = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let staging = parent.join(format!(
        ".{}.building",
        dest.file_name().unwrap_or_default().to_string_lossy()
    ));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io(&staging))?;
    }
    populate(&staging, busybox)?;
    if dest.exists() {
        std::fs::remove_dir_all(dest).map_err(io(dest))?;
    }
    std::fs::rename(&staging, dest).map_err(io(dest))
}

fn populate(root: &Path, busybox: &Path) -> Result<(), BuildError> {
    for (dir, mode) in [
        ("bin", 0o755),
        ("sbin", 0o755),
        ("usr/bin", 0o755),
        ("usr/sbin", 0o755),
        ("etc", 0o755),
        ("dev", 0o755),
        ("proc", 0o555),
        ("sys", 0o555),
        ("root", 0o700),
        ("home", 0o755),
        ("var/log", 0o755),
        ("run", 0o755),
        ("tmp", 0o1777),
    ] {
        let path = root.join(dir);
        std::fs::create_dir_all(&path).map_err(io(&path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(io(&path))?;
    }
    let target = root.join("bin/busybox");
    std::fs::copy(busybox, &target).map_err(io(&target))?;
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).map_err(io(&target))?;
    for applet in applets(busybox)? {
        let link = root.join(&applet);
        if applet == Path::new("bin/busybox") || link.exists() {
            continue;
        }
        // Relative links: they point at the same file seen from the host or from inside.
        let depth = applet.components().count().saturating_sub(1);
        let relative = Path::new(&"../".repeat(depth)).join("bin/busybox");
        symlink(&relative, &link).map_err(io(&link))?;
    }
    for (file, contents) in [
        ("etc/passwd", PASSWD),
        ("etc/group", GROUP),
        ("etc/hostname", "keel\n"),
        ("etc/os-release", "NAME=\"keel busybox\"\nID=keel\n"),
    ] {
        let path = root.join(file);
        std::fs::write(&path, contents).map_err(io(&path))?;
    }
    Ok(())
}
