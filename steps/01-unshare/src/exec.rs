//! The last thing the child does: `execve` the container's command.
//!
//! Everything is prepared in the parent (argument and environment arrays, the list of places
//! to look for the program along the container's `PATH`), because between `clone` and `exec`
//! the child may not allocate. The search happens in the child, after any change of root, so
//! it finds the container's programs, not the host's.

use nix::errno::Errno;
use nix::sys::signal::{sigprocmask, SigmaskHow};
use nix::unistd::Uid;
use oci_spec::runtime::Spec;
use std::ffi::{CString, NulError};
use std::os::raw::c_char;

use crate::child_error::{ChildError, Failure};
use crate::stage::ChildContext;

/// The `PATH` a container gets when its spec sets none (the one docker and runc use).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, thiserror::Error)]
pub enum ExecPlanError {
    #[error("the spec has no process to run")]
    NoProcess,
    #[error("no command given: say what to run after the flags, e.g. `run -- sh -c 'echo hi'`")]
    NoCommand,
    #[error("the command or its environment contains a NUL byte: {0}")]
    Nul(#[from] NulError),
}

/// The command of `spec.process`, ready to be executed without allocating.
pub struct ExecPlan {
    program: CString,
    candidates: Vec<CString>,
    cwd: CString,
    /// `process.user`'s uid when it is not root: the capabilities stage switches to it; this
    /// only checks, so that a launch without that stage fails instead of running as root.
    uid: Option<Uid>,
    /// Check that the working directory is inside the root (see [`crate::leaked_fds`]).
    check_cwd: bool,
    // The CStrings own the bytes the pointer arrays below point into; neither moves after
    // construction, so the pointers stay valid for as long as the plan lives.
    _argv: Vec<CString>,
    _envp: Vec<CString>,
    argv_ptrs: Vec<*const c_char>,
    envp_ptrs: Vec<*const c_char>,
}

impl ExecPlan {
    pub fn from_spec(spec: &Spec) -> Result<Self, ExecPlanError> {
        let process = spec.process().as_ref().ok_or(ExecPlanError::NoProcess)?;
        let args = process.args().as_deref().unwrap_or_default();
        let program = args.first().ok_or(ExecPlanError::NoCommand)?;
        let env = process.env().as_deref().unwrap_or_default();
        let path = env
            .iter()
            .find_map(|kv| kv.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH);
        let candidates = candidates(program, path)
            .into_iter()
            .map(CString::new)
            .collect::<Result<_, _>>()?;
        let argv: Vec<CString> = args
            .iter()
            .map(|a| CString::new(a.as_str()))
            .collect::<Result<_, _>>()?;
        let envp: Vec<CString> = env.iter().map(|e| CString::new(e.as_str())).collect::<Result<_, _>>()?;
        let argv_ptrs = null_terminated(&argv);
        let envp_ptrs = null_terminated(&envp);
        let uid = process.user().uid();
        Ok(Self {
            program: CString::new(program.as_str())?,
            candidates,
            cwd: CString::new(process.cwd().as_os_str().as_encoded_bytes())?,
            uid: (uid != 0).then(|| Uid::from_raw(uid)),
            check_cwd: !crate::leaked_fds::measures_off(),
            _argv: argv,
            _envp: envp,
            argv_ptrs,
            envp_ptrs,
        })
    }

    /// In the child: enter the working directory, restore the signal mask, and replace this
    /// process with the command. Returns only if that failed.
    pub fn exec(&self, ctx: &ChildContext) -> ChildError {
        // The user was taken by the capabilities stage (crate::capabilities), so that
        // entering the working directory is checked as that user. Never run as root by mistake.
        if self.uid.is_some_and(|uid| nix::unistd::getuid() != uid) {
            return ChildError::setup(
                Errno::EPERM,
                &[b"process.user was not applied: the launch has no capabilities stage"],
            );
        }
        if let Err(errno) = nix::unistd::chdir(self.cwd.as_c_str()) {
            return ChildError::setup(
                errno,
                &[b"entering working directory ", self.cwd.as_bytes(), b": chdir"],
            );
        }
        // A cwd of /proc/self/fd/N names a descriptor still open until exec (CVE-2024-21626).
        if self.check_cwd {
            if let Err(error) = crate::leaked_fds::check_cwd(self.cwd.as_bytes()) {
                return error;
            }
        }
        // The tool blocked the signals it forwards; the command must receive them normally.
        if let Err(errno) = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&ctx.original_mask), None) {
            return ChildError::setup(errno, &[b"restoring the signal mask: sigprocmask"]);
        }
        // Like execvp: a candidate that exists but may not be executed (EACCES) is remembered
        // while the search goes on; any other failure than "not there" ends the search.
        let mut failure = Errno::ENOENT;
        for candidate in &self.candidates {
            // SAFETY: execve only reads the NUL-terminated strings and the NULL-terminated
            // pointer arrays, all owned by `self` and alive for this call. nix's execve would
            // allocate those arrays here, which the child must not do.
            unsafe {
                libc::execve(candidate.as_ptr(), self.argv_ptrs.as_ptr(), self.envp_ptrs.as_ptr());
            }
            match Errno::last() {
                Errno::ENOENT | Errno::ENOTDIR => {}
                Errno::EACCES => failure = Errno::EACCES,
                other => {
                    failure = other;
                    break;
                }
            }
        }
        ChildError::new(Failure::Exec, failure, &[b"exec \"", self.program.as_bytes(), b"\""])
    }
}

impl ExecPlan {
    /// In the child, before waiting to be started: fails as `exec` would if no candidate
    /// exists, so that a missing command is reported when the container is created.
    pub fn find(&self) -> Result<(), ChildError> {
        let found = self
            .candidates
            .iter()
            .any(|c| nix::unistd::access(c.as_c_str(), nix::unistd::AccessFlags::F_OK).is_ok());
        if found {
            return Ok(());
        }
        Err(ChildError::new(
            Failure::Exec,
            Errno::ENOENT,
            &[
                b"exec \"",
                self.program.as_bytes(),
                b"\": executable file not found in $PATH",
            ],
        ))
    }
}

/// Where to look for `program`: itself when it names a path, else each `PATH` entry.
fn candidates(program: &str, path: &str) -> Vec<String> {
    if program.contains('/') {
        return vec![program.to_owned()];
    }
    path.split(':')
        .map(|dir| if dir.is_empty() { "." } else { dir })
        .map(|dir| format!("{}/{program}", dir.trim_end_matches('/')))
        .collect()
}

fn null_terminated(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_name_is_searched_along_path() {
        assert_eq!(candidates("sh", "/usr/bin:/bin/"), ["/usr/bin/sh", "/bin/sh"]);
    }

    #[test]
    fn a_path_is_used_as_given() {
        assert_eq!(candidates("./run.sh", "/bin"), ["./run.sh"]);
        assert_eq!(candidates("/bin/sh", "/usr/bin"), ["/bin/sh"]);
    }

    #[test]
    fn an_empty_path_entry_means_the_working_directory() {
        assert_eq!(candidates("tool", ":/bin"), ["./tool", "/bin/tool"]);
    }
}
