//! A network's bridge on the host and the rules around it: the bridge with the gateway
//! address, forwarding allowed to and from it, and outbound NAT (masquerade) so that
//! containers reach what the host reaches.

use super::command::{ip, iptables_chain, iptables_ensure, NetError};
use super::ports::NAT_CHAIN;
use super::NetworkDef;

pub const FORWARD_CHAIN: &str = "KEEL-FORWARD";
pub const POSTROUTING_CHAIN: &str = "KEEL-POSTROUTING";
pub const INPUT_CHAIN: &str = "KEEL-INPUT";

// ANCHOR: chains
/// keel's chains, hooked into the built-in ones once.
pub async fn ensure_chains() -> Result<(), NetError> {
    iptables_chain("nat", NAT_CHAIN).await?;
    iptables_chain("nat", POSTROUTING_CHAIN).await?;
    iptables_chain("filter", FORWARD_CHAIN).await?;
    iptables_chain("filter", INPUT_CHAIN).await?;
    let to_local = ["-m", "addrtype", "--dst-type", "LOCAL", "-j", NAT_CHAIN];
    iptables_ensure("nat", "PREROUTING", &to_local, false).await?;
    iptables_ensure("nat", "OUTPUT", &to_local, false).await?;
    iptables_ensure("nat", "POSTROUTING", &["-j", POSTROUTING_CHAIN], false).await?;
    iptables_ensure("filter", "FORWARD", &["-j", FORWARD_CHAIN], true).await?;
    iptables_ensure("filter", "INPUT", &["-j", INPUT_CHAIN], true).await?;
    // Forwarding between interfaces is off on many hosts: containers need it.
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        .map_err(|e| NetError::Invalid(format!("enabling ip_forward: {e}")))?;
    Ok(())
}
// ANCHOR_END: chains

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
    for (table, chain, rule) in rules(network) {
        let rule: Vec<&str> = rule.iter().map(String::as_str).collect();
        iptables_ensure(table, chain, &rule, false).await?;
    }
    Ok(())
}
// ANCHOR_END: bridge

// ANCHOR: rules
/// The rules a network's bridge needs: forwarding to and from it; out to the world with the
/// host's address (masquerade); and from the host to a published port, the reply coming back
/// through the host.
fn rules(network: &NetworkDef) -> Vec<(&'static str, &'static str, Vec<String>)> {
    let bridge = network.bridge.as_str();
    let subnet = network.subnet.to_string();
    let words = |text: &str| text.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    vec![
        ("filter", FORWARD_CHAIN, words(&format!("-i {bridge} -j ACCEPT"))),
        ("filter", FORWARD_CHAIN, words(&format!("-o {bridge} -j ACCEPT"))),
        // route_localnet would also let a container send to the host's own 127.0.0.1 services
        // (Kubernetes' CVE-2020-8558): only replies and published-port traffic may pass.
        (
            "filter",
            INPUT_CHAIN,
            words(&format!(
                "-i {bridge} -d 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP"
            )),
        ),
        (
            "nat",
            POSTROUTING_CHAIN,
            words(&format!("-s {subnet} ! -o {bridge} -j MASQUERADE")),
        ),
        (
            "nat",
            POSTROUTING_CHAIN,
            words(&format!("-o {bridge} -m addrtype --src-type LOCAL -j MASQUERADE")),
        ),
    ]
}
// ANCHOR_END: rules

/// Removes a user-defined network's bridge and rules.
pub async fn remove(network: &NetworkDef) -> Result<(), NetError> {
    let bridge = network.bridge.as_str();
    for (table, chain, rule) in rules(network) {
        let mut args = vec!["-t", table, "-D", chain];
        args.extend(rule.iter().map(String::as_str));
        let _ = super::command::iptables(&args).await;
    }
    if std::path::Path::new("/sys/class/net").join(bridge).exists() {
        ip(&["link", "del", bridge]).await?;
    }
    Ok(())
}
