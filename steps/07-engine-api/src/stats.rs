//! `docker stats`: what a container uses, read from its cgroup files (found through the
//! runtime's state, the same record `runc state` reads).

use std::path::PathBuf;

use crate::engine::Engine;
use step06_images::step05_overlay::step04_cgroups::runtime::state::StateDir;

#[derive(Debug, Default)]
pub struct Sample {
    pub memory: u64,
    pub memory_limit: u64,
    pub cpu_ns: u64,
    pub pids: u64,
    /// The host's CPU time, for the CLI's percentage.
    pub system_ns: u64,
}

fn read_number(paths: &[PathBuf], file: &str) -> Option<u64> {
    paths
        .iter()
        .find_map(|dir| std::fs::read_to_string(dir.join(file)).ok())
        .and_then(|text| text.trim().parse().ok())
}

/// The host's memory in bytes (`/proc/meminfo`'s MemTotal).
pub fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

/// The host's CPU time in nanoseconds (`/proc/stat`'s first line, in USER_HZ ticks).
fn system_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = stat
        .lines()
        .next()
        .map(|l| l.split_whitespace().skip(1).filter_map(|t| t.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    ticks * 10_000_000
}

pub fn cgroup_sample(engine: &Engine, id: &str) -> Sample {
    let paths = StateDir::new(&engine.runtime.root)
        .load(id)
        .ok()
        .and_then(|record| record.cgroup().ok())
        .map(|cgroup| cgroup.paths())
        .unwrap_or_default();
    let cpu_v2 = paths.iter().find_map(|dir| {
        let text = std::fs::read_to_string(dir.join("cpu.stat")).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("usage_usec ").and_then(|v| v.trim().parse::<u64>().ok()))
            .map(|usec| usec * 1000)
    });
    let limit = read_number(&paths, "memory.max")
        .or_else(|| read_number(&paths, "memory.limit_in_bytes"))
        .unwrap_or(u64::MAX)
        .min(host_memory());
    Sample {
        memory: read_number(&paths, "memory.current")
            .or_else(|| read_number(&paths, "memory.usage_in_bytes"))
            .unwrap_or(0),
        memory_limit: limit,
        cpu_ns: cpu_v2.or_else(|| read_number(&paths, "cpuacct.usage")).unwrap_or(0),
        pids: read_number(&paths, "pids.current").unwrap_or(0),
        system_ns: system_ns(),
    }
}
