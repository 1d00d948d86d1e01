//! `/etc/hosts` of the containers on one network: each one's own name, and every other
//! running container of the network by name — name resolution between containers without a
//! DNS server. The file is bind-mounted, so it is rewritten in place (same inode).

use std::net::Ipv4Addr;

/// One container as `/etc/hosts` lists it.
pub struct Entry {
    pub address: Ipv4Addr,
    pub names: Vec<String>,
}

// ANCHOR: hosts
pub fn render(hostname: &str, own: Option<Ipv4Addr>, peers: &[Entry]) -> String {
    let mut text = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    match own {
        Some(address) => text.push_str(&format!("{address}\t{hostname}\n")),
        None => text.push_str(&format!("127.0.1.1\t{hostname}\n")),
    }
    for peer in peers {
        text.push_str(&format!("{}\t{}\n", peer.address, peer.names.join(" ")));
    }
    text
}
// ANCHOR_END: hosts

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_listed_by_name() {
        let peers = [Entry {
            address: Ipv4Addr::new(10, 89, 1, 3),
            names: vec!["db".into(), "0123456789ab".into()],
        }];
        let text = render("web1", Some(Ipv4Addr::new(10, 89, 1, 2)), &peers);
        assert!(text.contains("10.89.1.2\tweb1\n10.89.1.3\tdb 0123456789ab\n"), "{text}");
        assert!(render("h", None, &[]).ends_with("127.0.1.1\th\n"));
    }
}
