//! Which calls a container may make: keel's default profile, and the profiles users give in
//! Docker's format (`--security-opt seccomp=PROFILE.json`, the same files `docker run` takes).
//!
//! Docker's own default allows some 370 calls by name and refuses the rest. keel's default is
//! the same idea written the other way round, short enough to read in one screen: every call
//! is allowed but those below, which refuse with `EPERM` unless the container was given the
//! capability that makes them legitimate (as Docker's profile does with `includes.caps`).

use oci_spec::runtime::{
    Capabilities, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompBuilder, LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};
use serde::Deserialize;

// ANCHOR: denied
/// The calls keel's default profile refuses, and the capability that lets a container have
/// them after all (`None`: never).
pub const DENIED: &[(&[&str], Option<Capability>)] = &[
    // The kernel's keyrings are not namespaced: keys of the host and other containers.
    (&["keyctl", "add_key", "request_key"], None),
    // Replacing or changing the running kernel.
    (&["kexec_load", "kexec_file_load", "reboot"], Some(Capability::SysBoot)),
    (
        &[
            "init_module",
            "finit_module",
            "delete_module",
            "create_module",
            "query_module",
            "get_kernel_syms",
        ],
        Some(Capability::SysModule),
    ),
    // Large kernel attack surfaces most programs never need.
    (
        &["bpf", "perf_event_open", "fanotify_init", "lookup_dcookie"],
        Some(Capability::SysAdmin),
    ),
    (&["io_uring_setup", "io_uring_enter", "io_uring_register"], None),
    (
        &["userfaultfd", "process_vm_readv", "process_vm_writev", "kcmp"],
        Some(Capability::SysPtrace),
    ),
    // Mounts and namespaces: new user namespaces would give root-like powers back.
    (
        &[
            "mount",
            "umount2",
            "pivot_root",
            "unshare",
            "setns",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "move_mount",
            "open_tree",
            "mount_setattr",
            "quotactl",
            "swapon",
            "swapoff",
            "name_to_handle_at",
        ],
        Some(Capability::SysAdmin),
    ),
    // Opening any file of the filesystem by its handle: the "shocker" escape of 2014.
    (&["open_by_handle_at"], Some(Capability::DacReadSearch)),
    // The host's clock, accounting, raw ports, kernel log and terminals.
    (
        &["settimeofday", "clock_settime", "clock_adjtime"],
        Some(Capability::SysTime),
    ),
    (&["acct"], Some(Capability::SysPacct)),
    (&["iopl", "ioperm"], Some(Capability::SysRawio)),
    (&["syslog"], Some(Capability::Syslog)),
    (&["vhangup"], Some(Capability::SysTtyConfig)),
    (
        &["nfsservctl", "uselib", "sysfs", "_sysctl", "ustat", "vm86", "vm86old"],
        None,
    ),
];
// ANCHOR_END: denied

/// `clone`'s flags that make namespaces: refused, as `unshare` is, without CAP_SYS_ADMIN.
const NAMESPACE_FLAGS: [libc::c_int; 7] = [
    libc::CLONE_NEWNS,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWCGROUP,
];

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error(
        "seccomp profile: {0} (expected Docker's or the OCI format: {{\"defaultAction\": ..., \"syscalls\": [...]}})"
    )]
    Json(#[from] serde_json::Error),
    #[error("seccomp profile: {0}")]
    Spec(#[from] oci_spec::OciSpecError),
}

/// keel's default for a container holding `capabilities`.
pub fn default_profile(capabilities: &Capabilities) -> Result<LinuxSeccomp, ProfileError> {
    let eperm = |names: Vec<String>, args: Vec<LinuxSeccompArg>| {
        let mut call = LinuxSyscallBuilder::default()
            .names(names)
            .action(LinuxSeccompAction::ScmpActErrno)
            .errno_ret(libc::EPERM as u32);
        if !args.is_empty() {
            call = call.args(args);
        }
        call.build()
    };
    let mut syscalls: Vec<LinuxSyscall> = Vec::new();
    for (names, unless) in DENIED {
        if unless.is_none_or(|cap| !capabilities.contains(&cap)) {
            syscalls.push(eperm(names.iter().map(|n| n.to_string()).collect(), Vec::new())?);
        }
    }
    // Device nodes: a container's devices are the few step 03 puts in /dev. mknod of a
    // character or block device (the host's disk, its memory...) is refused, even with
    // CAP_MKNOD, which Docker's default set keeps for fifos and sockets. (mode is mknod's
    // second argument and mknodat's third.)
    for (call, index) in [("mknod", 1usize), ("mknodat", 2)] {
        for kind in [libc::S_IFCHR, libc::S_IFBLK] {
            let kind_is = LinuxSeccompArgBuilder::default()
                .index(index)
                .value(u64::from(libc::S_IFMT))
                .value_two(u64::from(kind))
                .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                .build()?;
            syscalls.push(eperm(vec![call.into()], vec![kind_is])?);
        }
    }
    if !capabilities.contains(&Capability::SysAdmin) {
        for flag in NAMESPACE_FLAGS {
            let flag = flag as u64;
            let masked = LinuxSeccompArgBuilder::default()
                .index(0usize)
                .value(flag)
                .value_two(flag)
                .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                .build()?;
            syscalls.push(eperm(vec!["clone".into()], vec![masked])?);
        }
        // clone3 passes its flags in memory, where no filter can read them: "not
        // implemented" makes the C library fall back to clone, which the rules above check.
        syscalls.push(
            LinuxSyscallBuilder::default()
                .names(vec!["clone3".to_owned()])
                .action(LinuxSeccompAction::ScmpActErrno)
                .errno_ret(libc::ENOSYS as u32)
                .build()?,
        );
    }
    Ok(LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .syscalls(syscalls)
        .build()?)
}

/// Docker's profile format: the OCI one plus rules that apply only with (or without) some
/// capabilities or on some architectures.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerProfile {
    default_action: LinuxSeccompAction,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    syscalls: Vec<DockerRule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerRule {
    #[serde(default)]
    names: Vec<String>,
    /// The older single-name form.
    #[serde(default)]
    name: Option<String>,
    action: LinuxSeccompAction,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<LinuxSeccompArg>>,
    #[serde(default)]
    includes: Condition,
    #[serde(default)]
    excludes: Condition,
}

#[derive(Deserialize, Default)]
struct Condition {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
}

/// Docker's name for this machine's architecture, as profiles write it.
fn docker_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn holds(capabilities: &Capabilities, name: &str) -> bool {
    crate::capabilities::parse(name).is_ok_and(|cap| capabilities.contains(&cap))
}

/// A profile file's JSON (Docker's format, which includes the OCI one), for a container
/// holding `capabilities`: rules whose conditions do not hold are left out, as dockerd does.
pub fn parse_profile(json: &str, capabilities: &Capabilities) -> Result<LinuxSeccomp, ProfileError> {
    let profile: DockerProfile = serde_json::from_str(json)?;
    let arch = docker_arch();
    let mut syscalls = Vec::new();
    for rule in profile.syscalls {
        let included = rule.includes.caps.iter().all(|c| holds(capabilities, c))
            && (rule.includes.arches.is_empty() || rule.includes.arches.iter().any(|a| a == arch));
        let excluded =
            rule.excludes.caps.iter().any(|c| holds(capabilities, c)) || rule.excludes.arches.iter().any(|a| a == arch);
        if !included || excluded {
            continue;
        }
        let mut names = rule.names;
        names.extend(rule.name);
        let mut call = LinuxSyscallBuilder::default().names(names).action(rule.action);
        if let Some(errno) = rule.errno_ret {
            call = call.errno_ret(errno);
        }
        if let Some(args) = rule.args.filter(|a| !a.is_empty()) {
            call = call.args(args);
        }
        syscalls.push(call.build()?);
    }
    let mut seccomp = LinuxSeccompBuilder::default()
        .default_action(profile.default_action)
        .syscalls(syscalls);
    if let Some(errno) = profile.default_errno_ret {
        seccomp = seccomp.default_errno_ret(errno);
    }
    Ok(seccomp.build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_caps() -> Capabilities {
        crate::capabilities::DOCKER_DEFAULT.into_iter().collect()
    }

    fn names(seccomp: &LinuxSeccomp) -> Vec<String> {
        seccomp
            .syscalls()
            .iter()
            .flatten()
            .flat_map(|s| s.names().clone())
            .collect()
    }

    #[test]
    fn the_default_refuses_keyrings_and_namespaces_unless_sys_admin_is_given() {
        let default = default_profile(&default_caps()).expect("profile");
        let denied = names(&default);
        for call in ["keyctl", "bpf", "unshare", "mount", "clone", "clone3", "kexec_load"] {
            assert!(denied.iter().any(|n| n == call), "{call} should be refused");
        }
        let mut caps = default_caps();
        caps.insert(Capability::SysAdmin);
        let admin = names(&default_profile(&caps).expect("profile"));
        assert!(admin.iter().all(|n| n != "unshare" && n != "clone"), "{admin:?}");
        assert!(admin.iter().any(|n| n == "keyctl"), "keyrings stay refused");
        assert!(crate::seccomp::compile::programs(&default).is_ok());
    }

    #[test]
    fn a_docker_profile_keeps_the_rules_for_the_containers_capabilities() {
        let json = r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,"archMap":[],"syscalls":[
            {"names":["read","write"],"action":"SCMP_ACT_ALLOW"},
            {"names":["mount"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]}},
            {"names":["chown"],"action":"SCMP_ACT_ALLOW","excludes":{"caps":["CAP_SYS_ADMIN"]}},
            {"name":"arch_prctl","action":"SCMP_ACT_ALLOW","includes":{"arches":["amd64","arm64"]}}]}"#;
        let profile = parse_profile(json, &default_caps()).expect("profile");
        assert_eq!(profile.default_errno_ret(), Some(1));
        let kept = names(&profile);
        assert!(
            kept.contains(&"chown".to_owned()) && !kept.contains(&"mount".to_owned()),
            "{kept:?}"
        );
        assert!(kept.contains(&"arch_prctl".to_owned()));
        let error = parse_profile("{\"syscalls\": 3}", &default_caps()).expect_err("bad");
        assert!(error.to_string().contains("seccomp profile"), "{error}");
    }
}
