//! Published ports (`-p [HOSTIP:]HOSTPORT:CONTAINERPORT[/PROTO]`, `-P`): one DNAT rule per
//! port in keel's own nat chain, tagged with the container's id so it can be found and
//! removed. Packets to a host address (PREROUTING) and from the host itself (OUTPUT) are
//! both sent through the chain; for 127.0.0.1 the bridge has `route_localnet` set and the
//! replies are masqueraded (see `bridge`), instead of a userland proxy process per port.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::command::{iptables, NetError};

pub const NAT_CHAIN: &str = "KEEL";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMap {
    /// Empty for every address of the host.
    pub host_ip: String,
    /// 0 until a free one is picked (`-p 80` or `-P`).
    pub host_port: u16,
    pub container_port: u16,
    pub proto: String,
}

impl PortMap {
    /// The host address as docker shows it: `0.0.0.0` for every address.
    pub fn host_address(&self) -> &str {
        if self.host_ip.is_empty() {
            "0.0.0.0"
        } else {
            &self.host_ip
        }
    }

    /// Whether both would take the same port of the host (every address overlaps any).
    pub fn clashes_with(&self, other: &PortMap) -> bool {
        self.host_port == other.host_port
            && self.proto == other.proto
            && (self.host_ip.is_empty() || other.host_ip.is_empty() || self.host_ip == other.host_ip)
    }
}

fn parse_key(key: &str) -> Result<(u16, String), NetError> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let port = port
        .parse()
        .map_err(|_| NetError::Invalid(format!("invalid container port {key:?}")))?;
    if !matches!(proto, "tcp" | "udp") {
        return Err(NetError::Invalid(format!(
            "port {key:?}: keel publishes tcp and udp ports"
        )));
    }
    Ok((port, proto.to_owned()))
}

/// The ports asked for by `HostConfig.PortBindings` and, with `-P`, `Config.ExposedPorts`.
pub fn requested(config: &Value, host_config: &Value) -> Result<Vec<PortMap>, NetError> {
    let mut ports = Vec::new();
    if let Some(bindings) = host_config["PortBindings"].as_object() {
        for (key, list) in bindings {
            let (container_port, proto) = parse_key(key)?;
            for binding in list.as_array().into_iter().flatten() {
                let host_ip = binding["HostIp"].as_str().unwrap_or_default();
                let host_ip = if host_ip == "0.0.0.0" { "" } else { host_ip };
                if !host_ip.is_empty() && host_ip.parse::<std::net::Ipv4Addr>().is_err() {
                    return Err(NetError::Invalid(format!(
                        "host address {host_ip:?}: keel publishes on IPv4"
                    )));
                }
                let host_port = match binding["HostPort"].as_str().unwrap_or_default() {
                    "" => 0,
                    text => text
                        .parse()
                        .map_err(|_| NetError::Invalid(format!("invalid host port {text:?}")))?,
                };
                ports.push(PortMap {
                    host_ip: host_ip.to_owned(),
                    host_port,
                    container_port,
                    proto: proto.clone(),
                });
            }
        }
    }
    if host_config["PublishAllPorts"].as_bool().unwrap_or(false) {
        for key in config["ExposedPorts"].as_object().into_iter().flat_map(|m| m.keys()) {
            let (container_port, proto) = parse_key(key)?;
            if !ports
                .iter()
                .any(|p| p.container_port == container_port && p.proto == proto)
            {
                ports.push(PortMap {
                    host_ip: String::new(),
                    host_port: 0,
                    container_port,
                    proto,
                });
            }
        }
    }
    Ok(ports)
}

/// Whether a process of the host holds the port already.
pub fn in_use_on_host(port: &PortMap) -> bool {
    let address = port.host_address();
    let free = match port.proto.as_str() {
        "udp" => std::net::UdpSocket::bind((address, port.host_port)).is_ok(),
        _ => std::net::TcpListener::bind((address, port.host_port)).is_ok(),
    };
    !free
}

/// A port the kernel says is free now, for `-p 80` and `-P`.
pub fn pick_free(proto: &str) -> Option<u16> {
    match proto {
        "udp" => std::net::UdpSocket::bind("0.0.0.0:0")
            .ok()?
            .local_addr()
            .ok()
            .map(|a| a.port()),
        _ => std::net::TcpListener::bind("0.0.0.0:0")
            .ok()?
            .local_addr()
            .ok()
            .map(|a| a.port()),
    }
}

pub fn tag(id: &str) -> String {
    format!("keel:{}", &id[..id.len().min(12)])
}

// ANCHOR: dnat
/// `iptables -t nat -A KEEL -p tcp --dport 8080 -j DNAT --to-destination 172.31.0.2:80`.
pub async fn publish(id: &str, address: &str, port: &PortMap) -> Result<(), NetError> {
    let dport = port.host_port.to_string();
    let to = format!("{address}:{}", port.container_port);
    let tag = tag(id);
    let mut rule = vec!["-t", "nat", "-A", NAT_CHAIN, "-p", &port.proto];
    if !port.host_ip.is_empty() {
        rule.extend(["-d", &port.host_ip]);
    }
    rule.extend(["--dport", &dport, "-m", "comment", "--comment", &tag]);
    rule.extend(["-j", "DNAT", "--to-destination", &to]);
    iptables(&rule).await.map(|_| ())
}
// ANCHOR_END: dnat

// ANCHOR: unpublish
/// Removes every rule of keel's nat chain tagged with the container's id.
pub async fn unpublish(id: &str) -> Result<(), NetError> {
    let tag = tag(id);
    let rules = iptables(&["-t", "nat", "-S", NAT_CHAIN]).await?;
    // `iptables -S` prints the comment quoted.
    let tagged = |rule: &&str| rule.split_whitespace().any(|w| w.trim_matches('"') == tag);
    for rule in rules.lines().filter(tagged) {
        let mut words: Vec<&str> = rule.split_whitespace().map(|w| w.trim_matches('"')).collect();
        if words.first() == Some(&"-A") {
            words[0] = "-D";
            let mut args = vec!["-t", "nat"];
            args.extend(words);
            iptables(&args).await?;
        }
    }
    Ok(())
}
// ANCHOR_END: unpublish

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_and_publish_all_become_port_maps() {
        let host_config = serde_json::json!({
            "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8081"}], "81/udp": [{"HostIp": "", "HostPort": ""}]},
            "PublishAllPorts": true
        });
        let config = serde_json::json!({"ExposedPorts": {"80/tcp": {}, "443/tcp": {}}});
        let ports = requested(&config, &host_config).expect("ports");
        assert_eq!(ports.len(), 3);
        assert!(ports.contains(&PortMap {
            host_ip: "127.0.0.1".into(),
            host_port: 8081,
            container_port: 80,
            proto: "tcp".into()
        }));
        assert!(ports.contains(&PortMap {
            host_ip: String::new(),
            host_port: 0,
            container_port: 81,
            proto: "udp".into()
        }));
        assert!(ports.contains(&PortMap {
            host_ip: String::new(),
            host_port: 0,
            container_port: 443,
            proto: "tcp".into()
        }));
        let bad = serde_json::json!({"PortBindings": {"80/sctp": [{"HostPort": "1"}]}});
        assert!(requested(&config, &bad).is_err());
    }
}
