//! `--security-opt`, as `docker run` takes it: `seccomp=unconfined`, `seccomp=PROFILE.json`
//! (the docker CLI sends the file's JSON itself, `seccomp={...}`, which is accepted too), and
//! `no-new-privileges[=true|false]`, `systempaths=unconfined`. `=` or `:` separate the name from the value, as in Docker.

use std::path::Path;

/// The container's seccomp filter.
#[derive(Debug, Clone, PartialEq)]
pub enum SeccompChoice {
    /// keel's default profile (crate::seccomp::profile).
    Default,
    /// No filter.
    Unconfined,
    /// A profile's JSON.
    Profile(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct SecurityOptions {
    pub seccomp: SeccompChoice,
    pub no_new_privileges: Option<bool>,
    /// `systempaths=unconfined`: no masked or read-only paths in /proc and /sys.
    pub system_paths_unconfined: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SecurityOptError {
    #[error("--security-opt {0:?}: keel knows seccomp=unconfined|PROFILE.json, systempaths=unconfined and no-new-privileges[=true|false]")]
    Unknown(String),
    #[error("--security-opt {option:?}: reading the seccomp profile {path}: {source}")]
    Read {
        option: String,
        path: String,
        source: std::io::Error,
    },
}

pub fn parse(options: &[String]) -> Result<SecurityOptions, SecurityOptError> {
    let mut parsed = SecurityOptions {
        seccomp: SeccompChoice::Default,
        no_new_privileges: None,
        system_paths_unconfined: false,
    };
    for option in options {
        let (name, value) = match option.find(['=', ':']) {
            Some(at) => (&option[..at], Some(&option[at + 1..])),
            None => (option.as_str(), None),
        };
        match (name, value) {
            ("seccomp", Some("unconfined")) => parsed.seccomp = SeccompChoice::Unconfined,
            ("seccomp", Some(json)) if json.trim_start().starts_with('{') => {
                parsed.seccomp = SeccompChoice::Profile(json.to_owned());
            }
            ("seccomp", Some(path)) if !path.is_empty() => {
                let json = std::fs::read_to_string(Path::new(path)).map_err(|source| SecurityOptError::Read {
                    option: option.clone(),
                    path: path.to_owned(),
                    source,
                })?;
                parsed.seccomp = SeccompChoice::Profile(json);
            }
            ("systempaths", Some("unconfined")) => parsed.system_paths_unconfined = true,
            ("no-new-privileges", None | Some("true")) => parsed.no_new_privileges = Some(true),
            ("no-new-privileges", Some("false")) => parsed.no_new_privileges = Some(false),
            _ => return Err(SecurityOptError::Unknown(option.clone())),
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(option: &str) -> Result<SecurityOptions, SecurityOptError> {
        parse(&[option.to_owned()])
    }

    #[test]
    fn dockers_forms_are_understood() {
        assert_eq!(
            one("seccomp=unconfined").expect("ok").seccomp,
            SeccompChoice::Unconfined
        );
        assert_eq!(
            one("seccomp:unconfined").expect("ok").seccomp,
            SeccompChoice::Unconfined
        );
        let inline = one("seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\"}").expect("ok");
        assert!(matches!(inline.seccomp, SeccompChoice::Profile(json) if json.contains("defaultAction")));
        assert_eq!(one("no-new-privileges").expect("ok").no_new_privileges, Some(true));
        assert!(one("systempaths=unconfined").expect("ok").system_paths_unconfined);
        assert_eq!(
            one("no-new-privileges=false").expect("ok").no_new_privileges,
            Some(false)
        );
        assert_eq!(parse(&[]).expect("ok").seccomp, SeccompChoice::Default);
    }

    #[test]
    fn unknown_options_and_missing_files_are_errors_that_say_what_works() {
        let apparmor = one("apparmor=docker-default").expect_err("unknown").to_string();
        assert!(apparmor.contains("seccomp=unconfined"), "{apparmor}");
        let missing = one("seccomp=/no/such/profile.json").expect_err("missing").to_string();
        assert!(missing.contains("/no/such/profile.json"), "{missing}");
    }
}
