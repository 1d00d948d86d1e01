//! Reading and writing cgroup files, with the path in every error.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::CgroupError;
use step03_mount_ns::step02_pid_ns::step01_unshare::path_error::PathError;

pub fn write(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    let path = dir.join(file);
    std::fs::write(&path, value).map_err(|error| {
        CgroupError::Io(PathError {
            action: "writing",
            path,
            error,
        })
    })
}

pub fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok()
}

/// A file holding one number.
pub fn read_u64(dir: &Path, file: &str) -> Option<u64> {
    read(dir, file)?.trim().parse().ok()
}

/// The number after `key` in a flat-keyed file (`memory.events`, `cpu.stat`...).
pub fn keyed(dir: &Path, file: &str, key: &str) -> Option<u64> {
    read(dir, file)?
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Creates `dir` and its parents; concurrent containers may be creating or removing the
/// same parents, so a vanished parent is retried.
pub fn create_dir(dir: &Path) -> Result<(), CgroupError> {
    let mut attempts = 0;
    loop {
        match std::fs::create_dir_all(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempts < 3 => attempts += 1,
            Err(source) => {
                return Err(CgroupError::Io(PathError {
                    action: "creating",
                    path: dir.to_owned(),
                    error: source,
                }))
            }
        }
    }
}

/// `dir` and every cgroup below it, parents first. A directory that vanishes meanwhile (a
/// container removing its own sub-cgroup) is not an error: there is just nothing below it.
pub fn subtree(dir: &Path) -> Vec<PathBuf> {
    let mut found = vec![dir.to_owned()];
    let mut next = 0;
    while let Some(current) = found.get(next).cloned() {
        next += 1;
        for entry in std::fs::read_dir(&current).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                found.push(entry.path());
            }
        }
    }
    found
}

/// Every process in `dir` and the cgroups below it, each once, in pid order. `Missing`
/// when `dir` itself is not there.
pub fn processes(dir: &Path) -> Result<Vec<Pid>, CgroupError> {
    if !dir.is_dir() {
        return Err(CgroupError::Missing(dir.to_owned()));
    }
    let mut pids = Vec::new();
    for cgroup in subtree(dir) {
        let path = cgroup.join("cgroup.procs");
        match std::fs::read_to_string(&path) {
            Ok(text) => pids.extend(parse_pids(&text)),
            // Removed since it was listed.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && cgroup != dir => {}
            // A threaded v2 cgroup refuses reads of cgroup.procs: its processes are listed
            // by the domain cgroup above it, which is read too.
            Err(e) if e.raw_os_error() == Some(nix::libc::EOPNOTSUPP) => {}
            Err(error) => {
                return Err(CgroupError::Io(PathError {
                    action: "reading",
                    path,
                    error,
                }))
            }
        }
    }
    // A process can be listed more than once: v1 does not promise cgroup.procs without
    // duplicates, and a process whose threads are spread over cgroups is in each.
    pids.sort_by_key(|p| p.as_raw());
    pids.dedup();
    Ok(pids)
}

/// The processes directly in `dir` (not below it); none when it cannot be read.
pub fn processes_here(dir: &Path) -> Vec<Pid> {
    parse_pids(&read(dir, "cgroup.procs").unwrap_or_default()).collect()
}

/// `cgroup.procs`: one pid a line.
fn parse_pids(text: &str) -> impl Iterator<Item = Pid> + '_ {
    text.lines().filter_map(|l| l.trim().parse().ok()).map(Pid::from_raw)
}

/// `dir` opened as a directory (close-on-exec), for `clone3`'s `CLONE_INTO_CGROUP`.
pub fn open_dir(dir: &Path) -> Result<OwnedFd, CgroupError> {
    use std::os::unix::fs::OpenOptionsExt;
    open(
        dir.to_owned(),
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_DIRECTORY),
    )
}

/// `dir/file` opened for writing (close-on-exec), to be written later, by a child.
pub fn open_for_writing(dir: &Path, file: &str) -> Result<OwnedFd, CgroupError> {
    open(dir.join(file), std::fs::OpenOptions::new().write(true))
}

fn open(path: PathBuf, options: &std::fs::OpenOptions) -> Result<OwnedFd, CgroupError> {
    options.open(&path).map(OwnedFd::from).map_err(|error| {
        CgroupError::Io(PathError {
            action: "opening",
            path,
            error,
        })
    })
}

/// Asks `done` until it says yes or `timeout` has passed (then one last time); says whether
/// it did. Short sleeps first: freezing a few idle processes takes a millisecond or two.
pub fn poll(timeout: Duration, mut done: impl FnMut() -> Result<bool, CgroupError>) -> Result<bool, CgroupError> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if done()? {
            return Ok(true);
        }
        if Instant::now() > deadline {
            return Ok(false);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// SIGKILLs every process in `dir` and the cgroups below it until none is left, then removes
/// them all, deepest first (a container may have made cgroups of its own). Gives up after
/// two seconds.
pub fn kill_all_and_remove(dir: &Path) -> Result<(), CgroupError> {
    if !dir.exists() {
        return Ok(());
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let pids = match processes(dir) {
            Ok(pids) => pids,
            Err(CgroupError::Missing(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            let _ = kill(pid, Signal::SIGKILL);
        }
        if Instant::now() > deadline {
            return Err(CgroupError::Busy(dir.to_owned()));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for cgroup in subtree(dir).iter().rev() {
        remove_when_released(cgroup, deadline)?;
    }
    Ok(())
}

/// A cgroup whose last process just died can still be busy for a moment: retried until
/// `deadline`.
fn remove_when_released(dir: &Path, deadline: Instant) -> Result<(), CgroupError> {
    let mut last = None;
    while Instant::now() < deadline {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(CgroupError::Io(PathError {
        action: "removing",
        path: dir.to_owned(),
        error: last.unwrap_or_else(|| std::io::Error::other("timed out")),
    }))
}

/// Removes `dir` if it is an empty cgroup (another container may still use it: then not).
/// A systemd slice (`system.slice`, a kubernetes pod's `kubepods-…-pod….slice`) is left
/// alone even when empty: it is systemd's unit, and systemd (or the kubelet, through it)
/// removes it.
pub fn remove_if_unused(dir: &Path) {
    if dir.extension().is_some_and(|e| e == "slice") {
        return;
    }
    let _ = std::fs::remove_dir(dir);
}
