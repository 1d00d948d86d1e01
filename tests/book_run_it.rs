//! The book's "Run it" blocks, run as a reader runs them.
//!
//! Every step chapter (`book/src/NN-*.md`, `NNx-*.md`) opens with a `## Run it` section. The
//! ```` ```sh ```` blocks of that section, up to the next `##` heading, are one script: this
//! test runs it as root with `bash -euo pipefail`, `target/debug` first on `PATH`, in a temp
//! dir of its own that has `target` linked in (so `target/debug/step01-unshare`, as the book
//! writes it, works as it does from the top of the repository). The script must succeed, and
//! what the book says it prints must be in its output: a line of the block that ends in a
//! comment `# → TEXT` promises TEXT, and the promises must be met in the order they are written
//! (stdout and stderr go to one file, so the order is the order of the writes).
//!
//! A step chapter without a run-it block, or a block that promises nothing, fails the test:
//! so the book cannot drop a block and still pass. `KEEL_BOOK_RUN_IT=04b` runs only the pages
//! whose file name contains `04b`, when working on one chapter.

use std::fs;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keel_tests::{binary, needs_root, STEP_BINARIES};

/// The marker of a promised output, at the end of a command line of a block.
const PROMISE: &str = "# → ";

/// Long enough for the slowest block (07b traces a whole `docker run`), short enough that a
/// hung one fails the run instead of CI's clock.
const BLOCK_TIMEOUT: Duration = Duration::from_secs(300);

fn book_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src")
}

/// A step chapter: `01-unshare.md`, `04b-runtime.md`, `07d-networking.md`.
fn is_step_chapter(name: &str) -> bool {
    let bytes = name.as_bytes();
    name.ends_with(".md")
        && bytes.len() > 3
        && bytes[0].is_ascii_digit()
        && bytes[1].is_ascii_digit()
        && (bytes[2] == b'-' || (bytes[2].is_ascii_lowercase() && bytes.get(3) == Some(&b'-')))
}

/// The `sh` blocks under the page's `## Run it` heading, joined into one script, or None when
/// the page has no such heading or no `sh` block under it.
fn run_it_script(markdown: &str) -> Option<String> {
    let mut in_section = false;
    let mut fence: Option<(String, bool)> = None; // (the fence's backticks, is it an sh block)
    let mut script = String::new();
    let mut blocks = 0;
    for line in markdown.lines() {
        if let Some((ticks, is_sh)) = &fence {
            if line.trim_start().starts_with(ticks.as_str()) && line.trim() == ticks.as_str() {
                fence = None;
            } else if *is_sh {
                script.push_str(line);
                script.push('\n');
            }
            continue;
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            let ticks: String = trimmed.chars().take_while(|&c| c == '`').collect();
            let info = trimmed[ticks.len()..].trim();
            let is_sh = in_section && info == "sh";
            if is_sh {
                blocks += 1;
            }
            fence = Some((ticks, is_sh));
            continue;
        }
        if line.starts_with("# ") || line.starts_with("## ") {
            in_section = line.trim_end() == "## Run it";
        }
    }
    (blocks > 0).then_some(script)
}

/// What the block promises to print, in order: the text after `# → ` on each line.
fn promises(script: &str) -> Vec<String> {
    script
        .lines()
        .filter_map(|line| line.split_once(PROMISE))
        .map(|(_, text)| text.trim().to_owned())
        .filter(|text| !text.is_empty())
        .collect()
}

/// The bridges a block's engines make (`--bridge NAME`): removed after a failed block.
fn bridges(script: &str) -> Vec<String> {
    let words: Vec<&str> = script.split_whitespace().collect();
    words
        .windows(2)
        .filter(|pair| pair[0] == "--bridge")
        .map(|pair| pair[1].to_owned())
        .collect()
}

/// The directories a block makes under /tmp (`mkdir -p /tmp/...`): removed after a failed
/// block, which stopped before its own `rm -rf`.
fn scratch_dirs(script: &str) -> Vec<String> {
    script
        .lines()
        .filter_map(|line| line.trim().strip_prefix("mkdir -p "))
        .flat_map(str::split_whitespace)
        .filter(|dir| dir.starts_with("/tmp/") && !dir.contains(".."))
        .map(str::to_owned)
        .collect()
}

struct Page {
    name: String,
    script: String,
}

fn step_chapters() -> Vec<(String, Option<String>)> {
    let mut pages: Vec<(String, Option<String>)> = fs::read_dir(book_src())
        .expect("book/src")
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| is_step_chapter(name))
        .map(|name| {
            let text = fs::read_to_string(book_src().join(&name)).expect("a book page");
            let script = run_it_script(&text);
            (name, script)
        })
        .collect();
    pages.sort();
    pages
}

#[test]
fn every_step_chapter_has_a_run_it_block_that_promises_output() {
    let pages = step_chapters();
    // The eleven of today at least: a renamed chapter must not quietly drop out.
    assert!(pages.len() >= 11, "step chapters found: {pages:?}");
    let mut problems = Vec::new();
    for (name, script) in &pages {
        match script {
            None => problems.push(format!("{name}: no ```sh block under a `## Run it` heading")),
            Some(script) if promises(script).is_empty() => problems.push(format!(
                "{name}: its run-it block promises no output (end a command line with `{PROMISE}TEXT`)"
            )),
            Some(_) => {}
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_run_it_block_runs_and_prints_what_the_book_says() {
    if !needs_root() {
        return;
    }
    // Binaries the blocks call by path; missing ones are a clear message, not a bash error.
    for name in STEP_BINARIES.iter().chain(&["keel-monitor"]) {
        binary(name);
    }
    // Containers' monitors leave their engine's process tree on purpose (setsid, and they
    // outlive it): as a subreaper this test inherits whatever a block leaves running, so it
    // can see it, and end it by its pid.
    nix::sys::prctl::set_child_subreaper(true).expect("PR_SET_CHILD_SUBREAPER");
    let only = std::env::var("KEEL_BOOK_RUN_IT").ok();
    let pages: Vec<Page> = step_chapters()
        .into_iter()
        .filter(|(name, _)| only.as_deref().is_none_or(|part| name.contains(part)))
        .filter_map(|(name, script)| script.map(|script| Page { name, script }))
        .collect();
    assert!(!pages.is_empty(), "no run-it block matches KEEL_BOOK_RUN_IT={only:?}");
    // One page after the other: several blocks rebuild /var/lib/keel/rootfs, and every engine
    // empties keel's nat chain when it starts.
    let mut failures = Vec::new();
    for page in &pages {
        let started = Instant::now();
        match run_block(page) {
            Ok(()) => eprintln!("{}: ok in {:.1?}", page.name, started.elapsed()),
            Err(failure) => {
                eprintln!("{}: FAILED in {:.1?}", page.name, started.elapsed());
                failures.push(format!("==== {}: {failure}", page.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} run-it blocks failed:\n{}",
        failures.len(),
        pages.len(),
        failures.join("\n\n")
    );
}

/// Runs one page's block in a fresh temp dir; Err says what went wrong, with the output.
fn run_block(page: &Page) -> Result<(), String> {
    let dir = tempfile::Builder::new()
        .prefix("keel-test-book-")
        .tempdir()
        .expect("temp dir");
    let debug = binary("step01-unshare").parent().expect("target/debug").to_path_buf();
    let target = debug.parent().expect("target").to_path_buf();
    std::os::unix::fs::symlink(&target, dir.path().join("target")).expect("linking target");
    fs::create_dir(dir.path().join("docker-config")).expect("docker config dir");

    // The test's own prologue, not the book's: if the block fails while an engine of its own
    // still answers, that engine removes its containers and networks before bash exits (a
    // reader would type `docker rm -f`); a runtime the block named `$K` (with a state root
    // of its own) deletes its containers. The block's own status is kept.
    let prologue = "trap 'status=$?; if [ $status -ne 0 ] && [ -n \"${DOCKER_HOST:-}\" ] && \
                    timeout 10 docker version >/dev/null 2>&1; then \
                    docker ps -aq | xargs -r docker rm -f >/dev/null 2>&1; \
                    docker network prune -f >/dev/null 2>&1; fi; \
                    if [ $status -ne 0 ] && [ -n \"${K:-}\" ]; then \
                    $K list -q 2>/dev/null | xargs -r -n1 $K delete --force; fi' EXIT\n";
    let script_path = dir.path().join("run-it.sh");
    fs::write(&script_path, format!("{prologue}{}", page.script)).expect("writing the script");
    let output_path = dir.path().join("output");
    let output = fs::File::create(&output_path).expect("output file");
    let trace_path = dir.path().join("trace");

    let path = format!("{}:{}", debug.display(), std::env::var("PATH").unwrap_or_default());
    let mut child = Command::new("bash")
        .arg("-euo")
        .arg("pipefail")
        .arg("-c")
        // The commands as bash runs them go to a file of their own, for the failure message
        // (they would otherwise match promises: `echo hi` contains `hi`).
        .arg(format!(
            "exec 9>{trace}; BASH_XTRACEFD=9; PS4='+ line $LINENO: '; set -x; . {script}",
            trace = shell_quote(&trace_path),
            script = shell_quote(&script_path)
        ))
        .current_dir(dir.path())
        .env("PATH", path)
        .env("DOCKER_CONFIG", dir.path().join("docker-config"))
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_API_VERSION")
        .env_remove("RUST_LOG")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(output.try_clone().expect("output file"))
        .stderr(output)
        // Its own process group, so that a hung block can be ended whole.
        .process_group(0)
        .spawn()
        .expect("bash");
    let deadline = Instant::now() + BLOCK_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for bash") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let group = nix::unistd::Pid::from_raw(-(child.id() as i32));
            let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let printed = read_lossy(&output_path);
    let trace = read_lossy(&trace_path);
    let left_running = end_leftover_processes();

    let mut problems = Vec::new();
    match status {
        None => problems.push(format!("did not finish in {BLOCK_TIMEOUT:?}")),
        Some(status) if !status.success() => problems.push(format!("bash exited with {status}")),
        Some(_) => {}
    }
    if !left_running.is_empty() {
        problems.push(format!(
            "left processes running (ended by the test): {}",
            left_running.join("; ")
        ));
    }
    let mut from = 0;
    for promise in promises(&page.script) {
        match printed[from..].find(&promise) {
            Some(at) => from += at + promise.len(),
            None => problems.push(format!(
                "promised {promise:?}, not printed (after the earlier promises)"
            )),
        }
    }
    for bridge in bridges(&page.script) {
        if Path::new("/sys/class/net").join(&bridge).exists() {
            problems.push(format!("left the bridge {bridge}"));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    // A failed block may have stopped before its own cleanup: remove what the test can name.
    for bridge in bridges(&page.script) {
        keel_tests::engine::remove_bridge(&bridge);
    }
    for dir in scratch_dirs(&page.script) {
        let _ = fs::remove_dir_all(dir);
    }
    let tail = |text: &str| {
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    };
    Err(format!(
        "{}\n---- output (last 60 lines):\n{}\n---- commands run (last 60 lines):\n{}",
        problems.join("\n"),
        tail(&printed),
        tail(&trace)
    ))
}

/// Ends, by pid, every process that a block left behind (this process is their subreaper,
/// so they are its children now), and names them.
fn end_leftover_processes() -> Vec<String> {
    let me = std::process::id().to_string();
    let mut ended = Vec::new();
    for entry in fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let (state, ppid) = (fields.next(), fields.next());
        if ppid != Some(me.as_str()) {
            continue;
        }
        let pid = nix::unistd::Pid::from_raw(pid);
        // A container whose runtime parent had exited was reparented here and has ended:
        // reaping it is this subreaper's job, as it is init's for a reader.
        if state == Some("Z") {
            let _ = nix::sys::wait::waitpid(pid, None);
            continue;
        }
        let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(pid, None);
        ended.push(format!("{pid} {}", cmdline.trim()));
    }
    ended
}

fn read_lossy(path: &Path) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut file) = fs::File::open(path) {
        let _ = file.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

#[test]
fn the_parser_reads_only_the_run_it_section() {
    let page = "# 09 x\n\n## Run it\n\n```sh\necho one   # → one\n```\n\nProse.\n\n```text\none\n```\n\n\
                ```sh\necho two\n```\n\n## The primitive\n\n```sh\necho not run\n```\n";
    let script = run_it_script(page).expect("a block");
    assert_eq!(script, "echo one   # → one\necho two\n");
    assert_eq!(promises(&script), ["one"]);
    assert_eq!(
        run_it_script("# x\n\n## Run it\n\nNo block.\n\n## Next\n```sh\nls\n```\n"),
        None
    );
    assert!(is_step_chapter("04b-runtime.md") && is_step_chapter("01-unshare.md"));
    assert!(!is_step_chapter("glossary.md") && !is_step_chapter("SUMMARY.md"));
}
