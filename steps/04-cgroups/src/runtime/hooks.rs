//! OCI hooks: programs the runtime runs at fixed points of a container's life, with the
//! container's state as JSON on their stdin (how CNI plugins and GPU toolkits plug in).
//! `prestart` and `createRuntime` run during `create` once the container's process exists
//! and before it runs anything; `poststart` after `start`; `poststop` at `delete`. A failing
//! hook fails `create`; after `start` a failure is only reported, as the spec says.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use step03_mount_ns::step02_pid_ns::step01_unshare::oci_spec::runtime::Hook;

use super::RuntimeError;

/// How long a hook may run when it gives no timeout of its own.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs each hook in turn with `state` on its stdin; stops at the first failure.
pub fn run_all(hooks: &[Hook], state: &[u8]) -> Result<(), RuntimeError> {
    hooks.iter().try_for_each(|hook| run_one(hook, state))
}

fn run_one(hook: &Hook, state: &[u8]) -> Result<(), RuntimeError> {
    let path = hook.path().display().to_string();
    let fail = |message: String| RuntimeError::Hook {
        path: path.clone(),
        message,
    };
    let args = hook.args().clone().unwrap_or_default();
    let mut command = Command::new(hook.path());
    if let Some((arg0, rest)) = args.split_first() {
        command.arg0(arg0).args(rest);
    }
    command.env_clear();
    for pair in hook.env().iter().flatten() {
        if let Some((key, value)) = pair.split_once('=') {
            command.env(key, value);
        }
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| fail(format!("cannot run it: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine.
        let _ = stdin.write_all(state);
    }
    let timeout = hook
        .timeout()
        .and_then(|t| u64::try_from(t).ok())
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs);
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(fail(format!("it failed ({status})"))),
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!("it did not finish within {timeout:?}")));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(fail(format!("waiting for it: {e}"))),
        }
    }
}
