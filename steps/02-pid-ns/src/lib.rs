//! # Step 02: a PID namespace and PID 1
//!
//! Step 01's container, plus its own process-id space: the command sees itself as PID 1,
//! sees no host process in `/proc`... once `/proc` is its own (step 03). With `--init`, a
//! minimal init is PID 1 instead: it reaps orphans and passes signals on.

pub mod init;
pub mod pid_namespace;

pub use step01_unshare;

use clap::Args;
use step01_unshare::cli::{NoMore, StagesFn, Step, ToSpec};
use step01_unshare::oci_spec::runtime::{LinuxNamespaceType, Spec};
use step01_unshare::spec::{add_namespace, annotate};
use step01_unshare::stage::{Stage, StageBuildError};

/// Step 01's flags plus `--init`.
#[derive(Debug, Clone, Args)]
#[group(id = "step02")]
pub struct RunArgs {
    /// Run a minimal init as PID 1 that reaps orphans and forwards signals (like docker run --init)
    #[arg(long)]
    pub init: bool,
    #[command(flatten)]
    pub step01: step01_unshare::cli::RunArgs,
}

impl ToSpec for RunArgs {
    fn to_spec(&self) -> anyhow::Result<Spec> {
        let mut spec = self.step01.to_spec()?;
        add_namespace(&mut spec, LinuxNamespaceType::Pid)?;
        if self.init {
            annotate(&mut spec, init::ANNOTATION, "true");
        }
        Ok(spec)
    }
}

// ANCHOR: stages
/// Step 01's stages, a PID namespace, and an init when asked for.
pub fn stages(spec: &Spec) -> Result<Vec<Box<dyn Stage>>, StageBuildError> {
    let mut stages = step01_unshare::stages(spec)?;
    stages.push(Box::new(
        pid_namespace::PidNamespace::from_spec(spec).map_err(StageBuildError::new)?,
    ));
    if let Some(init) = init::Init::from_spec(spec) {
        stages.push(Box::new(init));
    }
    Ok(stages)
}
// ANCHOR_END: stages

/// Step 02 on the shared command line.
pub struct Step02;

impl Step for Step02 {
    type Run = RunArgs;
    type More = NoMore;
    const NAME: &'static str = "step02-pid-ns";
    const ABOUT: &'static str = "Step 02: step 01 plus a PID namespace, with the command or a minimal init as PID 1";
    const EXAMPLES: &'static str = "Examples:\n  step02-pid-ns run -- sh -c 'echo my pid is $$'\n  step02-pid-ns run --init -- sh -c \"sh -c 'sleep 1 &'; exec sleep 30\"\n";

    const STAGES: StagesFn = stages;
}
