//! The immutable tables the query path reads: classifier, per-VPC views and per-zone tables.
//!
//! Only `compile` builds these types; nothing mutates them after publication. Zone tables sit behind `Arc` so that
//! a new snapshot shares every unchanged zone with the old one (and 1,000 VPCs that see one zone share one table).
//! Every method here is synchronous, lock-free and allocation-free: it runs once per query.

use std::collections::HashMap;
use std::sync::Arc;

use ahash::RandomState;
use hashbrown::HashTable;

use crate::dns::name::{self, Name, MAX_NAME_LEN};
use crate::model::classify::Classifier;
use crate::model::nodes::{NodeArena, OwnedNode};
use crate::model::state::{Uid, VpcId};

pub use crate::model::classify::VpcIdx;
/// Index of a zone in [`Snapshot::zones`].
pub(crate) type ZoneIdx = u32;

/// One published state: what every query of one generation is answered from.
pub struct Snapshot {
    /// Counts swaps since the process started.
    generation: u64,
    /// The state revision this snapshot was compiled from.
    revision: u64,
    /// How long the change behind this snapshot took, from its start (a reload, an API call) to this snapshot
    /// being ready to swap in; set by whoever publishes it.
    change_seconds: f64,
    /// Shared with the next snapshot when a change leaves VPCs and listeners alone.
    classifier: Arc<Classifier>,
    vpcs: Arc<[VpcEntry]>,
    /// `views[v]` is what VPC `v` sees; VPCs that see the same zones share one view.
    views: Vec<Arc<View>>,
    zones: Vec<Arc<ZoneTable>>,
    /// Where names outside private zones go: `routes[upstream]` is `[resolver] upstreams` (when set), the others
    /// are forwarding rules.
    routes: Arc<[Route]>,
    upstream: Option<RouteIdx>,
    /// Full UDP answers per second per source address in no VPC (0: unlimited).
    query_limit: u32,
}

/// What `compile` puts in a snapshot (only the model constructs one).
pub(in crate::model) struct SnapshotParts {
    pub(in crate::model) generation: u64,
    pub(in crate::model) revision: u64,
    pub(in crate::model) classifier: Arc<Classifier>,
    pub(in crate::model) vpcs: Arc<[VpcEntry]>,
    pub(in crate::model) views: Vec<Arc<View>>,
    pub(in crate::model) zones: Vec<Arc<ZoneTable>>,
    pub(in crate::model) routes: Arc<[Route]>,
    pub(in crate::model) upstream: Option<RouteIdx>,
    pub(in crate::model) query_limit: u32,
}

/// Reading a snapshot; its fields are private, so that only the model builds one and nobody changes one.
impl Snapshot {
    pub(in crate::model) fn new(p: SnapshotParts) -> Snapshot {
        Snapshot {
            generation: p.generation,
            revision: p.revision,
            change_seconds: 0.0,
            classifier: p.classifier,
            vpcs: p.vpcs,
            views: p.views,
            zones: p.zones,
            routes: p.routes,
            upstream: p.upstream,
            query_limit: p.query_limit,
        }
    }

    /// Stamps how long the change behind this snapshot took (by whoever publishes it).
    pub(in crate::model) fn set_change_seconds(&mut self, seconds: f64) {
        self.change_seconds = seconds;
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub(crate) fn change_seconds(&self) -> f64 {
        self.change_seconds
    }

    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    pub fn vpcs(&self) -> &[VpcEntry] {
        &self.vpcs
    }

    pub fn views(&self) -> &[Arc<View>] {
        &self.views
    }

    pub fn zones(&self) -> &[Arc<ZoneTable>] {
        &self.zones
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    pub fn upstream(&self) -> Option<RouteIdx> {
        self.upstream
    }

    pub fn query_limit(&self) -> u32 {
        self.query_limit
    }
}

/// An index into [`Snapshot::routes`].
pub(crate) type RouteIdx = u32;

/// A set of servers names are resolved through: the upstreams, or one forwarding rule's targets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    /// The rule's id; None for the upstreams.
    pub rule: Option<Arc<str>>,
    /// The rule's owner, billed for the answers it gives; None for the upstreams (the asking VPC's account pays).
    pub owner: Option<Arc<str>>,
    pub targets: Arc<[std::net::SocketAddr]>,
}

impl Route {
    /// The name metrics and `explain` use: the rule id, or "upstreams".
    pub fn label(&self) -> &str {
        self.rule.as_deref().unwrap_or("upstreams")
    }
}

/// A forwarding rule as one view sees it: the lower-case wire domain and its label count.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ViewRule {
    /// Shared by every view that sees the rule (and kept by the compiler from one snapshot to the next).
    pub domain: Arc<[u8]>,
    pub labels: u8,
    pub route: RouteIdx,
}

/// The identity of a VPC, for answers' metering and `explain`.
#[derive(Clone)]
pub struct VpcEntry {
    /// Shared with the state (metering counts a query under it without allocating).
    pub id: VpcId,
    /// The owner account's uid, shared by all of its VPCs.
    pub account: Arc<str>,
    /// Full UDP answers per second per source address (0: unlimited).
    pub query_limit: u32,
    /// Names outside its zones resolve somewhere (upstreams, or a rule in its scope): every answer says RA.
    pub recursion: bool,
}

/// The zones one VPC sees, found by lower-case apex.
///
/// The table holds the zone tables themselves and no copy of their names: a probe compares the candidate table's
/// own apex, which the lookup reads next anyway. So finding a zone costs the probe plus the one cache line of
/// the table, whatever the number of zones (a key held apart would be one more miss at 100,000 zones).
pub struct View {
    zones: HashTable<VisibleZone>,
    hasher: RandomState,
    /// Bit `n` is set when some visible zone's apex has `n` labels: the lookup probes only those depths.
    depths: u128,
    /// The forwarding rules the VPC sees, most labels first (a VPC sees few: a scan is the fastest).
    rules: Box<[ViewRule]>,
}

struct VisibleZone {
    idx: ZoneIdx,
    table: Arc<ZoneTable>,
    /// The table's arena, held here too (see [`ZoneRef`]).
    base: NodeArena,
    /// Whether the table has an overlay (see [`ZoneRef`]).
    patched: bool,
}

impl View {
    /// A view of `zones` (index, table); a second zone of the same apex is ignored (validation forbids it).
    pub fn new<'z>(zones: impl IntoIterator<Item = (ZoneIdx, &'z Arc<ZoneTable>)>) -> View {
        let mut view = View { zones: HashTable::new(), hasher: RandomState::new(), depths: 0, rules: Box::new([]) };
        for (idx, table) in zones {
            let apex = table.name.lower();
            let hash = view.hasher.hash_one(apex.wire());
            if view.zones.find(hash, |z| z.table.apex == apex).is_some() {
                continue;
            }
            view.depths |= 1u128 << apex.label_count().min(127);
            let hasher = &view.hasher;
            let entry =
                VisibleZone { idx, table: table.clone(), base: table.base.clone(), patched: !table.overlay.is_empty() };
            view.zones.insert_unique(hash, entry, |z| hasher.hash_one(z.table.apex.wire()));
        }
        view
    }

    /// The view with these forwarding rules (sorted here, most labels first).
    pub(crate) fn with_rules(mut self, mut rules: Vec<ViewRule>) -> View {
        rules.sort_by(|a, b| b.labels.cmp(&a.labels).then_with(|| a.domain.cmp(&b.domain)));
        self.rules = rules.into_boxed_slice();
        self
    }

    /// The most specific rule at or above the lower-case wire name `lower`: its label count and route.
    pub(crate) fn find_rule(&self, lower: &[u8]) -> Option<(u8, RouteIdx)> {
        self.rules.iter().find(|r| is_suffix(lower, &r.domain)).map(|r| (r.labels, r.route))
    }

    pub fn rules(&self) -> &[ViewRule] {
        &self.rules
    }

    /// How many zones the view holds.
    pub fn len(&self) -> usize {
        self.zones.len()
    }

    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    /// The most specific visible zone at or above the lower-case wire name `lower` (RFC 1034 §4.3.2 step 2).
    pub(crate) fn find_zone(&self, lower: &[u8]) -> Option<(ZoneIdx, ZoneRef<'_>)> {
        let mut starts = [0u8; 128];
        let count = label_starts(lower, &mut starts);
        for depth in (0..=count).rev() {
            if depth >= 128 || self.depths & (1u128 << depth) == 0 {
                continue;
            }
            let suffix = &lower[starts[count - depth] as usize..];
            let hash = self.hasher.hash_one(suffix);
            if let Some(zone) = self.zones.find(hash, |z| z.table.apex.wire() == suffix) {
                return Some((zone.idx, ZoneRef { table: &zone.table, base: &zone.base, patched: zone.patched }));
            }
        }
        None
    }
}

/// Whether the wire name `suffix` is `name` or one of its ancestors (both lower case): compared at label starts.
fn is_suffix(name: &[u8], suffix: &[u8]) -> bool {
    let mut pos = 0usize;
    loop {
        if name.len() - pos == suffix.len() {
            return &name[pos..] == suffix;
        }
        match name.get(pos) {
            Some(&len) if len > 0 && name.len() - pos > suffix.len() => pos += 1 + len as usize,
            _ => return false,
        }
    }
}

/// Fills `starts[i]` with the offset of label `i` (and `starts[count]` with the root's); returns the label count.
fn label_starts(wire: &[u8], starts: &mut [u8; 128]) -> usize {
    let mut pos = 0usize;
    let mut count = 0usize;
    while let Some(&len) = wire.get(pos) {
        if count >= 127 {
            break;
        }
        starts[count] = pos as u8;
        if len == 0 {
            return count;
        }
        count += 1;
        pos += 1 + len as usize;
    }
    starts[count] = pos.min(MAX_NAME_LEN - 1) as u8;
    count
}

pub use crate::model::nodes::{Node, RRset};

/// How a name matched inside one zone.
pub(crate) enum NameMatch<'z> {
    /// The name exists (possibly as an empty non-terminal).
    Exact(Node<'z>),
    /// The name does not exist; a wildcard at its closest encloser covers it (RFC 4592 §3.3.1).
    Wildcard(Node<'z>),
    /// The name does not exist and no wildcard covers it.
    NxDomain,
}

/// One zone's records, compiled. Shared (through `Arc`) by every view that sees the zone and by later snapshots
/// for as long as the zone is unchanged.
///
/// A table is a large `base` shared between versions plus a small `overlay` of nodes changed since the base was
/// built (`None` = the name is gone), so that a change to a few names of a huge zone costs a few node builds, not
/// a recompile. Lookups check the overlay first; an empty overlay costs one branch. `compile` folds the overlay
/// into a new base once it grows.
#[derive(Debug)]
pub struct ZoneTable {
    /// Apex as its owner wrote it.
    pub(in crate::model) name: Name,
    /// Apex in lower case: what views compare query names with.
    pub(in crate::model) apex: Name,
    /// The owner account, billed for the queries this zone answers.
    pub(in crate::model) owner: Uid,
    /// Id and owner as shared strings, for metering without allocation.
    pub(in crate::model) meter_id: Arc<str>,
    pub(in crate::model) meter_owner: Arc<str>,
    /// The state revision of the zone's content; compile reuses the table while it is unchanged.
    pub(in crate::model) revision: u64,
    /// The nameserver name generated SOA/NS used (a change of `[server].nameserver` recompiles the zone).
    pub(in crate::model) nameserver: Name,
    /// Every owner, the apex, and every empty non-terminal, as of the last full build.
    pub(crate) base: NodeArena,
    /// Nodes changed since the base was built, by lower-case owner (`None` = the name is gone).
    pub(crate) overlay: HashMap<Box<[u8]>, Option<Arc<OwnedNode>>, RandomState>,
    /// The TTL of the apex SOA in negative answers: min(SOA TTL, SOA MINIMUM) (RFC 2308 §3).
    pub(in crate::model) negative_ttl: u32,
    pub(in crate::model) has_wildcards: bool,
    pub(in crate::model) record_count: usize,
    /// A name the zone does not hold is resolved elsewhere (`fallback = "recurse"`), not NXDOMAIN.
    pub(in crate::model) fallback_recurse: bool,
}

impl ZoneTable {
    /// The zone's id, as usage and metrics name it.
    pub(crate) fn meter_id(&self) -> &Arc<str> {
        &self.meter_id
    }

    /// Records the zone holds (generated SOA and NS excluded).
    pub(crate) fn record_count(&self) -> usize {
        self.record_count
    }

    /// This table for a lookup (through its own arena).
    pub(crate) fn zone_ref(&self) -> ZoneRef<'_> {
        ZoneRef { table: self, base: &self.base, patched: !self.overlay.is_empty() }
    }

    pub fn node(&self, lower: &[u8]) -> Option<Node<'_>> {
        self.zone_ref().node(lower)
    }

    /// Every node as of now (base nodes not overridden, then the overlay's).
    pub fn nodes(&self) -> impl Iterator<Item = Node<'_>> {
        let base = self.base.iter().filter(|n| {
            let mut buf = [0u8; MAX_NAME_LEN];
            self.overlay.is_empty() || !self.overlay.contains_key(name::lower_into(n.name(), &mut buf))
        });
        base.chain(self.overlay.values().filter_map(|n| n.as_deref().map(OwnedNode::get)))
    }

    pub fn apex(&self) -> Option<Node<'_>> {
        self.zone_ref().apex()
    }

    #[cfg(test)]
    pub(crate) fn match_name(&self, lower: &[u8]) -> NameMatch<'_> {
        self.zone_ref().match_name(lower)
    }

    #[cfg(test)]
    pub(crate) fn negative_soa(&self, zero_ttl: bool) -> RRset<'_> {
        self.zone_ref().negative_soa(zero_ttl)
    }
}

/// A zone as a lookup reads it: the table, plus its node arena and whether it has an overlay, as the view holds
/// them. With those at hand, finding an existing name reads the view's entry and the arena, never the table:
/// at 100,000 zones each of those reads is a cache miss, and the table would be one more.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ZoneRef<'s> {
    pub table: &'s ZoneTable,
    base: &'s NodeArena,
    patched: bool,
}

impl<'s> ZoneRef<'s> {
    pub(crate) fn node(&self, lower: &[u8]) -> Option<Node<'s>> {
        if self.patched {
            if let Some(changed) = self.table.overlay.get(lower) {
                return changed.as_deref().map(OwnedNode::get);
            }
        }
        self.base.get(lower)
    }

    pub(crate) fn apex(&self) -> Option<Node<'s>> {
        self.node(self.table.apex.wire())
    }

    /// The apex SOA for the authority section of negative answers, with the negative TTL — or TTL 0, for
    /// NXDOMAIN answers to SOA questions. A zone without SOA gives an RRset of no records.
    pub(crate) fn negative_soa(&self, zero_ttl: bool) -> RRset<'s> {
        let ttl = if zero_ttl { 0 } else { self.table.negative_ttl };
        match self.apex().and_then(|apex| apex.rrset(crate::dns::rdata::rtype::SOA)) {
            Some(soa) => soa.at_ttl(ttl),
            None => RRset::empty(crate::dns::rdata::rtype::SOA),
        }
    }

    /// RFC 1034 §4.3.2 step 3 within this zone, with RFC 4592 wildcards: `lower` must be at or below the apex.
    pub(crate) fn match_name(&self, lower: &[u8]) -> NameMatch<'s> {
        if let Some(node) = self.node(lower) {
            return NameMatch::Exact(node);
        }
        if !self.table.has_wildcards {
            return NameMatch::NxDomain;
        }
        // Walk up to the closest encloser: the nearest existing ancestor (the apex exists, so the walk ends there).
        let mut pos = 0usize;
        while let Some(&len) = lower.get(pos) {
            if len == 0 {
                break;
            }
            pos += 1 + len as usize;
            let ancestor = &lower[pos.min(lower.len())..];
            if self.node(ancestor).is_some() {
                return self.wildcard_below(ancestor);
            }
        }
        NameMatch::NxDomain
    }

    fn wildcard_below(&self, encloser: &[u8]) -> NameMatch<'s> {
        let mut buf = [0u8; MAX_NAME_LEN + 2];
        let len = encloser.len() + 2;
        if len > MAX_NAME_LEN {
            return NameMatch::NxDomain;
        }
        buf[0] = 1;
        buf[1] = b'*';
        buf[2..len].copy_from_slice(encloser);
        match self.node(&buf[..len]) {
            Some(node) => NameMatch::Wildcard(node),
            None => NameMatch::NxDomain,
        }
    }
}

/// The name an RDATA of type `rtype` points at for additional-section processing (MX exchange, SRV target, NS
/// name), as an uncompressed wire slice of the stored RDATA.
pub(crate) fn additional_target(rtype: u16, rdata: &[u8]) -> Option<&[u8]> {
    use crate::dns::rdata::rtype as t;
    let start = match rtype {
        t::NS => 0,
        t::MX => 2,
        t::SRV => 6,
        _ => return None,
    };
    let tail = rdata.get(start..)?;
    let len = name::wire_len(tail)?;
    Some(&tail[..len])
}
