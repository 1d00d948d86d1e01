//! The networking commands, run as a student would type them: `ip` (iproute2) and
//! `iptables`. Each call is logged at debug level with its arguments, so `RUST_LOG=debug`
//! shows the whole recipe for a container's network.

use tokio::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("`{command}` failed: {message}")]
    Failed { command: String, message: String },
    #[error("running `{command}`: {source} (is iproute2/iptables installed?)")]
    Spawn { command: String, source: std::io::Error },
    #[error("{0}")]
    Invalid(String),
}

// ANCHOR: run
/// Runs `program args...`, with `input` on stdin (for `ip -batch -`).
pub async fn run(program: &str, args: &[&str], input: Option<&str>) -> Result<String, NetError> {
    let shown = format!("{program} {}", args.join(" "));
    tracing::debug!("{shown}{}", input.map(|i| format!(" <<< {i:?}")).unwrap_or_default());
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(if input.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().map_err(|source| NetError::Spawn {
        command: shown.clone(),
        source,
    })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        use tokio::io::AsyncWriteExt;
        let _ = stdin.write_all(text.as_bytes()).await;
    }
    let output = child.wait_with_output().await.map_err(|source| NetError::Spawn {
        command: shown.clone(),
        source,
    })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(NetError::Failed {
            command: shown,
            message: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}
// ANCHOR_END: run

pub async fn ip(args: &[&str]) -> Result<String, NetError> {
    run("ip", args, None).await
}

/// Several `ip` commands in one process, one per line.
pub async fn ip_batch(lines: &str) -> Result<String, NetError> {
    run("ip", &["-batch", "-"], Some(lines)).await
}

// ANCHOR: nsenter
/// `ip -batch -` inside the network namespace of `pid`.
pub async fn ip_batch_in(pid: i32, lines: &str) -> Result<String, NetError> {
    let net = format!("--net=/proc/{pid}/ns/net");
    run("nsenter", &[&net, "ip", "-batch", "-"], Some(lines)).await
}
// ANCHOR_END: nsenter

pub async fn iptables(args: &[&str]) -> Result<String, NetError> {
    run(
        "iptables",
        &["-w", "5"].into_iter().chain(args.iter().copied()).collect::<Vec<_>>(),
        None,
    )
    .await
}

/// Held while a rule or chain is looked for and then added: iptables' own lock covers one
/// command, and two engines on one host (the tests run several) could otherwise both find
/// nothing and both add it.
const HOST_RULES_LOCK: &str = "/run/keel-iptables.lock";

/// Takes [`HOST_RULES_LOCK`] (an advisory `flock`, gone with the descriptor).
async fn lock_host_rules() -> Result<std::fs::File, NetError> {
    let locked = tokio::task::spawn_blocking(|| {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(HOST_RULES_LOCK)?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .map_err(|e| NetError::Invalid(format!("locking {HOST_RULES_LOCK}: {e}")))?;
    locked.map_err(|e| NetError::Invalid(format!("locking {HOST_RULES_LOCK}: {e}")))
}

// ANCHOR: ensure
/// Adds a rule unless the very same rule is there (`-C` checks): restarts add no duplicates.
pub async fn iptables_ensure(table: &str, chain: &str, rule: &[&str], insert: bool) -> Result<(), NetError> {
    let _one_engine_at_a_time = lock_host_rules().await?;
    let mut check = vec!["-t", table, "-C", chain];
    check.extend_from_slice(rule);
    if iptables(&check).await.is_ok() {
        return Ok(());
    }
    let mut add = vec!["-t", table, if insert { "-I" } else { "-A" }, chain];
    add.extend_from_slice(rule);
    iptables(&add).await.map(|_| ())
}
// ANCHOR_END: ensure

/// Creates a chain if it does not exist yet.
pub async fn iptables_chain(table: &str, chain: &str) -> Result<(), NetError> {
    let _one_engine_at_a_time = lock_host_rules().await?;
    if iptables(&["-t", table, "-n", "-L", chain]).await.is_ok() {
        return Ok(());
    }
    iptables(&["-t", table, "-N", chain]).await.map(|_| ())
}
