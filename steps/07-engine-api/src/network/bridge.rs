//! A network's bridge on the host and the rules around it: the bridge with the gateway
//! address, forwarding allowed to and from it, and outbound NAT (masquerade) so that
//! containers reach what the host reaches.

use super::command::{ip, iptables_chain, iptables_ensure, NetError};
use super::ports::NAT_CHAIN;
use super::NetworkDef;

pub const FORWARD_CHAIN: &str = "KEEL-FORWARD";
pub const POSTROUTING_CHAIN: &str = "KEEL-POSTROUTING";

/// keel's chains, hooked into the built-in ones once.
pub async fn ensure_chains() -> Result<(), NetError> {
    iptables_chain("nat", NAT_CHAIN).await?;
    iptables_chain("nat", POSTROUTING_CHAIN).await?;
    iptables_chain("filter", FORWARD_CHAIN).await?;
    let to_local = ["-m", "addrtype", "--dst-type", "LOCAL", "-j", NAT_CHAIN];
    iptables_ensure("nat", "PREROUTING", &to_local, false).await?;
    iptables_ensure("nat", "OUTPUT", &to_local, false).await?;
    iptables_ensure("nat", "POSTROUTING", &["-j", POSTROUTING_CHAIN], false).await?;
    iptables_ensure("filter", "FORWARD", &["-j", FORWARD_CHAIN], true).await?;
    // Forwarding between interfaces is off on many hosts: containers need it.
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        .map_err(|e| NetError::Invalid(format!("enabling ip_forward: {e}")))?;
    Ok(())
}

// ANCHOR: bridge
/// `ip link add keel0 type bridge`, its address, up; then the rules for its subnet.
pub async fn ensure(network: &NetworkDef) -> Result<(), NetError> {
    let bridge = network.bridge.as_str();
    if !std::path::Path::new("/sys/class/net").join(bridge).exists() {
        ip(&["link", "add", bridge, "type", "bridge"]).await?;
    }
    let address = format!("{}/{}", network.subnet.gateway(), network.subnet.prefix);
    let shown = ip(&["-4", "addr", "show", "dev", bridge]).await?;
    if !shown.contains(&format!("inet {address} ")) {
        ip(&["addr", "add", &address, "dev", bridge]).await?;
    }
    ip(&["link", "set", bridge, "up"]).await?;
    // 127.0.0.1:PORT → container: the kernel drops packets with a loopback source on other
    // interfaces unless told otherwise.
    let localnet = format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet");
    std::fs::write(&localnet, "1").map_err(|e| NetError::Invalid(format!("writing {localnet}: {e}")))?;
    let subnet = network.subnet.to_string();
    iptables_ensure("filter", FORWARD_CHAIN, &["-i", bridge, "-j", "ACCEPT"], false).await?;
    iptables_ensure("filter", FORWARD_CHAIN, &["-o", bridge, "-j", "ACCEPT"], false).await?;
    // Out to the world: the container's address becomes the host's.
    iptables_ensure(
        "nat",
        POSTROUTING_CHAIN,
        &["-s", &subnet, "!", "-o", bridge, "-j", "MASQUERADE"],
        false,
    )
    .await?;
    // From the host to a published port: the reply must come back through the host.
    let from_host = [
        "-o",
        bridge,
        "-m",
        "addrtype",
        "--src-type",
        "LOCAL",
        "-j",
        "MASQUERADE",
    ];
    iptables_ensure("nat", POSTROUTING_CHAIN, &from_host, false).await?;
    Ok(())
}
// ANCHOR_END: bridge

/// Removes a user-defined network's bridge and rules.
pub async fn remove(network: &NetworkDef) -> Result<(), NetError> {
    let bridge = network.bridge.as_str();
    let subnet = network.subnet.to_string();
    let rules: [(&str, &str, Vec<&str>); 4] = [
        ("filter", FORWARD_CHAIN, vec!["-i", bridge, "-j", "ACCEPT"]),
        ("filter", FORWARD_CHAIN, vec!["-o", bridge, "-j", "ACCEPT"]),
        (
            "nat",
            POSTROUTING_CHAIN,
            vec!["-s", &subnet, "!", "-o", bridge, "-j", "MASQUERADE"],
        ),
        (
            "nat",
            POSTROUTING_CHAIN,
            vec![
                "-o",
                bridge,
                "-m",
                "addrtype",
                "--src-type",
                "LOCAL",
                "-j",
                "MASQUERADE",
            ],
        ),
    ];
    for (table, chain, rule) in rules {
        let mut args = vec!["-t", table, "-D", chain];
        args.extend(rule);
        let _ = super::command::iptables(&args).await;
    }
    if std::path::Path::new("/sys/class/net").join(bridge).exists() {
        ip(&["link", "del", bridge]).await?;
    }
    Ok(())
}
