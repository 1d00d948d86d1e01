//! The engine's state: its containers (records on disk, a little more in memory), events,
//! and where the runtime and monitor binaries are. Lifecycle changes go through here so
//! that the record on disk, the waiters and the event stream agree.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{oneshot, watch};

use crate::events::Events;
use crate::monitor_client;
use crate::network::command::NetError;
use crate::network::Attachment;
use crate::record::{now_rfc3339, ContainerDir, Record, RecordError, Status};
use crate::runtime_cli::Runtime;
use step06_images::step05_overlay;

/// What waiters watch: `docker wait` and `docker run`'s wait (conditions `next-exit`,
/// `not-running`, `removed`).
#[derive(Debug, Clone, Default)]
pub struct Lifecycle {
    pub exits: u64,
    pub running: bool,
    pub removed: bool,
    pub exit_code: i64,
}

/// An attach that arrived before the monitor exists (`docker run` attaches, then starts):
/// start hands it the monitor, and waits for its acknowledgement before letting the
/// container run, so no early output is lost.
pub type PendingAttach = oneshot::Sender<oneshot::Sender<()>>;

pub struct Container {
    pub id: String,
    pub dir: ContainerDir,
    pub record: Mutex<Record>,
    pub lifecycle: watch::Sender<Lifecycle>,
    pub pending_attaches: Mutex<Vec<PendingAttach>>,
    /// Start, stop, restart and remove of one container happen one at a time.
    pub operation: tokio::sync::Mutex<()>,
}

impl Container {
    /// The name alone, without copying the whole record.
    pub fn name(&self) -> String {
        match self.record.lock() {
            Ok(record) => record.name.clone(),
            Err(poisoned) => poisoned.into_inner().name.clone(),
        }
    }

    pub fn record(&self) -> Record {
        self.record
            .lock()
            .map(|r| r.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Changes the record and writes it to disk.
    pub fn update<T>(&self, change: impl FnOnce(&mut Record) -> T) -> Result<T, RecordError> {
        let mut record = self.record.lock().unwrap_or_else(|e| e.into_inner());
        let result = change(&mut record);
        self.dir.save(&record)?;
        Ok(result)
    }

    fn new(dir: ContainerDir, record: Record) -> Self {
        let lifecycle = Lifecycle {
            running: record.running(),
            exit_code: record.state.exit_code,
            ..Lifecycle::default()
        };
        Self {
            id: record.id.clone(),
            dir,
            record: Mutex::new(record),
            lifecycle: watch::channel(lifecycle).0,
            pending_attaches: Mutex::new(Vec::new()),
            operation: tokio::sync::Mutex::new(()),
        }
    }
}

pub struct Engine {
    /// Images, snapshots (step 06's and step 05's stores) and containers live here.
    pub root: PathBuf,
    pub runtime: Runtime,
    pub monitor: PathBuf,
    pub containers: Mutex<HashMap<String, Arc<Container>>>,
    pub events: Events,
    pub execs: crate::api::exec::Execs,
    /// One image change (pull, load, tag, rmi...) at a time.
    pub images: tokio::sync::Mutex<()>,
    pub networks: crate::network::Networks,
}

#[derive(Debug, thiserror::Error)]
// ANCHOR: lookup_errors
pub enum LookupError {
    #[error("No such container: {0}")]
    NotFound(String),
    #[error("multiple containers found with provided prefix: {0}")]
    Ambiguous(String),
}
// ANCHOR_END: lookup_errors

impl Engine {
    pub fn containers_dir(root: &Path) -> PathBuf {
        root.join("containers")
    }

    /// Loads every container record under `root`.
    pub fn load(
        root: PathBuf,
        runtime: Runtime,
        monitor: PathBuf,
        networks: crate::network::Networks,
    ) -> anyhow::Result<Arc<Self>> {
        let dir = Self::containers_dir(&root);
        std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
        let mut containers = HashMap::new();
        for entry in std::fs::read_dir(&dir)?.flatten() {
            let container_dir = ContainerDir(entry.path());
            match container_dir.load() {
                Ok(record) => {
                    containers.insert(record.id.clone(), Arc::new(Container::new(container_dir, record)));
                }
                // A directory without a record is a create that died half-way: nothing
                // refers to it, so it goes.
                Err(error) => {
                    tracing::warn!("removing {}: {error}", entry.path().display());
                    let _ = std::fs::remove_dir_all(entry.path());
                    let id = entry.file_name().to_string_lossy().into_owned();
                    let _ = step05_overlay::store::Store::new(&root).remove(&id);
                }
            }
        }
        Ok(Arc::new(Self {
            root,
            runtime,
            monitor,
            containers: Mutex::new(containers),
            events: Events::default(),
            execs: Default::default(),
            images: tokio::sync::Mutex::new(()),
            networks,
        }))
    }

    pub fn all(&self) -> Vec<Arc<Container>> {
        let containers = self.containers.lock().unwrap_or_else(|e| e.into_inner());
        // Newest first, as `docker ps`; each record is read once, not once per comparison.
        let mut all: Vec<_> = containers
            .values()
            .map(|c| {
                let created = c.record.lock().map(|r| r.created.clone()).unwrap_or_default();
                (created, Arc::clone(c))
            })
            .collect();
        all.sort_by(|a, b| b.0.cmp(&a.0));
        all.into_iter().map(|(_, c)| c).collect()
    }

    /// By full id, name (with or without docker's `/`), or a unique id prefix.
    pub fn find(&self, key: &str) -> Result<Arc<Container>, LookupError> {
        let containers = self.containers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(container) = containers.get(key) {
            return Ok(Arc::clone(container));
        }
        let name = key.strip_prefix('/').unwrap_or(key);
        if let Some(container) = containers.values().find(|c| c.name() == name) {
            return Ok(Arc::clone(container));
        }
        let mut matches = containers.values().filter(|c| !key.is_empty() && c.id.starts_with(key));
        match (matches.next(), matches.next()) {
            (Some(one), None) => Ok(Arc::clone(one)),
            (Some(_), Some(_)) => Err(LookupError::Ambiguous(key.to_owned())),
            _ => Err(LookupError::NotFound(key.to_owned())),
        }
    }

    pub fn name_in_use(&self, name: &str) -> Option<String> {
        let containers = self.containers.lock().unwrap_or_else(|e| e.into_inner());
        containers.values().find(|c| c.name() == name).map(|c| c.id.clone())
    }

    /// Every container's name, read once: choosing a generated name tries many.
    pub fn names_in_use(&self) -> std::collections::HashSet<String> {
        let containers = self.containers.lock().unwrap_or_else(|e| e.into_inner());
        containers.values().map(|c| c.name()).collect()
    }

    pub fn insert(&self, dir: ContainerDir, record: Record) -> Arc<Container> {
        let container = Arc::new(Container::new(dir, record));
        let mut containers = self.containers.lock().unwrap_or_else(|e| e.into_inner());
        containers.insert(container.id.clone(), Arc::clone(&container));
        container
    }

    pub fn monitor_socket(&self, container: &Container) -> PathBuf {
        crate::record::monitor_socket(&self.runtime.root, &container.id)
    }

    pub fn runtime_log(&self, container: &Container) -> PathBuf {
        container.dir.0.join("runtime.log")
    }

    /// A container event with docker's attributes (image, name, and `extra`).
    pub fn event(&self, container: &Container, action: &str, extra: &[(&str, String)]) {
        let record = container.record();
        let mut attributes = BTreeMap::new();
        attributes.insert("image".to_owned(), record.image.clone());
        attributes.insert("name".to_owned(), record.name.clone());
        for (key, value) in extra {
            attributes.insert((*key).to_owned(), value.clone());
        }
        self.events.emit("container", action, &container.id, attributes);
    }

    /// Follows a running container until its monitor reports the end, then records it.
    pub fn watch(self: &Arc<Self>, container: Arc<Container>) {
        let engine = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(error) = monitor_client::wait(&engine.monitor_socket(&container)).await {
                tracing::debug!("monitor of {} not reachable: {error}", container.id);
            }
            engine.exited(&container).await;
        });
    }

    /// Records the end of a container from its monitor's `exit.json` (or, if the monitor
    /// died too, as exit 255), and removes it if it was run with `--rm`.
    pub async fn exited(self: &Arc<Self>, container: &Arc<Container>) {
        let mut exit = container.dir.exit_info();
        for _ in 0..20 {
            if exit.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            exit = container.dir.exit_info();
        }
        let (code, oom, finished, error) = match exit {
            Some(exit) => (exit.exit_code, exit.oom_killed, exit.finished_at, String::new()),
            None => {
                // No monitor and no record of the end: make sure nothing is left running.
                self.delete_from_runtime(container).await;
                (
                    255,
                    false,
                    now_rfc3339(),
                    "the container's monitor ended without recording its exit".into(),
                )
            }
        };
        self.disconnect(container).await;
        self.ended(container, code, oom, finished, error).await;
    }

    /// A container's end, however it came: the record, the `oom`/`die` events, the
    /// waiters, and removal if it was run with `--rm`.
    pub async fn ended(&self, container: &Arc<Container>, code: i64, oom: bool, finished: String, error: String) {
        let saved = container.update(|record| {
            record.state.status = Status::Exited;
            record.state.pid = 0;
            record.state.exit_code = code;
            record.state.oom_killed = oom;
            record.state.finished_at = Some(finished);
            record.state.error = error;
        });
        if let Err(error) = saved {
            tracing::error!("recording the exit of {}: {error}", container.id);
        }
        if oom {
            self.event(container, "oom", &[]);
        }
        self.event(container, "die", &[("exitCode", code.to_string())]);
        container.lifecycle.send_modify(|l| {
            l.exits += 1;
            l.running = false;
            l.exit_code = code;
        });
        if container.record().auto_remove() {
            if let Err(error) = self.remove(container).await {
                tracing::error!("removing {} (--rm): {error:#}", container.id);
            }
        }
    }

    /// The runtime's `delete --force`, when the runtime still keeps state for the container
    /// (one process less per `run --rm`, whose monitor has deleted it already).
    async fn delete_from_runtime(&self, container: &Container) {
        if self.runtime.root.join(&container.id).exists() {
            let log = self.runtime_log(container);
            let _ = self.runtime.call(&log, &["delete", "--force", &container.id]).await;
        }
    }

    /// Removes a stopped container: runtime state, snapshot, directory, record.
    pub async fn remove(&self, container: &Arc<Container>) -> anyhow::Result<()> {
        // The monitor deleted the runtime's container when it ended; only what a dead
        // monitor left needs the runtime's `delete`.
        self.delete_from_runtime(container).await;
        self.disconnect(container).await;
        let snapshots = step05_overlay::store::Store::new(&self.root);
        match snapshots.remove(&container.id) {
            Ok(()) | Err(step05_overlay::store::StoreError::NotFound(_)) => {}
            Err(error) => return Err(error.into()),
        }
        std::fs::remove_dir_all(&container.dir.0)
            .map_err(|e| anyhow::anyhow!("removing {}: {e}", container.dir.0.display()))?;
        self.containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&container.id);
        self.execs.forget_container(&container.id);
        self.event(container, "destroy", &[]);
        container.lifecycle.send_modify(|l| l.removed = true);
        Ok(())
    }

    /// After a restart: containers whose monitor still runs are followed again; the others
    /// ended while the engine was away; one its record says is not running is settled first
    /// (an engine that died in its start, create or rm: see `settle`).
    pub async fn reconcile(self: &Arc<Self>) {
        if let Err(error) = self.networks.setup().await {
            tracing::error!("setting up the networks: {error}");
        }
        // Before the ports: a container found running gets its rules back below.
        for container in self.all() {
            if !container.record().running() {
                self.settle(&container).await;
            }
        }
        // Published ports are rebuilt from this engine's records: no rule twice, none for
        // the dead; other engines' rules on the same host are left alone.
        for container in self.all() {
            let record = container.record();
            let _ = crate::network::ports::unpublish(&container.id).await;
            if let (true, Some(attachment)) = (record.running(), &record.network) {
                for port in &attachment.ports {
                    if let Err(error) =
                        crate::network::ports::publish(&container.id, &attachment.address.to_string(), port).await
                    {
                        tracing::error!("publishing a port of {}: {error}", container.id);
                    }
                }
            }
        }
        for container in self.all() {
            if !container.record().running() {
                continue;
            }
            if tokio::net::UnixStream::connect(self.monitor_socket(&container))
                .await
                .is_ok()
            {
                self.watch(container);
            } else {
                self.exited(&container).await;
            }
        }
    }

    /// A container its record says is not running, after an engine died in its start (or
    /// create, or rm): what was interrupted is finished, one way or the other. Started by
    /// its monitor before the engine could record it: it runs, so it is recorded as running.
    /// Anything else the runtime still holds (a created container no monitor will start)
    /// is deleted, and its network (veth, port rules, address) undone.
    async fn settle(&self, container: &Arc<Container>) {
        let log = self.runtime_log(container);
        let socket = self.monitor_socket(container);
        // Asked only when the runtime keeps state for it (one process less per stopped one).
        let state = match self.runtime.root.join(&container.id).exists() {
            true => match self.runtime.output(&log, &["state", &container.id]).await {
                Ok(text) => serde_json::from_str::<serde_json::Value>(&text).unwrap_or_default(),
                Err(_) => serde_json::Value::Null, // gone meanwhile
            },
            false => serde_json::Value::Null,
        };
        let monitor = tokio::net::UnixStream::connect(&socket).await.is_ok();
        if monitor && state["status"] == "running" {
            let pid = state["pid"].as_i64().unwrap_or(0) as i32;
            let adopted = container.update(|record| {
                record.state.status = Status::Running;
                record.state.pid = pid;
                record.state.error.clear();
                record.state.started_at = Some(now_rfc3339());
                record.state.finished_at = None;
            });
            match adopted {
                Ok(()) => {
                    container.lifecycle.send_modify(|l| l.running = true);
                    return;
                }
                Err(error) => tracing::error!("recording {} as running: {error}", container.id),
            }
        }
        if !state.is_null() {
            tracing::warn!("deleting {}, which an engine left half-started", container.id);
            self.delete_from_runtime(container).await;
        }
        if !monitor {
            let _ = std::fs::remove_file(&socket);
        }
        self.disconnect(container).await;
    }

    /// Networking for a container whose first process is `pid`, before it starts.
    pub async fn connect(
        &self,
        container: &Container,
        pid: i32,
    ) -> Result<Option<Attachment>, crate::network::command::NetError> {
        use crate::network::{attach, loopback_only, ports, Mode};
        let record = container.record();
        let mode = Mode::of(record.host_config["NetworkMode"].as_str().unwrap_or_default());
        let name = match mode {
            Mode::None => return loopback_only(pid).await.map(|()| None),
            Mode::Host | Mode::Container(_) => return Ok(None),
            Mode::Bridge(name) => name,
        };
        let network = self
            .networks
            .find(&name)
            .ok_or_else(|| NetError::Invalid(format!("network {name} not found")))?;
        let attachment = {
            let _allocating = self.networks.allocation.lock().await;
            let used: Vec<_> = self
                .all()
                .iter()
                .filter_map(|c| {
                    c.record()
                        .network
                        .filter(|a| a.network == network.name)
                        .map(|a| a.address)
                })
                .collect();
            let address = network
                .subnet
                .allocate(&used)
                .ok_or_else(|| NetError::Invalid(format!("network {name} has no free address left")))?;
            let mut published = ports::requested(&record.config, &record.host_config)?;
            for port in &mut published {
                if port.host_port == 0 {
                    port.host_port = ports::pick_free(&port.proto)
                        .ok_or_else(|| NetError::Invalid("no free port on the host".into()))?;
                }
            }
            let attachment = Attachment {
                network: network.name.clone(),
                address,
                gateway: network.subnet.gateway(),
                prefix: network.subnet.prefix,
                ports: published,
            };
            // Recorded first: a crash half-way is undone by the next disconnect or reconcile.
            let _ = container.update(|r| r.network = Some(attachment.clone()));
            attach(&container.id, pid, &network, address).await?;
            for port in &attachment.ports {
                ports::publish(&container.id, &address.to_string(), port).await?;
            }
            attachment
        };
        self.refresh_hosts(&network.name).await;
        Ok(Some(attachment))
    }

    /// Undoes `connect`: port rules, the veth if it outlived the namespace, the address.
    pub async fn disconnect(&self, container: &Container) {
        let Some(attachment) = container.record().network else {
            return;
        };
        if let Err(error) = crate::network::ports::unpublish(&container.id).await {
            tracing::error!("removing the port rules of {}: {error}", container.id);
        }
        crate::network::detach(&container.id).await;
        let _ = container.update(|r| r.network = None);
        self.refresh_hosts(&attachment.network).await;
    }

    /// Rewrites `/etc/hosts` of every container on `network`, each listing the others.
    pub async fn refresh_hosts(&self, network: &str) {
        use crate::network::hosts::{render, Entry};
        let _allocating = self.networks.allocation.lock().await;
        let members: Vec<_> = self
            .all()
            .into_iter()
            .filter_map(|c| {
                let record = c.record();
                let attachment = record.network.clone().filter(|a| a.network == network)?;
                Some((c, record, attachment))
            })
            .collect();
        for (container, record, attachment) in &members {
            let peers: Vec<Entry> = members
                .iter()
                .filter(|(other, _, _)| other.id != container.id)
                .map(|(other, other_record, other_attachment)| Entry {
                    address: other_attachment.address,
                    names: vec![other_record.name.clone(), other.id[..12].to_owned()],
                })
                .collect();
            let hostname = record.config["Hostname"].as_str().unwrap_or(&record.id[..12]);
            let text = render(hostname, Some(attachment.address), &peers);
            // In place: the file is bind-mounted into the container by inode.
            if let Err(error) = std::fs::write(container.dir.hosts(), text) {
                tracing::warn!("writing the hosts file of {}: {error}", container.id);
            }
        }
    }
}
