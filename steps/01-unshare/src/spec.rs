//! The OCI runtime spec (`config.json`) that describes a container. Every step reads more of
//! the same document; this one fills in what step 01 honours: `process.args`, `process.env`,
//! `process.cwd`, `hostname`, and the uts, ipc, net (and user) namespaces.

use nix::unistd::{getegid, geteuid};
use oci_spec::runtime::{
    LinuxBuilder, LinuxIdMappingBuilder, LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType, ProcessBuilder,
    Spec, SpecBuilder,
};
use oci_spec::OciSpecError;

use crate::exec::DEFAULT_PATH;

/// Turns `KEY=VALUE` and bare `KEY` (take the caller's value, as `docker run -e KEY` does)
/// into the environment of the container, on top of docker's defaults.
pub fn environment(hostname: Option<&str>, overrides: &[String]) -> Vec<String> {
    let mut env = vec![format!("PATH={DEFAULT_PATH}"), "HOME=/root".to_owned()];
    if let Some(name) = hostname {
        env.push(format!("HOSTNAME={name}"));
    }
    for entry in overrides {
        let (key, value) = match entry.split_once('=') {
            Some((key, value)) => (key, value.to_owned()),
            None => match std::env::var(entry) {
                Ok(value) => (entry.as_str(), value),
                Err(_) => continue,
            },
        };
        env.retain(|kv| kv.split_once('=').map(|(k, _)| k) != Some(key));
        env.push(format!("{key}={value}"));
    }
    env
}

fn namespace(typ: LinuxNamespaceType) -> Result<LinuxNamespace, OciSpecError> {
    LinuxNamespaceBuilder::default().typ(typ).build()
}

/// Adds a namespace of type `typ` to the spec (a later step's primitive).
pub fn add_namespace(spec: &mut Spec, typ: LinuxNamespaceType) -> Result<(), OciSpecError> {
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut namespaces = linux.namespaces().clone().unwrap_or_default();
    if !namespaces.iter().any(|ns| ns.typ() == typ) {
        namespaces.push(namespace(typ)?);
    }
    linux.set_namespaces(Some(namespaces));
    spec.set_linux(Some(linux));
    Ok(())
}

/// Sets an annotation: how keel passes options that the OCI spec has no field for.
pub fn annotate(spec: &mut Spec, key: &str, value: &str) {
    let mut annotations = spec.annotations().clone().unwrap_or_default();
    annotations.insert(key.to_owned(), value.to_owned());
    spec.set_annotations(Some(annotations));
}

/// Whether an annotation is set to "true".
pub fn annotated(spec: &Spec, key: &str) -> bool {
    spec.annotations()
        .as_ref()
        .and_then(|a| a.get(key))
        .is_some_and(|v| v == "true")
}

/// The spec for running `command` the way step 01 does.
pub fn base_spec(command: &[String], hostname: Option<&str>, env: &[String]) -> Result<Spec, OciSpecError> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
    let default_capabilities = crate::capabilities::DOCKER_DEFAULT.into_iter().collect();
    let process = ProcessBuilder::default()
        .args(command.to_vec())
        .env(environment(hostname, env))
        .cwd(cwd)
        .capabilities(crate::capabilities::linux_capabilities(&default_capabilities))
        .no_new_privileges(true)
        .build()?;
    let mut namespaces = vec![
        namespace(LinuxNamespaceType::Uts)?,
        namespace(LinuxNamespaceType::Ipc)?,
        namespace(LinuxNamespaceType::Network)?,
    ];
    let mut linux = LinuxBuilder::default();
    // Without root, a user namespace is what allows the others: inside it we are root, with
    // our own uid and gid mapped to 0.
    if !geteuid().is_root() {
        namespaces.insert(0, namespace(LinuxNamespaceType::User)?);
        let map = |host_id: u32| {
            LinuxIdMappingBuilder::default()
                .container_id(0u32)
                .host_id(host_id)
                .size(1u32)
                .build()
        };
        linux = linux
            .uid_mappings(vec![map(geteuid().as_raw())?])
            .gid_mappings(vec![map(getegid().as_raw())?]);
    }
    let linux = linux.namespaces(namespaces).build()?;
    let mut spec = SpecBuilder::default().process(process).linux(linux).build()?;
    spec.set_root(None);
    spec.set_mounts(Some(Vec::new()));
    spec.set_hostname(hostname.map(str::to_owned));
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_replace_defaults_and_keep_order() {
        let env = environment(Some("box"), &["PATH=/bin".into(), "A=1".into()]);
        assert_eq!(env, ["HOME=/root", "HOSTNAME=box", "PATH=/bin", "A=1"]);
    }

    #[test]
    fn a_bare_key_takes_the_callers_value_or_nothing() {
        let env = environment(None, &["KEEL_SURELY_UNSET_VARIABLE".into()]);
        assert_eq!(env.len(), 2);
    }

    #[test]
    fn adding_a_namespace_twice_keeps_one() {
        let mut spec = base_spec(&["true".into()], None, &[]).expect("spec");
        add_namespace(&mut spec, LinuxNamespaceType::Pid).expect("add");
        add_namespace(&mut spec, LinuxNamespaceType::Pid).expect("add");
        let pids = crate::namespaces::requested(&spec)
            .into_iter()
            .filter(|t| *t == LinuxNamespaceType::Pid);
        assert_eq!(pids.count(), 1);
    }

    #[test]
    fn the_base_spec_asks_for_uts_ipc_and_net() {
        let spec = base_spec(&["true".into()], Some("box"), &[]).expect("spec");
        let types = crate::namespaces::requested(&spec);
        for t in [
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Network,
        ] {
            assert!(types.contains(&t), "{t} missing");
        }
        assert_eq!(spec.hostname().as_deref(), Some("box"));
    }
}
