//! The command line every step binary shares: `run [FLAGS] [--] COMMAND [ARGS...]`, `doctor`,
//! and whatever a step adds. Each step's `RunArgs` embeds the previous step's, so a workshop
//! participant sees one tool grow flag by flag.

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use oci_spec::runtime::Spec;

use crate::launch::{self, LaunchError};
use crate::security_opt::SeccompChoice;
use crate::signals;
use crate::stage::{Stage, StageBuildError};

/// Builds every stage of a step (and the steps before it) from a spec.
pub type StagesFn = fn(&Spec) -> Result<Vec<Box<dyn Stage>>, StageBuildError>;

/// Subcommands a step adds besides `run` and `doctor`, and how they run.
pub trait MoreCommands: Subcommand {
    /// Runs the subcommand; returns the exit status.
    fn run(self) -> anyhow::Result<i32>;
}

/// What a step plugs into the shared command line.
pub trait Step {
    /// The flags of `run`: the previous step's plus this step's own.
    type Run: Args + ToSpec;
    /// Subcommands this step adds besides `run` and `doctor`.
    type More: MoreCommands;
    /// The binary's name, for `--help` and errors.
    const NAME: &'static str;
    /// One line saying what this step adds.
    const ABOUT: &'static str;
    /// Shown at the end of `--help`.
    const EXAMPLES: &'static str;
    /// Every stage of this step and the steps before it.
    const STAGES: StagesFn;
}

/// Flags that describe a container become an OCI runtime spec.
pub trait ToSpec {
    fn to_spec(&self) -> anyhow::Result<Spec>;
}

/// Step 01's flags for `run`.
#[derive(Debug, Clone, Args)]
#[group(id = "step01")]
pub struct RunArgs {
    /// The hostname inside the container (its UTS namespace is its own)
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// Set an environment variable inside the container (KEY=VALUE, or KEY to pass yours on)
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Run the command as UID[:GID] (numbers; default 0:0)
    #[arg(short = 'u', long = "user", value_name = "UID[:GID]", value_parser = parse_user)]
    pub user: Option<(u32, u32)>,
    /// Give the container a capability beyond Docker's default set (NET_ADMIN, ALL...)
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Take a capability of the default set away (CHOWN, ALL...)
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Every capability, no seccomp filter and no no_new_privs: root in the container is root
    #[arg(long)]
    pub privileged: bool,
    /// seccomp=unconfined|PROFILE.json, systempaths=unconfined, no-new-privileges[=true|false] (as docker run's)
    #[arg(long = "security-opt", value_name = "OPTION")]
    pub security_opt: Vec<String>,
    /// The command to run and its arguments
    // No allow_hyphen_values: a mistyped flag must be an error, not a command to run; after
    // the first word everything is the command's (trailing_var_arg), so `sh -c ...` works.
    #[arg(required = true, trailing_var_arg = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

impl ToSpec for RunArgs {
    fn to_spec(&self) -> anyhow::Result<Spec> {
        let mut spec = crate::spec::base_spec(&self.command, self.hostname.as_deref(), &self.env)?;
        if let (Some((uid, gid)), Some(process)) = (self.user, spec.process_mut()) {
            process.set_user(oci_spec::runtime::UserBuilder::default().uid(uid).gid(gid).build()?);
        }
        let set = crate::capabilities::effective_set(self.privileged, &self.cap_add, &self.cap_drop)?;
        let mut capabilities = crate::capabilities::linux_capabilities(&set);
        if self.user.is_some_and(|(uid, _)| uid != 0) {
            crate::capabilities::for_non_root_user(&mut capabilities);
        }
        let security = crate::security_opt::parse(&self.security_opt)?;
        if let Some(process) = spec.process_mut() {
            process.set_capabilities(Some(capabilities));
            process.set_no_new_privileges(Some(security.no_new_privileges.unwrap_or(!self.privileged)));
        }
        // As docker: --privileged means no filter, unless a profile is named.
        let seccomp = match security.seccomp {
            SeccompChoice::Default if self.privileged => None,
            SeccompChoice::Default => Some(crate::seccomp::profile::default_profile(&set)?),
            SeccompChoice::Unconfined => None,
            SeccompChoice::Profile(json) => Some(crate::seccomp::profile::parse_profile(&json, &set)?),
        };
        if let Some(linux) = spec.linux_mut() {
            linux.set_seccomp(seccomp);
            // The spec's default masked and read-only paths of /proc and /sys (step 03 applies
            // them) go too, as docker's --privileged and systempaths=unconfined do.
            if self.privileged || security.system_paths_unconfined {
                linux.set_masked_paths(None);
                linux.set_readonly_paths(None);
            }
        }
        Ok(spec)
    }
}

/// `UID` or `UID:GID` (the gid defaults to the uid, as for docker's numeric users).
fn parse_user(text: &str) -> Result<(u32, u32), String> {
    let number = |s: &str| {
        s.parse::<u32>()
            .map_err(|_| format!("{text:?}: use a numeric UID or UID:GID (user names come with images, in step 06)"))
    };
    match text.split_once(':') {
        Some((uid, gid)) => Ok((number(uid)?, number(gid)?)),
        None => number(text).map(|uid| (uid, uid)),
    }
}

/// No subcommands beyond `run` and `doctor`.
#[derive(Debug, Subcommand)]
pub enum NoMore {}

impl MoreCommands for NoMore {
    fn run(self) -> anyhow::Result<i32> {
        match self {}
    }
}

#[derive(Debug, Parser)]
struct Cli<R: Args, M: Subcommand> {
    #[command(subcommand)]
    command: Command<R, M>,
}

#[derive(Debug, Subcommand)]
enum Command<R: Args, M: Subcommand> {
    /// Run a command in a container and exit with its status
    Run(R),
    /// Check that this machine can run every step of the workshop
    Doctor,
    #[command(flatten)]
    More(M),
}

/// The command line of step `S`, as clap sees it.
pub fn command<S: Step>() -> clap::Command {
    Cli::<S::Run, S::More>::command()
        .name(S::NAME)
        .bin_name(S::NAME)
        .about(S::ABOUT)
        .after_help(S::EXAMPLES)
        .version(env!("CARGO_PKG_VERSION"))
}

/// The whole `main` of a step binary.
pub fn main<S: Step>() -> ! {
    // Rust starts programs with SIGPIPE ignored. Put back the default: a closed pipe then
    // ends the tool quietly (`images | head`) instead of a panic, and the container's
    // command does not inherit "ignore" through exec, as it would not under docker.
    // SAFETY: SIG_DFL installs no handler; nothing runs in signal context.
    let _ =
        unsafe { nix::sys::signal::signal(nix::sys::signal::Signal::SIGPIPE, nix::sys::signal::SigHandler::SigDfl) };
    let command = command::<S>();
    // Usage errors exit 125 like docker's, not clap's 2: 126, 127 and the command's own
    // statuses keep their meaning.
    let cli = command
        .try_get_matches()
        .and_then(|matches| Cli::<S::Run, S::More>::from_arg_matches(&matches))
        .unwrap_or_else(|error| {
            let code = if error.use_stderr() { 125 } else { 0 };
            let _ = error.print();
            std::process::exit(code)
        });
    let result = match cli.command {
        Command::Run(args) => run::<S>(&args),
        Command::Doctor => Ok(crate::doctor::report()),
        Command::More(more) => more.run(),
    };
    exit(S::NAME, result)
}

/// `run`: build the spec, the stages, start the container, wait for it.
fn run<S: Step>(args: &S::Run) -> anyhow::Result<i32> {
    let spec = args.to_spec()?;
    let stages = (S::STAGES)(&spec)?;
    let exit = launch::run(&spec, stages)?;
    for note in &exit.notes {
        eprintln!("{}: {note}", S::NAME);
    }
    Ok(signals::exit_code(exit.status))
}

/// Ends the process: with `result`'s status, or with one line of error on stderr and the
/// status that error calls for (125 unless the command could not be found or executed).
pub fn exit(name: &str, result: anyhow::Result<i32>) -> ! {
    match result {
        Ok(code) => std::process::exit(code),
        Err(error) => {
            eprintln!("{name}: {error:#}");
            let code = error.downcast_ref::<LaunchError>().map_or(125, LaunchError::exit_code);
            std::process::exit(code)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        super::command::<crate::Step01>().debug_assert();
    }
}
