//! `run IMAGE`: the image's config becomes the runtime spec's process, as docker does:
//! the command is Entrypoint + (the command given, or Cmd); Env, WorkingDir and User carry
//! over, the user's name looked up in the image's own /etc/passwd and /etc/group.

use std::path::{Path, PathBuf};

use crate::store::images::Image;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RunImageError {
    #[error("no command: the image has neither Entrypoint nor Cmd; give one after the image name")]
    NoCommand,
    #[error("user {0:?} is not in the image's /etc/passwd: use a numeric uid")]
    UnknownUser(String),
    #[error("group {0:?} is not in the image's /etc/group: use a numeric gid")]
    UnknownGroup(String),
}

/// What the spec's process gets from the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: Option<String>,
    pub user: Option<(u32, u32)>,
}

// ANCHOR: process
/// The process for `image`, with `command` overriding Cmd when not empty.
pub fn process(image: &Image, layers: &[PathBuf], command: &[String]) -> Result<Process, RunImageError> {
    let config = image.config.config().clone().unwrap_or_default();
    let entrypoint = config.entrypoint().clone().unwrap_or_default();
    let cmd = if command.is_empty() {
        config.cmd().clone().unwrap_or_default()
    } else {
        command.to_vec()
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(RunImageError::NoCommand);
    }
    let user = match config.user().as_deref() {
        None | Some("") => None,
        Some(user) => Some(resolve_user(user, layers)?),
    };
    Ok(Process {
        args,
        env: config.env().clone().unwrap_or_default(),
        cwd: config.working_dir().clone().filter(|d| !d.is_empty()),
        user,
    })
}
// ANCHOR_END: process

/// The file at `relative` as the container will see it: the topmost layer that has it.
fn file_in_layers(layers: &[PathBuf], relative: &str) -> Option<String> {
    for layer in layers.iter().rev() {
        let path = layer.join(relative);
        match path.symlink_metadata() {
            Ok(meta) if meta.is_file() => return std::fs::read_to_string(path).ok(),
            // Anything else there (a whiteout, a directory) hides the layers below.
            Ok(_) => return None,
            Err(_) => continue,
        }
    }
    None
}

/// `name`, `uid`, `name:group`, `uid:gid` as numbers.
fn resolve_user(user: &str, layers: &[PathBuf]) -> Result<(u32, u32), RunImageError> {
    let (name, group) = match user.split_once(':') {
        Some((name, group)) => (name, Some(group)),
        None => (user, None),
    };
    let passwd = file_in_layers(layers, "etc/passwd").unwrap_or_default();
    let (uid, primary_gid) = match name.parse::<u32>() {
        Ok(uid) => (
            uid,
            lookup(&passwd, |f| f[2] == name)
                .and_then(|f| f[3].parse().ok())
                .unwrap_or(uid),
        ),
        Err(_) => {
            let fields =
                lookup(&passwd, |f| f[0] == name).ok_or_else(|| RunImageError::UnknownUser(name.to_owned()))?;
            let uid = fields[2]
                .parse()
                .map_err(|_| RunImageError::UnknownUser(name.to_owned()))?;
            (uid, fields[3].parse().unwrap_or(uid))
        }
    };
    let gid = match group {
        None => primary_gid,
        Some(group) => match group.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                let groups = file_in_layers(layers, "etc/group").unwrap_or_default();
                let fields =
                    lookup(&groups, |f| f[0] == group).ok_or_else(|| RunImageError::UnknownGroup(group.to_owned()))?;
                fields[2]
                    .parse()
                    .map_err(|_| RunImageError::UnknownGroup(group.to_owned()))?
            }
        },
    };
    Ok((uid, gid))
}

/// The first `name:x:id:...` line of a passwd/group file whose fields match.
fn lookup(file: &str, matches: impl Fn(&[&str]) -> bool) -> Option<Vec<&str>> {
    file.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|fields| fields.len() >= 4 && matches(fields))
}

/// Docker's rule for the environment: the image's, then `-e` entries replacing by key.
pub fn merge_env(image: &[String], overrides: &[String]) -> Vec<String> {
    let mut env = image.to_vec();
    for entry in overrides {
        let key = entry.split('=').next().unwrap_or(entry);
        env.retain(|kv| kv.split('=').next() != Some(key));
        env.push(entry.clone());
    }
    env
}

/// Whether `path` names a layer dir of this store (an unpacked image layer).
pub fn is_layer_dir(path: &Path) -> bool {
    path.components().any(|c| c.as_os_str() == "layers")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (path, contents) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, contents).expect("write");
        }
        dir
    }

    #[test]
    fn users_resolve_in_the_topmost_passwd() {
        let lower = layer_with(&[
            ("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
            ("etc/group", "staff:x:50:\n"),
        ]);
        let upper = layer_with(&[(
            "etc/passwd",
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/app:/bin/sh\n",
        )]);
        let layers = [lower.path().to_owned(), upper.path().to_owned()];
        assert_eq!(resolve_user("app", &layers), Ok((1000, 1001)));
        assert_eq!(resolve_user("app:staff", &layers), Ok((1000, 50)));
        assert_eq!(resolve_user("42:7", &layers), Ok((42, 7)));
        assert_eq!(
            resolve_user("nobody", &layers),
            Err(RunImageError::UnknownUser("nobody".into()))
        );
    }

    #[test]
    fn env_overrides_replace_by_key() {
        let env = merge_env(&["PATH=/bin".into(), "A=1".into()], &["A=2".into(), "B=3".into()]);
        assert_eq!(env, ["PATH=/bin", "A=2", "B=3"]);
    }
}
