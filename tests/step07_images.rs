//! Step 07's image endpoints as a docker user sees them: the real docker CLI against keel's
//! engine for images, inspect, history, tag, rmi (and its conflicts), save/load, import,
//! pull from a real local registry (progress, errors before and during the stream), the
//! pull `docker run` does by itself, prune, and the image events all of these emit.

use std::path::{Path, PathBuf};

use keel_tests::engine::{lines, Engine};
use keel_tests::registry::Registry;
use keel_tests::{needs_root, text};

/// `docker ARGS`, which must fail with exit 1; its stderr.
fn fails(engine: &Engine, args: &[&str]) -> String {
    let output = engine.run(args);
    assert_eq!(output.status.code(), Some(1), "docker {args:?}: {output:?}");
    text(&output.stderr)
}

/// The repositories:tags `docker images` lists.
fn image_names(engine: &Engine) -> Vec<String> {
    lines(&engine.run(&["images", "--format", "{{.Repository}}:{{.Tag}}"]))
}

fn inspect(engine: &Engine, name: &str) -> serde_json::Value {
    let json = engine.run_ok(&["image", "inspect", name]);
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("inspect prints JSON");
    parsed[0].clone()
}

/// A tar of a small root filesystem (the test rootfs: busybox and the probe).
fn rootfs_tar() -> Vec<u8> {
    let rootfs = keel_tests::TestRootfs::new();
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder.append_dir_all(".", rootfs.path()).expect("tar the rootfs");
    let bytes = builder.into_inner().expect("tar");
    assert!(bytes.len() > 1024, "the rootfs tar is empty");
    bytes
}

/// Unpacks `docker save`'s tar of `image` (keel's also holds an OCI layout) into a dir.
fn oci_layout(engine: &Engine, image: &str) -> PathBuf {
    let archive = engine.scratch("layout.tar");
    engine.run_ok(&["save", "-o", archive.to_str().expect("utf-8"), image]);
    let layout = engine.scratch("layout");
    std::fs::create_dir_all(&layout).expect("mkdir");
    tar::Archive::new(std::fs::File::open(&archive).expect("open"))
        .unpack(&layout)
        .expect("unpack the saved archive");
    assert!(
        layout.join("oci-layout").is_file(),
        "no OCI layout in the saved archive"
    );
    layout
}

/// A registry holding the engine's busybox as `name` (tag `1`); then the engine forgets
/// busybox, so that a pull downloads every layer.
fn registry_with_busybox(engine: &Engine, name: &str) -> Registry {
    let registry = Registry::start(false, false);
    registry.push(&oci_layout(engine, "busybox"), "latest", &format!("{name}:1"));
    engine.run_ok(&["rmi", "busybox"]);
    assert!(image_names(engine).is_empty(), "{:?}", image_names(engine));
    registry
}

/// The image events since the engine started: (action, actor id, name attribute).
fn image_events(engine: &Engine) -> Vec<String> {
    // `--until` is in whole seconds: let the current one pass.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    lines(&engine.run(&[
        "events",
        "--since",
        "0",
        "--until",
        "0s",
        "--filter",
        "type=image",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ]))
}

#[test]
fn images_inspect_and_history_show_the_embedded_busybox() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    assert_eq!(image_names(&engine), ["busybox:latest"]);
    let image = inspect(&engine, "busybox");
    let id = image["Id"].as_str().expect("Id");
    assert!(id.starts_with("sha256:") && id.len() == 71, "{image}");
    assert_eq!(image["RepoTags"], serde_json::json!(["busybox:latest"]));
    assert_eq!(image["RootFS"]["Type"], "layers");
    // By a short id too, as `docker stats` and users type them.
    assert_eq!(inspect(&engine, &id[7..19])["Id"], id);
    let history = engine.run_ok(&["history", "--no-trunc", "busybox"]);
    assert!(history.contains(id), "{history}");
    let missing = fails(&engine, &["image", "inspect", "nosuch:img"]);
    assert!(missing.contains("No such image: nosuch:img"), "{missing}");
}

#[test]
fn tag_then_rmi_untags_only_that_name() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    let id = inspect(&engine, "busybox")["Id"].clone();
    engine.run_ok(&["tag", "busybox", "busybox:tagged"]);
    engine.run_ok(&["tag", "busybox", "localhost:5000/keel/busybox:v1"]);
    let mut names = image_names(&engine);
    names.sort();
    assert_eq!(
        names,
        ["busybox:latest", "busybox:tagged", "localhost:5000/keel/busybox:v1"]
    );
    assert_eq!(inspect(&engine, "busybox:tagged")["Id"], id);
    assert_eq!(engine.run_ok(&["rmi", "busybox:tagged"]), "Untagged: busybox:tagged\n");
    assert_eq!(
        engine.run_ok(&["rmi", "localhost:5000/keel/busybox:v1"]),
        "Untagged: localhost:5000/keel/busybox:v1\n"
    );
    assert_eq!(image_names(&engine), ["busybox:latest"]);
    assert_eq!(inspect(&engine, "busybox")["Id"], id);
    // The last name takes the image with it.
    let removed = engine.run_ok(&["rmi", "busybox"]);
    assert_eq!(
        removed,
        format!("Untagged: busybox:latest\nDeleted: {}\n", id.as_str().expect("id"))
    );
    assert!(image_names(&engine).is_empty());
    let events = image_events(&engine);
    for wanted in [
        "tag busybox:tagged",
        "untag busybox:tagged",
        "untag busybox:latest",
        "delete ",
    ] {
        assert!(
            events.iter().any(|e| e.starts_with(wanted)),
            "no {wanted:?} in {events:?}"
        );
    }
}

#[test]
fn images_lists_what_its_filters_ask_for() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    engine.run_ok(&["tag", "busybox", "busybox:tagged"]);
    engine.run_ok(&["tag", "busybox", "localhost:5000/keel/busybox:v1"]);
    // Created times are seconds: the second image must be a second younger.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let output = engine.run_with_stdin(&["import", "-c", "LABEL team=keel", "-", "labeled:v1"], &rootfs_tar());
    assert!(output.status.success(), "{output:?}");
    let listed = |args: &[&str]| {
        let mut command = vec!["images", "--format", "{{.Repository}}:{{.Tag}}"];
        command.extend_from_slice(args);
        let mut names: Vec<String> = engine.run_ok(&command).lines().map(str::to_owned).collect();
        names.sort();
        names
    };
    let busyboxes = ["busybox:latest", "busybox:tagged", "localhost:5000/keel/busybox:v1"];
    // `docker images NAME` is a reference filter: the name alone matches every tag, and only
    // the matching names of an image are listed.
    assert_eq!(listed(&["busybox"]), ["busybox:latest", "busybox:tagged"]);
    assert_eq!(listed(&["busybox:tag*"]), ["busybox:tagged"]);
    assert_eq!(listed(&["*/keel/*"]), ["localhost:5000/keel/busybox:v1"]);
    assert!(listed(&["nothing*"]).is_empty());
    assert_eq!(listed(&["-f", "label=team=keel"]), ["labeled:v1"]);
    assert_eq!(listed(&["-f", "label=team"]), ["labeled:v1"]);
    assert!(listed(&["-f", "label=team=other"]).is_empty());
    assert_eq!(listed(&["-f", "since=busybox"]), ["labeled:v1"]);
    assert_eq!(listed(&["-f", "before=labeled:v1"]), busyboxes);
    assert!(
        listed(&["-f", "dangling=true"]).is_empty(),
        "the store keeps no unnamed image"
    );
    assert_eq!(listed(&["-f", "dangling=false"]).len(), 4);
    let labels = inspect(&engine, "labeled:v1")["Config"]["Labels"].clone();
    assert_eq!(labels["team"], "keel");

    let stderr = fails(&engine, &["images", "-f", "colour=blue"]);
    assert!(stderr.contains("invalid filter 'colour'"), "{stderr}");
    let stderr = fails(&engine, &["images", "-f", "before=nope"]);
    assert!(stderr.contains("No such image: nope"), "{stderr}");
}

#[test]
fn rmi_of_a_missing_image_says_so() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    let stderr = fails(&engine, &["rmi", "nosuch:img"]);
    assert_eq!(stderr, "Error response from daemon: No such image: nosuch:img\n");
}

#[test]
fn rmi_refuses_the_image_of_a_container_unless_forced() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    let image_id = inspect(&engine, "busybox")["Id"].as_str().expect("id").to_owned();
    let container = engine.run_ok(&["create", "busybox", "true"]);
    let container = container.trim();
    let stderr = fails(&engine, &["rmi", "busybox"]);
    assert_eq!(
        stderr,
        format!(
            "Error response from daemon: conflict: unable to remove repository reference \"busybox\" (must force) - container {} is using its referenced image {}\n",
            &container[..12],
            &image_id[7..19]
        )
    );
    let stderr = fails(&engine, &["rmi", &image_id[7..19]]);
    assert!(stderr.contains("image is being used by stopped container"), "{stderr}");
    assert_eq!(image_names(&engine), ["busybox:latest"]);
    // Another name is only a name: it goes without force.
    engine.run_ok(&["tag", "busybox", "other:1"]);
    assert_eq!(engine.run_ok(&["rmi", "other:1"]), "Untagged: other:1\n");
    // Forced, the name goes; the container still starts from its snapshot.
    assert!(engine
        .run_ok(&["rmi", "-f", "busybox"])
        .starts_with("Untagged: busybox:latest\n"));
    assert!(image_names(&engine).is_empty());
    engine.run_ok(&["start", "-a", container]);
}

#[test]
fn save_then_load_round_trips_an_image() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    engine.run_ok(&["tag", "busybox", "saved:v1"]);
    let id = inspect(&engine, "saved:v1")["Id"].clone();
    let archive = engine.scratch("saved.tar");
    engine.run_ok(&["save", "-o", archive.to_str().expect("utf-8"), "saved:v1"]);
    let mut members = Vec::new();
    for entry in tar::Archive::new(std::fs::File::open(&archive).expect("archive"))
        .entries()
        .expect("a tar")
    {
        members.push(entry.expect("entry").path().expect("path").display().to_string());
    }
    assert!(members.iter().any(|m| m == "manifest.json"), "{members:?}");
    engine.run_ok(&["rmi", "saved:v1", "busybox"]);
    assert!(image_names(&engine).is_empty());
    let loaded = engine.run_ok(&["load", "-i", archive.to_str().expect("utf-8")]);
    assert_eq!(loaded, "Loaded image: saved:v1\n");
    assert_eq!(
        inspect(&engine, "saved:v1")["Id"],
        id,
        "the id changed through save/load"
    );
    assert_eq!(
        engine.run_ok(&["run", "--rm", "saved:v1", "echo", "loaded"]),
        "loaded\n"
    );
    // From stdin too, and `docker save` to stdout.
    let saved = engine
        .docker()
        .args(["save", "saved:v1"])
        .output()
        .expect("docker save");
    assert!(saved.status.success(), "{saved:?}");
    assert_eq!(
        saved.stdout.len() as u64,
        std::fs::metadata(&archive).expect("size").len()
    );
    let output = engine.run_with_stdin(&["load"], &saved.stdout);
    assert_eq!(text(&output.stdout), "Loaded image: saved:v1\n", "{output:?}");
    let events = image_events(&engine);
    assert!(events.iter().any(|e| e == "save saved:v1"), "{events:?}");
    assert!(events.iter().any(|e| e == "load saved:v1"), "{events:?}");
    // What is not an archive is refused, and leaves nothing behind.
    let output = engine.run_with_stdin(&["load"], &vec![b'x'; 4 << 20]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with("Error response from daemon: loading the archive: "),
        "{stderr}"
    );
    assert_eq!(image_names(&engine), ["saved:v1"]);
    let nowhere = engine.scratch("nowhere.tar");
    let missing = fails(&engine, &["save", "-o", nowhere.to_str().expect("utf-8"), "nosuch:img"]);
    assert!(missing.contains("No such image: nosuch:img"), "{missing}");
}

#[test]
fn import_makes_an_image_from_a_rootfs_tar() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    let tarball = rootfs_tar();
    let output = engine.run_with_stdin(
        &[
            "import",
            "-c",
            "ENV FOO=bar",
            "-c",
            "CMD [\"/bin/sh\", \"-c\", \"echo $FOO\"]",
            "-m",
            "my msg",
            "-",
            "imported:v1",
        ],
        &tarball,
    );
    assert!(output.status.success(), "{output:?}\n{}", engine.log());
    let id = text(&output.stdout).trim().to_owned();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    let image = inspect(&engine, "imported:v1");
    assert_eq!(image["Id"], id.as_str());
    assert_eq!(image["Comment"], "my msg");
    assert_eq!(engine.run_ok(&["run", "--rm", "imported:v1"]), "bar\n");
    let history = engine.run_ok(&["history", "imported:v1"]);
    assert!(history.contains("my msg"), "{history}");
    let events = image_events(&engine);
    assert!(events.iter().any(|e| e == "import imported:v1"), "{events:?}");
    // Not a tar: a clear error, and no image.
    let output = engine.run_with_stdin(&["import", "-", "bad:v1"], &[b'x'; 2000]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = text(&output.stderr);
    assert!(stderr.starts_with("Error response from daemon: "), "{stderr}");
    assert!(stderr.contains("not a valid layer"), "{stderr}");
    let mut names = image_names(&engine);
    names.sort();
    assert_eq!(names, ["busybox:latest", "imported:v1"]);
    let stderr = text(
        &engine
            .run_with_stdin(&["import", "-c", "RUN true", "-", "bad:v2"], &tarball)
            .stderr,
    );
    assert!(stderr.contains("not a valid change command"), "{stderr}");
}

#[test]
fn pull_from_a_local_registry_then_run_the_image() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    let registry = registry_with_busybox(&engine, "keel/busybox");
    let name = format!("{}/keel/busybox:1", registry.host());
    let output = engine.run(&["pull", &name]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{output:?}\n{}", engine.log());
    assert!(stdout.starts_with("1: Pulling from keel/busybox\n"), "{stdout}");
    for wanted in [
        ": Pulling fs layer\n",
        ": Verifying Checksum\n",
        ": Download complete\n",
        ": Pull complete\n",
        "\nDigest: sha256:",
    ] {
        assert!(stdout.contains(wanted), "no {wanted:?} in {stdout}");
    }
    assert!(
        stdout.ends_with(&format!("Status: Downloaded newer image for {name}\n{name}\n")),
        "{stdout}"
    );
    assert_eq!(image_names(&engine), std::slice::from_ref(&name));
    assert_eq!(engine.run_ok(&["run", "--rm", &name, "echo", "pulled"]), "pulled\n");
    // Again: nothing to fetch.
    let again = engine.run_ok(&["pull", &name]);
    assert!(
        again.contains(&format!("Status: Image is up to date for {name}\n")),
        "{again}"
    );
    let events = image_events(&engine);
    assert!(events.iter().any(|e| e.starts_with("pull ")), "{events:?}");
    // By digest, as `docker pull NAME@sha256:...` sends it (tag=sha256:...).
    let digest = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Digest: "))
        .expect("a digest line")
        .to_owned();
    let pinned = format!("{}/keel/busybox@{digest}", registry.host());
    let output = engine.run_ok(&["pull", &pinned]);
    assert!(output.contains(&digest), "{output}");
    // The same image loaded from `docker save` (uncompressed layers: another manifest) is
    // one image with two names: removing it by id needs force, and takes both.
    let archive = engine.scratch("layout.tar");
    engine.run_ok(&["load", "-i", archive.to_str().expect("utf-8")]);
    let id = inspect(&engine, &name)["Id"].as_str().expect("id").to_owned();
    assert_eq!(inspect(&engine, "busybox")["Id"], id.as_str());
    let mut tags: Vec<String> = inspect(&engine, "busybox")["RepoTags"]
        .as_array()
        .expect("RepoTags")
        .iter()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect();
    tags.sort();
    assert_eq!(tags, [name.clone(), "busybox:latest".to_owned()]);
    // The pull by digest named it by digest: a RepoDigest, not a tag.
    assert_eq!(inspect(&engine, &name)["RepoDigests"], serde_json::json!([pinned]));
    let stderr = fails(&engine, &["rmi", &id[7..19]]);
    assert!(
        stderr.contains("image is referenced in multiple repositories"),
        "{stderr}"
    );
    let removed = engine.run_ok(&["rmi", "-f", &id[7..19]]);
    assert!(removed.ends_with(&format!("Deleted: {id}\n")), "{removed}");
    for untagged in [&name, &pinned, "busybox:latest"] {
        assert!(removed.contains(&format!("Untagged: {untagged}\n")), "{removed}");
    }
    assert!(image_names(&engine).is_empty());
}

#[test]
fn push_to_a_local_registry_then_pull_it_back() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    let registry = Registry::start(false, false);
    let repository = format!("{}/keel/pushed", registry.host());
    let name = format!("{repository}:v1");
    engine.run_ok(&["tag", "busybox", &name]);
    let pushed = engine.run_ok(&["push", &name]);
    let lines: Vec<&str> = pushed.lines().collect();
    // What the docker CLI prints for dockerd's push, without a terminal.
    assert_eq!(lines.len(), 4, "{pushed}");
    assert_eq!(lines[0], format!("The push refers to repository [{repository}]"));
    let layer = lines[1]
        .strip_suffix(": Preparing")
        .unwrap_or_else(|| panic!("{pushed}"));
    assert_eq!(lines[2], format!("{layer}: Pushed"));
    assert!(
        lines[3].starts_with("v1: digest: sha256:") && lines[3].contains(" size: "),
        "{pushed}"
    );
    let again = engine.run_ok(&["push", &name]);
    assert!(again.contains(&format!("{layer}: Layer already exists\n")), "{again}");
    assert!(again.ends_with(&format!("{}\n", lines[3])), "{again}");

    // --all-tags pushes every tag of the repository.
    engine.run_ok(&["tag", "busybox", &format!("{repository}:v2")]);
    let all = engine.run_ok(&["push", "--all-tags", &repository]);
    assert_eq!(all.matches("The push refers to repository").count(), 1, "{all}");
    assert!(
        all.contains("\nv1: digest: ") && all.contains("\nv2: digest: "),
        "{all}"
    );

    // Forget it here, pull it back from the registry, run it.
    for tag in ["v1", "v2"] {
        engine.run_ok(&["rmi", &format!("{repository}:{tag}")]);
    }
    engine.run_ok(&["rmi", "busybox"]);
    assert!(image_names(&engine).is_empty());
    engine.run_ok(&["pull", &name]);
    assert_eq!(
        engine.run_ok(&["run", "--rm", &name, "echo", "round trip"]),
        "round trip\n"
    );
    let events = image_events(&engine);
    assert!(events.iter().any(|e| e == &format!("push {repository}")), "{events:?}");

    let stderr = fails(&engine, &["push", &format!("{repository}:nope")]);
    assert!(
        stderr.contains(&format!(
            "An image does not exist locally with the tag: {repository}:nope"
        )),
        "{stderr}"
    );
}

#[test]
fn pulling_a_missing_tag_or_registry_fails_clearly() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    let registry = Registry::start(false, false);
    let name = format!("{}/keel/busybox:nope", registry.host());
    let stderr = fails(&engine, &["pull", &name]);
    assert_eq!(
        stderr,
        format!("Error response from daemon: manifest for {name} not found: manifest unknown: manifest unknown\n")
    );
    drop(registry);
    let stderr = fails(&engine, &["pull", &name]);
    assert!(
        stderr.starts_with("Error response from daemon: cannot reach registry"),
        "{stderr}"
    );
    assert_eq!(image_names(&engine), ["busybox:latest"]);
}

#[test]
fn a_corrupted_layer_fails_the_pull_in_the_stream() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    let registry = registry_with_busybox(&engine, "keel/corrupt");
    let data = registry
        .blob_files()
        .into_iter()
        .next()
        .expect("a blob in the registry");
    let hex = data
        .parent()
        .and_then(Path::file_name)
        .expect("the blob's dir")
        .to_string_lossy()
        .into_owned();
    let size = std::fs::metadata(&data).expect("blob").len() as usize;
    std::fs::write(&data, vec![b'x'; size]).expect("corrupt the blob");
    let output = engine.run(&["pull", &format!("{}/keel/corrupt:1", registry.host())]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    // The stream had begun: the error comes in it, naming the blob.
    assert!(text(&output.stdout).contains("Pulling fs layer"), "{output:?}");
    assert!(text(&output.stderr).contains(&format!("sha256:{hex}")), "{output:?}");
    assert!(image_names(&engine).is_empty(), "a half-pulled image is listed");
}

#[test]
fn run_pulls_an_image_it_does_not_have() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    let registry = registry_with_busybox(&engine, "keel/auto");
    let name = format!("{}/keel/auto:1", registry.host());
    let output = engine.run(&["run", "--rm", &name, "echo", "auto-pulled"]);
    assert!(output.status.success(), "{output:?}\n{}", engine.log());
    assert_eq!(text(&output.stdout), "auto-pulled\n");
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with(&format!("Unable to find image '{name}' locally\n")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("Status: Downloaded newer image for {name}")),
        "{stderr}"
    );
    assert_eq!(image_names(&engine), [name]);
}

#[test]
fn prune_all_removes_the_images_no_container_uses() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    let tarball = rootfs_tar();
    let output = engine.run_with_stdin(&["import", "-", "unused:v1"], &tarball);
    assert!(output.status.success(), "{output:?}");
    let unused = text(&output.stdout).trim().to_owned();
    let container = engine.run_ok(&["create", "busybox", "true"]);
    let pruned = engine.run_ok(&["image", "prune", "-a", "-f"]);
    assert!(pruned.contains("untagged: unused:v1"), "{pruned}");
    assert!(pruned.contains(&format!("deleted: {unused}")), "{pruned}");
    assert_eq!(image_names(&engine), ["busybox:latest"]);
    engine.run_ok(&["rm", container.trim()]);
    // Nothing dangling: the default prune has nothing to do.
    let pruned = engine.run_ok(&["image", "prune", "-f"]);
    assert!(pruned.contains("Total reclaimed space: 0B"), "{pruned}");
    assert_eq!(image_names(&engine), ["busybox:latest"]);
}
