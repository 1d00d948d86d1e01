//! `-v SRC:DST[:ro]`: a host directory or file bind-mounted into the container.

use std::path::{Path, PathBuf};
use step02_pid_ns::step01_unshare::oci_spec::runtime::Mount;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub source: PathBuf,
    pub destination: PathBuf,
    pub read_only: bool,
}

/// Parses `SRC:DST[:ro|rw]`; the error says what is wrong and what is expected.
pub fn parse(text: &str) -> Result<Volume, String> {
    let usage = "expected SRC:DST or SRC:DST:ro, with absolute paths";
    let parts: Vec<&str> = text.split(':').collect();
    let (source, destination, mode) = match parts.as_slice() {
        [source, destination] => (*source, *destination, "rw"),
        [source, destination, mode] => (*source, *destination, *mode),
        _ => return Err(format!("{text:?}: {usage}")),
    };
    let read_only = match mode {
        "ro" => true,
        "rw" => false,
        other => return Err(format!("{text:?}: unknown mode {other:?}, use ro or rw")),
    };
    if !source.starts_with('/') || !destination.starts_with('/') {
        return Err(format!("{text:?}: {usage}"));
    }
    if destination.split('/').any(|c| c == "..") {
        return Err(format!("{text:?}: the destination may not contain '..'"));
    }
    let source = Path::new(source)
        .canonicalize()
        .map_err(|e| format!("{text:?}: the source {source} cannot be used: {e}"))?;
    Ok(Volume {
        source,
        destination: destination.into(),
        read_only,
    })
}

impl Volume {
    /// The volume as an OCI bind mount.
    pub fn to_mount(&self) -> Mount {
        let mut options = vec!["rbind".to_owned(), "rprivate".to_owned()];
        if self.read_only {
            options.push("ro".to_owned());
        }
        let mut mount = Mount::default();
        mount.set_destination(self.destination.clone());
        mount.set_typ(Some("bind".to_owned()));
        mount.set_source(Some(self.source.clone()));
        mount.set_options(Some(options));
        mount
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_only_volume() {
        let volume = parse("/tmp:/data:ro").expect("valid");
        assert_eq!(volume.destination, PathBuf::from("/data"));
        assert!(volume.read_only);
        assert_eq!(
            volume.to_mount().options().as_deref(),
            Some(&["rbind".into(), "rprivate".into(), "ro".into()][..])
        );
    }

    #[test]
    fn bad_volumes_say_what_is_expected() {
        for bad in [
            "/tmp",
            "tmp:/data",
            "/tmp:data",
            "/tmp:/data:rx",
            "/tmp:/a/../b",
            "/no/such/dir:/data",
            "a:b:c:d",
        ] {
            assert!(parse(bad).is_err(), "{bad} accepted");
        }
        assert!(parse("/tmp:/data:rx").unwrap_err().contains("use ro or rw"));
    }
}
