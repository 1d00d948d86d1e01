//! keel-probe: prints, one fact per line, what this process sees of its container. The tests
//! run it inside containers and snapshot its report. Only the standard library: it is built
//! statically and copied into rootfs that have no libc.
//!
//! Usage: keel-probe SECTION...
//!   hostname pid ns ids caps net mounts procs cgroup limits
//!   write:PATH  alloc:MIB  fork:N  burn:SECONDS  sleep:SECONDS

use std::fs;
use std::io::Write;

fn read(path: &str) -> String {
    fs::read_to_string(path).map(|s| s.trim_end().to_owned()).unwrap_or_else(|e| format!("<{e}>"))
}

fn section(name: &str, out: &mut impl Write) -> std::io::Result<()> {
    match name {
        "hostname" => writeln!(out, "hostname: {}", read("/proc/sys/kernel/hostname")),
        "pid" => {
            // From the syscalls, not /proc: until step 03, /proc is still the host's.
            writeln!(out, "pid: {}", std::process::id())?;
            writeln!(out, "ppid: {}", std::os::unix::process::parent_id())
        }
        "ns" => {
            let mut names: Vec<String> = fs::read_dir("/proc/self/ns")?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for ns in names {
                let link = fs::read_link(format!("/proc/self/ns/{ns}")).map(|l| l.display().to_string());
                writeln!(out, "ns {ns}: {}", link.unwrap_or_else(|e| format!("<{e}>")))?;
            }
            Ok(())
        }
        "ids" => {
            let status = read("/proc/self/status");
            for line in status.lines().filter(|l| l.starts_with("Uid:") || l.starts_with("Gid:")) {
                writeln!(out, "{}", line.split_whitespace().collect::<Vec<_>>().join(" "))?;
            }
            writeln!(out, "uid_map: {}", read("/proc/self/uid_map").split_whitespace().collect::<Vec<_>>().join(" "))
        }
        "caps" => {
            // The capability sets as masks (Docker's default is 00000000a80425fb), no_new_privs
            // and the seccomp mode, as the kernel reports them for this process.
            let status = read("/proc/self/status");
            let wanted = ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:", "NoNewPrivs:", "Seccomp:"];
            for line in status.lines().filter(|l| wanted.iter().any(|w| l.starts_with(w))) {
                writeln!(out, "{}", line.split_whitespace().collect::<Vec<_>>().join(" "))?;
            }
            Ok(())
        }
        "net" => {
            // /proc/net follows the reader's network namespace, even with the host's /proc.
            let dev = read("/proc/self/net/dev");
            let mut interfaces: Vec<&str> =
                dev.lines().skip(2).filter_map(|l| l.split(':').next()).map(str::trim).collect();
            interfaces.sort();
            writeln!(out, "interfaces: {}", interfaces.join(" "))?;
            // The kernel routes 127.0.0.1 (in the local table) only while lo is up.
            let up = read("/proc/self/net/fib_trie").contains("127.0.0.1");
            writeln!(out, "loopback: {}", if up { "up" } else { "down" })
        }
        "mounts" => {
            // mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS ... - FSTYPE SOURCE SUPEROPTIONS
            for line in read("/proc/self/mountinfo").lines() {
                let fields: Vec<&str> = line.split(' ').collect();
                let dash = fields.iter().position(|f| *f == "-").unwrap_or(fields.len());
                let rw = fields.get(5).and_then(|o| o.split(',').next()).unwrap_or("?");
                let fstype = fields.get(dash + 1).unwrap_or(&"?");
                writeln!(out, "mount: {} {fstype} {rw}", fields.get(4).unwrap_or(&"?"))?;
            }
            Ok(())
        }
        "procs" => {
            let mut procs: Vec<(u32, String)> = fs::read_dir("/proc")?
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
                .map(|pid| {
                    let stat = read(&format!("/proc/{pid}/stat"));
                    let comm = stat.split('(').nth(1).and_then(|s| s.rsplit_once(')')).map(|(c, _)| c).unwrap_or("?");
                    let state = stat.rsplit(") ").next().and_then(|s| s.split(' ').next()).unwrap_or("?");
                    (pid, format!("{comm} {state}"))
                })
                .collect();
            procs.sort();
            for (pid, what) in procs {
                writeln!(out, "proc {pid}: {what}")?;
            }
            Ok(())
        }
        "cgroup" => {
            for line in read("/proc/self/cgroup").lines() {
                writeln!(out, "cgroup: {line}")?;
            }
            Ok(())
        }
        "limits" => {
            // v2 files, then v1 files, as the cgroup namespace shows them at /sys/fs/cgroup.
            for file in [
                "memory.max",
                "cpu.max",
                "pids.max",
                "memory/memory.limit_in_bytes",
                "cpu/cpu.cfs_quota_us",
                "cpu/cpu.cfs_period_us",
                "pids/pids.max",
            ] {
                let path = format!("/sys/fs/cgroup/{file}");
                if let Ok(value) = fs::read_to_string(&path) {
                    writeln!(out, "limit {file}: {}", value.trim())?;
                }
            }
            Ok(())
        }
        other => match other.split_once(':') {
            Some(("write", path)) => match fs::write(path, b"probe\n") {
                Ok(()) => writeln!(out, "write {path}: ok"),
                Err(e) => writeln!(out, "write {path}: {:?}", e.kind()),
            },
            Some(("alloc", mib)) => {
                let mib: usize = mib.parse().unwrap_or(0);
                writeln!(out, "allocating {mib} MiB")?;
                out.flush()?;
                // Touch every page so the memory is really charged to the cgroup.
                let mut blocks = Vec::new();
                for _ in 0..mib {
                    blocks.push(vec![1u8; 1 << 20]);
                }
                writeln!(out, "allocated {} MiB", blocks.len())
            }
            Some(("fork", n)) => {
                let n: usize = n.parse().unwrap_or(0);
                let mut children = Vec::new();
                let mut refused = 0;
                for _ in 0..n {
                    match std::process::Command::new("/proc/self/exe").arg("sleep:5").spawn() {
                        Ok(child) => children.push(child),
                        Err(_) => refused += 1,
                    }
                }
                writeln!(out, "forked {} of {n}, refused {refused}", children.len())?;
                for mut child in children {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                Ok(())
            }
            Some(("sleep", seconds)) => {
                std::thread::sleep(std::time::Duration::from_secs_f64(seconds.parse().unwrap_or(1.0)));
                Ok(())
            }
            Some(("burn", seconds)) => {
                // Spin for SECONDS of wall time; report the share of one CPU we were given.
                let ticks = || -> u64 {
                    let stat = read("/proc/self/stat");
                    let fields: Vec<&str> = stat.rsplit(") ").next().unwrap_or("").split(' ').collect();
                    // state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
                    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
                    field(11) + field(12)
                };
                let wall = std::time::Duration::from_secs_f64(seconds.parse().unwrap_or(1.0));
                let (start, start_ticks) = (std::time::Instant::now(), ticks());
                let mut spins = 0u64;
                while start.elapsed() < wall {
                    spins = spins.wrapping_add(1);
                }
                let used = (ticks() - start_ticks) as f64 / 100.0;
                writeln!(out, "cpu share: {:.0}% (spins {})", 100.0 * used / start.elapsed().as_secs_f64(), spins > 0)
            }
            _ => writeln!(out, "unknown section {other:?}"),
        },
    }
}

fn main() {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for name in std::env::args().skip(1) {
        if let Err(e) = section(&name, &mut out) {
            let _ = writeln!(out, "{name}: <{e}>");
        }
    }
}
