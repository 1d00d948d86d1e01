//! Container networking from the kernel's primitives: a bridge per network on the host, a
//! veth pair per container (one end on the bridge, the other, renamed eth0, in the
//! container's network namespace), an address and a default route, NAT out, DNAT in for
//! published ports, and `/etc/hosts` kept by the engine for names. Made with `ip` and
//! `iptables` as a student would type them (see `command`).

pub mod bridge;
pub mod command;
pub mod hosts;
pub mod ipam;
pub mod ports;

use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use command::{ip_batch, ip_batch_in, NetError};
use ipam::Subnet;
use ports::PortMap;

/// The default network's name, as docker's.
pub const DEFAULT: &str = "bridge";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkDef {
    pub name: String,
    pub id: String,
    /// The bridge interface on the host (at most 15 characters).
    pub bridge: String,
    #[serde(with = "subnet_text")]
    pub subnet: Subnet,
    pub created: String,
}

mod subnet_text {
    use super::Subnet;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(subnet: &Subnet, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&subnet.to_string())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Subnet, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// A container's place on a network, kept in its record while it runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Attachment {
    pub network: String,
    pub address: Ipv4Addr,
    pub gateway: Ipv4Addr,
    pub prefix: u8,
    pub ports: Vec<PortMap>,
}

// ANCHOR: mode
/// How a container is networked, from `HostConfig.NetworkMode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Its own namespace on a bridge network (the default one, or a user-defined one).
    Bridge(String),
    /// Its own namespace with only `lo`.
    None,
    /// The host's namespace.
    Host,
    /// Another container's namespace.
    Container(String),
}

impl Mode {
    pub fn of(network_mode: &str) -> Self {
        match network_mode {
            "" | "default" | DEFAULT => Mode::Bridge(DEFAULT.into()),
            "none" => Mode::None,
            "host" => Mode::Host,
            other => match other.strip_prefix("container:") {
                Some(name) => Mode::Container(name.to_owned()),
                None => Mode::Bridge(other.to_owned()),
            },
        }
    }
}
// ANCHOR_END: mode

/// The engine's networks: the default bridge and user-defined ones (ROOT/networks/*.json).
pub struct Networks {
    dir: PathBuf,
    list: Mutex<Vec<NetworkDef>>,
    /// Address allocation and `/etc/hosts` updates, one at a time.
    pub allocation: tokio::sync::Mutex<()>,
}

/// Subnets for user-defined networks: 10.89.N.0/24.
fn user_subnet(n: u8) -> Subnet {
    Subnet {
        base: Ipv4Addr::new(10, 89, n, 0),
        prefix: 24,
    }
}

impl Networks {
    pub fn load(root: &Path, bridge: &str, subnet: Subnet) -> anyhow::Result<Self> {
        let dir = root.join("networks");
        std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
        let mut list = vec![NetworkDef {
            name: DEFAULT.into(),
            id: format!("{:0<64}", hex_of(DEFAULT)),
            bridge: bridge.to_owned(),
            subnet,
            created: crate::record::now_rfc3339(),
        }];
        for entry in std::fs::read_dir(&dir)?.flatten() {
            match crate::record::read_json::<NetworkDef>(&entry.path()) {
                Ok(network) => list.push(network),
                Err(error) => tracing::warn!("ignoring {}: {error}", entry.path().display()),
            }
        }
        Ok(Self {
            dir,
            list: Mutex::new(list),
            allocation: tokio::sync::Mutex::new(()),
        })
    }

    pub fn all(&self) -> Vec<NetworkDef> {
        self.list.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// By name, id or id prefix.
    pub fn find(&self, key: &str) -> Option<NetworkDef> {
        let list = self.all();
        list.iter()
            .find(|n| n.name == key || n.id == key)
            .or_else(|| list.iter().find(|n| key.len() >= 3 && n.id.starts_with(key)))
            .cloned()
    }

    /// Bridges and rules for every network (at engine start; idempotent).
    pub async fn setup(&self) -> Result<(), NetError> {
        bridge::ensure_chains().await?;
        for network in self.all() {
            bridge::ensure(&network).await?;
        }
        Ok(())
    }

    pub async fn create(&self, name: &str) -> Result<NetworkDef, NetError> {
        let _guard = self.allocation.lock().await;
        let mut taken: Vec<Subnet> = self.all().iter().map(|n| n.subnet).collect();
        taken.extend(host_routes().await);
        let subnet = (1..=254)
            .map(user_subnet)
            .find(|s| !taken.iter().any(|t| t.overlaps(s)))
            .ok_or_else(|| NetError::Invalid("no free subnet left in 10.89.0.0/16".into()))?;
        let id = crate::ids::new_id();
        let network = NetworkDef {
            name: name.to_owned(),
            bridge: format!("keel-{}", &id[..10]),
            id,
            subnet,
            created: crate::record::now_rfc3339(),
        };
        bridge::ensure(&network).await?;
        let bytes = serde_json::to_vec_pretty(&network).map_err(|e| NetError::Invalid(e.to_string()))?;
        crate::record::write_durably(&self.dir.join(format!("{}.json", network.id)), &bytes)
            .map_err(|e| NetError::Invalid(e.to_string()))?;
        if let Ok(mut list) = self.list.lock() {
            list.push(network.clone());
        }
        Ok(network)
    }

    pub async fn remove(&self, network: &NetworkDef) -> Result<(), NetError> {
        bridge::remove(network).await?;
        let _ = std::fs::remove_file(self.dir.join(format!("{}.json", network.id)));
        if let Ok(mut list) = self.list.lock() {
            list.retain(|n| n.id != network.id);
        }
        Ok(())
    }
}

/// The subnets the host already routes (other engines' bridges, the LAN...): a new network
/// must not take them.
async fn host_routes() -> Vec<Subnet> {
    let routes = command::ip(&["-4", "route", "show"]).await.unwrap_or_default();
    routes
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|prefix| prefix.parse().ok())
        .collect()
}

fn hex_of(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The host end of a container's veth pair (interface names have at most 15 characters).
pub fn host_veth(id: &str) -> String {
    format!("vk{}", &id[..id.len().min(10)])
}

// ANCHOR: attach
/// Puts the container whose first process is `pid` on `network` with `address`: a veth pair
/// made with its inner end already in the container's namespace, named eth0; the outer end
/// on the bridge; inside, the address, lo and eth0 up, and the default route.
pub async fn attach(id: &str, pid: i32, network: &NetworkDef, address: Ipv4Addr) -> Result<(), NetError> {
    let veth = host_veth(id);
    ip_batch(&format!(
        "link add {veth} type veth peer name eth0 netns {pid}\nlink set {veth} master {} up\n",
        network.bridge
    ))
    .await?;
    ip_batch_in(
        pid,
        &format!(
            "addr add {address}/{} dev eth0\nlink set lo up\nlink set eth0 up\nroute add default via {}\n",
            network.subnet.prefix,
            network.subnet.gateway()
        ),
    )
    .await?;
    Ok(())
}
// ANCHOR_END: attach

/// `--network none`: the namespace has lo, and lo should be up. keel's runtime brings it up
/// itself (step 01's namespaces stage); runc leaves it down, and then `ip` does it.
pub async fn loopback_only(pid: i32) -> Result<(), NetError> {
    if loopback_is_up(pid) {
        return Ok(());
    }
    ip_batch_in(pid, "link set lo up\n").await.map(|_| ())
}

/// Whether lo is up in `pid`'s network namespace: the kernel lists 127.0.0.1 in the
/// namespace's local routing table only while it is.
fn loopback_is_up(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/net/fib_trie")).is_ok_and(|table| table.contains("127.0.0.1"))
}

// ANCHOR: detach
/// Removes what is left of a container's veth (normally it goes with its namespace).
pub async fn detach(id: &str) {
    let veth = host_veth(id);
    if Path::new("/sys/class/net").join(&veth).exists() {
        let _ = command::ip(&["link", "del", &veth]).await;
    }
}
// ANCHOR_END: detach
