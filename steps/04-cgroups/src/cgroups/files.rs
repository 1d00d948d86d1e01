//! Reading and writing cgroup files, with the path in every error.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::Path;
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

/// SIGKILLs every process listed in `dir/cgroup.procs` until none is left, then removes
/// `dir`. Gives up after two seconds.
pub fn kill_all_and_remove(dir: &Path) -> Result<(), CgroupError> {
    if !dir.exists() {
        return Ok(());
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let procs = read(dir, "cgroup.procs").unwrap_or_default();
        let pids: Vec<i32> = procs.lines().filter_map(|l| l.trim().parse().ok()).collect();
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        if Instant::now() > deadline {
            return Err(CgroupError::Busy(dir.to_owned()));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // A cgroup whose last process just died can still be busy for a moment.
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
pub fn remove_if_unused(dir: &Path) {
    let _ = std::fs::remove_dir(dir);
}
