//! CVE-2019-5736, the other half: `exec` is not dumpable while it enters the container.
//!
//! `exec`'s child is born in the container's PID namespace and stays the runtime until it
//! execs the command: in that window a process of the container sees it in `/proc`. Once
//! the child has taken the container's capabilities (so the kernel's "no more privileged
//! than you" ptrace rule no longer protects it), only its dumpable flag stands between the
//! container and the child's `/proc/PID/exe`, `/proc/PID/fd/*` (the runtime's descriptors)
//! and `/proc/PID/mem`. runc clears it for the same reason. `execve` of the command sets it
//! again, so the command itself is an ordinary process.
//!
//! Only for `exec`: `create`'s child is alone in namespaces it has just made.

/// **For tests only**: set, `exec` stays dumpable, so a test can show the container
/// opening the entering process's `/proc/PID/exe`. Never set it otherwise.
pub const TEST_ONLY_SWITCH: &str = "KEEL_TEST_ONLY_DUMPABLE_EXEC";

// ANCHOR: apply
/// Clears this process's dumpable flag; the child `exec` clones inherits it.
pub fn apply() -> Result<(), nix::errno::Errno> {
    if std::env::var_os(TEST_ONLY_SWITCH).is_some() {
        return Ok(());
    }
    nix::sys::prctl::set_dumpable(false)
}
// ANCHOR_END: apply
