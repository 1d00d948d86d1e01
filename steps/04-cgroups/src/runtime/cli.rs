//! runc's command line, flag for flag where containerd, Docker or Kubernetes use it.

use clap::{Args, Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;

use super::log::{Log, LogFormat};
use super::state::StateDir;
use super::{control, exec, inspect, kill, lifecycle, sealed_exe, RuntimeError, DEFAULT_ROOT};

#[derive(Debug, Parser)]
#[command(
    name = "step04-cgroups",
    about = "Step 04 as an OCI runtime: runc's command line, for containerd, Docker and Kubernetes",
    version = concat!(env!("CARGO_PKG_VERSION"), "\nspec: ", "1.0.2"),
    after_help = "Example (a bundle made by `runc spec` with a rootfs/ beside it):\n  step04-cgroups create --bundle /tmp/bundle demo && step04-cgroups start demo\n  step04-cgroups state demo; step04-cgroups kill demo KILL; step04-cgroups delete demo\nWith containerd: ctr run --runc-binary $(command -v step04-cgroups) ..."
)]
struct RuntimeCli {
    /// Where container state is kept
    #[arg(long, default_value = DEFAULT_ROOT, value_name = "DIR")]
    root: PathBuf,
    /// Also write errors to this file
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// The log file's format
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// cgroupsPath is systemd's `slice:prefix:name`, mapped to the cgroupfs path systemd uses
    #[arg(long)]
    systemd_cgroup: bool,
    /// Accepted for runc compatibility (more output is not implemented)
    #[arg(long)]
    debug: bool,
    /// Accepted for runc compatibility (checkpoint/restore is not implemented)
    #[arg(long, value_name = "PATH")]
    criu: Option<PathBuf>,
    /// Accepted for runc compatibility
    #[arg(long, value_name = "true|false|auto")]
    rootless: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The bundle: a directory with config.json
    #[arg(short, long, default_value = ".", value_name = "DIR")]
    pub bundle: PathBuf,
    /// A unix socket to which the pty master is sent (when process.terminal is true)
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Write the container's pid here (no newline)
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Accepted for runc compatibility: keel always uses pivot_root (a rootfs on ramfs,
    /// which needs runc's MS_MOVE fallback, is not supported)
    #[arg(long)]
    pub no_pivot: bool,
    /// Accepted for runc compatibility (no session keyring is created)
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass descriptors 3..3+N-1 on to the container
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub preserve_fds: u32,
    pub id: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a container from a bundle; it waits for `start`
    Create(CreateArgs),
    /// Let a created container run its process
    Start { id: String },
    /// Create, start and (unless --detach) wait for a container
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Return once the container runs
        #[arg(short, long)]
        detach: bool,
    },
    /// Print a container's state as JSON
    State { id: String },
    /// Send a signal to a container's process (or all of them)
    Kill {
        /// Signal every process of the container
        #[arg(short, long)]
        all: bool,
        id: String,
        /// A number or a name (KILL, SIGKILL)
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Remove a stopped container's state and cgroup
    Delete {
        /// Kill it first if it still runs; no error if it does not exist
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// Run another process in a running container
    Exec(exec::ExecArgs),
    /// List a container's processes
    Ps {
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        id: String,
        /// Options for ps(1) in table format (default -ef)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Freeze every process of a container
    Pause { id: String },
    /// Thaw a paused container
    Resume { id: String },
    /// Change a running container's resource limits
    Update {
        /// LinuxResources JSON from this file, or - for stdin
        #[arg(short, long, value_name = "FILE|-")]
        resources: PathBuf,
        id: String,
    },
    /// List containers
    List {
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        /// Only ids
        #[arg(short, long)]
        quiet: bool,
    },
    /// What this runtime supports, as JSON
    Features,
}

/// What every command needs: where state lives, how cgroup paths are written, the log.
pub struct Context {
    pub dir: StateDir,
    pub systemd_cgroup: bool,
}

pub fn main(args: Vec<OsString>) -> ! {
    let cli = match RuntimeCli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() { 1 } else { 0 };
            let _ = error.print();
            std::process::exit(code)
        }
    };
    let log = Log {
        file: cli.log.clone(),
        format: cli.log_format,
    };
    // The commands that put a process of ours inside a container run from an unwritable
    // view of this binary (a read-only overlay, or a sealed memfd copy), never from its
    // file (sealed_exe: CVE-2019-5736).
    if matches!(cli.command, Command::Create(_) | Command::Run { .. } | Command::Exec(_)) {
        if let Err(error) = sealed_exe::ensure(&args, &cli.root) {
            log.error(&error.to_string());
            std::process::exit(1)
        }
    }
    let context = Context {
        dir: StateDir::new(&cli.root),
        systemd_cgroup: cli.systemd_cgroup,
    };
    match run(&context, cli.command) {
        Ok(code) => std::process::exit(code),
        Err(error) => {
            log.error(&format!("{:#}", anyhow::Error::from(error)));
            std::process::exit(1)
        }
    }
}

fn run(context: &Context, command: Command) -> Result<i32, RuntimeError> {
    match command {
        Command::Create(args) => lifecycle::create(context, &args).map(|()| 0),
        Command::Start { id } => lifecycle::start(context, &id).map(|()| 0),
        Command::Run { create, detach } => lifecycle::run(context, &create, detach),
        Command::Delete { force, id } => lifecycle::delete(context, &id, force).map(|()| 0),
        Command::State { id } => inspect::state(context, &id).map(|()| 0),
        Command::List { format, quiet } => inspect::list(context, &format, quiet).map(|()| 0),
        Command::Ps { format, id, ps_args } => inspect::ps(context, &id, &format, &ps_args).map(|()| 0),
        Command::Features => inspect::features().map(|()| 0),
        Command::Kill { all, id, signal } => kill::kill(context, &id, &signal, all).map(|()| 0),
        Command::Pause { id } => control::pause(context, &id).map(|()| 0),
        Command::Resume { id } => control::resume(context, &id).map(|()| 0),
        Command::Update { resources, id } => control::update(context, &id, &resources).map(|()| 0),
        Command::Exec(args) => exec::exec(context, &args),
    }
}
