//! The normalized state model: accounts, users, VPCs, links and zones keyed by uid and id.
//!
//! This is the one shape of "what should be served" — built from the TOML file today, persisted and changed through
//! the admin API later. It holds no file formats and no derived tables: `config` builds it, `validate` checks it,
//! `compile` turns it into a snapshot. Links are held by the resolved uid of both accounts, never by a name.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::dns::name::Name;
pub use crate::settings::Served;

/// A root account's uid: decimal digits, as the cloud issues them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uid(pub String);

/// A VPC's id, unique across all accounts. Shared, not copied: a VPC's id appears in the scope of every zone it
/// sees, so with thousands of VPCs the copies would cost more than the VPCs themselves (see [`State::share_ids`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VpcId(pub Arc<str>);

impl VpcId {
    pub fn new(id: &str) -> VpcId {
        VpcId(Arc::from(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for VpcId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// A zone's id, unique across all accounts. Two accounts may own zones of the same name; the id tells them apart.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ZoneId(pub String);

impl std::borrow::Borrow<str> for ZoneId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

macro_rules! display_inner {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}
display_inner!(Uid, VpcId, ZoneId);

/// The cloud site an account belongs to; links never cross sites.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Site {
    Cn,
    Intl,
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Site::Cn => "cn",
            Site::Intl => "intl",
        })
    }
}

/// A root account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub uid: Uid,
    /// Username, unique, never all digits (so it can never be mistaken for a uid).
    pub name: String,
    pub email: String,
    pub site: Site,
}

/// A policy a sub-user may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Policy {
    DnsFullAccess,
    DnsReadOnlyAccess,
}

/// A sub-user of an account; its principal name is `name@<account name>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub account: Uid,
    pub name: String,
    pub policies: Vec<Policy>,
}

/// A VPC: the network a query comes from, recognised by its source prefixes (and optionally the listener).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vpc {
    pub id: VpcId,
    pub account: Uid,
    pub region: String,
    /// Normalized prefixes (host bits cleared, IPv4-mapped IPv6 turned into IPv4).
    pub cidrs: Vec<IpNet>,
    /// When not empty, only queries arriving on one of these local addresses belong to this VPC.
    pub listeners: Vec<SocketAddr>,
    /// Queries per second one source address of this VPC gets full answers to; `None`: `[limits]
    /// queries_per_source`; 0: unlimited.
    pub query_limit: Option<u32>,
    /// The endpoint ids a trusted front end names this VPC by in its PROXY v2 header (`vpce-…`, `alibaba:…`,
    /// `psc:…`, `azure:…`; see `model::identity`).
    pub endpoints: Vec<String>,
    /// The VPC's id in the cloud, when a front end sends it (Alibaba PrivateLink) and it differs from `id`.
    pub cloud_id: Option<String>,
}

impl Vpc {
    /// A VPC with endpoints or a cloud id is told apart by the identity its front end sends, not by its prefixes:
    /// its prefixes may overlap other accounts' (every account starts from the same default ranges), and a query
    /// without that identity never lands in it.
    pub fn identified(&self) -> bool {
        !self.endpoints.is_empty() || self.cloud_id.is_some()
    }
}

/// A verified link: `account` may put `linked`'s VPCs into its zones' scopes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Link {
    pub account: Uid,
    pub linked: Uid,
}

pub use crate::model::records::{records_from, records_with_ids, RecordId, ZoneRecords};

/// What a change did to one zone, for incremental validation and compilation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirtyZone {
    /// The zone is new, renamed or gone: everything about it must be checked and built.
    pub full: bool,
    /// Lower-case owners whose records changed.
    pub owners: BTreeSet<Name>,
}

/// What a change did to the served state, for incremental validation and compilation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// The zones whose content (records, fallback, record generation) changed, or that came or went.
    pub zones: BTreeMap<ZoneId, DirtyZone>,
    /// Anything else changed too: accounts, users, VPCs, links, scopes, forwarding rules, or which zones exist.
    /// Without it, every rule that spans items holds as it did, and what routes and classifies is unchanged.
    pub structure: bool,
}

/// A private zone and its effective scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    pub id: ZoneId,
    /// Apex, as written by its owner.
    pub name: Name,
    /// Owner account, billed for the queries this zone answers.
    pub account: Uid,
    /// The VPCs that see this zone.
    pub scope: Vec<VpcId>,
    /// Records by id (file order for files); SOA/NS may be absent (compile adds defaults).
    pub records: ZoneRecords,
    /// The state revision at which this zone's content (name, owner, records) last changed: the SOA serial of a
    /// generated SOA, and the key that lets compile reuse an unchanged zone's table.
    pub revision: u64,
    /// Where the zone came from (a file path or the config), for error messages.
    pub origin: String,
    /// What a name the zone does not hold gets.
    pub fallback: Fallback,
}

/// What a private zone answers for a name it does not hold (`fallback` in a zone).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Fallback {
    /// NXDOMAIN, as an authoritative server answers.
    #[default]
    NxDomain,
    /// The name is resolved through the VPC's forwarding rules or upstreams instead (names the zone holds are
    /// always answered privately).
    Recurse,
}

impl Fallback {
    pub fn name(self) -> &'static str {
        match self {
            Fallback::NxDomain => "nxdomain",
            Fallback::Recurse => "recurse",
        }
    }

    pub fn parse(text: &str) -> Option<Fallback> {
        match text {
            "nxdomain" => Some(Fallback::NxDomain),
            "recurse" => Some(Fallback::Recurse),
            _ => None,
        }
    }
}

/// An outbound forwarding rule: queries for `domain` (and below) from the VPCs in its scope go to `targets`
/// (on-premises DNS, say) instead of the upstreams.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardRule {
    pub id: String,
    /// The owner; its own VPCs and those of accounts it has linked may be in the scope (as for zones).
    pub account: Uid,
    pub domain: Name,
    /// At most [`MAX_RULE_TARGETS`] addresses.
    pub targets: Vec<SocketAddr>,
    pub scope: Vec<VpcId>,
}

/// The most targets one forwarding rule may have (as Route 53 Resolver allows).
pub(crate) const MAX_RULE_TARGETS: usize = 6;

/// Everything that should be served, normalized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    /// Grows on every change; with the file loader it is the load time in seconds (or the previous revision + 1).
    pub revision: u64,
    /// The settings the served model depends on (a copy of the process settings' `served`).
    pub served: Served,
    pub accounts: BTreeMap<Uid, Account>,
    pub users: BTreeMap<(Uid, String), User>,
    pub vpcs: BTreeMap<VpcId, Vpc>,
    pub links: BTreeSet<Link>,
    pub zones: BTreeMap<ZoneId, Zone>,
    /// Forwarding rules by id. Persistent, like the zones' records: a copy of the state for a trial change shares
    /// them, so a write costs the same however many rules other tenants hold.
    pub rules: imbl::OrdMap<String, ForwardRule>,
}

impl State {
    /// True when `account` may use `vpc_owner`'s VPCs: its own, or those of an account it has linked.
    pub(crate) fn may_use_vpcs_of(&self, account: &Uid, vpc_owner: &Uid) -> bool {
        account == vpc_owner || self.links.contains(&Link { account: account.clone(), linked: vpc_owner.clone() })
    }

    /// Points every scope entry at the id held by its VPC, so that each id is stored once however many zones see
    /// the VPC, and trims the scopes' spare capacity. Loaders call it once the state is built; entries naming no
    /// VPC stay as they are (validation reports them).
    pub(crate) fn share_ids(&mut self) {
        for zone in self.zones.values_mut() {
            share_scope_ids(&self.vpcs, &mut zone.scope);
        }
        let ids: Vec<String> = self.rules.keys().cloned().collect();
        for id in ids {
            if let Some(rule) = self.rules.get_mut(&id) {
                share_scope_ids(&self.vpcs, &mut rule.scope);
            }
        }
    }
}

/// [`State::share_ids`] for one scope.
pub(crate) fn share_scope_ids(vpcs: &BTreeMap<VpcId, Vpc>, scope: &mut Vec<VpcId>) {
    for id in scope.iter_mut() {
        if let Some((shared, _)) = vpcs.get_key_value(id.as_str()) {
            if !Arc::ptr_eq(&shared.0, &id.0) {
                *id = shared.clone();
            }
        }
    }
    scope.shrink_to_fit();
}

/// A DNS server's address: `ip` (port 53) or `ip:port` (`[v6]:port`).
pub(crate) fn parse_server_address(text: &str) -> Option<SocketAddr> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr);
    }
    text.parse::<std::net::IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53))
}

/// Parses a CIDR and normalizes it: host bits cleared, `::ffff:a.b.c.d/n` turned into IPv4.
pub(crate) fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let net: IpNet =
        text.parse().map_err(|_| format!("{text:?} is not a CIDR prefix (e.g. \"10.0.0.0/16\" or \"fd00::/64\")"))?;
    if let IpNet::V6(v6) = net {
        if let Some(v4) = v6.addr().to_ipv4_mapped() {
            let len = v6.prefix_len().saturating_sub(96);
            if v6.prefix_len() < 96 {
                return Err(format!("{text:?}: an IPv4-mapped prefix must be at least /96"));
            }
            return ipnet::Ipv4Net::new(v4, len).map(|n| IpNet::V4(n.trunc())).map_err(|e| format!("{text:?}: {e}"));
        }
    }
    Ok(net.trunc())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scope entries from the file and from `share_ids` point at the VPC's own id: one copy however many zones.
    #[test]
    fn scope_ids_share_the_vpcs_id() {
        let zones = "[[zones]]\nname = \"a.internal.\"\naccount = \"1\"\nscope = [\"v1\"]\n\
                     [[zones]]\nname = \"b.internal.\"\naccount = \"1\"\nscope = [\"v1\"]\n";
        let mut state = crate::testing::state(zones, None);
        let held = |state: &State| state.vpcs.keys().next().map(|id| id.0.clone()).expect("v1");
        let shared = |state: &State| {
            let vpc = held(state);
            state.zones.values().all(|z| z.scope.iter().all(|id| Arc::ptr_eq(&id.0, &vpc)))
        };
        assert!(shared(&state), "the loader shares ids");
        for zone in state.zones.values_mut() {
            zone.scope = vec![VpcId::new("v1"), VpcId::new("v-unknown")];
        }
        assert!(!shared(&state));
        state.share_ids();
        let vpc = held(&state);
        for zone in state.zones.values() {
            assert!(Arc::ptr_eq(&zone.scope[0].0, &vpc));
            assert_eq!(zone.scope[1].as_str(), "v-unknown", "an unknown id stays for validation to report");
            assert_eq!(zone.scope.capacity(), 2);
        }
    }
}
