//! Address allow-lists: the networks a token may be used from, in CIDR notation, IPv4 and
//! IPv6. An empty list allows every address.
//!
//! A network is written canonically (`192.0.2.0/24`, `2001:db8::/32`; a bare address is a
//! single host, `/32` or `/128`), so a network with bits set after its prefix
//! (`192.0.2.7/24`) is refused with the network it probably meant rather than silently
//! widened. `/0` is refused: it allows every address of its family, which an empty list says
//! honestly. An IPv4 address seen as an IPv4-mapped IPv6 address (`::ffff:192.0.2.7`, as a
//! dual-stack socket reports it) is matched as the IPv4 address it is.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::error::Error;
use crate::scope::shown_name;

/// One network: an address with the bits after `prefix` zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(ip) & mask == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(ip) & mask == u128::from(net)
            }
            _ => false,
        }
    }
}

impl FromStr for Network {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let invalid = |why: &'static str| Error::InvalidNetwork {
            network: shown_name(text),
            why,
        };
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| {
            invalid("expected an address or a CIDR network, like 192.0.2.0/24 or 2001:db8::/32")
        })?;
        let addr = addr.to_canonical();
        let bits: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            // Digits only: `u8::from_str` would take `+24`.
            // Too many digits for a u8 is too long a prefix, as the check below says.
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().unwrap_or(u8::MAX)
            }
            Some(_) => return Err(invalid("the prefix length must be a number, like /24")),
        };
        if prefix > bits {
            return Err(invalid(if bits == 32 {
                "an IPv4 prefix is at most /32"
            } else {
                "an IPv6 prefix is at most /128"
            }));
        }
        if prefix == 0 {
            return Err(invalid(
                "/0 allows every address: leave the allow-list empty instead",
            ));
        }
        let network = Network { addr, prefix };
        let masked = network.masked();
        if masked != network {
            return Err(Error::HostBitsSet {
                network: shown_name(text),
                meant: masked.to_string(),
            });
        }
        Ok(network)
    }
}

impl Network {
    /// The network with the bits after the prefix cleared.
    fn masked(self) -> Network {
        let addr = match self.addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        };
        Network { addr, ..self }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The networks a token may be used from; empty: any address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Networks(Vec<Network>);

impl Networks {
    /// The most networks one token may list.
    pub const MAX: usize = 32;

    /// Whether the list is empty (every address is allowed).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The networks, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &Network> {
        self.0.iter()
    }

    /// Whether a call from `ip` is allowed: always with an empty list; with a list, only from
    /// an address in one of its networks, and never from an unknown address.
    pub fn allows(&self, ip: Option<IpAddr>) -> bool {
        if self.0.is_empty() {
            return true;
        }
        ip.is_some_and(|ip| self.0.iter().any(|n| n.contains(ip)))
    }

    /// Whether every address this list allows, `wider` allows too. Every list is within an
    /// empty one (which allows every address); an empty list is within no other.
    pub fn within(&self, wider: &Networks) -> bool {
        if wider.is_empty() {
            return true;
        }
        !self.0.is_empty()
            && self.0.iter().all(|n| {
                wider
                    .0
                    .iter()
                    .any(|w| w.prefix <= n.prefix && w.contains(n.addr))
            })
    }

    /// Parses each item as a [`Network`]; duplicates count once.
    ///
    /// # Errors
    /// [`Error::InvalidNetwork`] or [`Error::HostBitsSet`] naming the first bad item;
    /// [`Error::TooManyNetworks`] for more than [`Networks::MAX`].
    pub fn parse_all<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Self, Error> {
        let mut list = items
            .into_iter()
            .map(|item| item.trim().parse())
            .collect::<Result<Vec<Network>, Error>>()?;
        list.sort_unstable();
        list.dedup();
        if list.len() > Self::MAX {
            return Err(Error::TooManyNetworks { max: Self::MAX });
        }
        Ok(Networks(list))
    }
}

/// A list separated by commas or white space, as the CLI's flag and the database write it.
impl FromStr for Networks {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        Networks::parse_all(
            text.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|item| !item.is_empty()),
        )
    }
}

/// Space-separated, as the database stores it.
impl fmt::Display for Networks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, network) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            network.fmt(f)?;
        }
        Ok(())
    }
}

impl serde::Serialize for Networks {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(ToString::to_string))
    }
}

impl<'de> serde::Deserialize<'de> for Networks {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let items = Vec::<String>::deserialize(d)?;
        Networks::parse_all(items.iter().map(String::as_str)).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn networks_contain_their_addresses_and_nothing_else() {
        let list: Networks = "192.0.2.0/24, 2001:db8::/32 198.51.100.7".parse().unwrap();
        assert!(list.allows(ip("192.0.2.0")));
        assert!(list.allows(ip("192.0.2.255")));
        assert!(!list.allows(ip("192.0.3.0")));
        assert!(list.allows(ip("198.51.100.7")));
        assert!(!list.allows(ip("198.51.100.8")));
        assert!(list.allows(ip("2001:db8:ffff::1")));
        assert!(!list.allows(ip("2001:db9::1")));
        // A dual-stack socket's view of an IPv4 client.
        assert!(list.allows(ip("::ffff:192.0.2.9")));
        assert!(!list.allows(ip("::ffff:10.0.0.1")));
        // An unknown address is never allowed by a list, always by an empty one.
        assert!(!list.allows(None));
        assert!(Networks::default().allows(None));
        assert!(Networks::default().allows(ip("10.0.0.1")));
    }

    proptest::proptest! {
        #[test]
        fn every_address_is_in_its_own_networks(v4: u32, v6: u128, p4 in 1u8..=32, p6 in 1u8..=128) {
            for (addr, prefix) in [
                (IpAddr::V4(Ipv4Addr::from(v4)), p4),
                (IpAddr::V6(Ipv6Addr::from(v6)), p6),
            ] {
                let network = Network { addr, prefix }.masked();
                proptest::prop_assert_eq!(network.to_string().parse::<Network>(), Ok(network));
                proptest::prop_assert!(network.contains(addr));
                // The address just past the network's end is outside it (unless the network
                // runs to the end of the address space).
                let outside = match network.addr {
                    IpAddr::V4(a) => u32::from(a)
                        .checked_add(1u32.checked_shl(32 - u32::from(prefix)).unwrap_or(0))
                        .map(|a| IpAddr::V4(Ipv4Addr::from(a))),
                    IpAddr::V6(a) => u128::from(a)
                        .checked_add(1u128.checked_shl(128 - u32::from(prefix)).unwrap_or(0))
                        .map(|a| IpAddr::V6(Ipv6Addr::from(a))),
                };
                if let Some(outside) = outside {
                    proptest::prop_assert!(!network.contains(outside));
                }
            }
        }
    }

    #[test]
    fn a_narrower_list_is_within_a_wider_one() {
        let list = |text: &str| text.parse::<Networks>().unwrap();
        let wide = list("10.0.0.0/8, 2001:db8::/32");
        assert!(list("10.1.0.0/16").within(&wide));
        assert!(list("10.1.2.3, 2001:db8:1::/48").within(&wide));
        assert!(wide.within(&wide));
        assert!(!list("10.0.0.0/7").within(&wide));
        assert!(!list("10.1.0.0/16, 192.0.2.0/24").within(&wide));
        assert!(!Networks::default().within(&wide));
        assert!(wide.within(&Networks::default()));
        assert!(Networks::default().within(&Networks::default()));
    }

    #[test]
    fn the_list_is_canonical_sorted_and_deduplicated() {
        let list: Networks = "2001:db8::/32,10.0.0.0/8,10.0.0.0/8,::ffff:192.0.2.1"
            .parse()
            .unwrap();
        assert_eq!(list.to_string(), "10.0.0.0/8 192.0.2.1/32 2001:db8::/32");
        assert_eq!(list.to_string().parse::<Networks>().unwrap(), list);
        let json = serde_json::to_string(&list).unwrap();
        assert_eq!(json, r#"["10.0.0.0/8","192.0.2.1/32","2001:db8::/32"]"#);
        assert_eq!(serde_json::from_str::<Networks>(&json).unwrap(), list);
        assert_eq!("".parse::<Networks>().unwrap(), Networks::default());
    }

    #[test]
    fn bad_networks_are_named_with_the_reason() {
        let err = |text: &str| text.parse::<Networks>().unwrap_err().to_string();
        assert_eq!(
            err("192.0.2.7/24"),
            "network \"192.0.2.7/24\" has bits set after its prefix: did you mean 192.0.2.0/24?"
        );
        assert!(
            err("10.0.0.0/33").contains("at most /32"),
            "{}",
            err("10.0.0.0/33")
        );
        assert!(err("::/129").contains("at most /128"));
        assert!(err("0.0.0.0/0").contains("leave the allow-list empty"));
        assert!(err("10.0.0.0/+8").contains("must be a number"));
        assert!(err("10.0.0.0/").contains("must be a number"));
        assert!(err("example.com").contains("expected an address or a CIDR network"));
        assert!(err("10.0.0.0/1000").contains("at most /32"));
        let many = (0..33)
            .map(|i| format!("10.0.{i}.0/24"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(err(&many), "at most 32 networks");
        // A token pasted into the wrong field is not echoed.
        let pasted = format!("{}abc", crate::token::PREFIX);
        assert!(!err(&pasted).contains(crate::token::PREFIX));
        assert!(serde_json::from_str::<Networks>(r#"["10.0.0.1/8"]"#).is_err());
    }
}
