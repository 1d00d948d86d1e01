//! # Step 01: unshare
//!
//! A process in its own UTS, IPC and network namespaces: its own hostname, its own System V
//! IPC, its own network stack. Without root, a user namespace makes that possible.
//!
//! This step also brings the machinery every later step plugs into: the OCI spec as the
//! description of a container ([`spec`]), stages ([`stage`]), the launch itself ([`launch`]),
//! reporting failures from the child ([`child_error`]), signal forwarding ([`signals`]) and
//! the command line ([`cli`]).

pub mod capabilities;
pub mod child_error;
pub mod cli;
pub mod clone_into_cgroup;
pub mod doctor;
pub mod exec;
pub mod launch;
pub mod leaked_fds;
pub mod namespaces;
pub mod path_error;
pub mod process_limits;
pub mod seccomp;
pub mod security_opt;
pub mod signals;
pub mod spec;
pub mod stage;
pub mod start_gate;
pub mod sysctls;

pub use oci_spec;

use cli::StagesFn;
use oci_spec::runtime::Spec;
use stage::{Stage, StageBuildError};

/// Step 01 on the shared command line.
pub struct Step01;

impl cli::Step for Step01 {
    type Run = cli::RunArgs;
    type More = cli::NoMore;
    const NAME: &'static str = "step01-unshare";
    const ABOUT: &'static str = "Step 01: run a command in new UTS, IPC and network namespaces";
    const EXAMPLES: &'static str =
        "Examples:\n  step01-unshare run --hostname box -- sh -c 'hostname; ip link'\n  step01-unshare doctor\n";

    const STAGES: StagesFn = stages;
}

// ANCHOR: stages
/// The stages of step 01: the namespaces, the spec's sysctls and process limits, the
/// process's privileges and its seccomp filter.
pub fn stages(spec: &Spec) -> Result<Vec<Box<dyn Stage>>, StageBuildError> {
    let namespaces = namespaces::Namespaces::from_spec(spec).map_err(StageBuildError::new)?;
    let mut stages: Vec<Box<dyn Stage>> = vec![Box::new(namespaces)];
    // What the spec may add to any container: kernel parameters of its namespaces, the
    // process's rlimits and OOM score.
    if let Some(sysctls) = sysctls::Sysctls::from_spec(spec).map_err(StageBuildError::new)? {
        stages.push(Box::new(sysctls));
    }
    if let Some(limits) = process_limits::ProcessLimits::from_spec(spec).map_err(StageBuildError::new)? {
        stages.push(Box::new(limits));
    }
    stages.extend(process_stages(spec)?);
    Ok(stages)
}

/// What the process gives up last: root (process.user), capabilities, no_new_privs, and the
/// system calls it may make at all. A process that joins a running container (the runtime's
/// `exec`) gives up the same, through this same list.
pub fn process_stages(spec: &Spec) -> Result<Vec<Box<dyn Stage>>, StageBuildError> {
    let mut stages: Vec<Box<dyn Stage>> = Vec::new();
    if let Some(privileges) = capabilities::Privileges::from_spec(spec) {
        stages.push(Box::new(privileges));
    }
    if let Some(filter) = seccomp::Seccomp::from_spec(spec).map_err(StageBuildError::new)? {
        stages.push(Box::new(filter));
    }
    Ok(stages)
}
// ANCHOR_END: stages
