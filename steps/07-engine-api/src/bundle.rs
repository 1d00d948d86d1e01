//! `POST /containers/create`: the body the docker CLI sends becomes an OCI bundle by the
//! chain a student walked: the body is turned into step 06's own command line (`run
//! --hostname H -e K=V -m 64m ... IMAGE CMD`), parsed by the same clap structs, and its
//! `to_spec` (steps 06 → 01) makes the spec; step 05 adds the snapshot's overlay as the first
//! mount. What the command line cannot say (working dir, entrypoint, terminal, host network)
//! is set on the spec afterwards.

use clap::{Args, FromArgMatches};
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

use step01_unshare::cli::ToSpec;
use step01_unshare::oci_spec::runtime::{LinuxNamespaceType, Spec};
use step06_images::step05_overlay;
use step06_images::step05_overlay::step04_cgroups::step03_mount_ns::step02_pid_ns::step01_unshare;

use crate::record::ContainerDir;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The request asks for something invalid: 400.
    #[error("{0}")]
    BadRequest(String),
    /// The image is not in the store: 404, which makes the CLI pull it.
    #[error("No such image: {0}")]
    NoSuchImage(String),
    #[error("{0:#}")]
    Other(anyhow::Error),
}

/// The part of the create body keel uses; every other field is accepted and kept as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateBody {
    pub hostname: String,
    pub user: String,
    pub env: Option<Vec<String>>,
    pub cmd: Option<Value>,
    pub entrypoint: Option<Value>,
    pub image: String,
    pub working_dir: String,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    pub host_config: HostConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    pub binds: Option<Vec<String>>,
    pub auto_remove: bool,
    pub memory: i64,
    pub memory_swap: i64,
    pub nano_cpus: i64,
    pub cpu_shares: i64,
    pub pids_limit: Option<i64>,
    pub network_mode: String,
    pub readonly_rootfs: bool,
    pub cgroup_parent: String,
    pub cap_add: Option<Vec<String>>,
    pub cap_drop: Option<Vec<String>>,
    pub privileged: bool,
    /// `seccomp=unconfined`, `seccomp={JSON}` (the CLI sends the profile file's content),
    /// `no-new-privileges[=BOOL]`.
    pub security_opt: Option<Vec<String>>,
}

/// `Cmd`/`Entrypoint`: a list, or (old clients) one string, or null.
pub fn words(value: &Option<Value>) -> Option<Vec<String>> {
    match value {
        Some(Value::Array(items)) => Some(items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()),
        Some(Value::String(text)) => Some(vec![text.clone()]),
        _ => None,
    }
}

/// The spec, and what the engine keeps about it.
pub struct Made {
    pub spec: Spec,
    pub image_id: String,
    pub path: String,
    pub args: Vec<String>,
}

// ANCHOR: command_line
/// Step 06's `run` arguments for `body`, as a workshop participant would type them.
pub fn command_line(
    body: &CreateBody,
    id: &str,
    root: &Path,
    dir: &ContainerDir,
    hostname: &str,
) -> Result<Vec<String>, BundleError> {
    let host = &body.host_config;
    let mut argv: Vec<String> = vec!["--root".into(), root.display().to_string(), "--name".into(), id.into()];
    argv.extend(["--hostname".into(), hostname.into()]);
    for variable in body.env.iter().flatten() {
        // `KEY` alone would mean "pass the engine's own value" to step 01: docker's CLI
        // already resolved those, so only KEY=VALUE is passed on.
        if variable.contains('=') {
            argv.extend(["-e".into(), variable.clone()]);
        }
    }
    if !body.user.is_empty() {
        argv.extend(["-u".into(), numeric_user(&body.user)?]);
    }
    for bind in host.binds.iter().flatten() {
        argv.extend(["-v".into(), bind_volume(bind)?]);
    }
    let files = [
        (dir.hosts(), "/etc/hosts"),
        (dir.hostname(), "/etc/hostname"),
        (dir.resolv_conf(), "/etc/resolv.conf"),
    ];
    for (source, target) in files {
        argv.extend(["-v".into(), format!("{}:{target}", source.display())]);
    }
    for cap in host.cap_add.iter().flatten() {
        argv.extend(["--cap-add".into(), cap.clone()]);
    }
    for cap in host.cap_drop.iter().flatten() {
        argv.extend(["--cap-drop".into(), cap.clone()]);
    }
    if host.privileged {
        argv.push("--privileged".into());
    }
    for option in host.security_opt.iter().flatten() {
        argv.extend(["--security-opt".into(), option.clone()]);
    }
    if host.memory > 0 {
        argv.extend(["-m".into(), host.memory.to_string()]);
        if host.memory_swap != 0 {
            argv.extend(["--memory-swap".into(), host.memory_swap.to_string()]);
        }
    }
    if host.nano_cpus > 0 {
        argv.extend(["--cpus".into(), format!("{}", host.nano_cpus as f64 / 1e9)]);
    }
    if host.cpu_shares > 0 {
        argv.extend(["--cpu-shares".into(), host.cpu_shares.to_string()]);
    }
    if let Some(limit) = host.pids_limit.filter(|l| *l > 0) {
        argv.extend(["--pids-limit".into(), limit.to_string()]);
    }
    argv.push(body.image.clone());
    // With --entrypoint the image's Cmd no longer applies; the spec's args are set below.
    if words(&body.entrypoint).is_none_or(|e| e.is_empty()) {
        argv.extend(words(&body.cmd).unwrap_or_default());
    }
    Ok(argv)
}
// ANCHOR_END: command_line

fn numeric_user(user: &str) -> Result<String, BundleError> {
    if user == "root" {
        return Ok("0:0".into());
    }
    let numeric = user
        .split(':')
        .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
    if numeric {
        Ok(user.to_owned())
    } else {
        Err(BundleError::BadRequest(format!(
            "user {user:?}: keel's engine takes a numeric UID[:GID] (or root)"
        )))
    }
}

/// `SRC:DST[:MODE]` with an absolute source, created as a directory when missing (as
/// docker does); named volumes are not supported.
fn bind_volume(bind: &str) -> Result<String, BundleError> {
    let mut parts: Vec<&str> = bind.split(':').collect();
    if parts.len() < 2 || !parts[0].starts_with('/') {
        return Err(BundleError::BadRequest(format!(
            "volume {bind:?}: keel binds host paths only (SRC:DST[:ro] with an absolute SRC)"
        )));
    }
    if parts.len() == 3 {
        // docker's modes may combine options (`ro,z`); keel knows ro and rw.
        let read_only = parts[2].split(',').any(|o| o == "ro");
        parts[2] = if read_only { "ro" } else { "rw" };
    }
    if !Path::new(parts[0]).exists() {
        std::fs::create_dir_all(parts[0])
            .map_err(|e| BundleError::BadRequest(format!("volume {bind:?}: creating {}: {e}", parts[0])))?;
    }
    Ok(parts.join(":"))
}

// ANCHOR: spec_from_command_line
/// Parses `argv` with step 06's own `run` flags and makes the spec.
pub fn spec_from_command_line(argv: &[String]) -> Result<Spec, BundleError> {
    let command = step06_images::RunArgs::augment_args(clap::Command::new("run").no_binary_name(true));
    let matches = command
        .try_get_matches_from(argv)
        .map_err(|e| BundleError::BadRequest(e.to_string().trim().to_owned()))?;
    let args =
        step06_images::RunArgs::from_arg_matches(&matches).map_err(|e| BundleError::BadRequest(e.to_string()))?;
    // The store's errors are the engine's (or an unknown image); every other error of
    // to_spec is the request's: an unknown capability, a bad seccomp profile, swap below
    // memory... a 400 that says so, as dockerd answers.
    args.to_spec()
        .map_err(|error| match error.downcast_ref::<step06_images::store::StoreError>() {
            Some(step06_images::store::StoreError::UnknownImage(_)) => {
                BundleError::NoSuchImage(argv.last().cloned().unwrap_or_default())
            }
            Some(_) => BundleError::Other(error),
            None => BundleError::BadRequest(error.to_string()),
        })
}
// ANCHOR_END: spec_from_command_line

/// The whole create: spec from the chain, then what docker adds, written as the bundle.
pub fn make(body: &CreateBody, id: &str, root: &Path, dir: &ContainerDir, hostname: &str) -> Result<Made, BundleError> {
    let store = step06_images::store::Store::open(root).map_err(|e| BundleError::Other(e.into()))?;
    let (_, image) = match store.resolve(&body.image) {
        Ok(found) => found,
        Err(step06_images::store::StoreError::UnknownImage(_)) => {
            return Err(BundleError::NoSuchImage(body.image.clone()))
        }
        Err(step06_images::store::StoreError::BadReference(e)) => {
            return Err(BundleError::BadRequest(format!("invalid reference format: {e}")))
        }
        Err(e) => return Err(BundleError::Other(e.into())),
    };
    write_etc_files(dir, hostname)?;
    let argv = command_line(body, id, root, dir, hostname)?;
    let mut spec = spec_from_command_line(&argv)?;
    adjust(&mut spec, body, id)?;
    let spec = step05_overlay::bundle_spec(&spec).map_err(|e| BundleError::Other(e.into()))?;
    let bundle = dir.bundle();
    std::fs::create_dir_all(&bundle).map_err(|e| BundleError::Other(e.into()))?;
    let json = serde_json::to_vec_pretty(&spec).map_err(|e| BundleError::Other(e.into()))?;
    crate::record::write_durably(&bundle.join("config.json"), &json).map_err(|e| BundleError::Other(e.into()))?;
    let args = spec
        .process()
        .as_ref()
        .map(|p| p.args().clone().unwrap_or_default())
        .unwrap_or_default();
    let (path, rest) = args
        .split_first()
        .map(|(p, r)| (p.clone(), r.to_vec()))
        .unwrap_or_default();
    Ok(Made {
        spec,
        image_id: image.id().to_string(),
        path,
        args: rest,
    })
}

/// What step 06's command line cannot say.
fn adjust(spec: &mut Spec, body: &CreateBody, id: &str) -> Result<(), BundleError> {
    if let Some(process) = spec.process_mut() {
        if let Some(entrypoint) = words(&body.entrypoint).filter(|e| !e.is_empty()) {
            let mut args = entrypoint;
            args.extend(words(&body.cmd).unwrap_or_default());
            process.set_args(Some(args));
        }
        if !body.working_dir.is_empty() {
            process.set_cwd(PathBuf::from(&body.working_dir));
        }
        process.set_terminal(Some(body.tty));
    }
    if body.host_config.readonly_rootfs {
        if let Some(root) = spec.root_mut() {
            root.set_readonly(Some(true));
        }
    }
    if let Some(linux) = spec.linux_mut() {
        // One cgroup per container under keel's own, named by its id, as dockerd's
        // /docker/<id>.
        let parent = match body.host_config.cgroup_parent.trim_matches('/') {
            "" => "keel",
            parent => parent,
        };
        linux.set_cgroups_path(Some(PathBuf::from(format!("/{parent}/{id}"))));
        if crate::network::Mode::of(&body.host_config.network_mode) == crate::network::Mode::Host {
            if let Some(namespaces) = linux.namespaces_mut() {
                namespaces.retain(|n| n.typ() != LinuxNamespaceType::Network);
            }
        }
    }
    Ok(())
}

/// `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf` of the container, kept in its
/// directory and bind-mounted, as docker does.
fn write_etc_files(dir: &ContainerDir, hostname: &str) -> Result<(), BundleError> {
    let hosts = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n127.0.1.1\t{hostname}\n"
    );
    // The host's resolvers, except loopback ones, which mean nothing in another network
    // namespace.
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let resolv: String = resolv
        .lines()
        .filter(|line| {
            let server = line.strip_prefix("nameserver").map(str::trim);
            !server.is_some_and(|s| s.starts_with("127.") || s == "::1")
        })
        .map(|line| format!("{line}\n"))
        .collect();
    for (path, content) in [
        (dir.hosts(), hosts),
        (dir.hostname(), format!("{hostname}\n")),
        (dir.resolv_conf(), resolv),
    ] {
        std::fs::write(&path, content)
            .map_err(|e| BundleError::Other(anyhow::anyhow!("writing {}: {e}", path.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_create_body_becomes_step_06s_command_line() {
        let body: CreateBody = serde_json::from_value(serde_json::json!({
            "Image": "busybox", "Cmd": ["sh", "-c", "echo hi"], "Env": ["A=B", "PASSTHROUGH"],
            "User": "1000:1000",
            "HostConfig": {"Memory": 67108864, "NanoCpus": 500000000, "PidsLimit": 50, "Binds": ["/tmp:/data:ro,z"]}
        }))
        .expect("body");
        let dir = ContainerDir(PathBuf::from("/c"));
        let argv = command_line(&body, "abc", Path::new("/var/lib/keel"), &dir, "h").expect("argv");
        let text = argv.join(" ");
        assert!(
            text.starts_with("--root /var/lib/keel --name abc --hostname h -e A=B -u 1000:1000 -v /tmp:/data:ro"),
            "{text}"
        );
        assert!(
            text.contains("-m 67108864 --cpus 0.5 --pids-limit 50 busybox sh -c echo hi"),
            "{text}"
        );
        assert!(!text.contains("PASSTHROUGH"));
    }

    #[test]
    fn names_and_named_volumes_are_refused_with_a_reason() {
        assert!(matches!(numeric_user("nobody"), Err(BundleError::BadRequest(_))));
        assert_eq!(numeric_user("root").expect("root"), "0:0");
        assert!(matches!(bind_volume("data:/data"), Err(BundleError::BadRequest(_))));
    }

    #[test]
    fn entrypoint_replaces_the_images_cmd() {
        let body: CreateBody =
            serde_json::from_value(serde_json::json!({"Image": "busybox", "Entrypoint": ["echo"], "Cmd": ["x"]}))
                .expect("body");
        let dir = ContainerDir(PathBuf::from("/c"));
        let argv = command_line(&body, "abc", Path::new("/r"), &dir, "h").expect("argv");
        assert_eq!(argv.last().map(String::as_str), Some("busybox"));
    }
}
