//! The cgroup operations on a running container: `pause` and `resume` (the freezer) and
//! `update` (new limits, as Kubernetes' in-place resize and `docker update` send them).

use std::io::Read;
use std::path::Path;
use step03_mount_ns::step02_pid_ns::step01_unshare::oci_spec::runtime::LinuxResources;

use super::cli::Context;
use super::state::{Record, Status};
use super::RuntimeError;

fn running(context: &Context, id: &str) -> Result<Record, RuntimeError> {
    let record = context.dir.load(id)?;
    match record.status(&context.dir) {
        Status::Stopped => Err(RuntimeError::NotRunning(id.to_owned())),
        _ => Ok(record),
    }
}

pub fn pause(context: &Context, id: &str) -> Result<(), RuntimeError> {
    running(context, id)?.cgroup()?.freeze()?;
    Ok(())
}

pub fn resume(context: &Context, id: &str) -> Result<(), RuntimeError> {
    running(context, id)?.cgroup()?.thaw()?;
    Ok(())
}

/// `update --resources FILE|-`: LinuxResources JSON, e.g. containerd's
/// `{"memory":{"limit":134217728},"cpu":{"shares":512}}`.
pub fn update(context: &Context, id: &str, source: &Path) -> Result<(), RuntimeError> {
    let mut json = String::new();
    let read = if source == Path::new("-") {
        std::io::stdin().read_to_string(&mut json).map(|_| ())
    } else {
        std::fs::read_to_string(source).map(|text| json = text)
    };
    read.map_err(|e| RuntimeError::io("reading resources from", source, e))?;
    let resources: LinuxResources = serde_json::from_str(&json)
        .map_err(|e| RuntimeError::Usage(format!("the resources are not valid LinuxResources JSON: {e}")))?;
    running(context, id)?.cgroup()?.update(&resources)?;
    Ok(())
}
