//! # Step 04: cgroups
//!
//! Step 03's container, plus limits the kernel enforces: memory (with an OOM kill reported
//! as such), CPU time, number of processes. On cgroup v2, v1 and hybrid machines alike, with
//! a cgroup namespace so the container sees its own cgroup as the root.

pub mod cgroup_namespace;
pub mod cgroups;
pub mod limits;
pub mod runtime;
pub mod size;

pub use step03_mount_ns;

use clap::Args;
use step01_unshare::cli::{NoMore, StagesFn, Step, ToSpec};
use step01_unshare::oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, Mount, Spec,
};
use step01_unshare::spec::{add_namespace, annotate};
use step01_unshare::stage::{Stage, StageBuildError};
use step03_mount_ns::step02_pid_ns::step01_unshare;

use cgroups::Layout;

/// The CFS period keel uses: `--cpus 0.5` is a quota of 50 000 µs per 100 000 µs.
pub const CPU_PERIOD_US: u64 = 100_000;

// ANCHOR: limit_errors
fn parse_memory(text: &str) -> Result<i64, String> {
    let bytes = size::parse_bytes(text)?;
    if bytes < 6 << 20 {
        return Err(format!(
            "{text:?} is too small: the minimum memory limit is 6m (as docker's)"
        ));
    }
    Ok(bytes)
}

fn parse_swap(text: &str) -> Result<i64, String> {
    if text.trim() == "-1" {
        return Ok(-1);
    }
    size::parse_bytes(text)
}

fn parse_cpus(text: &str) -> Result<f64, String> {
    let cpus: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of CPUs (e.g. 0.5)"))?;
    let available = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    if !(0.01..=available).contains(&cpus) {
        return Err(format!(
            "{text:?} is out of range: use 0.01 to {available} (the CPUs of this machine)"
        ));
    }
    Ok(cpus)
}

fn parse_pids(text: &str) -> Result<i64, String> {
    match text.parse::<i64>() {
        Ok(-1) => Ok(-1),
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "{text:?} is not a process limit: use a positive number, or -1 for none"
        )),
    }
}

fn parse_cgroup_parent(text: &str) -> Result<String, String> {
    // ANCHOR_END: limit_errors
    cgroups::relative_path(text)
        .map(|p| p.display().to_string())
        .map_err(|e| e.to_string())
}

/// Step 03's flags plus resource limits.
#[derive(Debug, Clone, Args)]
#[group(id = "step04")]
pub struct RunArgs {
    /// Memory limit, e.g. 64m or 1g (the OOM killer ends the container beyond it)
    #[arg(short = 'm', long, value_name = "BYTES", value_parser = parse_memory, allow_hyphen_values = true)]
    pub memory: Option<i64>,
    /// Memory plus swap limit (-1: unlimited swap); needs --memory
    #[arg(long, value_name = "BYTES", value_parser = parse_swap, allow_hyphen_values = true, requires = "memory")]
    pub memory_swap: Option<i64>,
    /// How many CPUs' worth of time the container may use, e.g. 0.5
    #[arg(long, value_name = "DECIMAL", value_parser = parse_cpus, allow_hyphen_values = true)]
    pub cpus: Option<f64>,
    /// Relative CPU weight under contention (2-262144, default 1024)
    #[arg(long, value_name = "SHARES", value_parser = clap::value_parser!(u64).range(2..=262_144))]
    pub cpu_shares: Option<u64>,
    /// The most processes the container may have at once (-1: no limit)
    #[arg(long, value_name = "N", value_parser = parse_pids, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// The cgroup under which the container's cgroup is made (default: /keel)
    #[arg(long, value_name = "PATH", value_parser = parse_cgroup_parent)]
    pub cgroup_parent: Option<String>,
    /// Print peak memory, CPU time and peak processes when the container ends
    #[arg(long)]
    pub stats: bool,
    #[command(flatten)]
    pub step03: step03_mount_ns::RunArgs,
}

impl ToSpec for RunArgs {
    fn to_spec(&self) -> anyhow::Result<Spec> {
        let mut spec = self.step03.to_spec()?;
        if let (Some(memory), Some(swap)) = (self.memory, self.memory_swap) {
            anyhow::ensure!(
                swap == -1 || swap >= memory,
                "--memory-swap must be at least --memory (or -1)"
            );
        }
        let mut resources = LinuxResourcesBuilder::default();
        if let Some(limit) = self.memory {
            let mut memory = LinuxMemoryBuilder::default().limit(limit);
            if let Some(swap) = self.memory_swap {
                memory = memory.swap(swap);
            }
            resources = resources.memory(memory.build()?);
        }
        if self.cpus.is_some() || self.cpu_shares.is_some() {
            let mut cpu = LinuxCpuBuilder::default();
            if let Some(cpus) = self.cpus {
                cpu = cpu
                    .quota((cpus * CPU_PERIOD_US as f64).round() as i64)
                    .period(CPU_PERIOD_US);
            }
            if let Some(shares) = self.cpu_shares {
                cpu = cpu.shares(shares);
            }
            resources = resources.cpu(cpu.build()?);
        }
        if let Some(limit) = self.pids_limit {
            resources = resources.pids(LinuxPidsBuilder::default().limit(limit).build()?);
        }
        let mut linux = spec.linux().clone().unwrap_or_default();
        linux.set_resources(Some(resources.build()?));
        let parent = self.cgroup_parent.as_deref().unwrap_or("keel");
        let run = limits::default_cgroups_path();
        let name = run.rsplit('/').next().unwrap_or("run");
        linux.set_cgroups_path(Some(format!("/{parent}/{name}").into()));
        spec.set_linux(Some(linux));
        add_namespace(&mut spec, LinuxNamespaceType::Cgroup)?;
        if spec.root().is_some() {
            let mut mounts = spec.mounts().clone().unwrap_or_default();
            let mut cgroup = Mount::default();
            cgroup.set_destination("/sys/fs/cgroup".into());
            cgroup.set_typ(Some("cgroup".into()));
            cgroup.set_source(Some("cgroup".into()));
            cgroup.set_options(Some(vec![
                "nosuid".into(),
                "noexec".into(),
                "nodev".into(),
                "ro".into(),
            ]));
            mounts.push(cgroup);
            spec.set_mounts(Some(mounts));
        }
        if self.stats {
            annotate(&mut spec, limits::STATS_ANNOTATION, "true");
        }
        Ok(spec)
    }
}

/// The spec without its cgroup filesystem mounts, which step 04 makes itself (the earlier
/// steps would not know how), and whether there was one.
fn without_cgroup_mounts(spec: &Spec) -> (Spec, bool) {
    let mut earlier = spec.clone();
    let mounts = spec.mounts().clone().unwrap_or_default();
    let is_cgroup = |m: &Mount| {
        m.typ()
            .as_deref()
            .is_some_and(|t| cgroup_namespace::MOUNT_TYPES.contains(&t))
    };
    let had = mounts.iter().any(is_cgroup);
    earlier.set_mounts(Some(mounts.into_iter().filter(|m| !is_cgroup(m)).collect()));
    (earlier, had)
}

// ANCHOR: stages
/// Step 03's stages, the cgroup with its limits, and the cgroup namespace.
pub fn stages(spec: &Spec) -> Result<Vec<Box<dyn Stage>>, StageBuildError> {
    let (earlier, mount_view) = without_cgroup_mounts(spec);
    let mut stages = step03_mount_ns::stages(&earlier)?;
    // Without root (a rootless container, in step 01's user namespace) no cgroup can be
    // made: one without limits stays in its launcher's cgroup, as rootless podman's do on a
    // machine that delegates none; limits are refused rather than silently not enforced.
    let root = nix::unistd::geteuid().is_root();
    if !root && asks_for_limits(spec) {
        return Err(StageBuildError::new(RootlessLimits));
    }
    let layout = Layout::detect().map_err(StageBuildError::new)?;
    if root {
        stages.push(Box::new(
            limits::Limits::from_spec(spec, &layout).map_err(StageBuildError::new)?,
        ));
    }
    let namespace = cgroup_namespace::CgroupNamespace::from_spec(spec, &layout, mount_view);
    stages.push(Box::new(namespace.map_err(StageBuildError::new)?));
    Ok(stages)
}
// ANCHOR_END: stages

#[derive(Debug, thiserror::Error)]
#[error("cgroup limits (--memory, --cpus, --cpu-shares, --pids-limit) need root: this machine delegates no cgroup to your user. Run as root, or without limits")]
pub struct RootlessLimits;

fn asks_for_limits(spec: &Spec) -> bool {
    let Some(resources) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) else {
        return false;
    };
    resources.memory().is_some() || resources.cpu().is_some() || resources.pids().is_some()
}

/// Step 04 on the shared command line.
pub struct Step04;

impl Step for Step04 {
    type Run = RunArgs;
    type More = NoMore;
    const NAME: &'static str = "step04-cgroups";
    const ABOUT: &'static str = "Step 04: step 03 plus cgroup limits (memory, cpu, pids) and a cgroup namespace";
    const EXAMPLES: &'static str = "Examples:\n  step04-cgroups run --rootfs /var/lib/keel/rootfs --memory 32m --pids-limit 20 -- sh\n  step04-cgroups run --rootfs /var/lib/keel/rootfs --init --cpus 0.5 --stats -- timeout 2 yes >/dev/null\n";

    const STAGES: StagesFn = stages;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_limits_are_refused_with_the_reason() {
        assert!(parse_memory("-1").is_err());
        assert!(parse_memory("12zz").is_err());
        assert!(parse_memory("1m").unwrap_err().contains("minimum"));
        assert!(parse_cpus("0").is_err());
        assert!(parse_cpus("abc").is_err());
        assert!(parse_pids("0").is_err());
        assert_eq!(parse_pids("-1"), Ok(-1));
        assert_eq!(parse_swap("-1"), Ok(-1));
    }
}
