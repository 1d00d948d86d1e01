//! Forwarding signals and waiting for a child, without signal handlers.
//!
//! The signals to forward and SIGCHLD are blocked before the child is created, so none can be
//! lost, and taken one at a time with `sigwait`. The same loop serves the tool waiting for its
//! container and, in step 02, the container's init waiting for the command.

use nix::errno::Errno;
use nix::sys::signal::{kill, sigaction, sigprocmask, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// The signals a user sends to the tool that belong to the container: the ones docker's
/// `--sig-proxy` and tini pass on.
pub const FORWARDED: [Signal; 7] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

fn supervised() -> SigSet {
    let mut set = SigSet::empty();
    for signal in FORWARDED {
        set.add(signal);
    }
    set.add(Signal::SIGCHLD);
    set
}

/// Blocks the forwarded signals and SIGCHLD; returns the mask to restore afterwards.
///
/// Their dispositions are reset to the default too: a signal set to "ignore" (as a shell
/// does for SIGINT and SIGQUIT in background jobs) is discarded by the kernel rather than
/// left pending, so `sigwait` would never see it; and exec keeps "ignore", so the command
/// would not get it either. Blocked, the default action cannot fire here.
pub fn block() -> Result<SigSet, Errno> {
    let mut original = SigSet::empty();
    let set = supervised();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut original))?;
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for signal in set.iter() {
        // SAFETY: SIG_DFL installs no handler, so no code of ours can run in signal context.
        unsafe { sigaction(signal, &default) }?;
    }
    Ok(original)
}

/// Puts back a mask returned by [`block`].
pub fn restore(original: &SigSet) {
    // Restoring a valid mask cannot fail; and there is nothing better to do if it did.
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(original), None);
}

// ANCHOR: supervise
/// Passes forwarded signals on to `child` and reaps every child that ends, until `child`
/// itself has ended; returns how it ended. The signals must be blocked (see [`block`]).
pub fn supervise(child: Pid) -> Result<WaitStatus, Errno> {
    let set = supervised();
    loop {
        // Reap first: SIGCHLD may have arrived before this loop, and several exits can share
        // one SIGCHLD.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(status @ (WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, _, _))) if pid == child => {
                    return Ok(status);
                }
                Ok(WaitStatus::StillAlive) => break,
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                Err(errno) => return Err(errno),
            }
        }
        match set.wait()? {
            Signal::SIGCHLD => continue,
            signal => match kill(child, signal) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(errno) => return Err(errno),
            },
        }
    }
}
// ANCHOR_END: supervise

/// The exit status a shell would show for `status`: the code, or 128+N for signal N.
pub fn exit_code(status: WaitStatus) -> i32 {
    match status {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, signal, _) => 128 + signal as i32,
        _ => 125,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_death_becomes_128_plus_the_signal() {
        let pid = Pid::from_raw(1);
        assert_eq!(exit_code(WaitStatus::Signaled(pid, Signal::SIGKILL, false)), 137);
        assert_eq!(exit_code(WaitStatus::Signaled(pid, Signal::SIGTERM, false)), 143);
        assert_eq!(exit_code(WaitStatus::Exited(pid, 3)), 3);
    }
}
