//! `serve`: the engine's daemon. A unix socket (0660, root's), the router, and on start the
//! reconciliation that picks up containers a previous engine left running.

use anyhow::Context;
use clap::Args;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::engine::Engine;
use crate::runtime_cli::{self, Runtime};
use step06_images::store::DEFAULT_ROOT;

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The unix socket to listen on (DOCKER_HOST=unix://PATH)
    #[arg(long, value_name = "PATH", default_value = "/run/keel.sock")]
    pub socket: PathBuf,
    /// Where images, snapshots and containers are kept
    #[arg(long, value_name = "DIR", default_value = DEFAULT_ROOT)]
    pub root: PathBuf,
    /// The runtime's state directory
    #[arg(long, value_name = "DIR", default_value = "/run/keel-engine")]
    pub runtime_root: PathBuf,
    /// The OCI runtime binary (step 04's, or any with runc's command line and overlay root mounts)
    #[arg(long, value_name = "PATH")]
    pub runtime: Option<PathBuf>,
    /// The default network's bridge on the host (never docker's docker0)
    #[arg(long, value_name = "NAME", default_value = "keel0")]
    pub bridge: String,
    /// The default network's subnet; the bridge takes its first address
    #[arg(long, value_name = "CIDR", default_value = "172.31.0.0/16")]
    pub bridge_subnet: crate::network::ipam::Subnet,
    /// Do not put the embedded busybox image in an empty store
    #[arg(long)]
    pub no_busybox: bool,
}

pub fn serve(args: ServeArgs) -> anyhow::Result<i32> {
    anyhow::ensure!(
        nix::unistd::geteuid().is_root(),
        "the engine needs root (namespaces, mounts, cgroups): run it with sudo"
    );
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "step07_engine_api=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = Runtime {
        binary: args.runtime.clone().unwrap_or_else(runtime_cli::default_binary),
        root: args.runtime_root.clone(),
    };
    let monitor = runtime_cli::sibling("keel-monitor");
    if !args.no_busybox {
        embed_busybox(&args.root)?;
    }
    anyhow::ensure!(
        !args.bridge.is_empty() && args.bridge.len() <= 15 && args.bridge != "docker0",
        "--bridge {:?}: a bridge name has 1 to 15 characters (and keel does not take docker0)",
        args.bridge
    );
    let networks = crate::network::Networks::load(&args.root, &args.bridge, args.bridge_subnet)?;
    let engine = Engine::load(args.root.clone(), runtime, monitor, networks)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        engine.reconcile().await;
        let listener = listen(&args.socket)?;
        tracing::info!("keel engine listening on unix://{}", args.socket.display());
        let router = crate::api::router(engine);
        let app = tower::ServiceBuilder::new()
            .layer(axum::middleware::from_fn(crate::api::version::rewrite))
            .service(router);
        let socket = args.socket.clone();
        let shutdown = async move {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
            // Requests in flight get a moment to finish; streams that never end (an attach,
            // `events`, `logs -f`) must not keep the engine from stopping. Containers run on.
            let socket = socket.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_secs(3));
                let _ = std::fs::remove_file(&socket);
                std::process::exit(0);
            });
        };
        axum::serve(listener, tower::make::Shared::new(app))
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving the API")?;
        let _ = std::fs::remove_file(&args.socket);
        Ok::<_, anyhow::Error>(())
    })?;
    // Containers keep running: their monitors do not depend on the engine.
    Ok(0)
}

/// The socket, root's only (0660): whoever can write to it can run anything as root.
fn listen(path: &std::path::Path) -> anyhow::Result<tokio::net::UnixListener> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        anyhow::bail!(
            "{} is in use: another engine is serving it (stop it, or give --socket)",
            path.display()
        );
    }
    let _ = std::fs::remove_file(path);
    let listener = tokio::net::UnixListener::bind(path).with_context(|| format!("listening on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    Ok(listener)
}

/// The embedded busybox as `busybox:latest` when the store has no busybox yet, so the
/// first `docker run busybox` needs no network. The import runs in a child process (this
/// binary's `busybox` command): a daemon that lives for weeks should not keep the heap and
/// the pages of code (tar, gzip, hashing) that one import touched, about 2 MB of its RSS.
fn embed_busybox(root: &std::path::Path) -> anyhow::Result<()> {
    let store = step06_images::store::Store::open(root)?;
    if store.resolve("busybox:latest").is_ok() {
        return Ok(());
    }
    let me = std::env::current_exe().context("finding the engine's own binary")?;
    let output = std::process::Command::new(&me)
        .arg("busybox")
        .arg("--root")
        .arg(root)
        .arg("busybox:latest")
        .stdout(std::process::Stdio::null())
        .output()
        .with_context(|| format!("running {} busybox", me.display()))?;
    anyhow::ensure!(
        output.status.success(),
        "importing the embedded busybox image: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}
