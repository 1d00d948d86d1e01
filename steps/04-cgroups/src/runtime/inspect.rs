//! The read-only commands: `state`, `list`, `ps`, `features`. containerd reads `ps` and
//! `state` from stdout and stderr combined, so they print nothing but their answer.

use std::collections::BTreeSet;
use std::process::Command;

use super::cli::Context;
use super::state::{StateOutput, OCI_VERSION};
use super::RuntimeError;

pub fn state(context: &Context, id: &str) -> Result<(), RuntimeError> {
    let record = context.dir.load(id)?;
    print_json(&record.output(&context.dir), true)
}

fn print_json(value: &impl serde::Serialize, pretty: bool) -> Result<(), RuntimeError> {
    let text = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    println!("{}", text.map_err(|e| RuntimeError::Usage(e.to_string()))?);
    Ok(())
}

pub fn list(context: &Context, format: &str, quiet: bool) -> Result<(), RuntimeError> {
    let states: Vec<StateOutput> = context
        .dir
        .ids()
        .iter()
        .filter_map(|id| context.dir.load(id).ok())
        .map(|record| record.output(&context.dir))
        .collect();
    if quiet {
        states.iter().for_each(|s| println!("{}", s.id));
        return Ok(());
    }
    if format == "json" {
        return print_json(&states, false);
    }
    println!(
        "{:<12} {:<10} {:<10} {:<40} {:<32} OWNER",
        "ID", "PID", "STATUS", "BUNDLE", "CREATED"
    );
    for s in &states {
        println!(
            "{:<12} {:<10} {:<10} {:<40} {:<32} {}",
            s.id,
            s.pid,
            s.status,
            s.bundle.display(),
            s.created,
            if s.owner.is_empty() { "root" } else { &s.owner }
        );
    }
    Ok(())
}

// ANCHOR: ps
/// The container's processes are those of its cgroup: `--format json` prints their host
/// pids (what containerd reads), `table` the lines of ps(1) for them.
pub fn ps(context: &Context, id: &str, format: &str, ps_args: &[String]) -> Result<(), RuntimeError> {
    let record = context.dir.load(id)?;
    let pids: Vec<i32> = record.cgroup()?.processes()?.iter().map(|p| p.as_raw()).collect();
    if format == "json" {
        return print_json(&pids, false);
    }
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let output = Command::new("ps")
        .args(&args)
        .output()
        .map_err(|e| RuntimeError::Usage(format!("running ps {}: {e}", args.join(" "))))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let Some(pid_column) = header.split_whitespace().position(|c| c == "PID") else {
        return Err(RuntimeError::Usage(
            "ps printed no PID column: include it in the ps options".into(),
        ));
    };
    let wanted: BTreeSet<i32> = pids.into_iter().collect();
    println!("{header}");
    for line in lines {
        let pid = line.split_whitespace().nth(pid_column).and_then(|p| p.parse().ok());
        if pid.is_some_and(|p| wanted.contains(&p)) {
            println!("{line}");
        }
    }
    Ok(())
}
// ANCHOR_END: ps

/// What containerd 2.x asks with `features`, in runc's format: which spec versions, hooks,
/// namespaces and cgroup versions this runtime handles.
pub fn features() -> Result<(), RuntimeError> {
    let features = serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "poststart", "poststop"],
        "mountOptions": ["ro", "rw", "nosuid", "nodev", "noexec", "bind", "rbind", "private", "rprivate", "relatime"],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
            "cgroup": { "v1": true, "v2": true, "systemd": false, "systemdUser": false },
            "seccomp": { "enabled": false },
            "apparmor": { "enabled": false },
            "selinux": { "enabled": false },
        },
        "annotations": { "org.keel.runtime": "step04-cgroups" },
    });
    print_json(&features, true)
}
