//! `kill [--all] ID SIGNAL`: a signal to the container's first process, or with `--all` to
//! every process in its cgroup (the cgroup knows them all, whatever namespace they are in).

use nix::errno::Errno;
use nix::sys::signal::{kill as send, Signal};
use nix::unistd::Pid;
use std::str::FromStr;

use super::cli::Context;
use super::state::Status;
use super::RuntimeError;

/// `9`, `KILL`, `SIGKILL` and `sigkill` are the same signal.
pub fn parse_signal(text: &str) -> Result<Signal, RuntimeError> {
    let bad = || {
        RuntimeError::Usage(format!(
            "unknown signal {text:?}: use a number (9) or a name (KILL, SIGTERM)"
        ))
    };
    if let Ok(number) = text.parse::<i32>() {
        return Signal::try_from(number).map_err(|_| bad());
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| bad())
}

// ANCHOR: kill
pub fn kill(context: &Context, id: &str, signal: &str, all: bool) -> Result<(), RuntimeError> {
    let signal = parse_signal(signal)?;
    let record = context.dir.load(id)?;
    let status = record.status(&context.dir);
    if all {
        for pid in record.cgroup()?.processes()? {
            // A process may end between the listing and the signal: that is not an error.
            let _ = send(pid, signal);
        }
    } else {
        if status == Status::Stopped {
            return Err(RuntimeError::NotRunning(id.to_owned()));
        }
        match send(Pid::from_raw(record.pid), signal) {
            Ok(()) => {}
            Err(Errno::ESRCH) => return Err(RuntimeError::NotRunning(id.to_owned())),
            Err(errno) => {
                return Err(RuntimeError::Usage(format!(
                    "sending {signal} to {}: {}",
                    record.pid,
                    errno.desc()
                )))
            }
        }
    }
    // `kill KILL && delete` must work: the kernel ends the process after kill(2) returns,
    // so wait for it. A frozen process on cgroup v1 only dies once thawed: no wait there.
    if signal == Signal::SIGKILL && status != Status::Paused {
        record.wait_until_ended();
    }
    Ok(())
}
// ANCHOR_END: kill

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_number_or_name() {
        for text in ["9", "KILL", "SIGKILL", "sigkill"] {
            assert_eq!(parse_signal(text).ok(), Some(Signal::SIGKILL), "{text}");
        }
        assert_eq!(parse_signal("15").ok(), Some(Signal::SIGTERM));
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("99").is_err());
    }
}
