//! # Step 03: a mount namespace and a root filesystem
//!
//! Step 02's container, plus its own mount table: private propagation, a fresh `/proc` (so
//! `ps` finally shows only the container), and with `--rootfs`, a root filesystem entered
//! with `pivot_root`, with `/sys`, a minimal `/dev`, volumes and an optional read-only root.

pub mod busybox;
pub mod devices;
pub mod in_root;
pub mod masked_paths;
pub mod mount_options;
pub mod mounts;
pub mod rootfs;
pub mod volume;

pub use step02_pid_ns;

use clap::{Args, Subcommand};
use oci_spec::runtime::{LinuxNamespaceType, Mount, RootBuilder, Spec};
use std::path::PathBuf;
use step02_pid_ns::step01_unshare::cli::{MoreCommands, StagesFn, Step, ToSpec};
use step02_pid_ns::step01_unshare::oci_spec;
use step02_pid_ns::step01_unshare::spec::add_namespace;
use step02_pid_ns::step01_unshare::stage::{Stage, StageBuildError};

fn spec_mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    let mut mount = Mount::default();
    mount.set_destination(destination.into());
    mount.set_typ(Some(typ.to_owned()));
    mount.set_source(Some(source.into()));
    mount.set_options(Some(options.iter().map(|o| o.to_string()).collect()));
    mount
}

// ANCHOR: default_mounts
/// What a container with a rootfs gets mounted, as in runc's default `config.json`.
pub fn default_mounts() -> Vec<Mount> {
    vec![
        spec_mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        spec_mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        spec_mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        spec_mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        spec_mount("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
        spec_mount("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", "ro"]),
    ]
}
// ANCHOR_END: default_mounts

/// Step 02's flags plus the root filesystem and volumes.
#[derive(Debug, Clone, Args)]
#[group(id = "step03")]
pub struct RunArgs {
    /// Use DIR as the container's root filesystem (build one with the `rootfs` command)
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,
    /// Bind-mount a host path: SRC:DST, or SRC:DST:ro for read-only
    #[arg(short = 'v', long = "volume", value_name = "SRC:DST[:ro]", value_parser = volume::parse)]
    pub volumes: Vec<volume::Volume>,
    /// Mount the container's root filesystem read-only
    #[arg(long, requires = "rootfs")]
    pub read_only: bool,
    #[command(flatten)]
    pub step02: step02_pid_ns::RunArgs,
}

impl ToSpec for RunArgs {
    fn to_spec(&self) -> anyhow::Result<Spec> {
        let mut spec = self.step02.to_spec()?;
        add_namespace(&mut spec, LinuxNamespaceType::Mount)?;
        let mut mounts = match &self.rootfs {
            Some(rootfs) => {
                spec.set_root(Some(
                    RootBuilder::default().path(rootfs).readonly(self.read_only).build()?,
                ));
                if let Some(process) = spec.process_mut() {
                    process.set_cwd("/".into());
                }
                let mut mounts = default_mounts();
                if !nix::unistd::geteuid().is_root() {
                    // Rootless, only our own ids are mapped: the tty group (gid 5) is not.
                    for mount in mounts.iter_mut().filter(|m| m.typ().as_deref() == Some("devpts")) {
                        let options = mount.options().clone().unwrap_or_default();
                        mount.set_options(Some(options.into_iter().filter(|o| o != "gid=5").collect()));
                    }
                }
                mounts
            }
            // Without a rootfs the container keeps the host's files, but /proc becomes its
            // own: what `unshare --mount-proc` does.
            None => vec![default_mounts().swap_remove(0)],
        };
        mounts.extend(self.volumes.iter().map(volume::Volume::to_mount));
        spec.set_mounts(Some(mounts));
        Ok(spec)
    }
}

// ANCHOR: stages
/// Step 02's stages and the mount namespace with its root filesystem.
pub fn stages(spec: &Spec) -> Result<Vec<Box<dyn Stage>>, StageBuildError> {
    let mut stages = step02_pid_ns::stages(spec)?;
    stages.push(Box::new(rootfs::Rootfs::from_spec(spec).map_err(StageBuildError::new)?));
    if let Some(masked) = masked_paths::MaskedPaths::from_spec(spec).map_err(StageBuildError::new)? {
        stages.push(Box::new(masked));
    }
    Ok(stages)
}
// ANCHOR_END: stages

/// What step 03 adds to the command line besides `run`.
#[derive(Debug, Subcommand)]
pub enum More {
    /// Build the embedded busybox root filesystem (no network needed)
    Rootfs {
        /// Where to build it
        #[arg(default_value = busybox::DEFAULT_ROOTFS)]
        dir: PathBuf,
        /// The static busybox to use (default: the host's)
        #[arg(long, value_name = "PATH")]
        busybox: Option<PathBuf>,
        /// Replace DIR if it exists
        #[arg(long)]
        force: bool,
    },
}

/// Step 03 on the shared command line.
pub struct Step03;

impl Step for Step03 {
    type Run = RunArgs;
    type More = More;
    const NAME: &'static str = "step03-mount-ns";
    const ABOUT: &'static str =
        "Step 03: step 02 plus a mount namespace, a root filesystem, /proc, /sys, /dev and volumes";
    const EXAMPLES: &'static str = "Examples:\n  step03-mount-ns rootfs /var/lib/keel/rootfs\n  step03-mount-ns run --rootfs /var/lib/keel/rootfs -- sh -c 'ls /; ps'\n  step03-mount-ns run --rootfs /var/lib/keel/rootfs -v /tmp:/data:ro --read-only -- sh\n";

    const STAGES: StagesFn = stages;
}

impl MoreCommands for More {
    fn run(self) -> anyhow::Result<i32> {
        match self {
            More::Rootfs { dir, busybox, force } => {
                busybox::build(&dir, busybox.as_deref(), force)?;
                println!("{}", dir.display());
                Ok(0)
            }
        }
    }
}
