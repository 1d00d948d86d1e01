//! # Step 06: OCI images
//!
//! Step 05's container, started from an image: what `docker pull` and containerd's content
//! store do. Images come from a registry (OCI distribution spec), a `docker save` tar, a
//! rootfs tarball or the embedded busybox; they are kept content-addressed, their layers
//! unpacked once (hostile input: checked entry by entry) and stacked by step 05's overlay.

pub mod archive;
pub mod commands;
pub mod digest;
pub mod file_writer;
pub mod image_run;
pub mod import;
pub mod pull;
pub mod push;
pub mod read_ahead;
pub mod reference;
pub mod registry;
pub mod store;
pub mod unpack;

pub use step05_overlay;

use anyhow::Context;
use clap::Args;
use step01_unshare::cli::{StagesFn, Step, ToSpec};
use step01_unshare::oci_spec::runtime::{Spec, UserBuilder};
use step01_unshare::spec::annotate;
use step01_unshare::stage::{Stage, StageBuildError};
use step05_overlay::step04_cgroups::step03_mount_ns::step02_pid_ns::step01_unshare;

/// The annotation naming the image a container runs.
pub const IMAGE_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// Step 05's flags; the first word after them is the IMAGE unless --rootfs or --layer is given.
#[derive(Debug, Clone, Args)]
#[group(id = "step06")]
pub struct RunArgs {
    #[command(flatten)]
    pub step05: step05_overlay::RunArgs,
}

impl ToSpec for RunArgs {
    fn to_spec(&self) -> anyhow::Result<Spec> {
        let step03 = &self.step05.step04.step03;
        if !self.step05.layers.is_empty() || step03.rootfs.is_some() {
            return self.step05.to_spec();
        }
        let words = &step03.step02.step01.command;
        let (name, rest) = words.split_first().context("no image given: run IMAGE [COMMAND...]")?;
        let command: Vec<String> = rest.iter().skip_while(|w| *w == "--").cloned().collect();
        let store = store::Store::open(&self.step05.root)?;
        let (reference, image) = store.resolve(name)?;
        let layers = store.ensure_unpacked(&image)?;
        let process = image_run::process(&image, &layers, &command)?;
        let mut args = self.step05.clone();
        args.layers = layers;
        let step01 = &mut args.step04.step03.step02.step01;
        step01.command = process.args.clone();
        step01.env = image_run::merge_env(&process.env, &step01.env);
        let mut spec = args.to_spec()?;
        if let Some(process_spec) = spec.process_mut() {
            if let Some(cwd) = &process.cwd {
                process_spec.set_cwd(cwd.into());
            }
            // The image's USER, unless `-u` says otherwise (as docker).
            if let (Some((uid, gid)), None) = (process.user, step03.step02.step01.user) {
                process_spec.set_user(UserBuilder::default().uid(uid).gid(gid).build()?);
                // A user other than root starts with no capabilities, as with `-u`.
                if let (true, Some(mut capabilities)) = (uid != 0, process_spec.capabilities().clone()) {
                    step01_unshare::capabilities::for_non_root_user(&mut capabilities);
                    process_spec.set_capabilities(Some(capabilities));
                }
            }
        }
        let name = reference.map_or_else(|| image.id().to_string(), |r| r.familiar());
        annotate(&mut spec, IMAGE_ANNOTATION, &name);
        Ok(spec)
    }
}

// ANCHOR: stages
/// Step 06 adds no stage: an image becomes layers (step 05) and a process (step 01).
pub fn stages(spec: &Spec) -> Result<Vec<Box<dyn Stage>>, StageBuildError> {
    step05_overlay::stages(spec)
}
// ANCHOR_END: stages

/// Step 06 on the shared command line.
pub struct Step06;

impl Step for Step06 {
    type Run = RunArgs;
    type More = commands::More;
    const NAME: &'static str = "step06-images";
    const ABOUT: &'static str = "Step 06: step 05 plus OCI images: pull, import, save/load, run IMAGE";
    const EXAMPLES: &'static str = "Examples:\n  step06-images busybox\n  step06-images run busybox -- echo hello from an image\n  step06-images pull --insecure-registry localhost:5000 localhost:5000/busybox:1\n  step06-images save busybox -o busybox.tar && step06-images load -i busybox.tar\n";

    const STAGES: StagesFn = stages;
}
