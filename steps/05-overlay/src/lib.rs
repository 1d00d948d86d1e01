//! # Step 05: overlay snapshots
//!
//! Step 04's container, with a root filesystem made from shared read-only layers plus one
//! writable layer of its own: what containerd's overlay snapshotter and Docker's overlay2
//! driver do. Many containers share the same layers; each one's writes land in its own
//! upper dir, which can be listed (`snapshot diff`), turned into a new layer (`snapshot
//! commit`) or thrown away.

pub mod commit;
pub mod diff;
pub mod layers;
pub mod overlay;
pub mod snapshot_stage;
pub mod store;
pub mod whiteout;

pub use step04_cgroups;

use anyhow::Context;
use clap::{Args, Subcommand};
use std::ffi::CString;
use std::path::{Path, PathBuf};
use step01_unshare::cli::{MoreCommands, StagesFn, Step, ToSpec};
use step01_unshare::oci_spec::runtime::Spec;
use step01_unshare::spec::{annotate, annotated};
use step01_unshare::stage::{Stage, StageBuildError};
use step04_cgroups::step03_mount_ns::step02_pid_ns::step01_unshare;

use snapshot_stage::SnapshotStage;
use store::Store;

/// Annotations that carry a snapshot request from the command line to the stages.
pub const LAYERS: &str = "org.keel.snapshot.layers";
pub const ID: &str = "org.keel.snapshot.id";
pub const ROOT: &str = "org.keel.snapshot.root";
pub const KEEP: &str = "org.keel.snapshot.keep";

/// Step 04's flags plus layers.
#[derive(Debug, Clone, Args)]
#[group(id = "step05")]
pub struct RunArgs {
    /// A read-only layer of the root filesystem (repeat, lowest first); instead of --rootfs
    #[arg(long = "layer", value_name = "DIR", conflicts_with = "rootfs")]
    pub layers: Vec<PathBuf>,
    /// The name of the container's snapshot (default: a new id)
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Keep the container's writes after it ends (see the `snapshot` commands)
    #[arg(long)]
    pub keep: bool,
    /// Where keel keeps its data (snapshots under ROOT/snapshots)
    #[arg(long, value_name = "DIR", default_value_os_t = store::default_root())]
    pub root: PathBuf,
    #[command(flatten)]
    pub step04: step04_cgroups::RunArgs,
}

impl ToSpec for RunArgs {
    fn to_spec(&self) -> anyhow::Result<Spec> {
        if self.layers.is_empty() {
            // Checked here rather than by clap: step 06 gives the layers of an image instead.
            anyhow::ensure!(
                self.name.is_none() && !self.keep,
                "--name and --keep name a snapshot: they need --layer"
            );
            return self.step04.to_spec();
        }
        let id = self.name.clone().unwrap_or_else(store::new_id);
        store::valid_id(&id)?;
        // The root is where the union will be mounted; step 05's stage creates it.
        let merged = Store::new(&self.root).dir().join(&id).join("merged");
        let mut earlier = self.step04.clone();
        earlier.step03.rootfs = Some(merged);
        let mut spec = earlier.to_spec()?;
        let layers: Vec<String> = self.layers.iter().map(|l| l.display().to_string()).collect();
        annotate(&mut spec, LAYERS, &layers.join(":"));
        annotate(&mut spec, ID, &id);
        annotate(&mut spec, ROOT, &self.root.display().to_string());
        if self.keep {
            annotate(&mut spec, KEEP, "true");
        }
        Ok(spec)
    }
}

fn annotation<'a>(spec: &'a Spec, key: &str) -> Option<&'a str> {
    spec.annotations().as_ref()?.get(key).map(String::as_str)
}

// ANCHOR: stages
/// Step 04's stages on a spec whose first mount is the overlay, and the snapshot stage.
pub fn stages(spec: &Spec) -> Result<Vec<Box<dyn Stage>>, StageBuildError> {
    let Some(layers) = annotation(spec, LAYERS) else {
        return step04_cgroups::stages(spec);
    };
    let layers: Vec<PathBuf> = layers.split(':').map(PathBuf::from).collect();
    let id = annotation(spec, ID).unwrap_or_default();
    let root = Path::new(annotation(spec, ROOT).unwrap_or(store::DEFAULT_ROOT));
    let (stage, mount) = prepare(&layers, id, root, annotated(spec, KEEP)).map_err(StageBuildError::new)?;
    let mut earlier = spec.clone();
    let mut mounts = vec![mount];
    mounts.extend(spec.mounts().clone().unwrap_or_default());
    earlier.set_mounts(Some(mounts));
    match step04_cgroups::stages(&earlier) {
        Ok(mut stages) => {
            stages.push(Box::new(stage));
            Ok(stages)
        }
        Err(error) => {
            stage.cleanup();
            Err(error)
        }
    }
}
// ANCHOR_END: stages

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Layer(#[from] layers::LayerError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("preparing the overlay mount: {0}")]
    Io(#[from] std::io::Error),
}

// ANCHOR: bundle_spec
/// The spec as a runtime that knows nothing of snapshots can run it: the snapshot is created
/// now, and the overlay becomes the first of the spec's mounts, which step 03 mounts on the
/// root inside the container's own mount namespace. Step 07's engine writes this into the
/// bundle it hands to step 04's runc-compatible command line; the snapshot outlives the
/// container's process, and removing it (`store::Store::remove`) is the caller's job.
pub fn bundle_spec(spec: &Spec) -> Result<Spec, PrepareError> {
    let Some(layers) = annotation(spec, LAYERS) else {
        return Ok(spec.clone());
    };
    let layers: Vec<PathBuf> = layers.split(':').map(PathBuf::from).collect();
    let id = annotation(spec, ID).unwrap_or_default();
    let root = Path::new(annotation(spec, ROOT).unwrap_or(store::DEFAULT_ROOT));
    let (stage, mount) = prepare(&layers, id, root, true)?;
    if stage.relative_to.is_some() {
        stage.cleanup();
        let _ = std::fs::remove_dir_all(&stage.snapshot.dir);
        return Err(PrepareError::Io(std::io::Error::other(format!(
            "{} layers are too many for one overlay mount in a bundle (the runtime cannot enter the snapshot first)",
            layers.len()
        ))));
    }
    let mut bundle = spec.clone();
    let mut mounts = vec![mount];
    mounts.extend(spec.mounts().clone().unwrap_or_default());
    bundle.set_mounts(Some(mounts));
    Ok(bundle)
}
// ANCHOR_END: bundle_spec

/// Checks everything, then creates the snapshot (upper, work, merged) and its mount.
fn prepare(
    layers: &[PathBuf],
    id: &str,
    root: &Path,
    keep: bool,
) -> Result<(SnapshotStage, step01_unshare::oci_spec::runtime::Mount), PrepareError> {
    layers::overlay_available()?;
    let layers = layers::check(layers)?;
    let store = Store::new(root);
    // Check where the upper dirs would land before creating anything there.
    let existing = store
        .dir()
        .ancestors()
        .find(|dir| dir.exists())
        .unwrap_or(Path::new("/"));
    layers::can_hold_upper(existing)?;
    std::fs::create_dir_all(store.dir())
        .map_err(store::io("creating", store.dir()))
        .map_err(store::StoreError::from)?;
    let snapshot = store.create(id, &layers)?;
    let lock = snapshot.lock()?;
    let mount = overlay::overlay_mount(&layers, &snapshot)?;
    let relative_to = mount
        .relative_to
        .map(|dir| CString::new(dir.into_os_string().into_encoded_bytes()));
    let stage = SnapshotStage {
        snapshot,
        keep,
        lock,
        relative_to: relative_to
            .transpose()
            .map_err(|e| PrepareError::Io(std::io::Error::other(e)))?,
    };
    Ok((stage, mount.mount))
}

/// The `snapshot` commands.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// List snapshots: kept ones, and those of running containers
    Ls,
    /// What a container added (A), changed (C) and deleted (D)
    Diff { id: String },
    /// Turn a container's changes into a new layer directory, usable with --layer
    Commit { id: String, dir: PathBuf },
    /// Remove a snapshot
    Rm { id: String },
}

/// What step 05 adds to the command line besides `run`.
#[derive(Debug, Subcommand)]
pub enum More {
    #[command(flatten)]
    Step03(step04_cgroups::step03_mount_ns::More),
    /// Look at and manage containers' snapshots (their writable layers)
    Snapshot {
        /// Where keel keeps its data
        #[arg(long, value_name = "DIR", default_value_os_t = store::default_root())]
        root: PathBuf,
        #[command(subcommand)]
        command: SnapshotCommand,
    },
}

fn snapshot_command(root: &Path, command: SnapshotCommand) -> anyhow::Result<i32> {
    let store = Store::new(root);
    match command {
        SnapshotCommand::Ls => store.list()?.iter().for_each(|id| println!("{id}")),
        SnapshotCommand::Diff { id } => {
            let snapshot = store.get(&id)?;
            let changes = diff::diff(&snapshot.upper(), &snapshot.layers()?)
                .with_context(|| format!("reading the changes of snapshot {id}"))?;
            changes.iter().for_each(|change| println!("{change}"));
        }
        SnapshotCommand::Commit { id, dir } => {
            let snapshot = store.get(&id)?;
            commit::commit(&snapshot.upper(), &dir)?;
            println!("{}", dir.display());
        }
        SnapshotCommand::Rm { id } => store.remove(&id)?,
    }
    Ok(0)
}

/// Step 05 on the shared command line.
pub struct Step05;

impl Step for Step05 {
    type Run = RunArgs;
    type More = More;
    const NAME: &'static str = "step05-overlay";
    const ABOUT: &'static str = "Step 05: step 04 plus a copy-on-write root filesystem from read-only layers";
    const EXAMPLES: &'static str = "Examples:\n  step05-overlay run --layer /var/lib/keel/rootfs --name demo --keep -- sh -c 'echo hi > /hello; rm /etc/hostname'\n  step05-overlay snapshot diff demo\n  step05-overlay snapshot commit demo /tmp/layer2\n  step05-overlay run --layer /var/lib/keel/rootfs --layer /tmp/layer2 -- cat /hello\n";

    const STAGES: StagesFn = stages;
}

impl MoreCommands for More {
    fn run(self) -> anyhow::Result<i32> {
        match self {
            More::Step03(more) => more.run(),
            More::Snapshot { root, command } => snapshot_command(&root, command),
        }
    }
}
