//! Addresses: a network's IPv4 subnet, and the lowest free address in it for a container.

use std::net::Ipv4Addr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

impl std::str::FromStr for Subnet {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let (address, prefix) = text
            .split_once('/')
            .ok_or_else(|| format!("subnet {text:?}: expected ADDRESS/PREFIX, e.g. 172.31.0.0/16"))?;
        let address: Ipv4Addr = address
            .parse()
            .map_err(|_| format!("subnet {text:?}: not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| (8..=30).contains(p))
            .ok_or_else(|| format!("subnet {text:?}: the prefix must be between 8 and 30"))?;
        Ok(Self {
            base: Ipv4Addr::from(u32::from(address) & mask(prefix)),
            prefix,
        })
    }
}

fn mask(prefix: u8) -> u32 {
    u32::MAX << (32 - u32::from(prefix))
}

impl Subnet {
    /// The first address: the bridge's own, the containers' gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) + 1)
    }

    pub fn contains(&self, address: Ipv4Addr) -> bool {
        u32::from(address) & mask(self.prefix) == u32::from(self.base)
    }

    /// The lowest address after the gateway that is not in `used` (nor the broadcast).
    pub fn allocate(&self, used: &[Ipv4Addr]) -> Option<Ipv4Addr> {
        let first = u32::from(self.base) + 2;
        let broadcast = u32::from(self.base) | !mask(self.prefix);
        (first..broadcast).map(Ipv4Addr::from).find(|a| !used.contains(a))
    }

    /// Whether the two overlap (a new network must not take addresses the host uses).
    pub fn overlaps(&self, other: &Subnet) -> bool {
        let prefix = self.prefix.min(other.prefix);
        u32::from(self.base) & mask(prefix) == u32::from(other.base) & mask(prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_skips_the_gateway_and_used_addresses() {
        let subnet: Subnet = "172.31.5.7/16".parse().expect("subnet");
        assert_eq!(subnet.to_string(), "172.31.0.0/16");
        assert_eq!(subnet.gateway(), Ipv4Addr::new(172, 31, 0, 1));
        let used = [Ipv4Addr::new(172, 31, 0, 2), Ipv4Addr::new(172, 31, 0, 3)];
        assert_eq!(subnet.allocate(&used), Some(Ipv4Addr::new(172, 31, 0, 4)));
        let tiny: Subnet = "10.0.0.0/30".parse().expect("subnet");
        assert_eq!(tiny.allocate(&[Ipv4Addr::new(10, 0, 0, 2)]), None);
        assert!(subnet.overlaps(&"172.31.9.0/24".parse().expect("subnet")));
        assert!(!subnet.overlaps(&"172.32.0.0/24".parse().expect("subnet")));
        assert!("172.31.0.0".parse::<Subnet>().is_err());
    }
}
