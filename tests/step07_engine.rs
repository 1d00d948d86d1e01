//! Step 07 as a docker user sees it: the real docker CLI against keel's engine.

use keel_tests::engine::{lines, ok, Engine};
use keel_tests::needs_root;
use keel_tests::text;

#[test]
fn run_prints_both_streams_and_exits_with_the_containers_status() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    let output = engine.run(&["run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    assert_eq!(text(&output.stdout), "out\n");
    assert_eq!(text(&output.stderr), "err\n");
    // --rm is the engine's job: nothing is left.
    assert!(lines(&engine.run(&["ps", "-aq"])).is_empty());
}

#[test]
fn a_detached_container_lists_logs_stops_and_goes() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    let script = "i=0; while true; do echo tick $i; echo errtick $i >&2; i=$((i+1)); sleep 0.2; done";
    let id = ok(&engine.run(&["run", "-d", "--name", "web", "busybox", "sh", "-c", script]));
    assert_eq!(id.trim().len(), 64, "{id}");
    std::thread::sleep(std::time::Duration::from_millis(700));
    let ps = ok(&engine.run(&["ps", "--format", "{{.Names}} {{.Status}}"]));
    assert!(ps.starts_with("web Up "), "{ps}");
    let logs = engine.run(&["logs", "web"]);
    assert!(text(&logs.stdout).starts_with("tick 0\ntick 1\n"), "{logs:?}");
    assert!(text(&logs.stderr).starts_with("errtick 0\n"), "{logs:?}");
    // --tail counts lines across both streams.
    let tail = engine.run(&["logs", "-t", "--tail", "2", "web"]);
    let both = format!("{}{}", text(&tail.stdout), text(&tail.stderr));
    assert_eq!(both.lines().count(), 2, "{tail:?}");
    assert!(both.starts_with("20") && both.contains("Z tick "), "{tail:?}");
    // sh as PID 1 ignores SIGTERM: stop waits -t 1 seconds, then SIGKILL.
    assert_eq!(ok(&engine.run(&["stop", "-t", "1", "web"])).trim(), "web");
    let state = ok(&engine.run(&["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "web"]));
    assert_eq!(state.trim(), "exited 137");
    let ps = ok(&engine.run(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]));
    assert!(ps.starts_with("web Exited (137) "), "{ps}");
    assert!(ok(&engine.run(&["ps", "-q"])).is_empty());
    // It starts again, with its log kept.
    assert_eq!(ok(&engine.run(&["start", "web"])).trim(), "web");
    assert_eq!(ok(&engine.run(&["kill", "web"])).trim(), "web");
    assert_eq!(ok(&engine.run(&["wait", "web"])).trim(), "137");
    assert_eq!(ok(&engine.run(&["rm", "web"])).trim(), "web");
    assert!(ok(&engine.run(&["ps", "-aq"])).is_empty());
    assert!(std::fs::read_dir(engine.root().join("containers"))
        .expect("containers dir")
        .next()
        .is_none());
}

#[test]
fn exec_runs_in_the_container_with_its_streams_env_dir_and_status() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    ok(&engine.run(&[
        "run",
        "-d",
        "--name",
        "bg",
        "--hostname",
        "inside",
        "busybox",
        "sleep",
        "1000",
    ]));
    let output = engine.run(&[
        "exec",
        "bg",
        "sh",
        "-c",
        "echo exec-out; echo exec-err >&2; hostname; exit 4",
    ]);
    assert_eq!(output.status.code(), Some(4), "{output:?}\n{}", engine.log());
    assert_eq!(text(&output.stdout), "exec-out\ninside\n");
    assert_eq!(text(&output.stderr), "exec-err\n");
    let mut child = engine
        .docker()
        .args([
            "exec",
            "-i",
            "-e",
            "X=1",
            "-w",
            "/tmp",
            "bg",
            "sh",
            "-c",
            "cat; pwd; echo $X",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("docker exec");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"piped-input\n")
        .expect("write");
    let output = child.wait_with_output().expect("exec");
    assert_eq!(text(&output.stdout), "piped-input\n/tmp\n1\n");
    let top = ok(&engine.run(&["top", "bg"]));
    assert!(top.contains("sleep 1000"), "{top}");
    let missing = engine.run(&["exec", "nosuch", "true"]);
    assert!(!missing.status.success());
    assert!(
        text(&missing.stderr).contains("No such container: nosuch"),
        "{missing:?}"
    );
}

#[test]
fn limits_are_written_to_the_containers_cgroup_and_oom_is_reported() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    ok(&engine.run(&[
        "run",
        "-d",
        "--name",
        "limited",
        "-m",
        "64m",
        "--pids-limit",
        "50",
        "--cpus",
        "0.5",
        "busybox",
        "sleep",
        "1000",
    ]));
    let pid = ok(&engine.run(&["inspect", "-f", "{{.State.Pid}}", "limited"]));
    let cgroups = std::fs::read_to_string(format!("/proc/{}/cgroup", pid.trim())).expect("cgroup of the container");
    let path_of = |controller: &str| {
        cgroups.lines().find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            controllers.split(',').any(|c| c == controller).then(|| path.to_owned())
        })
    };
    let memory = match path_of("memory") {
        Some(path) => std::fs::read_to_string(format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes")),
        None => {
            let path = path_of("").expect("a cgroup v2 path");
            std::fs::read_to_string(format!("/sys/fs/cgroup{path}/memory.max"))
        }
    };
    assert_eq!(memory.expect("memory limit").trim(), "67108864");
    let oom = engine.run(&[
        "run",
        "--name",
        "oom",
        "-m",
        "16m",
        "--memory-swap",
        "16m",
        "busybox",
        "sh",
        "-c",
        "a=$(head -c 64000000 /dev/zero | tr '\\0' x); echo survived",
    ]);
    assert_eq!(oom.status.code(), Some(137), "{oom:?}");
    assert!(!text(&oom.stdout).contains("survived"));
    let state = ok(&engine.run(&["inspect", "-f", "{{.State.OOMKilled}} {{.State.ExitCode}}", "oom"]));
    assert_eq!(state.trim(), "true 137");
}

#[test]
fn errors_map_to_dockers_exit_codes() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    let not_found = engine.run(&["run", "--rm", "busybox", "/nonexistent"]);
    assert_eq!(not_found.status.code(), Some(127), "{not_found:?}");
    assert!(text(&not_found.stderr).contains("/nonexistent"), "{not_found:?}");
    let not_executable = engine.run(&["run", "--rm", "busybox", "/etc"]);
    assert_eq!(not_executable.status.code(), Some(126), "{not_executable:?}");
    let bad_flag = engine.run(&["run", "--rm", "--memory", "lots", "busybox", "true"]);
    assert_eq!(bad_flag.status.code(), Some(125), "{bad_flag:?}");
    let bad_name = engine.run(&["run", "--rm", "--name", "x", "busybox", "true"]);
    assert_eq!(bad_name.status.code(), Some(125), "{bad_name:?}");
    assert!(
        text(&bad_name.stderr).contains("Invalid container name (x)"),
        "{bad_name:?}"
    );
    let network = engine.run(&["run", "--rm", "--network", "nosuchnet", "busybox", "true"]);
    assert_eq!(network.status.code(), Some(125), "{network:?}");
    assert!(
        text(&network.stderr).contains("network nosuchnet not found"),
        "{network:?}"
    );
    ok(&engine.run(&["create", "--name", "taken", "busybox", "true"]));
    let duplicate = engine.run(&["create", "--name", "taken", "busybox", "true"]);
    assert!(!duplicate.status.success(), "{duplicate:?}");
    assert!(text(&duplicate.stderr).contains("is already in use"), "{duplicate:?}");
    // The failed runs left nothing; only `taken` exists.
    assert_eq!(ok(&engine.run(&["ps", "-a", "--format", "{{.Names}}"])).trim(), "taken");
    let stop = engine.run(&["stop", "nosuchcontainer"]);
    assert!(
        text(&stop.stderr).contains("No such container: nosuchcontainer"),
        "{stop:?}"
    );
    assert!(engine.run(&["rm", "-f", "nosuchcontainer"]).status.success());
}

#[test]
fn a_tty_run_gets_a_pty_of_the_clients_size() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    let socket = format!("unix://{}", engine.socket().display());
    let output = std::process::Command::new("script")
        .args([
            "-eqc",
            "stty rows 33 cols 90; docker run -it --rm busybox sh -c 'tty; stty size; exit 7'",
            "/dev/null",
        ])
        .env("DOCKER_HOST", socket)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script");
    assert_eq!(output.status.code(), Some(7), "{output:?}");
    let seen = text(&output.stdout);
    assert!(seen.contains("/dev/pts/0\r\n33 90\r\n"), "{seen:?}");
}

#[test]
fn stdin_reaches_the_container_and_its_end_ends_it() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    let mut child = engine
        .docker()
        .args(["run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo done >&2"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("docker run -i");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"line1\nline2\n")
        .expect("write");
    let output = child.wait_with_output().expect("run");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(text(&output.stdout), "line1\nline2\n");
    assert_eq!(text(&output.stderr), "done\n");
}

#[test]
fn containers_outlive_an_engine_killed_with_sigkill() {
    if !needs_root() {
        return;
    }
    let mut engine = Engine::start();
    let script = "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done";
    ok(&engine.run(&["run", "-d", "--name", "ticker", "busybox", "sh", "-c", script]));
    ok(&engine.run(&["run", "-d", "--name", "short", "busybox", "sh", "-c", "sleep 1; exit 5"]));
    std::thread::sleep(std::time::Duration::from_millis(300));
    engine.kill9();
    // `short` ends while no engine runs; its monitor records how.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    engine.restart();
    let ps = ok(&engine.run(&["ps", "-a", "--format", "{{.Names}} {{.State}}"]));
    assert!(ps.contains("ticker running"), "{ps}");
    assert!(ps.contains("short exited"), "{ps}\n{}", engine.log());
    assert_eq!(ok(&engine.run(&["wait", "short"])).trim(), "5");
    // The log kept every line, across the engine's death.
    let logs = ok(&engine.run(&["logs", "ticker"]));
    let ticks: Vec<&str> = logs.lines().collect();
    assert!(ticks.len() >= 15, "{logs}");
    for (i, line) in ticks.iter().enumerate() {
        assert_eq!(*line, format!("tick {i}"), "a line is missing or out of order");
    }
    assert_eq!(ok(&engine.run(&["exec", "ticker", "echo", "alive"])).trim(), "alive");
    ok(&engine.run(&["stop", "-t", "1", "ticker"]));
    let state = ok(&engine.run(&["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "ticker"]));
    assert_eq!(state.trim(), "exited 137");
}

#[test]
fn twenty_concurrent_runs_all_succeed() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    let outputs: Vec<std::process::Output> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let engine = &engine;
                scope.spawn(move || engine.run(&["run", "--rm", "busybox", "echo", &format!("run {i}")]))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    for (i, output) in outputs.iter().enumerate() {
        assert!(output.status.success(), "run {i}: {output:?}");
        assert_eq!(text(&output.stdout), format!("run {i}\n"));
    }
    assert!(ok(&engine.run(&["ps", "-aq"])).is_empty());
}

/// A request straight to the socket, as curl sends it: the status line and the body.
fn request(engine: &Engine, method: &str, path: &str, body: Option<&[u8]>) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(engine.socket()).expect("connect");
    let body = body.unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: keel\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("write");
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = text(&response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let content_type_json = response.to_lowercase().contains("content-type: application/json\r\n");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    assert!(status < 400 || content_type_json, "errors are JSON: {response}");
    (status, body)
}

#[test]
fn bad_requests_get_a_clear_4xx_and_change_nothing() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    let (status, body) = request(
        &engine,
        "POST",
        "/v1.41/containers/create",
        Some(b"{\"Image\": \"busybox\", "),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("malformed JSON"), "{body}");
    let (status, body) = request(
        &engine,
        "POST",
        "/v1.41/containers/create",
        Some(b"{\"Image\": \"nosuch:img\"}"),
    );
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("No such image: nosuch:img"), "{body}");
    let huge = format!("{{\"Image\": \"busybox\", \"Cmd\": [\"{}\"]}}", "x".repeat(8 << 20));
    let (status, body) = request(&engine, "POST", "/v1.41/containers/create", Some(huge.as_bytes()));
    assert_eq!(status, 413, "{body}");
    // What the runtime's command line would refuse is the request's fault: a 400 naming it.
    for (host_config, says) in [
        (r#"{"CapAdd": ["FLY"]}"#, "unknown capability"),
        (r#"{"SecurityOpt": ["seccomp={bad"]}"#, "seccomp profile"),
        (r#"{"SecurityOpt": ["apparmor=x"]}"#, "--security-opt"),
        (r#"{"Memory": 10000000, "MemorySwap": 20}"#, "--memory-swap"),
    ] {
        let body = format!(r#"{{"Image": "busybox", "HostConfig": {host_config}}}"#);
        let (status, answer) = request(&engine, "POST", "/v1.41/containers/create", Some(body.as_bytes()));
        assert_eq!(status, 400, "{host_config}: {answer}");
        assert!(answer.contains(says), "{host_config}: {answer}");
    }
    let (status, _) = request(&engine, "POST", "/v1.41/containers/nosuch/start", None);
    assert_eq!(status, 404);
    let (status, body) = request(&engine, "GET", "/v1.99/containers/json", None);
    assert_eq!(status, 400);
    assert!(body.contains("too new"), "{body}");
    let (status, _) = request(&engine, "GET", "/v1.41/no/such/endpoint", None);
    assert_eq!(status, 404);
    // Nothing was created, and the engine still serves.
    assert!(ok(&engine.run(&["ps", "-aq"])).is_empty());
    assert!(std::fs::read_dir(engine.root().join("containers"))
        .expect("dir")
        .next()
        .is_none());
    assert!(engine
        .root()
        .join("snapshots")
        .read_dir()
        .map_or(true, |mut d| d.next().is_none()));
    assert_eq!(
        ok(&engine.run(&["run", "--rm", "busybox", "echo", "still serving"])),
        "still serving\n"
    );
}

#[test]
fn rm_leaves_no_snapshot_cgroup_runtime_state_or_socket() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    let id = ok(&engine.run(&["run", "-d", "-m", "32m", "busybox", "sleep", "1000"]));
    let id = id.trim();
    assert!(engine.root().join("snapshots").join(id).exists());
    ok(&engine.run(&["rm", "-f", id]));
    assert!(!engine.root().join("snapshots").join(id).exists());
    assert!(!engine.root().join("containers").join(id).exists());
    assert!(!engine.runtime_root().join(id).exists());
    let sockets = engine.runtime_root().join("sockets");
    assert!(
        sockets.read_dir().map_or(true, |mut d| d.next().is_none()),
        "a socket is left"
    );
    for tree in std::fs::read_dir("/sys/fs/cgroup").expect("cgroupfs").flatten() {
        assert!(
            !tree.path().join("keel").join(id).exists(),
            "cgroup left in {}",
            tree.path().display()
        );
    }
    // Nor does a run with --rm whose command fails.
    let output = engine.run(&["run", "--rm", "busybox", "sh", "-c", "exit 9"]);
    assert_eq!(output.status.code(), Some(9));
    assert!(std::fs::read_dir(engine.root().join("containers"))
        .expect("dir")
        .next()
        .is_none());
}

#[test]
fn restart_rename_events_stats_and_prune() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    ok(&engine.run(&[
        "run",
        "-d",
        "--name",
        "x1",
        "-m",
        "64m",
        "--pids-limit",
        "10",
        "busybox",
        "sleep",
        "1000",
    ]));
    ok(&engine.run(&["rename", "x1", "x1renamed"]));
    ok(&engine.run(&["restart", "-t", "0", "x1renamed"]));
    let state = ok(&engine.run(&["inspect", "-f", "{{.State.Status}} {{.RestartCount}}", "x1renamed"]));
    assert_eq!(state.trim(), "running 1");
    let stats = ok(&engine.run(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.PIDs}} {{.MemUsage}}",
        "x1renamed",
    ]));
    assert!(
        stats.starts_with("x1renamed 1 ") && stats.trim().ends_with("/ 64MiB"),
        "{stats}"
    );
    ok(&engine.run(&["kill", "-s", "KILL", "x1renamed"]));
    ok(&engine.run(&["wait", "x1renamed"]));
    let events = ok(&engine.run(&[
        "events",
        "--since",
        "30m",
        "--until",
        "0s",
        "--filter",
        "type=container",
        "--format",
        "{{.Action}}",
    ]));
    let actions: Vec<&str> = events.lines().collect();
    for expected in ["create", "start", "rename", "restart", "die"] {
        assert!(actions.contains(&expected), "{expected} missing from {actions:?}");
    }
    let pruned = ok(&engine.run(&["container", "prune", "-f"]));
    assert!(pruned.contains("Deleted Containers"), "{pruned}");
    assert!(ok(&engine.run(&["ps", "-aq"])).is_empty());
}

#[test]
fn run_flags_reach_the_container() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    let volume = engine.scratch("vol");
    std::fs::create_dir_all(&volume).expect("volume dir");
    std::fs::write(volume.join("f.txt"), "from the host\n").expect("write");
    let bind = format!("{}:/data", volume.display());
    let output = engine.run(&[
        "run",
        "--rm",
        "-e",
        "A=B",
        "-w",
        "/tmp",
        "-u",
        "1000:1000",
        "--hostname",
        "h1",
        "-v",
        &bind,
        "busybox",
        "sh",
        "-c",
        "echo $A; pwd; id -u; hostname; cat /data/f.txt; cat /etc/hostname",
    ]);
    assert_eq!(
        text(&output.stdout),
        "B\n/tmp\n1000\nh1\nfrom the host\nh1\n",
        "{output:?}"
    );
    let entry = ok(&engine.run(&["run", "--rm", "--entrypoint", "echo", "busybox", "via", "entrypoint"]));
    assert_eq!(entry, "via entrypoint\n");
    let read_only = engine.run(&["run", "--rm", "--read-only", "busybox", "touch", "/x"]);
    assert!(!read_only.status.success(), "{read_only:?}");
    assert!(
        text(&read_only.stderr).contains("Read-only file system"),
        "{read_only:?}"
    );
    let none = ok(&engine.run(&["run", "--rm", "--network", "none", "busybox", "ls", "/sys/class/net"]));
    assert_eq!(none.split_whitespace().collect::<Vec<_>>(), ["lo"]);
    // The host's namespace: the engine's own bridge is among its links (other tests add and
    // remove links meanwhile, so the lists are not compared whole).
    let host = ok(&engine.run(&["run", "--rm", "--network", "host", "busybox", "ls", "/sys/class/net"]));
    assert!(host.split_whitespace().any(|link| link == engine.bridge), "{host}");
}

#[test]
fn logs_follow_until_the_container_ends() {
    if !needs_root() {
        return;
    }
    let engine = Engine::start();
    let script = "for i in 1 2 3 4 5; do echo line $i; sleep 0.2; done";
    ok(&engine.run(&["run", "-d", "--name", "follow", "busybox", "sh", "-c", script]));
    // -f returns by itself once the container has ended, with every line.
    let followed = ok(&engine.run(&["logs", "-f", "follow"]));
    assert_eq!(followed, "line 1\nline 2\nline 3\nline 4\nline 5\n");
    let since_future = ok(&engine.run(&["logs", "--since", "2099-01-01T00:00:00Z", "follow"]));
    assert!(since_future.is_empty(), "{since_future}");
}

#[test]
fn sigterm_stops_the_engine_even_with_a_stream_open_and_containers_run_on() {
    if !needs_root() {
        return;
    }
    let mut engine = Engine::start();
    ok(&engine.run(&["run", "-d", "--name", "stays", "busybox", "sleep", "1000"]));
    // `docker events` never ends by itself: a graceful shutdown must not wait for it.
    let mut events = engine
        .docker()
        .arg("events")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("docker events");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let took = engine.terminate();
    let _ = events.kill();
    let _ = events.wait();
    assert!(
        took < std::time::Duration::from_secs(8),
        "the engine took {took:?} to stop"
    );
    engine.restart();
    let state = ok(&engine.run(&["inspect", "-f", "{{.State.Status}}", "stays"]));
    assert_eq!(state.trim(), "running");
}
