//! OCI mount options (`"nosuid"`, `"ro"`, `"rbind"`, `"mode=755"`...) turned into what
//! `mount(2)` takes: flags, a propagation change, and a data string for the filesystem.

use nix::mount::MsFlags;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for the mount itself (`MS_RDONLY`, `MS_NOSUID`...).
    pub flags: MsFlags,
    /// A bind mount (`bind`), recursive when `rbind`.
    pub bind: bool,
    pub recursive: bool,
    /// A propagation type to set after mounting (`MS_PRIVATE`, `MS_SLAVE`...), maybe `MS_REC`.
    pub propagation: MsFlags,
    /// Everything else, for the filesystem: `mode=755,size=65536k`.
    pub data: String,
}

/// Splits OCI option strings into flags and filesystem data, as runc does.
pub fn parse(options: &[String]) -> MountOptions {
    let mut parsed = MountOptions {
        flags: MsFlags::empty(),
        bind: false,
        recursive: false,
        propagation: MsFlags::empty(),
        data: String::new(),
    };
    let mut data = Vec::new();
    for option in options {
        let flag = match option.as_str() {
            "ro" => MsFlags::MS_RDONLY,
            "nosuid" => MsFlags::MS_NOSUID,
            "nodev" => MsFlags::MS_NODEV,
            "noexec" => MsFlags::MS_NOEXEC,
            "sync" => MsFlags::MS_SYNCHRONOUS,
            "dirsync" => MsFlags::MS_DIRSYNC,
            "noatime" => MsFlags::MS_NOATIME,
            "nodiratime" => MsFlags::MS_NODIRATIME,
            "relatime" => MsFlags::MS_RELATIME,
            "strictatime" => MsFlags::MS_STRICTATIME,
            "rw" | "suid" | "dev" | "exec" | "async" | "atime" | "diratime" => MsFlags::empty(),
            "bind" => {
                parsed.bind = true;
                MsFlags::empty()
            }
            "rbind" => {
                parsed.bind = true;
                parsed.recursive = true;
                MsFlags::empty()
            }
            other => {
                if let Some(propagation) = propagation(other) {
                    parsed.propagation = propagation;
                } else {
                    data.push(other);
                }
                MsFlags::empty()
            }
        };
        parsed.flags |= flag;
    }
    parsed.data = data.join(",");
    parsed
}

/// The flags for a propagation type, as in `linux.rootfsPropagation` or a mount option.
pub fn propagation(name: &str) -> Option<MsFlags> {
    Some(match name {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(options: &[&str]) -> Vec<String> {
        options.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_and_data_are_split() {
        let parsed = parse(&strings(&["nosuid", "strictatime", "mode=755", "size=65536k"]));
        assert_eq!(parsed.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(parsed.data, "mode=755,size=65536k");
        assert!(!parsed.bind);
    }

    #[test]
    fn a_read_only_recursive_bind() {
        let parsed = parse(&strings(&["rbind", "ro", "rprivate"]));
        assert!(parsed.bind && parsed.recursive);
        assert_eq!(parsed.flags, MsFlags::MS_RDONLY);
        assert_eq!(parsed.propagation, MsFlags::MS_PRIVATE | MsFlags::MS_REC);
        assert_eq!(parsed.data, "");
    }
}
