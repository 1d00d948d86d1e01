//! # Step 07: the engine
//!
//! Step 06's images and step 04's runtime, driven by a daemon that speaks the Docker Engine
//! API on a unix socket: what dockerd is to Docker. `docker` talks HTTP to the engine; the
//! engine keeps container records on disk, makes each container's bundle with the same chain
//! of steps a student ran by hand, and starts one small monitor process per container
//! (`keel-monitor`) that runs step 04's runc-compatible command line, holds the container's
//! stdio, writes its log and records how it ended, so containers outlive the engine.

pub mod api;
pub mod bundle;
pub mod engine;
pub mod events;
pub mod ids;
pub mod logs;
pub mod monitor;
pub mod monitor_client;
pub mod network;
pub mod record;
pub mod runtime_cli;
pub mod serve;
pub mod stats;
pub mod stdcopy;

pub use step06_images;

use clap::Subcommand;
use step01_unshare::cli::{MoreCommands, StagesFn, Step};
use step06_images::step05_overlay::step04_cgroups::step03_mount_ns::step02_pid_ns::step01_unshare;

/// What step 07 adds to the command line: `serve`.
#[derive(Debug, Subcommand)]
pub enum More {
    #[command(flatten)]
    Step06(step06_images::commands::More),
    /// Serve the Docker Engine API on a unix socket (DOCKER_HOST=unix:///run/keel.sock docker ...)
    Serve(serve::ServeArgs),
}

impl MoreCommands for More {
    fn run(self) -> anyhow::Result<i32> {
        match self {
            More::Step06(more) => more.run(),
            More::Serve(args) => serve::serve(args),
        }
    }
}

/// Step 07 on the shared command line.
pub struct Step07;

impl Step for Step07 {
    type Run = step06_images::RunArgs;
    type More = More;
    const NAME: &'static str = "step07-engine-api";
    const ABOUT: &'static str = "Step 07: step 06 plus an engine the docker CLI drives: the Docker Engine API";
    const EXAMPLES: &'static str = "Examples:\n  step07-engine-api serve &\n  DOCKER_HOST=unix:///run/keel.sock docker run --rm busybox echo hello from the engine\n  DOCKER_HOST=unix:///run/keel.sock docker ps -a\n";

    const STAGES: StagesFn = step06_images::stages;
}
