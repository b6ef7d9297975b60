//! One zone's table: built whole (`compile_zone`), or patched for a few changed owners (`patch_zone`).
//!
//! Both produce the same lookups for the same records: a patch rebuilds the nodes of the changed owners (and of
//! their ancestors, which may become or stop being empty non-terminals) into the table's overlay, sharing the
//! large base with the previous version. When the overlay grows past a fraction of the base, the zone is
//! rebuilt whole, so lookups never pay for a long history.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use ahash::RandomState;

use crate::dns::name::{self, Name};
use crate::dns::rdata::{rtype, RData, Record, Soa};
use crate::model::nodes::{ArenaBuilder, NodeArena, NodeWriter, OwnedNode};
use crate::model::snapshot::ZoneTable;
use crate::model::state::Zone;
use smallvec::SmallVec;

/// TTL of a generated SOA and NS.
pub const GENERATED_TTL: u32 = 3600;
/// The overlay is folded into a new base past this many nodes, or an eighth of the base.
const OVERLAY_MIN_FOLD: usize = 1024;

/// Compiles one zone: groups records into RRsets (dropping exact duplicates, the first TTL of an RRset winning as
/// in BIND), adds the generated SOA/NS where the zone has none, and adds a node for every empty non-terminal.
///
/// One pass over the records in owner order (see `records`): each owner's records are a run, and a name's
/// ancestors come before it, so `path` — the written nodes above the current owner — says which names between an
/// owner and the nearest node above it are missing: those are the empty non-terminals.
pub fn compile_zone(zone: &Zone, nameserver: &Name) -> ZoneTable {
    let mut builder = ArenaBuilder::with_capacity(zone.records.len() + 1, zone.records.len() * 48);
    let mut writer = ZoneWriter { builder: &mut builder, scratch: Scratch::default(), records: 0, wildcards: false };
    let apex = zone.name.wire();
    let at_apex: SmallVec<[&Record; 4]> = zone.records.at(&zone.name).map(|(_, r)| r).collect();
    let generated = generated_records(zone, nameserver, &at_apex);
    let mut apex_node: SmallVec<[&Record; 4]> = at_apex.iter().copied().chain(generated.iter()).collect();
    writer.node(at_apex.first().map_or(apex, |r| r.owner.wire()), &mut apex_node);
    let mut path: Vec<&[u8]> = vec![apex];
    let mut run: SmallVec<[&Record; 4]> = SmallVec::new();
    for record in zone.records.values() {
        if run.first().is_some_and(|first| !first.owner.wire().eq_ignore_ascii_case(record.owner.wire())) {
            writer.owner(&mut run, &mut path, apex);
            run.clear();
        }
        run.push(record);
    }
    writer.owner(&mut run, &mut path, apex);
    let (records, wildcards) = (writer.records, writer.wildcards);
    finish(zone, nameserver, builder.finish(), HashMap::default(), wildcards, records)
}

/// Writes a zone's nodes in owner order.
struct ZoneWriter<'b> {
    builder: &'b mut ArenaBuilder,
    scratch: Scratch,
    records: usize,
    wildcards: bool,
}

impl ZoneWriter<'_> {
    fn node(&mut self, spelled: &[u8], records: &mut [&Record]) {
        self.wildcards |= spelled.starts_with(b"\x01*");
        let (scratch, written) = (&mut self.scratch, &mut self.records);
        self.builder.push(spelled, |w| *written += write_rrsets(w, records, scratch));
    }

    /// Writes the node of one owner's records (the apex's is written first, apart), after the empty non-terminals
    /// between it and the nearest node above it.
    fn owner<'z>(&mut self, run: &mut [&'z Record], path: &mut Vec<&'z [u8]>, apex: &[u8]) {
        let Some(first) = run.first() else { return };
        let owner: &'z [u8] = first.owner.wire();
        if owner.eq_ignore_ascii_case(apex) || !name::is_at_or_below(owner, apex) {
            return;
        }
        while path.last().is_some_and(|above| !name::is_at_or_below(owner, above)) {
            path.pop();
        }
        let above = path.last().map_or(0, |n| name::label_count(n));
        for labels in above + 1..name::label_count(owner) {
            let between = name::suffix_with_labels(owner, labels);
            self.node(between, &mut []);
            path.push(between);
        }
        self.node(owner, run);
        path.push(owner);
    }
}

/// Rebuilds the nodes of `owners` (lower-case names whose records changed) on top of `old`.
pub fn patch_zone(old: &ZoneTable, zone: &Zone, nameserver: &Name, owners: &BTreeSet<Name>) -> ZoneTable {
    let apex = zone.name.lower();
    // The changed owners, their ancestors up to the apex, and the apex itself (its generated SOA carries the serial).
    let mut watch: BTreeSet<Name> = BTreeSet::new();
    watch.insert(apex.clone());
    for owner in owners.iter().filter(|o| o.is_at_or_below(&apex)) {
        let mut current = Some(owner.clone());
        while let Some(name) = current.filter(|n| n.wire().len() >= apex.wire().len()) {
            current = name.parent();
            watch.insert(name);
        }
    }
    let mut overlay = old.overlay.clone();
    let mut has_wildcards = old.has_wildcards;
    // Record counts move by what the rebuilt nodes held before and hold now (duplicates are dropped in nodes).
    let mut record_count = old.record_count;
    let mut scratch = Scratch::default();
    for name in &watch {
        // The zone's records are ordered by owner: finding one owner's records costs O(log n).
        let records: SmallVec<[&Record; 2]> = zone.records.at(name).map(|(_, r)| r).collect();
        let node = if !records.is_empty() || *name == apex {
            let generated = if *name == apex { generated_records(zone, nameserver, &records) } else { Vec::new() };
            let mut all: SmallVec<[&Record; 2]> = records.iter().copied().chain(generated.iter()).collect();
            let spelled = records.first().map_or_else(|| spelling(old, name), |r| r.owner.clone());
            Some(Arc::new(OwnedNode::build(spelled.wire(), |w| {
                write_rrsets(w, &mut all, &mut scratch);
            })))
        } else if zone.records.has_below(name) {
            // No records of its own but some below: an empty non-terminal.
            Some(Arc::new(OwnedNode::build(spelling(old, name).wire(), |_| {})))
        } else {
            None
        };
        has_wildcards |= name.wire().starts_with(b"\x01*") && node.is_some();
        record_count = record_count.saturating_sub(old.node(name.wire()).map_or(0, |n| n.record_count()));
        record_count += node.as_deref().map_or(0, |n| n.get().record_count());
        overlay.insert(name.wire().into(), node);
    }
    if overlay.len() > OVERLAY_MIN_FOLD.max(old.base.len() / 8) {
        return compile_zone(zone, nameserver);
    }
    finish(zone, nameserver, old.base.clone(), overlay, has_wildcards, record_count)
}

fn finish(
    zone: &Zone,
    nameserver: &Name,
    base: NodeArena,
    overlay: HashMap<Box<[u8]>, Option<Arc<OwnedNode>>, RandomState>,
    has_wildcards: bool,
    record_count: usize,
) -> ZoneTable {
    let mut table = ZoneTable {
        name: zone.name.clone(),
        apex: zone.name.lower(),
        owner: zone.account.clone(),
        meter_id: Arc::from(zone.id.0.as_str()),
        meter_owner: Arc::from(zone.account.0.as_str()),
        revision: zone.revision,
        nameserver: nameserver.clone(),
        base,
        overlay,
        negative_ttl: 0,
        has_wildcards,
        record_count,
        fallback_recurse: zone.fallback == crate::model::state::Fallback::Recurse,
    };
    let negative = table.apex().and_then(|n| n.rrset(rtype::SOA)).map(|soa| {
        let minimum = soa.first().and_then(soa_minimum).unwrap_or(soa.ttl);
        soa.ttl.min(minimum)
    });
    table.negative_ttl = negative.unwrap_or(0);
    table
}

/// The SOA MINIMUM field of SOA RDATA in wire form (the last 4 octets).
fn soa_minimum(rdata: &[u8]) -> Option<u32> {
    let tail = rdata.get(rdata.len().checked_sub(4)?..)?;
    Some(u32::from_be_bytes([tail[0], tail[1], tail[2], tail[3]]))
}

/// The case an existing node gave a name, or the lower-case name for a new one.
fn spelling(old: &ZoneTable, lower: &Name) -> Name {
    old.node(lower.wire()).and_then(|n| Name::from_wire(n.name())).unwrap_or_else(|| lower.clone())
}

/// The generated SOA and NS, for a zone whose apex (holding `apex`) has none of its own.
fn generated_records(zone: &Zone, nameserver: &Name, apex: &[&Record]) -> Vec<Record> {
    let has = |t: u16| apex.iter().any(|r| r.rdata.rtype() == t);
    let mut generated = Vec::new();
    if !has(rtype::SOA) {
        generated.push(generated_soa(zone, nameserver));
    }
    if !has(rtype::NS) {
        generated.push(Record { owner: zone.name.clone(), ttl: GENERATED_TTL, rdata: RData::Ns(nameserver.clone()) });
    }
    generated
}

/// `SOA <nameserver> hostmaster.<zone> <serial> 3600 600 86400 60`, the serial being the zone's revision.
fn generated_soa(zone: &Zone, nameserver: &Name) -> Record {
    let rname = zone.name.prepend_label(b"hostmaster").unwrap_or_else(|| zone.name.clone());
    Record {
        owner: zone.name.clone(),
        ttl: GENERATED_TTL,
        rdata: RData::Soa(Box::new(Soa {
            mname: nameserver.clone(),
            rname,
            serial: zone.revision as u32,
            refresh: 3600,
            retry: 600,
            expire: 86400,
            minimum: 60,
        })),
    }
}

/// Reused buffers for encoding RDATA while nodes are written.
#[derive(Default)]
struct Scratch {
    wire: Vec<u8>,
    /// The RDATA of the RRset being written, as ranges of `wire`, to drop exact duplicates.
    seen: Vec<(usize, usize)>,
}

/// Writes `records` (of one owner, any order) as the node's RRsets: in type order, zone order within a type, exact
/// duplicates dropped and the first TTL of an RRset winning, as BIND loads them. Returns the records written.
fn write_rrsets(w: &mut NodeWriter, records: &mut [&Record], scratch: &mut Scratch) -> usize {
    records.sort_by_key(|r| r.rdata.rtype());
    let mut written = 0;
    let mut current = None;
    for record in records.iter() {
        let rtype = record.rdata.rtype();
        if current != Some(rtype) {
            current = Some(rtype);
            w.rrset(rtype, record.ttl);
            scratch.wire.clear();
            scratch.seen.clear();
        }
        let start = scratch.wire.len();
        record.rdata.to_wire(&mut scratch.wire);
        let (seen, wire) = (&scratch.seen, &scratch.wire);
        if seen.iter().any(|&(s, e)| wire[s..e] == wire[start..]) {
            scratch.wire.truncate(start);
            continue;
        }
        scratch.seen.push((start, scratch.wire.len()));
        w.record(&scratch.wire[start..]);
        written += 1;
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::snapshot::NameMatch;
    use crate::model::state::{Uid, ZoneId, ZoneRecords};
    use proptest::prelude::*;

    const OWNERS: [&str; 8] = ["@", "www", "a.b", "b", "*.w", "x.*.w", "deep.a.b", "c.d.e"];

    fn n(text: &str) -> Name {
        Name::from_text(text, None).expect("name")
    }

    fn zone(records: ZoneRecords, revision: u64) -> Zone {
        Zone {
            id: ZoneId("z".into()),
            name: n("t.internal."),
            account: Uid("1".into()),
            scope: vec![],
            records,
            revision,
            fallback: Default::default(),
            origin: "test".into(),
        }
    }

    fn record(owner: usize, kind: u8, value: u8) -> Record {
        let owner = Name::from_text(OWNERS[owner], Some(&n("t.internal."))).expect("owner");
        let rdata = match kind {
            0 => RData::A(std::net::Ipv4Addr::new(10, 0, 0, value)),
            1 => RData::Txt(vec![vec![b'a' + value % 26].into_boxed_slice()]),
            _ => RData::Mx { preference: u16::from(value), exchange: n("mx.t.internal.") },
        };
        Record { owner, ttl: 300, rdata }
    }

    /// What a lookup of `name` sees: exact/wildcard/nx and the node's RRsets.
    /// (type, TTL, RDATA) of each RRset of a node.
    type Observed = Vec<(u16, u32, Vec<Vec<u8>>)>;

    fn observe(table: &ZoneTable, name: &str) -> (u8, Observed) {
        let lower = n(name).lower();
        let sets = |node: crate::model::snapshot::Node| {
            node.rrsets().map(|s| (s.rtype, s.ttl, s.rdata().map(<[u8]>::to_vec).collect())).collect()
        };
        match table.match_name(lower.wire()) {
            NameMatch::Exact(node) => (0, sets(node)),
            NameMatch::Wildcard(node) => (1, sets(node)),
            NameMatch::NxDomain => (2, vec![]),
        }
    }

    const PROBES: [&str; 12] = [
        "t.internal.",
        "www.t.internal.",
        "b.t.internal.",
        "a.b.t.internal.",
        "deep.a.b.t.internal.",
        "zz.a.b.t.internal.",
        "q.w.t.internal.",
        "x.q.w.t.internal.",
        "x.*.w.t.internal.",
        "e.t.internal.",
        "d.e.t.internal.",
        "nope.t.internal.",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        /// A table patched change by change answers exactly like one compiled from scratch.
        #[test]
        fn patching_equals_recompiling(
            initial in prop::collection::vec((0..OWNERS.len(), 0..3u8, any::<u8>()), 0..10),
            steps in prop::collection::vec((any::<bool>(), 0..16usize, 0..OWNERS.len(), 0..3u8, any::<u8>()), 1..12),
        ) {
            let ns = n("ns.test.");
            let mut records: ZoneRecords = initial.iter().enumerate().map(|(i, (o, k, v))| (crate::model::state::RecordId::from(format!("r{i}")), record(*o, *k, *v))).collect();
            let mut table = compile_zone(&zone(records.clone(), 1), &ns);
            for (step, (add, slot, owner, kind, value)) in steps.into_iter().enumerate() {
                let rid = format!("r{slot}");
                let mut owners = BTreeSet::new();
                if let Some(old) = records.remove(&rid) {
                    owners.insert(old.owner.lower());
                }
                if add {
                    let r = record(owner, kind, value);
                    owners.insert(r.owner.lower());
                    records.insert(rid.into(), r, step as u64);
                }
                let z = zone(records.clone(), 2 + step as u64);
                table = patch_zone(&table, &z, &ns, &owners);
                let fresh = compile_zone(&z, &ns);
                for probe in PROBES {
                    prop_assert_eq!(observe(&table, probe), observe(&fresh, probe), "probe {} after step {}", probe, step);
                }
                prop_assert_eq!(table.negative_soa(false), fresh.negative_soa(false));
                prop_assert_eq!(table.record_count, fresh.record_count);
            }
        }
    }
}
