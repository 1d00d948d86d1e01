//! `exec`: another process in a running container. Nothing is created: the new process joins
//! the container's namespaces by path (`/proc/<pid>/ns/*`, the same mechanism Kubernetes
//! uses to put a pod's containers in one network) and its cgroup, then execs — the same
//! launch as `create`, with different stages.

use clap::Args;
use nix::unistd::Pid;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use step03_mount_ns::step02_pid_ns::step01_unshare;
use step03_mount_ns::step02_pid_ns::step01_unshare::capabilities;
use step03_mount_ns::step02_pid_ns::step01_unshare::child_error::ChildError;
use step03_mount_ns::step02_pid_ns::step01_unshare::launch::{self, Detached};
use step03_mount_ns::step02_pid_ns::step01_unshare::oci_spec::runtime::{
    Capabilities, LinuxNamespaceType, Process, Spec, User,
};
use step03_mount_ns::step02_pid_ns::step01_unshare::signals;
use step03_mount_ns::step02_pid_ns::step01_unshare::stage::{ChildContext, Stage, StageError, StageOrder};

use super::cli::Context;
use super::lifecycle::write_pid_file;
use super::not_dumpable;
use super::state::{Record, Status};
use super::terminal::Terminal;
use super::test_pause::TestPause;
use super::RuntimeError;
use crate::cgroups::Cgroup;
use crate::limits::{stage_error, Join};

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The process to run, as an OCI `process` JSON object (containerd's way)
    #[arg(short, long, value_name = "FILE")]
    pub process: Option<PathBuf>,
    /// Return once the process runs, instead of waiting for it
    #[arg(short, long)]
    pub detach: bool,
    /// Write the process's pid here (no newline)
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// A unix socket to which the pty master is sent (with --tty or process.terminal)
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Give the process a terminal
    #[arg(short, long)]
    pub tty: bool,
    /// Working directory inside the container
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// Add an environment variable (KEY=VALUE)
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// UID[:GID] to run as
    #[arg(short, long, value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// Pass descriptors 3..3+N-1 on to the process
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub preserve_fds: u32,
    /// Give the process a capability beyond the container's (CAP_NET_ADMIN...; repeatable)
    #[arg(short = 'c', long = "cap", value_name = "CAP")]
    pub cap: Vec<String>,
    /// Set no_new_privs for the process, whatever the container's spec says
    #[arg(long)]
    pub no_new_privs: bool,
    pub id: String,
    /// The command, when no --process is given
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// The name of a namespace type under /proc/PID/ns.
fn proc_name(typ: LinuxNamespaceType) -> &'static str {
    match typ {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

// ANCHOR: exec_spec
/// The container's spec turned into one for the new process: every namespace the container
/// has becomes one to join, by the path of its first process.
fn exec_spec(record: &Record, process: Process) -> Spec {
    let mut spec = record.config.clone();
    spec.set_process(Some(process));
    spec.set_root(None);
    spec.set_mounts(None);
    spec.set_hooks(None);
    spec.set_hostname(None);
    if let Some(mut linux) = spec.linux().clone() {
        let namespaces = linux.namespaces().clone().unwrap_or_default();
        let joined = namespaces
            .into_iter()
            .map(|mut ns| {
                if ns.path().is_none() {
                    ns.set_path(Some(format!("/proc/{}/ns/{}", record.pid, proc_name(ns.typ())).into()));
                }
                ns
            })
            .collect();
        linux.set_namespaces(Some(joined));
        spec.set_linux(Some(linux));
    }
    spec
}
// ANCHOR_END: exec_spec

/// `--process FILE`, or the container's own process with the command and flags given.
fn process(record: &Record, args: &ExecArgs) -> Result<Process, RuntimeError> {
    if let Some(path) = &args.process {
        let text = std::fs::read_to_string(path).map_err(|e| RuntimeError::io("reading the process", path, e))?;
        return serde_json::from_str(&text)
            .map_err(|e| RuntimeError::Usage(format!("{} is not an OCI process JSON object: {e}", path.display())));
    }
    if args.command.is_empty() {
        return Err(RuntimeError::Usage("exec needs a command or --process FILE".into()));
    }
    let mut process = record.config.process().clone().unwrap_or_default();
    process.set_args(Some(args.command.clone()));
    process.set_terminal(Some(args.tty));
    let mut env = process.env().clone().unwrap_or_default();
    env.extend(args.env.iter().cloned());
    process.set_env(Some(env));
    if let Some(cwd) = &args.cwd {
        process.set_cwd(cwd.clone());
    }
    if let Some(user) = &args.user {
        process.set_user(parse_user(user)?);
    }
    Ok(process)
}

/// runc's `--cap` and `--no-new-privs`, on top of the process's own: each capability is added
/// to its bounding, effective and permitted sets.
fn with_privileges(mut process: Process, args: &ExecArgs) -> Result<Process, RuntimeError> {
    if !args.cap.is_empty() {
        // None at all when the process names none (LinuxCapabilities::default() has three).
        let mut capabilities = process
            .capabilities()
            .clone()
            .unwrap_or_else(|| capabilities::linux_capabilities(&Capabilities::new()));
        for name in &args.cap {
            let capability = capabilities::parse(name).map_err(|e| RuntimeError::Usage(format!("--cap: {e}")))?;
            let add = |set: &Option<Capabilities>| {
                let mut set = set.clone().unwrap_or_default();
                set.insert(capability);
                Some(set)
            };
            capabilities.set_bounding(add(capabilities.bounding()));
            capabilities.set_effective(add(capabilities.effective()));
            capabilities.set_permitted(add(capabilities.permitted()));
        }
        process.set_capabilities(Some(capabilities));
    }
    if args.no_new_privs {
        process.set_no_new_privileges(Some(true));
    }
    Ok(process)
}

fn parse_user(text: &str) -> Result<User, RuntimeError> {
    let number = |s: &str| {
        s.parse::<u32>()
            .map_err(|_| RuntimeError::Usage(format!("--user {text:?}: use UID or UID:GID")))
    };
    let (uid, gid) = match text.split_once(':') {
        Some((uid, gid)) => (number(uid)?, number(gid)?),
        None => (number(text)?, 0),
    };
    let mut user = User::default();
    user.set_uid(uid);
    user.set_gid(gid);
    Ok(user)
}

/// Puts the new process in the container's cgroup before it runs anything, the way the
/// container's first process got there ([`Join`]).
struct JoinCgroup(Box<dyn Cgroup>, Join);

impl Stage for JoinCgroup {
    fn name(&self) -> &'static str {
        "cgroups"
    }

    fn order(&self) -> StageOrder {
        crate::limits::ORDER
    }

    fn birth_cgroup(&self) -> Result<Option<OwnedFd>, StageError> {
        self.1.before_clone(&*self.0).map_err(stage_error)
    }

    fn in_parent(&self, child: Pid) -> Result<(), StageError> {
        self.1.in_parent(&*self.0, child).map_err(stage_error)
    }

    fn in_child(&self, _ctx: &ChildContext) -> Result<(), ChildError> {
        self.1.in_child()
    }
}

// ANCHOR: exec
pub fn exec(context: &Context, args: &ExecArgs) -> Result<i32, RuntimeError> {
    let record = context.dir.load(&args.id)?;
    if matches!(record.status(&context.dir), Status::Stopped) {
        return Err(RuntimeError::NotRunning(args.id.clone()));
    }
    let spec = exec_spec(&record, with_privileges(process(&record, args)?, args)?);
    let mut stages: Vec<Box<dyn Stage>> = vec![Box::new(JoinCgroup(record.cgroup()?, Join::default()))];
    // The same user, capabilities, no_new_privs and seccomp filter as the container's
    // process (or those of --process): `docker exec` is no way around them.
    stages.extend(step01_unshare::process_stages(&spec)?);
    let terminal = spec.process().as_ref().and_then(|p| p.terminal()).unwrap_or(false);
    if let Some(pause) = TestPause::from_env() {
        stages.push(Box::new(pause));
    }
    if terminal {
        let socket = args.console_socket.as_deref().ok_or_else(|| {
            RuntimeError::Usage("a terminal needs --console-socket PATH to receive the pty master".into())
        })?;
        stages.push(Box::new(Terminal::connect(socket)?));
    }
    // Clear before the clone: the child is in the container's PID namespace from its start.
    not_dumpable::apply().map_err(|errno| RuntimeError::Sys {
        action: "making exec non-dumpable (CVE-2019-5736): prctl(PR_SET_DUMPABLE)",
        errno,
    })?;
    if args.detach {
        let detached = Detached {
            gate: None,
            preserve_fds: args.preserve_fds,
        };
        let pid = launch::create(&spec, stages, &detached)?;
        write_pid_file(args.pid_file.as_deref(), pid)?;
        return Ok(0);
    }
    let exit = launch::run(&spec, stages)?;
    Ok(signals::exit_code(exit.status))
}
// ANCHOR_END: exec
