//! Tenancy: who may serve what in which VPC. In one VPC no two visible zones share a name, and no zone or rule of
//! another account sits at or below a name the VPC's own account binds there; on a listener two VPCs share, their
//! prefixes never let one tenant capture another's sources.

use std::collections::{BTreeMap, HashMap};

use ipnet::IpNet;

use crate::dns::name::Name;
use crate::model::identity;
use crate::model::state::{State, Uid, Vpc, VpcId, Zone};

/// Per VPC: no two visible zones of the same name, and no zone or rule of another account at or below a name that
/// the VPC's own account binds there (a linked account adds names to a VPC, never takes the owner's).
pub(super) fn check_views(state: &State, p: &mut Vec<String>) {
    let mut visible: BTreeMap<&VpcId, Vec<&Zone>> = BTreeMap::new();
    for zone in state.zones.values() {
        for vpc in &zone.scope {
            visible.entry(vpc).or_default().push(zone);
        }
    }
    for (vpc_id, zones) in visible {
        let mut by_name: HashMap<Name, &Zone> = HashMap::new();
        for zone in &zones {
            if by_name.insert(zone.name.lower(), zone).is_some() {
                p.push(format!("vpc {vpc_id} would see two zones named {}", zone.name));
            }
        }
    }
    for s in shadowed(state) {
        p.push(format!(
            "{} {} ({}) of account {} would shadow names that vpc {}'s own account {} binds there ({}): a \
             linked account may add names to a VPC, never take over the owner's",
            s.kind.noun(),
            s.name,
            s.id,
            s.owner,
            s.vpc,
            s.vpc_owner,
            s.own_name
        ));
    }
}

/// What binds a name to a VPC: a private zone or a forwarding rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum BindingKind {
    Zone,
    Rule,
}

impl BindingKind {
    pub(crate) fn noun(self) -> &'static str {
        match self {
            BindingKind::Zone => "zone",
            BindingKind::Rule => "forward rule",
        }
    }
}

/// A zone or rule of one account, in the scope of a VPC of another, at or below a name the VPC's own account binds
/// to that VPC: the VPC owner's binding wins (see [`shadowed`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Shadowed {
    pub vpc: VpcId,
    pub vpc_owner: Uid,
    pub kind: BindingKind,
    /// The zone's or rule's id.
    pub id: String,
    pub owner: Uid,
    pub name: Name,
    /// The VPC owner's own binding that it would shadow (the most specific one at or above `name`).
    pub own_name: Name,
}

/// One binding of a name to a VPC.
struct Binding<'s> {
    kind: BindingKind,
    id: &'s str,
    owner: &'s Uid,
    name: &'s Name,
}

/// Every foreign binding that would take names from a VPC's owner: a zone or rule of account A scoped to a VPC of
/// account B ≠ A, at or below a name B binds to that VPC itself (a zone or a rule, at any depth). Validation refuses
/// them, the control plane detaches them when B binds the name later, and `compile` never serves them (so a state
/// that got one anyway, from a race between nodes, still answers with the owner's data). In state order.
pub(crate) fn shadowed(state: &State) -> Vec<Shadowed> {
    // The common case, checked without building anything: no binding is of another account than its VPC's.
    let foreign =
        |owner: &Uid, scope: &[VpcId]| scope.iter().any(|v| state.vpcs.get(v).is_some_and(|vpc| vpc.account != *owner));
    let any_foreign = state.zones.values().any(|z| foreign(&z.account, &z.scope))
        || state.rules.values().any(|r| foreign(&r.account, &r.scope));
    if !any_foreign {
        return Vec::new();
    }
    let mut by_vpc: BTreeMap<&VpcId, Vec<Binding>> = BTreeMap::new();
    for zone in state.zones.values() {
        for vpc in &zone.scope {
            let binding = Binding { kind: BindingKind::Zone, id: &zone.id.0, owner: &zone.account, name: &zone.name };
            by_vpc.entry(vpc).or_default().push(binding);
        }
    }
    for rule in state.rules.values() {
        for vpc in &rule.scope {
            let binding = Binding { kind: BindingKind::Rule, id: &rule.id, owner: &rule.account, name: &rule.domain };
            by_vpc.entry(vpc).or_default().push(binding);
        }
    }
    let mut found = Vec::new();
    for (vpc_id, bindings) in by_vpc {
        let Some(vpc) = state.vpcs.get(vpc_id) else { continue };
        if bindings.iter().all(|b| *b.owner == vpc.account) {
            continue;
        }
        let own: Vec<&Binding> = bindings.iter().filter(|b| *b.owner == vpc.account).collect();
        for foreign in bindings.iter().filter(|b| *b.owner != vpc.account) {
            let above = own.iter().filter(|o| foreign.name.is_at_or_below(o.name)).max_by_key(|o| o.name.label_count());
            if let Some(own) = above {
                found.push(Shadowed {
                    vpc: vpc.id.clone(),
                    vpc_owner: vpc.account.clone(),
                    kind: foreign.kind,
                    id: foreign.id.to_string(),
                    owner: foreign.owner.clone(),
                    name: foreign.name.clone(),
                    own_name: own.name.clone(),
                });
            }
        }
    }
    found
}

/// One prefix of one VPC, as an address range.
struct PrefixEntry<'a> {
    net: IpNet,
    start: u128,
    end: u128,
    vpc: &'a Vpc,
}

fn range(net: &IpNet) -> (u128, u128) {
    match net {
        IpNet::V4(n) => (u32::from(n.network()) as u128, u32::from(n.broadcast()) as u128),
        IpNet::V6(n) => (u128::from(n.network()), u128::from(n.broadcast())),
    }
}

/// On a listener two VPCs share: no identical prefixes, and no overlap between VPCs of different accounts (the
/// longest-prefix rule is for one account's nested networks, never to let one tenant capture another's sources).
/// Prefixes are either nested or disjoint, so one sorted sweep with a stack of enclosing prefixes finds every pair.
pub(super) fn check_prefixes(state: &State, p: &mut Vec<String>) {
    for v4 in [true, false] {
        let mut entries: Vec<PrefixEntry> = state
            .vpcs
            .values()
            .flat_map(|vpc| vpc.cidrs.iter().map(move |net| (vpc, net)))
            .filter(|(_, net)| matches!(net, IpNet::V4(_)) == v4)
            .map(|(vpc, net)| {
                let (start, end) = range(net);
                PrefixEntry { net: *net, start, end, vpc }
            })
            .collect();
        entries.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
        let mut stack: Vec<&PrefixEntry> = Vec::new();
        for entry in &entries {
            while stack.last().is_some_and(|top| top.end < entry.start) {
                stack.pop();
            }
            for outer in &stack {
                check_pair(outer, entry, p);
            }
            stack.push(entry);
        }
    }
}

fn check_pair(outer: &PrefixEntry, inner: &PrefixEntry, p: &mut Vec<String>) {
    // A VPC told apart by its front end's identity is never found by prefix: its ranges may overlap anyone's.
    if outer.vpc.id == inner.vpc.id
        || !share_listener(outer.vpc, inner.vpc)
        || outer.vpc.identified()
        || inner.vpc.identified()
    {
        return;
    }
    if outer.net == inner.net {
        p.push(format!(
            "vpcs {} and {} both claim {} on a shared listener: a source there would be ambiguous",
            outer.vpc.id, inner.vpc.id, inner.net
        ));
    } else if outer.vpc.account != inner.vpc.account {
        p.push(format!(
            "vpc {} ({}, account {}) overlaps vpc {} ({}, account {}) on a shared listener: prefixes of different \
             accounts must not overlap",
            outer.vpc.id, outer.net, outer.vpc.account, inner.vpc.id, inner.net, inner.vpc.account
        ));
    }
}

/// Two VPCs share a listener when either accepts every listener, or both name a common one.
fn share_listener(a: &Vpc, b: &Vpc) -> bool {
    a.listeners.is_empty() || b.listeners.is_empty() || a.listeners.iter().any(|l| b.listeners.contains(l))
}

/// What front ends may name: every endpoint id well formed and naming one VPC, no cloud id that is another VPC's id
/// or cloud id, and every `proxy_listen` address served.
pub(super) fn check_identities(state: &State, p: &mut Vec<String>) {
    let mut named: HashMap<Box<[u8]>, &VpcId> = HashMap::new();
    for vpc in state.vpcs.values() {
        if let Some(key) = identity::vpc_id_key(vpc.id.as_str()) {
            named.insert(key, &vpc.id);
        }
    }
    for vpc in state.vpcs.values() {
        let mut keys = Vec::new();
        if let Some(cloud) = &vpc.cloud_id {
            match identity::vpc_id_key(cloud) {
                Some(key) if cloud.bytes().all(|b| b.is_ascii_graphic()) => {
                    keys.push((key, format!("cloud_id {cloud}")))
                }
                _ => p.push(format!("vpc {}: cloud_id {cloud:?} must be printable ASCII without spaces", vpc.id)),
            }
        }
        for endpoint in &vpc.endpoints {
            match identity::endpoint_key(endpoint) {
                Ok(key) => keys.push((key, format!("endpoint {endpoint}"))),
                Err(message) => p.push(format!("vpc {}: {message}", vpc.id)),
            }
        }
        for (key, what) in keys {
            match named.insert(key, &vpc.id) {
                Some(other) if other != &vpc.id => p.push(format!(
                    "vpc {}: {what} already names vpc {other}: a front end's identity must name one VPC",
                    vpc.id
                )),
                _ => {}
            }
        }
    }
    for listener in &state.served.proxy.listeners {
        if !state.served.listen.contains(listener) {
            p.push(format!("[server].proxy_listen: {listener} is not one of [server].listen"));
        }
    }
}
