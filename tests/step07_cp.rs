//! `docker cp` against keel's engine (`HEAD`/`GET`/`PUT /containers/{id}/archive`): both
//! ways, running and stopped containers, and the attacks the endpoint exists to refuse: a
//! symlink in the container, or a hostile tar, must never make a copy write on the host.

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use keel_tests::engine::Engine;
use keel_tests::{needs_root, text};

/// `docker ARGS`, which must succeed.
fn ok(engine: &Engine, args: &[&str]) -> Output {
    let output = engine.run(args);
    assert!(
        output.status.success(),
        "docker {args:?}: {}{}\nengine log:\n{}",
        text(&output.stdout),
        text(&output.stderr),
        engine.log()
    );
    output
}

/// A file's content inside the container, by `docker exec cat`.
fn cat(engine: &Engine, container: &str, path: &str) -> String {
    text(&ok(engine, &["exec", container, "cat", path]).stdout)
}

fn background(engine: &Engine) {
    ok(engine, &["run", "-d", "--name", "bg", "busybox", "sleep", "1000"]);
}

fn write(path: &Path, content: &str) {
    std::fs::write(path, content).expect("writing a host file");
}

/// The entries of a tar: (name, type byte, content).
fn tar_entries(bytes: &[u8]) -> Vec<(String, u8, Vec<u8>)> {
    let mut archive = tar::Archive::new(bytes);
    let mut entries = Vec::new();
    for entry in archive.entries().expect("a tar") {
        let mut entry = entry.expect("a tar entry");
        let name = text(&entry.path_bytes());
        let kind = entry.header().entry_type().as_byte();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).expect("entry content");
        entries.push((name, kind, content));
    }
    entries
}

/// A name no other test (and no earlier run) uses, for files that must NOT appear on the
/// host.
fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("keel-cp-{what}-{}-{nanos}", std::process::id())
}

/// Removes the named host files when dropped, should an assertion fail after a copy
/// escaped (so that the next run does not pass by accident either way).
struct HostPaths(Vec<PathBuf>);

impl Drop for HostPaths {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[test]
fn a_host_file_and_directory_copied_into_a_running_container_read_back_with_exec() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    background(&engine);
    let file = engine.scratch("hostfile.txt");
    write(&file, "hello from the host\n");
    let file_arg = file.display().to_string();
    ok(&engine, &["cp", &file_arg, "bg:/tmp/hostfile.txt"]);
    assert_eq!(cat(&engine, "bg", "/tmp/hostfile.txt"), "hello from the host\n");

    // Over an existing file (HEAD answers 200 this time, 45f-cp-to-existing.log).
    write(&file, "second version\n");
    ok(&engine, &["cp", &file_arg, "bg:/tmp/hostfile.txt"]);
    assert_eq!(cat(&engine, "bg", "/tmp/hostfile.txt"), "second version\n");

    // A directory, into a directory (45g-cp-dir-to.log), with a subdirectory and a symlink.
    let vol = engine.scratch("vol");
    std::fs::create_dir_all(vol.join("sub")).expect("mkdir");
    write(&vol.join("f.txt"), "in vol\n");
    write(&vol.join("sub/s"), "deeper\n");
    std::os::unix::fs::symlink("f.txt", vol.join("l")).expect("symlink");
    ok(&engine, &["cp", &vol.display().to_string(), "bg:/tmp/"]);
    assert_eq!(cat(&engine, "bg", "/tmp/vol/f.txt"), "in vol\n");
    assert_eq!(cat(&engine, "bg", "/tmp/vol/sub/s"), "deeper\n");
    let link = ok(&engine, &["exec", "bg", "readlink", "/tmp/vol/l"]);
    assert_eq!(text(&link.stdout), "f.txt\n");

    // Each copy is an event, as with dockerd.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() + 1)
        .to_string();
    let events = ok(
        &engine,
        &[
            "events",
            "--since",
            "10m",
            "--until",
            &now,
            "--filter",
            "container=bg",
            "--format",
            "{{.Action}}",
        ],
    );
    let copies = text(&events.stdout)
        .lines()
        .filter(|line| *line == "extract-to-dir")
        .count();
    assert_eq!(copies, 3, "{}", text(&events.stdout));
}

#[test]
fn a_file_and_a_directory_copy_out_of_a_running_container() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    background(&engine);
    ok(
        &engine,
        &[
            "exec",
            "bg",
            "sh",
            "-c",
            "mkdir -p /tmp/d/sub && echo top > /tmp/d/top && echo a > /tmp/d/sub/a && ln -s a /tmp/d/sub/l",
        ],
    );
    let out = engine.scratch("out");
    std::fs::create_dir_all(&out).expect("mkdir");
    let out_arg = format!("{}/", out.display());

    ok(&engine, &["cp", "bg:/tmp/d/top", &out_arg]);
    assert_eq!(std::fs::read_to_string(out.join("top")).expect("top"), "top\n");

    let copy = out.join("d2");
    ok(&engine, &["cp", "bg:/tmp/d", &copy.display().to_string()]);
    assert_eq!(std::fs::read_to_string(copy.join("top")).expect("d2/top"), "top\n");
    assert_eq!(std::fs::read_to_string(copy.join("sub/a")).expect("d2/sub/a"), "a\n");
    assert_eq!(
        std::fs::read_link(copy.join("sub/l")).expect("a symlink stays one"),
        Path::new("a")
    );

    // /etc, with the files the engine bind-mounts into the container (45c-cp-from-dir.log).
    let etc = out.join("etcdir");
    ok(&engine, &["cp", "bg:/etc", &etc.display().to_string()]);
    assert_eq!(
        std::fs::read_to_string(etc.join("hostname")).expect("etcdir/hostname"),
        cat(&engine, "bg", "/etc/hostname")
    );
    assert_eq!(
        std::fs::read_to_string(etc.join("passwd")).expect("etcdir/passwd"),
        cat(&engine, "bg", "/etc/passwd")
    );
}

#[test]
fn cp_to_stdout_writes_a_tar_of_the_path() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    background(&engine);
    let output = ok(&engine, &["cp", "bg:/etc/hostname", "-"]);
    let entries = tar_entries(&output.stdout);
    assert_eq!(entries.len(), 1, "{entries:?}");
    let (name, kind, content) = &entries[0];
    assert_eq!(name, "hostname");
    assert_eq!(*kind, b'0');
    assert_eq!(text(content), cat(&engine, "bg", "/etc/hostname"));
    assert!(!content.is_empty());
}

#[test]
fn a_missing_path_fails_with_dockers_message() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    background(&engine);
    let out = engine.scratch("out");
    std::fs::create_dir_all(&out).expect("mkdir");
    let output = engine.run(&["cp", "bg:/nonexistent", &format!("{}/", out.display())]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        text(&output.stderr).contains("Could not find the file /nonexistent in container bg"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(std::fs::read_dir(&out).expect("out").count(), 0);

    // Into a directory that does not exist either.
    let file = engine.scratch("f");
    write(&file, "f\n");
    let output = engine.run(&["cp", &file.display().to_string(), "bg:/nonexistent/dir/f"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        text(&output.stderr).contains("/nonexistent"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn a_stopped_container_is_read_and_written_through_its_snapshot() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    ok(
        &engine,
        &[
            "create",
            "--name",
            "st",
            "busybox",
            "cat",
            "/tmp/f",
            "/etc/extra/new.txt",
        ],
    );
    let file = engine.scratch("f");
    write(&file, "copied while stopped\n");
    ok(&engine, &["cp", &file.display().to_string(), "st:/tmp/f"]);
    let extra = engine.scratch("extra");
    std::fs::create_dir_all(&extra).expect("mkdir");
    write(&extra.join("new.txt"), "a new directory\n");
    ok(&engine, &["cp", &extra.display().to_string(), "st:/etc/"]);

    // Read back before it runs: the upper dir, and the image's layer under it.
    let back = tar_entries(&ok(&engine, &["cp", "st:/tmp/f", "-"]).stdout);
    assert_eq!(text(&back[0].2), "copied while stopped\n");
    let passwd = tar_entries(&ok(&engine, &["cp", "st:/etc/passwd", "-"]).stdout);
    assert!(text(&passwd[0].2).starts_with("root:"), "{passwd:?}");

    // And the container sees the files when it starts.
    let run = ok(&engine, &["start", "-a", "st"]);
    assert_eq!(text(&run.stdout), "copied while stopped\na new directory\n");

    // A file the container deleted is gone for a copy too (an overlayfs whiteout).
    ok(&engine, &["run", "--name", "del", "busybox", "rm", "/etc/passwd"]);
    let output = engine.run(&["cp", "del:/etc/passwd", "-"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        text(&output.stderr).contains("Could not find the file /etc/passwd in container del"),
        "{}",
        text(&output.stderr)
    );
    let etc = tar_entries(&ok(&engine, &["cp", "del:/etc", "-"]).stdout);
    let names: Vec<&str> = etc.iter().map(|(name, _, _)| name.as_str()).collect();
    assert!(names.contains(&"etc/group"), "{names:?}");
    assert!(!names.contains(&"etc/passwd"), "{names:?}");
    // Copied back in, it is there again.
    let passwd_file = engine.scratch("passwd");
    write(&passwd_file, "root:x:0:0:root:/root:/bin/sh\n");
    ok(&engine, &["cp", &passwd_file.display().to_string(), "del:/etc/passwd"]);
    let back = tar_entries(&ok(&engine, &["cp", "del:/etc/passwd", "-"]).stdout);
    assert_eq!(text(&back[0].2), "root:x:0:0:root:/root:/bin/sh\n");
}

#[test]
fn symlinks_in_the_container_never_lead_a_copy_to_the_host() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    background(&engine);
    ok(
        &engine,
        &[
            "exec",
            "bg",
            "sh",
            "-c",
            "ln -s / /tmp/escape && ln -s /etc /tmp/etclink && ln -s ../../../../../../../.. /tmp/up",
        ],
    );
    let name = unique("escape");
    let host = HostPaths(vec![
        Path::new("/").join(&name),
        Path::new("/etc").join(&name),
        Path::new("/tmp").join(&name),
    ]);
    let file = engine.scratch(&name);
    write(&file, "must stay in the container\n");
    let file_arg = file.display().to_string();
    for target in ["bg:/tmp/escape/", "bg:/tmp/etclink/", "bg:/tmp/up/", "bg:/tmp/escape"] {
        ok(&engine, &["cp", &file_arg, target]);
        for path in &host.0 {
            assert!(
                !path.exists(),
                "docker cp {target} wrote {} on the host",
                path.display()
            );
        }
    }
    // The symlinks were followed inside the container, as dockerd follows them.
    assert_eq!(cat(&engine, "bg", &format!("/{name}")), "must stay in the container\n");
    assert_eq!(
        cat(&engine, "bg", &format!("/etc/{name}")),
        "must stay in the container\n"
    );

    // Reading through a symlink reads the container's file, not the host's.
    let hostname = tar_entries(&ok(&engine, &["cp", "bg:/tmp/etclink/hostname", "-"]).stdout);
    assert_eq!(text(&hostname[0].2), cat(&engine, "bg", "/etc/hostname"));

    // A stopped container's symlinks are resolved in its snapshot, relative ones included.
    ok(
        &engine,
        &[
            "run",
            "--name",
            "s2",
            "busybox",
            "sh",
            "-c",
            "ln -s / /tmp/escape && ln -s ../../../../../../../../.. /tmp/up",
        ],
    );
    for target in ["s2:/tmp/escape/", "s2:/tmp/up/"] {
        ok(&engine, &["cp", &file_arg, target]);
        for path in &host.0 {
            assert!(
                !path.exists(),
                "docker cp {target} wrote {} on the host",
                path.display()
            );
        }
    }
    let back = tar_entries(&ok(&engine, &["cp", &format!("s2:/{name}"), "-"]).stdout);
    assert_eq!(text(&back[0].2), "must stay in the container\n");
}

/// `PUT /containers/{id}/archive` with a tar the docker CLI would never send.
fn put_tar(engine: &Engine, container: &str, path: &str, tar: &[u8]) -> (u16, String) {
    let mut stream = std::os::unix::net::UnixStream::connect(engine.socket()).expect("the engine's socket");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout");
    let head = format!(
        "PUT /v1.41/containers/{container}/archive?path={path}&noOverwriteDirNonDir=true HTTP/1.1\r\n\
         Host: keel\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        tar.len()
    );
    stream.write_all(head.as_bytes()).expect("request");
    stream.write_all(tar).expect("body");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = text(&response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, response)
}

/// A tar entry with any name at all (the tar crate's builder refuses `..`).
fn raw_entry(builder: &mut tar::Builder<Vec<u8>>, name: &str, kind: tar::EntryType, link: &str, data: &[u8]) {
    let mut header = tar::Header::new_gnu();
    let raw = header.as_gnu_mut().expect("a gnu header");
    raw.name = [0; 100];
    raw.name[..name.len()].copy_from_slice(name.as_bytes());
    raw.linkname = [0; 100];
    raw.linkname[..link.len()].copy_from_slice(link.as_bytes());
    header.set_entry_type(kind);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1_700_000_000);
    header.set_size(data.len() as u64);
    header.set_cksum();
    builder.append(&header, data).expect("append");
}

#[test]
fn hostile_tar_entries_stay_inside_the_container() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    background(&engine);
    let name = unique("tar");
    let host = HostPaths(vec![
        Path::new("/").join(format!("{name}-dotdot")),
        Path::new("/").join(format!("{name}-symlink")),
        Path::new("/").join(format!("{name}-relative")),
        Path::new("/").join(format!("{name}-abs")),
        Path::new("/tmp").join(format!("{name}-abs")),
    ]);
    let passwd_links = std::fs::metadata("/etc/passwd").expect("/etc/passwd").nlink();

    // `..` climbing out of the extraction directory is refused.
    let mut tar = tar::Builder::new(Vec::new());
    let dotdot = format!("../../../../../../{name}-dotdot");
    raw_entry(&mut tar, &dotdot, tar::EntryType::Regular, "", b"dotdot");
    let (status, response) = put_tar(&engine, "bg", "/tmp", &tar.into_inner().expect("tar"));
    assert_eq!(status, 400, "{response}");
    assert!(
        response.contains("is outside of the extraction directory"),
        "{response}"
    );

    // A symlink to / (or climbing out), then a file through it: inside the container.
    let mut tar = tar::Builder::new(Vec::new());
    raw_entry(&mut tar, "evil", tar::EntryType::Symlink, "/", b"");
    raw_entry(
        &mut tar,
        &format!("evil/{name}-symlink"),
        tar::EntryType::Regular,
        "",
        b"sym",
    );
    raw_entry(&mut tar, "evil2", tar::EntryType::Symlink, "../../../../../../..", b"");
    raw_entry(
        &mut tar,
        &format!("evil2/{name}-relative"),
        tar::EntryType::Regular,
        "",
        b"rel",
    );
    // An absolute name is relative to the extraction directory, as in Docker.
    raw_entry(&mut tar, &format!("/{name}-abs"), tar::EntryType::Regular, "", b"abs");
    let (status, response) = put_tar(&engine, "bg", "/tmp", &tar.into_inner().expect("tar"));
    assert_eq!(status, 200, "{response}");
    assert_eq!(cat(&engine, "bg", &format!("/{name}-symlink")), "sym");
    assert_eq!(cat(&engine, "bg", &format!("/{name}-relative")), "rel");
    assert_eq!(cat(&engine, "bg", &format!("/tmp/{name}-abs")), "abs");

    // A hard link to a host file (or to anything outside the extraction directory).
    for target in ["../../../../etc/passwd", "/etc/passwd"] {
        let mut tar = tar::Builder::new(Vec::new());
        raw_entry(&mut tar, "pw", tar::EntryType::Link, target, b"");
        let (status, response) = put_tar(&engine, "bg", "/tmp", &tar.into_inner().expect("tar"));
        assert_eq!(status, 400, "{target}: {response}");
        assert!(response.contains("invalid hardlink"), "{response}");
    }
    let missing = engine.run(&["exec", "bg", "ls", "/tmp/pw"]);
    assert!(!missing.status.success(), "{missing:?}");

    for path in &host.0 {
        assert!(!path.exists(), "a hostile tar wrote {} on the host", path.display());
    }
    assert_eq!(
        std::fs::metadata("/etc/passwd").expect("/etc/passwd").nlink(),
        passwd_links
    );
}

#[test]
fn special_files_and_modes_come_through_but_proc_stays_out_of_reach() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    background(&engine);
    let mut tar = tar::Builder::new(Vec::new());
    raw_entry(&mut tar, "special/", tar::EntryType::Directory, "", b"");
    raw_entry(&mut tar, "special/fifo", tar::EntryType::Fifo, "", b"");
    let mut header = tar::Header::new_gnu();
    header.set_path("special/null").expect("path");
    header.set_entry_type(tar::EntryType::Char);
    header.set_mode(0o640);
    header.set_uid(12);
    header.set_gid(34);
    header.set_device_major(1).expect("major");
    header.set_device_minor(3).expect("minor");
    header.set_size(0);
    header.set_cksum();
    tar.append(&header, &b""[..]).expect("append");
    let mut header = tar::Header::new_gnu();
    header.set_path("special/suid").expect("path");
    header.set_mode(0o4750);
    header.set_uid(1000);
    header.set_gid(1000);
    header.set_mtime(1_000_000_000);
    header.set_size(2);
    header.set_cksum();
    tar.append(&header, &b"#!"[..]).expect("append");
    let (status, response) = put_tar(&engine, "bg", "/tmp", &tar.into_inner().expect("tar"));
    assert_eq!(status, 200, "{response}");
    let stat = ok(
        &engine,
        &[
            "exec",
            "bg",
            "stat",
            "-c",
            "%n %F %a %u:%g %t:%T",
            "/tmp/special/fifo",
            "/tmp/special/null",
            "/tmp/special/suid",
        ],
    );
    assert_eq!(
        text(&stat.stdout),
        "/tmp/special/fifo fifo 644 0:0 0:0\n\
         /tmp/special/null character special file 640 12:34 1:3\n\
         /tmp/special/suid regular file 4750 1000:1000 0:0\n"
    );
    let mtime = ok(&engine, &["exec", "bg", "stat", "-c", "%Y", "/tmp/special/suid"]);
    assert_eq!(text(&mtime.stdout), "1000000000\n");

    // The container's /proc and /sys are not its files: nothing to read, nowhere to write.
    for path in ["bg:/proc/1/environ", "bg:/proc/self/", "bg:/sys/kernel/"] {
        let output = engine.run(&["cp", path, "-"]);
        assert_eq!(output.status.code(), Some(1), "{path}: {output:?}");
        assert!(
            text(&output.stderr).contains("Could not find the file"),
            "{}",
            text(&output.stderr)
        );
    }
    let proc_dir = tar_entries(&ok(&engine, &["cp", "bg:/proc", "-"]).stdout);
    assert_eq!(proc_dir.len(), 1, "only the mount point itself: {proc_dir:?}");
    // The CLI asks first (HEAD: not found) and gives up; the API refuses it as well.
    let file = engine.scratch("f");
    write(&file, "f\n");
    let output = engine.run(&["cp", &file.display().to_string(), "bg:/proc/sys/kernel/"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let mut tar = tar::Builder::new(Vec::new());
    raw_entry(&mut tar, "keel-cp-proc", tar::EntryType::Regular, "", b"x");
    let (status, response) = put_tar(&engine, "bg", "/proc/sys/kernel", &tar.into_inner().expect("tar"));
    assert_eq!(status, 400, "{response}");
    assert!(response.contains("pseudo file system"), "{response}");
}
