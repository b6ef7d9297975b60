//! Classification: (listener, source address) → VPC, by longest prefix among the VPCs that accept the listener.
//!
//! Pure and allocation-free on the query path. The tables are built by `compile` from validated VPCs; this module
//! never reads configuration and never decides what a VPC may see.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use ahash::RandomState;
use ipnet::IpNet;

use crate::model::identity::{Identity, MAX_IDENTITY};

/// Index of a VPC in the snapshot's `vpcs` and `views`.
pub type VpcIdx = u32;

/// What classification found, with the evidence `explain` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classification {
    pub vpc: VpcIdx,
    /// The VPC prefix that holds the source.
    pub cidr: IpNet,
    /// The listener-specific table used, when the VPC is restricted to listeners.
    pub listener: Option<SocketAddr>,
    /// The VPC was named by a front end's identity, not found by prefix.
    pub by_identity: bool,
}

/// Who sent a packet, as far as PROXY v2 goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// A trusted front end: the packet must start with a PROXY v2 header.
    FrontEnd,
    /// A client talking directly: no header is honoured.
    Client,
    /// A client on a listener that serves front ends only: dropped.
    Refused,
}

/// The prefixes of one length: masked address → (VPC, the prefix as configured).
type LengthGroup<K> = (u8, HashMap<K, (VpcIdx, IpNet), RandomState>);

/// Prefixes of one address family, grouped by length, longest first.
#[derive(Default)]
struct FamilyTable<K> {
    groups: Vec<LengthGroup<K>>,
}

impl<K: std::hash::Hash + Eq + Copy> FamilyTable<K> {
    fn insert(&mut self, len: u8, key: K, vpc: VpcIdx, net: IpNet) {
        let at = match self.groups.iter().position(|(l, _)| *l <= len) {
            Some(i) if self.groups[i].0 == len => i,
            Some(i) => {
                self.groups.insert(i, (len, HashMap::default()));
                i
            }
            None => {
                self.groups.push((len, HashMap::default()));
                self.groups.len() - 1
            }
        };
        // Validation guarantees no two VPCs share a prefix on one listener; keep the first if it ever happens.
        self.groups[at].1.entry(key).or_insert((vpc, net));
    }

    fn find(&self, mask: impl Fn(u8) -> K) -> Option<(VpcIdx, IpNet)> {
        self.groups.iter().find_map(|(len, map)| map.get(&mask(*len)).copied())
    }
}

/// Longest-prefix tables for IPv4 and IPv6.
#[derive(Default)]
pub(crate) struct PrefixTable {
    v4: FamilyTable<u32>,
    v6: FamilyTable<u128>,
}

fn mask_v4(addr: u32, len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        addr & (u32::MAX << (32 - len as u32))
    }
}

fn mask_v6(addr: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        addr & (u128::MAX << (128 - len as u32))
    }
}

impl PrefixTable {
    pub(crate) fn insert(&mut self, net: IpNet, vpc: VpcIdx) {
        match net {
            IpNet::V4(n) => self.v4.insert(n.prefix_len(), mask_v4(n.network().into(), n.prefix_len()), vpc, net),
            IpNet::V6(n) => self.v6.insert(n.prefix_len(), mask_v6(n.network().into(), n.prefix_len()), vpc, net),
        }
    }

    pub(crate) fn find(&self, source: IpAddr) -> Option<(VpcIdx, IpNet)> {
        match normalize_ip(source) {
            IpAddr::V4(v4) => {
                let addr = u32::from(v4);
                self.v4.find(|len| mask_v4(addr, len))
            }
            IpAddr::V6(v6) => {
                let addr = u128::from(v6);
                self.v6.find(|len| mask_v6(addr, len))
            }
        }
    }
}

/// A VPC's prefixes and listeners, as a front end's identity is checked against them.
pub(crate) struct Member {
    pub cidrs: Box<[IpNet]>,
    pub listeners: Box<[SocketAddr]>,
}

/// Source → VPC for every listener. VPCs without a listener restriction are in every table.
#[derive(Default)]
pub struct Classifier {
    /// For a local address that no VPC names: the unrestricted VPCs only.
    pub(crate) unrestricted: PrefixTable,
    /// For each local address some VPC names: the unrestricted VPCs plus those restricted to it.
    pub(crate) by_listener: HashMap<SocketAddr, PrefixTable, RandomState>,
    /// The VPC each identity names (`model::identity` keys): every VPC by its id (and cloud id), and the VPCs
    /// with endpoints by each endpoint id.
    pub(crate) identities: HashMap<Box<[u8]>, VpcIdx, RandomState>,
    /// Each VPC's prefixes and listeners, to check the client a front end names against the VPC it names.
    pub(crate) members: Vec<Member>,
    /// Trusted front ends (`[server] proxy_from`).
    pub(crate) front_ends: Vec<IpNet>,
    /// Listeners that serve front ends only (`[server] proxy_listen`).
    pub(crate) proxy_listeners: Vec<SocketAddr>,
    /// The operator's TLV type that carries a VPC id (`[server] proxy_vpc_tlv`).
    pub(crate) vpc_tlv: Option<u8>,
}

impl Classifier {
    /// The VPC a query belongs to, or `None` (the caller answers REFUSED).
    pub fn classify(&self, local: SocketAddr, source: IpAddr) -> Option<Classification> {
        let local = SocketAddr::new(normalize_ip(local.ip()), local.port());
        let (table, listener) = match self.by_listener.get(&local) {
            Some(table) => (table, Some(local)),
            None => (&self.unrestricted, None),
        };
        table.find(source).map(|(vpc, cidr)| Classification { vpc, cidr, listener, by_identity: false })
    }

    /// The VPC a trusted front end names, when the client it names is inside that VPC and the query arrived on a
    /// listener the VPC accepts; `None` otherwise (the caller answers REFUSED: an identity never falls back to
    /// prefixes).
    pub fn classify_identity(
        &self,
        local: SocketAddr,
        identity: Identity<'_>,
        source: IpAddr,
    ) -> Option<Classification> {
        let mut buf = [0u8; MAX_IDENTITY + 1];
        let vpc = *self.identities.get(identity.key(&mut buf)?)?;
        let Member { cidrs, listeners } = self.members.get(vpc as usize)?;
        let local = SocketAddr::new(normalize_ip(local.ip()), local.port());
        if !listeners.is_empty() && !listeners.contains(&local) {
            return None;
        }
        let source = normalize_ip(source);
        let cidr = cidrs.iter().filter(|net| net.contains(&source)).max_by_key(|net| net.prefix_len())?;
        let listener = (!listeners.is_empty()).then_some(local);
        Some(Classification { vpc, cidr: *cidr, listener, by_identity: true })
    }

    /// Whether `peer`, which sent a packet to `local`, is a trusted front end.
    pub fn sender(&self, local: SocketAddr, peer: IpAddr) -> Sender {
        if self.front_ends.is_empty() && self.proxy_listeners.is_empty() {
            return Sender::Client;
        }
        if self.front_end_of(peer).is_some() {
            return Sender::FrontEnd;
        }
        let local = SocketAddr::new(normalize_ip(local.ip()), local.port());
        if self.proxy_listeners.contains(&local) {
            Sender::Refused
        } else {
            Sender::Client
        }
    }

    /// The trusted front ends' prefixes (`[server] proxy_from`).
    pub fn front_ends(&self) -> &[IpNet] {
        &self.front_ends
    }

    /// The index in [`Classifier::front_ends`] of the prefix holding a front end's address.
    pub fn front_end_of(&self, peer: IpAddr) -> Option<usize> {
        let peer = normalize_ip(peer);
        self.front_ends.iter().position(|net| net.contains(&peer))
    }

    /// The operator's TLV type that carries a VPC id, if any.
    pub fn vpc_tlv(&self) -> Option<u8> {
        self.vpc_tlv
    }
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) classifies as IPv4.
pub(crate) fn normalize_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().expect("test prefix")
    }

    #[test]
    fn longest_prefix_wins() {
        let mut t = PrefixTable::default();
        t.insert(net("127.0.0.0/8"), 0);
        t.insert(net("127.0.10.0/24"), 1);
        t.insert(net("127.0.10.128/25"), 2);
        t.insert(net("::1/128"), 3);
        assert_eq!(t.find("127.0.10.7".parse().unwrap()).map(|m| m.0), Some(1));
        assert_eq!(t.find("127.0.10.200".parse().unwrap()).map(|m| m.0), Some(2));
        assert_eq!(t.find("127.9.9.9".parse().unwrap()).map(|m| m.0), Some(0));
        assert_eq!(t.find("::ffff:127.0.10.7".parse().unwrap()).map(|m| m.0), Some(1));
        assert_eq!(t.find("::1".parse().unwrap()).map(|m| m.0), Some(3));
        assert_eq!(t.find("10.0.0.1".parse().unwrap()), None);
    }

    #[test]
    fn listener_tables_take_precedence() {
        let mut c = Classifier::default();
        c.unrestricted.insert(net("127.0.10.0/24"), 0);
        let mut special = PrefixTable::default();
        special.insert(net("127.0.10.0/24"), 0);
        special.insert(net("127.0.20.0/24"), 1);
        let l: SocketAddr = "127.0.0.2:53".parse().unwrap();
        c.by_listener.insert(l, special);
        let other: SocketAddr = "127.0.0.1:53".parse().unwrap();
        assert_eq!(c.classify(other, "127.0.20.1".parse().unwrap()), None);
        assert_eq!(c.classify(l, "127.0.20.1".parse().unwrap()).map(|m| m.vpc), Some(1));
        assert_eq!(c.classify(other, "127.0.10.1".parse().unwrap()).map(|m| m.vpc), Some(0));
    }
}
