//! From the spec's `linux.seccomp` to BPF programs the kernel runs on every system call.
//!
//! seccompiler (rust-vmm's, used by Firecracker; pure Rust, no libseccomp) compiles a filter
//! with one action for the calls it names and one for the rest. An OCI profile has several
//! actions (allow most, `EPERM` for some, `ENOSYS` for `clone3`...), so keel compiles one
//! program per action: each answers its own action for its own calls and "allow" otherwise,
//! and the program of the default action allows every call the profile names. The kernel runs
//! every program installed and keeps the strictest answer (kill, then trap, errno, trace, log,
//! allow), which gives each named call its action and every other call the default.

use std::collections::BTreeMap;
use std::str::FromStr;

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompOperator};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp: action {0} is not supported by keel (use SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_ACT_KILL, SCMP_ACT_KILL_PROCESS, SCMP_ACT_TRAP, SCMP_ACT_LOG or SCMP_ACT_TRACE)")]
    UnsupportedAction(LinuxSeccompAction),
    #[error("seccomp: {name}: {source}")]
    Rule {
        name: String,
        source: seccompiler::BackendError,
    },
    #[error("seccomp: this machine's architecture {0} has no seccomp support in keel")]
    Architecture(&'static str),
    #[error("seccomp: compiling the filter: {0}")]
    Compile(seccompiler::BackendError),
    #[error("seccomp: the profile names no system call and denies all of them: nothing could run")]
    DeniesEverything,
}

/// A call's rules in one program: `None` when it matches whatever its arguments.
type Rules = BTreeMap<i64, Option<Vec<SeccompRule>>>;

/// The programs to install, in order, as the kernel's own `struct sock_filter`s.
pub fn programs(seccomp: &LinuxSeccomp) -> Result<Vec<Vec<libc::sock_filter>>, SeccompError> {
    let arch =
        TargetArch::try_from(std::env::consts::ARCH).map_err(|_| SeccompError::Architecture(std::env::consts::ARCH))?;
    let default = action(seccomp.default_action(), seccomp.default_errno_ret())?;
    // Calls grouped by their action (SeccompAction has no Ord: a short list, searched).
    let mut by_action: Vec<(SeccompAction, Rules)> = Vec::new();
    let mut named = Rules::new();
    for syscall in seccomp.syscalls().iter().flatten() {
        let act = action(syscall.action(), syscall.errno_ret())?;
        for name in syscall.names() {
            // As runc and libseccomp: a call this architecture does not have is skipped
            // (Docker's profile lists calls of every architecture).
            let Ok(number) = syscalls::Sysno::from_str(name) else {
                continue;
            };
            let rule = rule(name, syscall.args().as_deref().unwrap_or_default())?;
            add(&mut named, number.id().into(), rule.clone());
            if act != default {
                let index = match by_action.iter().position(|(a, _)| *a == act) {
                    Some(index) => index,
                    None => {
                        by_action.push((act.clone(), Rules::new()));
                        by_action.len() - 1
                    }
                };
                add(&mut by_action[index].1, number.id().into(), rule);
            }
        }
    }
    let mut filters = Vec::new();
    if default != SeccompAction::Allow {
        if named.is_empty() {
            return Err(SeccompError::DeniesEverything);
        }
        filters.push(SeccompFilter::new(finish(named), default, SeccompAction::Allow, arch));
    }
    for (act, rules) in by_action {
        if act != SeccompAction::Allow {
            filters.push(SeccompFilter::new(finish(rules), SeccompAction::Allow, act, arch));
        }
    }
    filters
        .into_iter()
        .map(|filter| {
            let filter = filter.map_err(SeccompError::Compile)?;
            let program: BpfProgram = filter.try_into().map_err(SeccompError::Compile)?;
            Ok(program
                .into_iter()
                .map(|i| libc::sock_filter {
                    code: i.code,
                    jt: i.jt,
                    jf: i.jf,
                    k: i.k,
                })
                .collect())
        })
        .collect()
}

/// Adds a rule for a call; a call that matches unconditionally stays so.
fn add(rules: &mut Rules, number: i64, rule: Option<SeccompRule>) {
    match (rules.get_mut(&number), rule) {
        (Some(None), _) => {}
        (Some(existing), None) => *existing = None,
        (Some(Some(list)), Some(rule)) => list.push(rule),
        (None, rule) => {
            rules.insert(number, rule.map(|r| vec![r]));
        }
    }
}

fn finish(rules: Rules) -> BTreeMap<i64, Vec<SeccompRule>> {
    // seccompiler's form: an empty list of rules matches the call whatever its arguments.
    rules.into_iter().map(|(n, r)| (n, r.unwrap_or_default())).collect()
}

fn action(action: LinuxSeccompAction, errno: Option<u32>) -> Result<SeccompAction, SeccompError> {
    Ok(match action {
        LinuxSeccompAction::ScmpActAllow => SeccompAction::Allow,
        LinuxSeccompAction::ScmpActErrno => SeccompAction::Errno(errno.unwrap_or(libc::EPERM as u32)),
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => SeccompAction::KillThread,
        LinuxSeccompAction::ScmpActKillProcess => SeccompAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => SeccompAction::Trap,
        LinuxSeccompAction::ScmpActLog => SeccompAction::Log,
        LinuxSeccompAction::ScmpActTrace => SeccompAction::Trace(errno.unwrap_or(libc::EPERM as u32)),
        other @ LinuxSeccompAction::ScmpActNotify => return Err(SeccompError::UnsupportedAction(other)),
    })
}

/// The conditions on a call's arguments, all of which must hold; `None` for none.
fn rule(name: &str, args: &[LinuxSeccompArg]) -> Result<Option<SeccompRule>, SeccompError> {
    if args.is_empty() {
        return Ok(None);
    }
    let error = |source| SeccompError::Rule {
        name: name.to_owned(),
        source,
    };
    let conditions = args
        .iter()
        .map(|arg| {
            // OCI's masked equality is `(arg & value) == valueTwo`; seccompiler's takes the
            // mask in the operator and compares with the value.
            let (op, value) = match arg.op() {
                LinuxSeccompOperator::ScmpCmpNe => (SeccompCmpOp::Ne, arg.value()),
                LinuxSeccompOperator::ScmpCmpLt => (SeccompCmpOp::Lt, arg.value()),
                LinuxSeccompOperator::ScmpCmpLe => (SeccompCmpOp::Le, arg.value()),
                LinuxSeccompOperator::ScmpCmpEq => (SeccompCmpOp::Eq, arg.value()),
                LinuxSeccompOperator::ScmpCmpGe => (SeccompCmpOp::Ge, arg.value()),
                LinuxSeccompOperator::ScmpCmpGt => (SeccompCmpOp::Gt, arg.value()),
                LinuxSeccompOperator::ScmpCmpMaskedEq => {
                    (SeccompCmpOp::MaskedEq(arg.value()), arg.value_two().unwrap_or(0))
                }
            };
            let index = u8::try_from(arg.index()).unwrap_or(u8::MAX);
            SeccompCondition::new(index, SeccompCmpArgLen::Qword, op, value).map_err(error)
        })
        .collect::<Result<Vec<_>, _>>()?;
    SeccompRule::new(conditions).map(Some).map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).expect("profile")
    }

    #[test]
    fn one_program_per_action_other_than_allow() {
        let seccomp = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
                {"names":["read","write","exit_group"],"action":"SCMP_ACT_ALLOW"},
                {"names":["clone3"],"action":"SCMP_ACT_ERRNO","errnoRet":38},
                {"names":["no_such_call"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        assert_eq!(programs(&seccomp).expect("programs").len(), 2);
        let deny_list = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["keyctl"],"action":"SCMP_ACT_ERRNO"}]}"#,
        );
        assert_eq!(programs(&deny_list).expect("programs").len(), 1);
    }

    #[test]
    fn notify_and_an_empty_allow_list_are_refused() {
        let notify = profile(r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#);
        assert!(matches!(programs(&notify), Err(SeccompError::UnsupportedAction(_))));
        let nothing = profile(r#"{"defaultAction":"SCMP_ACT_ERRNO"}"#);
        assert!(matches!(programs(&nothing), Err(SeccompError::DeniesEverything)));
    }

    #[test]
    fn an_argument_index_beyond_six_is_an_error_naming_the_call() {
        let bad = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["clone"],"action":"SCMP_ACT_ERRNO",
                "args":[{"index":9,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
        );
        let error = programs(&bad).expect_err("index 9").to_string();
        assert!(error.contains("clone"), "{error}");
    }
}
