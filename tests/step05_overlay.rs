//! Step 05 as a participant sees it: containers on shared read-only layers, each writing
//! only to its own upper dir; deletions as whiteouts; commit makes a new layer; many layers
//! mount; bad layers are refused before anything is mounted.

use keel_tests::{host_mounts, needs_root, stderr, stdout, step, TestRootfs};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const STEP: &str = "step05-overlay";

/// `run --layer ... --root ROOT FLAGS -- COMMAND`.
fn run(layers: &[&Path], root: &Path, flags: &[&str], command: &[&str]) -> std::process::Output {
    let mut args: Vec<String> = vec!["run".into()];
    for layer in layers {
        args.extend(["--layer".into(), layer.display().to_string()]);
    }
    args.extend(["--root".into(), root.display().to_string()]);
    args.extend(flags.iter().map(|f| f.to_string()));
    args.push("--".into());
    args.extend(command.iter().map(|c| c.to_string()));
    step(STEP).args(&args).output().expect("run")
}

fn snapshot(root: &Path, args: &[&str]) -> std::process::Output {
    let root = root.display().to_string();
    let mut all = vec!["snapshot", "--root", &root];
    all.extend_from_slice(args);
    step(STEP).args(&all).output().expect("snapshot")
}

/// Every entry of a tree with its type, mode, owner, size and content: to prove a layer
/// was not written.
fn fingerprint(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut entries = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(path) = stack.pop() {
        let meta = path.symlink_metadata().expect("metadata");
        let content = if meta.is_file() {
            format!(
                "{:?}",
                std::fs::read(&path)
                    .expect("read")
                    .iter()
                    .map(|b| *b as u64)
                    .sum::<u64>()
            )
        } else if meta.is_symlink() {
            std::fs::read_link(&path).expect("link").display().to_string()
        } else {
            String::new()
        };
        let key = path.strip_prefix(dir).expect("prefix").to_owned();
        entries.insert(
            key,
            format!(
                "{:o} {}:{} {} {content} {}",
                meta.mode(),
                meta.uid(),
                meta.gid(),
                meta.len(),
                meta.mtime()
            ),
        );
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read_dir").flatten() {
                stack.push(entry.path());
            }
        }
    }
    entries
}

#[test]
fn containers_on_the_same_layers_see_only_their_own_writes() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let base = rootfs.path();
    let root = rootfs.scratch("store");
    let before = fingerprint(&base);
    let script =
        |me: &str| format!("echo {me} > /who; sleep 1; cat /who; rm /etc/hostname; ls /etc/hostname 2>&1 || true");
    let spawn = |me: &str| {
        let mut args = vec!["run".to_owned(), "--layer".into(), base.display().to_string()];
        args.extend([
            "--root".into(),
            root.display().to_string(),
            "--name".into(),
            me.into(),
            "--keep".into(),
        ]);
        args.extend(["--".into(), "sh".into(), "-c".into(), script(me)]);
        std::process::Command::new(keel_tests::binary(STEP))
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    // Both run at once on the same lower layer.
    let (a, b) = (spawn("a"), spawn("b"));
    let (a, b) = (a.wait_with_output().expect("a"), b.wait_with_output().expect("b"));
    assert!(stdout(&a).starts_with("a\n"), "{a:?}");
    assert!(stdout(&b).starts_with("b\n"), "{b:?}");
    assert_eq!(before, fingerprint(&base), "the lower layer was written");
    for me in ["a", "b"] {
        let upper = root.join("snapshots").join(me).join("upper");
        assert_eq!(
            std::fs::read_to_string(upper.join("who")).expect("who"),
            format!("{me}\n")
        );
        // The deleted lower file is a whiteout in its upper dir, and in its diff.
        let diff = snapshot(&root, &["diff", me]);
        insta::assert_snapshot!(format!("diff_{me}"), stdout(&diff));
        assert!(snapshot(&root, &["rm", me]).status.success());
    }
    assert!(base.join("etc/hostname").exists(), "the lower file is still there");
}

#[test]
fn a_committed_snapshot_is_a_layer_that_shows_the_change() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let base = rootfs.path();
    let root = rootfs.scratch("store");
    let layer2 = rootfs.scratch("layers").join("layer2");
    let changed = run(
        &[&base],
        &root,
        &["--name", "c1", "--keep"],
        &["sh", "-c", "echo v2 > /version; rm -r /home"],
    );
    assert!(changed.status.success(), "{changed:?}");
    assert!(stderr(&changed).contains("kept snapshot c1"), "{}", stderr(&changed));
    assert!(snapshot(&root, &["commit", "c1", layer2.to_str().expect("utf-8")])
        .status
        .success());
    let seen = run(
        &[&base, &layer2],
        &root,
        &[],
        &["sh", "-c", "cat /version; ls -d /home 2>&1 || true"],
    );
    assert_eq!(stdout(&seen), "v2\nls: /home: No such file or directory\n");
    assert!(snapshot(&root, &["rm", "c1"]).status.success());
    assert_eq!(stdout(&snapshot(&root, &["ls"])), "", "snapshots left");
}

#[test]
fn forty_layers_mount() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let root = rootfs.scratch("store");
    // Long names: their paths do not fit in one mount call, so the layers go by short
    // symlinks in the snapshot (l/0, l/1...), relative to the snapshot directory.
    let layers_dir = rootfs.scratch("layers");
    let mut layers: Vec<PathBuf> = vec![rootfs.path()];
    for i in 0..40 {
        let layer = layers_dir.join(format!("{i:02}-{}", "l".repeat(120)));
        std::fs::create_dir_all(layer.join("layers")).expect("mkdir");
        std::fs::write(layer.join("layers").join(format!("{i:02}")), "").expect("write");
        std::fs::write(layer.join("top"), format!("{i}\n")).expect("write");
        layers.push(layer);
    }
    let refs: Vec<&Path> = layers.iter().map(PathBuf::as_path).collect();
    let output = run(&refs, &root, &[], &["sh", "-c", "ls /layers | wc -l; cat /top"]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(stdout(&output), "40\n39\n", "every layer visible, the last one on top");
}

#[test]
fn bad_layers_are_refused_before_mounting() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let root = rootfs.scratch("store");
    let base = rootfs.path();
    let file = base.join("etc/passwd");
    let mounts_before = host_mounts();
    let cases: [(&str, Vec<&Path>); 3] = [
        ("missing layer", vec![&base, Path::new("/nonexistent/layer")]),
        ("a file as layer", vec![&base, &file]),
        ("the same dir twice", vec![&base, &base]),
    ];
    let mut transcript = String::new();
    for (what, layers) in cases {
        let output = run(&layers, &root, &[], &["true"]);
        assert_eq!(output.status.code(), Some(125), "{what}: {output:?}");
        let line = stderr(&output)
            .lines()
            .next()
            .unwrap_or_default()
            .replace(&base.display().to_string(), "<rootfs>");
        transcript.push_str(&format!("{what}:\n  {line}\n"));
    }
    insta::assert_snapshot!("errors", transcript);
    assert_eq!(mounts_before, host_mounts());
    let leftover: Vec<_> = std::fs::read_dir(root.join("snapshots"))
        .map(|d| d.flatten().count())
        .into_iter()
        .collect();
    assert!(leftover.iter().all(|n| *n == 0), "a snapshot was created: {leftover:?}");
}

#[test]
fn an_upper_dir_on_overlayfs_is_refused_with_the_fix() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let scratch = rootfs.scratch("ovl");
    for dir in ["lower", "upper", "work", "merged"] {
        std::fs::create_dir_all(scratch.join(dir)).expect("mkdir");
    }
    let options = format!(
        "lowerdir={0}/lower,upperdir={0}/upper,workdir={0}/work",
        scratch.display()
    );
    let merged = scratch.join("merged");
    let status = std::process::Command::new("mount")
        .args([
            "-t",
            "overlay",
            "overlay",
            "-o",
            &options,
            merged.to_str().expect("utf-8"),
        ])
        .status()
        .expect("mount");
    assert!(status.success());
    let output = run(&[&rootfs.path()], &merged, &[], &["true"]);
    let _ = std::process::Command::new("umount").arg(&merged).status();
    assert_eq!(output.status.code(), Some(125), "{output:?}");
    assert!(
        stderr(&output).contains("is on overlayfs, which cannot hold an upper dir"),
        "{}",
        stderr(&output)
    );
    // What the refused run might have created on the overlay landed in its upper dir.
    assert!(
        !scratch.join("upper/snapshots").exists(),
        "a directory was created on the refused root"
    );
}
