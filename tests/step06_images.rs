//! Step 06 as a participant sees it: images from the embedded busybox, a real registry
//! (plain HTTP, TLS with basic auth, a multi-platform index), rootfs tarballs and
//! save/load archives; hostile layers and corrupted blobs refused; clear one-line errors.

use keel_tests::registry::{Registry, PASSWORD, USER};
use keel_tests::{needs_root, stderr, stdout, step};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};

const STEP: &str = "step06-images";

/// A data root of its own for each test (images and snapshots), removed at the end.
struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("keel-test-images-")
                .tempdir()
                .expect("tempdir"),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// `step06-images COMMAND --root ROOT ARGS...` (the --root goes where clap wants it).
    fn cmd(&self, command: &str, args: &[&str]) -> std::process::Output {
        let root = self.path().display().to_string();
        let mut all = vec![command, "--root", &root];
        all.extend_from_slice(args);
        step(STEP).args(&all).output().expect("step06")
    }

    fn ok(&self, command: &str, args: &[&str]) -> String {
        let output = self.cmd(command, args);
        assert!(output.status.success(), "{command} {args:?}: {output:?}");
        stdout(&output)
    }

    /// Saves `image` and unpacks the archive as an OCI layout directory.
    fn layout(&self, image: &str) -> PathBuf {
        let archive = self.dir.path().join("image.tar");
        self.ok("save", &[image, "-o", archive.to_str().expect("utf-8")]);
        let layout = self.dir.path().join("layout");
        std::fs::create_dir_all(&layout).expect("mkdir");
        let mut tar = tar::Archive::new(std::fs::File::open(&archive).expect("open"));
        tar.unpack(&layout).expect("unpack");
        layout
    }
}

/// A registry holding the embedded busybox image as `name`.
fn registry_with_busybox(tls: bool, auth: bool, name: &str) -> (Registry, Root) {
    let source = Root::new();
    source.ok("busybox", &[]);
    let registry = Registry::start(tls, auth);
    registry.push(&source.layout("busybox"), "latest", name);
    (registry, source)
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_embedded_busybox_image_runs_without_network() {
    if !needs_root() {
        return;
    }
    let root = Root::new();
    let id = root.ok("busybox", &[]);
    assert!(id.starts_with("sha256:"), "{id}");
    let images = root.ok("images", &[]);
    assert!(
        images
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("busybox ") && l.contains("latest")),
        "{images}"
    );
    assert_eq!(
        root.ok("run", &["busybox", "--", "echo", "hello from an image"]),
        "hello from an image\n"
    );
    // The image's default command (sh) reads the script from stdin.
    let output = step(STEP)
        .args(["run", "--root", root.path().to_str().expect("utf-8"), "busybox"])
        .write_stdin("echo default command\n")
        .output()
        .expect("run");
    assert_eq!(stdout(&output), "default command\n", "{output:?}");
}

#[test]
fn pull_from_a_registry_then_run_the_image() {
    if !needs_root() {
        return;
    }
    let (registry, _source) = registry_with_busybox(false, false, "keel/busybox:1");
    let root = Root::new();
    let name = format!("{}/keel/busybox:1", registry.host());
    let pulled = root.ok("pull", &["--insecure-registry", &registry.host(), &name]);
    assert!(
        pulled.contains(": Pull complete\n"),
        "no docker-like line per layer in a log:\n{pulled}"
    );
    assert!(pulled.contains("Status: Downloaded newer image"), "{pulled}");
    assert!(root
        .ok("images", &[])
        .contains(&format!("{}/keel/busybox", registry.host())));
    assert_eq!(
        root.ok("run", &[&name, "--", "cat", "/etc/os-release"]),
        "NAME=\"keel busybox\"\nID=keel\n"
    );
}

#[test]
fn pull_over_tls_with_basic_auth() {
    if !needs_root() {
        return;
    }
    let (registry, _source) = registry_with_busybox(true, true, "private/busybox:tls");
    let root = Root::new();
    let name = format!("{}/private/busybox:tls", registry.host());
    let ca = registry.ca_cert().display().to_string();
    let anonymous = root.cmd("pull", &["--ca-cert", &ca, &name]);
    assert_eq!(anonymous.status.code(), Some(125), "{anonymous:?}");
    assert!(stderr(&anonymous).contains("unauthorized"), "{}", stderr(&anonymous));
    let untrusted = root.cmd("pull", &["--user", &format!("{USER}:{PASSWORD}"), &name]);
    assert_eq!(
        untrusted.status.code(),
        Some(125),
        "a self-signed certificate must not be trusted silently"
    );
    root.ok(
        "pull",
        &["--ca-cert", &ca, "--user", &format!("{USER}:{PASSWORD}"), &name],
    );
    assert_eq!(root.ok("run", &[&name, "--", "echo", "tls ok"]), "tls ok\n");
}

#[test]
fn push_to_a_registry_over_tls_with_basic_auth_then_pull_it_back() {
    if !needs_root() {
        return;
    }
    let registry = Registry::start(true, true);
    let source = Root::new();
    source.ok("busybox", &[]);
    let name = format!("{}/pushed/busybox:v1", registry.host());
    source.ok("tag", &["busybox", &name]);
    let ca = registry.ca_cert().display().to_string();
    let user = format!("{USER}:{PASSWORD}");

    let anonymous = source.cmd("push", &["--ca-cert", &ca, &name]);
    assert_eq!(anonymous.status.code(), Some(125), "{anonymous:?}");
    assert!(stderr(&anonymous).contains("unauthorized"), "{}", stderr(&anonymous));

    let pushed = source.ok("push", &["--ca-cert", &ca, "--user", &user, &name]);
    let lines: Vec<&str> = pushed.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some(format!("The push refers to repository [{}/pushed/busybox]", registry.host()).as_str()),
        "{pushed}"
    );
    assert!(lines.iter().any(|l| l.ends_with(": Pushed")), "{pushed}");
    let last = lines.last().expect("a digest line");
    let digest = last
        .strip_prefix("v1: digest: ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("{pushed}"));

    // A second push sends no layer again.
    let again = source.ok("push", &["--ca-cert", &ca, "--user", &user, &name]);
    assert!(again.contains(": Layer already exists"), "{again}");
    assert!(!again.contains(": Pushed"), "{again}");
    assert!(
        again.ends_with(&format!("{last}\n")),
        "the same digest and size: {again}"
    );

    let root = Root::new();
    let pulled = root.ok("pull", &["--ca-cert", &ca, "--user", &user, &name]);
    // The manifest went as the store has it: the registry serves it under the same digest.
    assert!(pulled.contains(&format!("Digest: {digest}")), "{pulled}");
    assert_eq!(
        root.ok("run", &[&name, "--", "echo", "pushed and pulled"]),
        "pushed and pulled\n"
    );

    let missing = source.cmd(
        "push",
        &[
            "--ca-cert",
            &ca,
            "--user",
            &user,
            &format!("{}/pushed/none:v1", registry.host()),
        ],
    );
    assert_eq!(missing.status.code(), Some(125), "{missing:?}");
    assert!(
        stderr(&missing).contains("An image does not exist locally with the tag"),
        "{}",
        stderr(&missing)
    );
}

/// An OCI layout holding an index of two images: the busybox layer plus a layer with an
/// `/arch` file, one for amd64 and one for arm64.
fn multi_platform_layout(source: &Root) -> PathBuf {
    let layout = source.layout("busybox");
    let blobs = layout.join("blobs/sha256");
    let put = |bytes: &[u8]| -> (String, usize) {
        let hex = sha256(bytes);
        std::fs::write(blobs.join(&hex), bytes).expect("write blob");
        (hex, bytes.len())
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index")).expect("json");
    let busybox_manifest = index["manifests"][0]["digest"]
        .as_str()
        .expect("digest")
        .trim_start_matches("sha256:")
        .to_owned();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blobs.join(&busybox_manifest)).expect("m")).expect("json");
    let config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            blobs.join(
                manifest["config"]["digest"]
                    .as_str()
                    .expect("c")
                    .trim_start_matches("sha256:"),
            ),
        )
        .expect("c"),
    )
    .expect("json");
    let mut manifests = Vec::new();
    for arch in ["amd64", "arm64"] {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(arch.len() as u64 + 1);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, "arch", format!("{arch}\n").as_bytes())
            .expect("append");
        let layer = builder.into_inner().expect("tar");
        let (layer_hex, layer_size) = put(&layer);
        let mut arch_config = config.clone();
        arch_config["architecture"] = json!(arch);
        arch_config["rootfs"]["diff_ids"]
            .as_array_mut()
            .expect("diff ids")
            .push(json!(format!("sha256:{layer_hex}")));
        let (config_hex, config_size) = put(&serde_json::to_vec(&arch_config).expect("json"));
        let mut arch_manifest = manifest.clone();
        arch_manifest["config"] = json!({"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{config_hex}"), "size": config_size});
        arch_manifest["layers"].as_array_mut().expect("layers").push(
            json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": format!("sha256:{layer_hex}"), "size": layer_size}),
        );
        let (manifest_hex, manifest_size) = put(&serde_json::to_vec(&arch_manifest).expect("json"));
        manifests.push(json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{manifest_hex}"),
            "size": manifest_size,
            "platform": {"architecture": arch, "os": "linux"},
        }));
    }
    let image_index =
        json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
    let (index_hex, index_size) = put(&serde_json::to_vec(&image_index).expect("json"));
    let top = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": format!("sha256:{index_hex}"),
        "size": index_size,
        "annotations": {"org.opencontainers.image.ref.name": "multi"},
    }]});
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&top).expect("json")).expect("write index");
    layout
}

#[test]
fn a_multi_platform_index_gives_this_machines_image_and_shared_layers_are_not_fetched_twice() {
    if !needs_root() {
        return;
    }
    let source = Root::new();
    source.ok("busybox", &[]);
    let registry = Registry::start(false, false);
    registry.push(&source.layout("busybox"), "latest", "keel/busybox:1");
    registry.push(&multi_platform_layout(&source), "multi", "keel/multi:1");
    let root = Root::new();
    let insecure = ["--insecure-registry", &registry.host()];
    let busybox = format!("{}/keel/busybox:1", registry.host());
    let multi = format!("{}/keel/multi:1", registry.host());
    root.ok("pull", &[insecure[0], insecure[1], &busybox]);
    let second = root.ok("pull", &[insecure[0], insecure[1], &multi]);
    assert!(
        second.contains("Already exists"),
        "the busybox layer was downloaded again:\n{second}"
    );
    let arch = if std::env::consts::ARCH == "aarch64" {
        "arm64"
    } else {
        "amd64"
    };
    assert_eq!(root.ok("run", &[&multi, "--", "cat", "/arch"]), format!("{arch}\n"));
}

#[test]
fn a_corrupted_blob_is_rejected_with_its_digest_named() {
    if !needs_root() {
        return;
    }
    let (registry, _source) = registry_with_busybox(false, false, "keel/corrupt:1");
    // The largest blob is the busybox layer (as pushed: skopeo compresses it on the way).
    let data = registry
        .blob_files()
        .into_iter()
        .next()
        .expect("a blob in the registry");
    let layer = format!(
        "sha256:{}",
        data.parent()
            .and_then(|d| d.file_name())
            .expect("hex")
            .to_string_lossy()
    );
    std::fs::write(&data, b"not the layer you are looking for").expect("corrupt");
    let root = Root::new();
    let output = root.cmd(
        "pull",
        &[
            "--insecure-registry",
            &registry.host(),
            &format!("{}/keel/corrupt:1", registry.host()),
        ],
    );
    assert_eq!(output.status.code(), Some(125), "{output:?}");
    assert!(
        stderr(&output).contains(&layer),
        "the digest is not named: {}",
        stderr(&output)
    );
    assert_eq!(
        root.ok("images", &[]).lines().count(),
        1,
        "a half-pulled image is listed"
    );
}

#[test]
fn import_then_save_and_load_round_trip() {
    if !needs_root() {
        return;
    }
    let rootfs = keel_tests::TestRootfs::new();
    let tarball = rootfs.scratch("tar").join("rootfs.tar.gz");
    let status = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(rootfs.path())
        .arg(".")
        .status()
        .expect("tar");
    assert!(status.success());
    let root = Root::new();
    let id = root.ok(
        "import",
        &["--cmd", "sh", tarball.to_str().expect("utf-8"), "imported:1"],
    );
    assert_eq!(
        root.ok("run", &["imported:1", "--", "keel-probe", "hostname"])
            .lines()
            .count(),
        1
    );
    let archive = rootfs.scratch("tar").join("saved.tar");
    root.ok("save", &["imported:1", "-o", archive.to_str().expect("utf-8")]);
    root.ok("rmi", &["imported:1"]);
    assert!(root.cmd("run", &["imported:1", "--", "true"]).status.code() == Some(125));
    assert_eq!(
        root.ok("load", &["-i", archive.to_str().expect("utf-8")]),
        "Loaded image: imported:1\n"
    );
    let inspect: serde_json::Value = serde_json::from_str(&root.ok("inspect", &["imported:1"])).expect("json");
    assert_eq!(
        inspect[0]["Id"].as_str(),
        Some(id.trim()),
        "the image id changed through save/load"
    );
    assert_eq!(root.ok("run", &["imported:1", "--", "echo", "loaded"]), "loaded\n");
}

/// A rootfs tarball with one hostile entry after a harmless one.
fn hostile_tar(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(3);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(&mut header, "harmless", &b"ok\n"[..])
        .expect("append");
    build(&mut builder);
    builder.into_inner().expect("tar")
}

fn raw_entry(builder: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, name: &str, link: Option<&str>, data: &[u8]) {
    let mut header = tar::Header::new_old();
    {
        let bytes = header.as_old_mut();
        bytes.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(link) = link {
            bytes.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
    }
    header.set_entry_type(kind);
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append(&header, data).expect("append");
}

#[test]
fn hostile_layers_are_refused_and_nothing_outside_the_store_changes() {
    if !needs_root() {
        return;
    }
    let root = Root::new();
    let scratch = root.dir.path().join("scratch");
    std::fs::create_dir_all(&scratch).expect("mkdir");
    let passwd_links = std::fs::metadata("/etc/passwd")
        .map(|m| std::os::unix::fs::MetadataExt::nlink(&m))
        .expect("passwd");
    let escape_target = root.dir.path().join("escaped");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "dot-dot",
            hostile_tar(|b| raw_entry(b, tar::EntryType::Regular, "../escaped", None, b"x")),
        ),
        (
            "absolute",
            hostile_tar(|b| raw_entry(b, tar::EntryType::Regular, "/keel-test-absolute", None, b"x")),
        ),
        (
            "through a symlink",
            hostile_tar(|b| {
                raw_entry(b, tar::EntryType::Symlink, "evil", Some("/"), b"");
                raw_entry(b, tar::EntryType::Regular, "evil/keel-test-pwned", None, b"x");
            }),
        ),
        (
            "hard link to a host file",
            hostile_tar(|b| raw_entry(b, tar::EntryType::Link, "passwd", Some("/etc/passwd"), b"")),
        ),
    ];
    let mut transcript = String::new();
    for (what, bytes) in cases {
        let tarball = scratch.join(format!("{}.tar", what.replace(' ', "-")));
        std::fs::write(&tarball, bytes).expect("write");
        let output = root.cmd("import", &[tarball.to_str().expect("utf-8"), "hostile:1"]);
        assert_eq!(output.status.code(), Some(125), "{what}: {output:?}");
        let line = regex_free_redact(stderr(&output).lines().next().unwrap_or_default());
        transcript.push_str(&format!("{what}:\n  {line}\n"));
    }
    insta::assert_snapshot!("hostile", transcript);
    assert!(
        !escape_target.exists()
            && !Path::new("/keel-test-absolute").exists()
            && !Path::new("/keel-test-pwned").exists()
    );
    let after = std::fs::metadata("/etc/passwd")
        .map(|m| std::os::unix::fs::MetadataExt::nlink(&m))
        .expect("passwd");
    assert_eq!(passwd_links, after, "a hard link to the host's /etc/passwd was made");
    assert_eq!(root.ok("images", &[]).lines().count(), 1, "a hostile image is listed");
}

/// Digests change with the tar crate's output: show `sha256:…` instead.
fn regex_free_redact(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = rest.find("sha256:") {
        out.push_str(&rest[..at]);
        out.push_str("sha256:…");
        rest = rest[at + 7..].trim_start_matches(|c: char| c.is_ascii_hexdigit());
    }
    out.push_str(rest);
    out
}

#[test]
fn bad_input_gets_one_line_errors() {
    if !needs_root() {
        return;
    }
    let root = Root::new();
    let cases: [(&str, &[&str]); 4] = [
        ("run", &["no-such-image"]),
        ("run", &["Bad:Reference!"]),
        (
            "pull",
            &["--insecure-registry", "127.0.0.1:1", "127.0.0.1:1/nothing:here"],
        ),
        ("load", &["-i", "/nonexistent.tar"]),
    ];
    let mut transcript = String::new();
    for (command, args) in cases {
        let output = root.cmd(command, args);
        assert_eq!(output.status.code(), Some(125), "{command} {args:?}: {output:?}");
        let err = stderr(&output);
        assert_eq!(err.lines().count(), 1, "{command} {args:?}: not one line:\n{err}");
        transcript.push_str(&format!("{command} {}:\n  {err}", args.join(" ")));
    }
    insta::assert_snapshot!("errors", transcript);
}

#[test]
fn an_image_in_use_cannot_be_removed() {
    if !needs_root() {
        return;
    }
    let root = Root::new();
    root.ok("busybox", &[]);
    root.ok("run", &["--name", "keeper", "--keep", "busybox", "--", "touch", "/x"]);
    let refused = root.cmd("rmi", &["busybox"]);
    assert_eq!(refused.status.code(), Some(125));
    assert!(
        stderr(&refused).contains("is used by container snapshot(s) keeper"),
        "{}",
        stderr(&refused)
    );
    step(STEP)
        .args([
            "snapshot",
            "--root",
            root.path().to_str().expect("utf-8"),
            "rm",
            "keeper",
        ])
        .assert()
        .success();
    let removed = root.ok("rmi", &["busybox"]);
    assert!(removed.starts_with("Untagged: busybox:latest\n"), "{removed}");
    let layers = std::fs::read_dir(root.path().join("images/layers/sha256"))
        .expect("layers")
        .count();
    assert_eq!(layers, 0, "layers of a removed image remain");
}

#[test]
fn what_real_docker_save_wrote_loads() {
    if !needs_root() {
        return;
    }
    let root = Root::new();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/docker-20.10-save.tar");
    assert_eq!(
        root.ok("load", &["-i", fixture.to_str().expect("utf-8")]),
        "Loaded image: keel-fixture:1\n"
    );
    let inspect: serde_json::Value = serde_json::from_str(&root.ok("inspect", &["keel-fixture:1"])).expect("json");
    // Docker's image id is its config's digest: loading keeps it.
    assert_eq!(
        inspect[0]["Id"].as_str(),
        Some("sha256:8b7d666fd5d3142dfdbf681ca51a52c89fa33c7c6a4f99405ba8a040a727629e")
    );
    assert_eq!(inspect[0]["Config"]["Cmd"], json!(["/hello"]));
    let layer = inspect[0]["RootFS"]["diff_ids"][0]
        .as_str()
        .expect("a layer")
        .trim_start_matches("sha256:")
        .to_owned();
    let file = root.path().join("images/layers/sha256").join(layer).join("etc/fixture");
    assert_eq!(
        std::fs::read_to_string(file).expect("the layer is unpacked"),
        "made by docker save\n"
    );
}
