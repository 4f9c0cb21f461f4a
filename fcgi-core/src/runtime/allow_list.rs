//! Who may see the server's own pages (status, ping): a list of addresses and networks,
//! matched against the client's address as the web server passes it (REMOTE_ADDR).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Addresses and networks (`10.0.0.0/8`, `::1`), comma-separated when parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowList(Vec<(IpAddr, u8)>);

/// A list entry that is not an address or a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowListError(String);

impl fmt::Display for AllowListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not an address or a network (such as 10.0.0.0/8 or ::1)", self.0)
    }
}

impl std::error::Error for AllowListError {}

impl AllowList {
    /// The loopback addresses: 127.0.0.0/8 and ::1.
    pub fn loopback() -> Self {
        Self(vec![(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8), (IpAddr::V6(Ipv6Addr::LOCALHOST), 128)])
    }

    /// Whether `address` (as text, e.g. REMOTE_ADDR) is on the list; an IPv4 address mapped
    /// into IPv6 counts as the IPv4 one.
    pub fn allows(&self, address: &[u8]) -> bool {
        let Some(address) = std::str::from_utf8(address).ok().and_then(|a| a.trim().parse::<IpAddr>().ok()) else {
            return false;
        };
        let address = address.to_canonical();
        self.0.iter().any(|&(network, prefix)| match (network, address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                mask(u128::from(u32::from(network)), prefix, 32) == mask(u128::from(u32::from(address)), prefix, 32)
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                mask(u128::from(network), prefix, 128) == mask(u128::from(address), prefix, 128)
            }
            _ => false,
        })
    }
}

/// The top `prefix` bits of a `width`-bit address.
fn mask(bits: u128, prefix: u8, width: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        bits >> (width - prefix.min(width))
    }
}

impl FromStr for AllowList {
    type Err = AllowListError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let entries = text.split(',').map(str::trim).filter(|entry| !entry.is_empty());
        entries
            .map(|entry| {
                let refuse = || AllowListError(entry.to_owned());
                let (address, prefix) = entry.split_once('/').unwrap_or((entry, ""));
                let address = address.parse::<IpAddr>().map_err(|_| refuse())?.to_canonical();
                let width = if address.is_ipv4() { 32 } else { 128 };
                let prefix = if prefix.is_empty() { width } else { prefix.parse::<u8>().map_err(|_| refuse())? };
                if prefix > width {
                    return Err(refuse());
                }
                Ok((address, prefix))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_networks_match_as_written() {
        let list: AllowList = "10.0.0.0/8, 192.168.1.7,2001:db8::/32".parse().unwrap();
        assert!(list.allows(b"10.200.3.4"));
        assert!(list.allows(b"::ffff:10.1.1.1"), "mapped IPv4");
        assert!(list.allows(b"192.168.1.7"));
        assert!(!list.allows(b"192.168.1.8"));
        assert!(list.allows(b"2001:db8:1::5"));
        assert!(!list.allows(b"2001:db9::1"));
        assert!(!list.allows(b"not an address"));
        assert!(AllowList::loopback().allows(b"127.0.0.1") && AllowList::loopback().allows(b"::1"));
        assert!(!AllowList::loopback().allows(b"10.0.0.1"));
        assert!("".parse::<AllowList>().is_ok_and(|empty| !empty.allows(b"127.0.0.1")));
        assert!("0.0.0.0/0".parse::<AllowList>().unwrap().allows(b"8.8.8.8"));
        assert_eq!(
            "10.0.0.0/33".parse::<AllowList>().unwrap_err().to_string().split_once(' ').unwrap().0,
            "\"10.0.0.0/33\""
        );
        assert!("example.com".parse::<AllowList>().is_err());
    }
}
