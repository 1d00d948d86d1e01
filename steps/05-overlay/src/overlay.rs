//! The overlay mount that makes a container's root: read-only lower layers, one writable
//! upper dir, and the work dir overlayfs needs on the upper's filesystem.
//!
//! It is an ordinary OCI mount of type `overlay` at `/`, handed to step 03 as the first of
//! the spec's mounts: step 03 mounts it on the rootfs directory before anything else, in the
//! container's own mount namespace, so it disappears with the container.

use std::path::PathBuf;
use step04_cgroups::step03_mount_ns::step02_pid_ns::step01_unshare::oci_spec::runtime::Mount;

use crate::store::Snapshot;

/// All mount options must fit in one page; keep room for the upper and work dirs.
pub const MAX_OPTIONS: usize = 3800;

/// The mount, and the directory the child must be in for its relative paths to resolve.
pub struct OverlayMount {
    pub mount: Mount,
    pub relative_to: Option<PathBuf>,
}

// ANCHOR: lowerdir
/// `layers` lowest first, as given; overlayfs wants the top layer first in `lowerdir`.
/// When the paths are too long for one mount call (dozens of layers), each layer gets a
/// short symlink in the snapshot (`l/0`, `l/1`...) and the options name those relative to
/// the snapshot directory, as Docker's overlay2 driver does: the child enters that
/// directory before mounting.
pub fn overlay_mount(layers: &[PathBuf], snapshot: &Snapshot) -> std::io::Result<OverlayMount> {
    let top_first: Vec<PathBuf> = layers.iter().rev().cloned().collect();
    let (upper, work) = (snapshot.upper(), snapshot.work());
    let mut lowerdir = join(&top_first);
    let mut relative_to = None;
    if lowerdir.len() > MAX_OPTIONS {
        let links = snapshot.dir.join("l");
        std::fs::create_dir_all(&links)?;
        let mut short = Vec::new();
        for (i, layer) in top_first.iter().enumerate() {
            let link = PathBuf::from("l").join(i.to_string());
            std::os::unix::fs::symlink(layer, snapshot.dir.join(&link))?;
            short.push(link);
        }
        lowerdir = join(&short);
        relative_to = Some(snapshot.dir.clone());
    }
    let (upper, work) = match relative_to {
        Some(_) => (PathBuf::from("upper"), PathBuf::from("work")),
        None => (upper, work),
    };
    let options = vec![
        format!("lowerdir={lowerdir}"),
        format!("upperdir={}", upper.display()),
        format!("workdir={}", work.display()),
    ];
    let mut mount = Mount::default();
    mount.set_destination("/".into());
    mount.set_typ(Some("overlay".into()));
    mount.set_source(Some("overlay".into()));
    mount.set_options(Some(options));
    Ok(OverlayMount { mount, relative_to })
}
// ANCHOR_END: lowerdir

fn join(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_layer_comes_first_and_long_lists_use_short_links() {
        let root = tempfile::tempdir().expect("tempdir");
        let store = crate::store::Store::new(root.path());
        let snapshot = store.create("c1", &[]).expect("create");
        let short = overlay_mount(&["/a".into(), "/b".into()], &snapshot).expect("mount");
        assert_eq!(short.mount.options().as_ref().expect("options")[0], "lowerdir=/b:/a");
        assert!(short.relative_to.is_none());

        let long_name = root.path().join("l".repeat(200));
        let layers: Vec<PathBuf> = (0..40)
            .map(|i| {
                let dir = long_name.with_extension(i.to_string());
                std::fs::create_dir(&dir).expect("mkdir");
                dir
            })
            .collect();
        let long = overlay_mount(&layers, &snapshot).expect("mount");
        assert_eq!(long.relative_to.as_deref(), Some(snapshot.dir.as_path()));
        let lowerdir = &long.mount.options().as_ref().expect("options")[0];
        assert!(
            lowerdir.starts_with("lowerdir=l/0:l/1:") && lowerdir.len() < MAX_OPTIONS,
            "{lowerdir}"
        );
        assert_eq!(std::fs::read_link(snapshot.dir.join("l/0")).expect("link"), layers[39]);
    }
}
