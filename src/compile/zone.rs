//! One zone's table: built whole (`compile_zone`), or patched for a few changed owners (`patch_zone`).
//!
//! Both produce the same lookups for the same records: a patch rebuilds the nodes of the changed owners (and of
//! their ancestors, which may become or stop being empty non-terminals) into the table's overlay, sharing the
//! large base with the previous version. When the overlay grows past a fraction of the base, the zone is
//! rebuilt whole, so lookups never pay for a long history.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use ahash::RandomState;

use crate::name::{self, Name, MAX_NAME_LEN};
use crate::rdata::{rtype, RData, Record};
use crate::snapshot::{Node, NodeMap, RRset, ZoneTable};
use crate::state::Zone;

/// TTL of a generated SOA and NS.
pub const GENERATED_TTL: u32 = 3600;
/// The overlay is folded into a new base past this many nodes, or an eighth of the base.
const OVERLAY_MIN_FOLD: usize = 1024;

/// Compiles one zone: groups records into RRsets (dropping exact duplicates, the first TTL of an RRset winning as
/// in BIND), adds the generated SOA/NS where the zone has none, and adds a node for every empty non-terminal.
pub fn compile_zone(zone: &Zone, nameserver: &Name) -> ZoneTable {
    let mut grouped: HashMap<Box<[u8]>, (Name, Vec<RRset>), RandomState> = HashMap::default();
    for record in zone.records.values() {
        let key: Box<[u8]> = record.owner.lower().wire().into();
        let entry = grouped.entry(key).or_insert_with(|| (record.owner.clone(), Vec::new()));
        add_record(&mut entry.1, record);
    }
    let apex_key: Box<[u8]> = zone.name.lower().wire().into();
    let apex = grouped.entry(apex_key).or_insert_with(|| (zone.name.clone(), Vec::new()));
    add_generated(&mut apex.1, zone, nameserver);
    add_empty_non_terminals(&mut grouped, &zone.name);
    let base: NodeMap = grouped
        .into_iter()
        .map(|(key, (name, mut rrsets))| {
            rrsets.sort_by_key(|s| s.rtype);
            (key, Node { name, rrsets: rrsets.into_boxed_slice() })
        })
        .collect();
    let has_wildcards = base.keys().any(|k| k.starts_with(b"\x01*"));
    let record_count = base.values().map(node_records).sum();
    finish(zone, nameserver, Arc::new(base), HashMap::default(), has_wildcards, record_count)
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
    let at = records_at(zone, &watch);
    let mut overlay = old.overlay.clone();
    let mut has_wildcards = old.has_wildcards;
    // Record counts move by what the rebuilt nodes held before and hold now (duplicates are dropped in nodes).
    let mut record_count = old.record_count;
    let empty: Vec<&Record> = Vec::new();
    let bare: Vec<&Name> = watch.iter().filter(|n| **n != apex && at.get(n.wire()).is_none_or(Vec::is_empty)).collect();
    let with_descendants = names_with_descendants(zone, &bare);
    for name in &watch {
        let records = at.get(name.wire()).unwrap_or(&empty);
        let node = if !records.is_empty() || *name == apex {
            let mut rrsets = Vec::new();
            for record in records {
                add_record(&mut rrsets, record);
            }
            if *name == apex {
                add_generated(&mut rrsets, zone, nameserver);
            }
            rrsets.sort_by_key(|s| s.rtype);
            let spelled = records.first().map_or_else(|| spelling(old, name), |r| r.owner.clone());
            Some(Arc::new(Node { name: spelled, rrsets: rrsets.into_boxed_slice() }))
        } else if with_descendants.contains(name.wire()) {
            Some(Arc::new(Node { name: spelling(old, name), rrsets: Box::new([]) }))
        } else {
            None
        };
        has_wildcards |= name.wire().starts_with(b"\x01*") && node.is_some();
        record_count = record_count.saturating_sub(old.node(name.wire()).map_or(0, node_records));
        record_count += node.as_deref().map_or(0, node_records);
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
    base: Arc<NodeMap>,
    overlay: HashMap<Box<[u8]>, Option<Arc<Node>>, RandomState>,
    has_wildcards: bool,
    record_count: usize,
) -> ZoneTable {
    let mut table = ZoneTable {
        id: zone.id.clone(),
        name: zone.name.clone(),
        owner: zone.account.clone(),
        meter_id: Arc::from(zone.id.0.as_str()),
        meter_owner: Arc::from(zone.account.0.as_str()),
        revision: zone.revision,
        nameserver: nameserver.clone(),
        base,
        overlay,
        negative_soa: RRset { rtype: rtype::SOA, ttl: 0, rdata: Box::new([]) },
        negative_soa_zero_ttl: RRset { rtype: rtype::SOA, ttl: 0, rdata: Box::new([]) },
        has_wildcards,
        record_count,
    };
    let soa = table.apex().and_then(|n| n.rrset(rtype::SOA)).cloned();
    if let Some(soa) = soa {
        let minimum = soa.rdata.first().and_then(|d| soa_minimum(d)).unwrap_or(soa.ttl);
        table.negative_soa = RRset { ttl: soa.ttl.min(minimum), ..soa.clone() };
        table.negative_soa_zero_ttl = RRset { ttl: 0, ..soa };
    }
    table
}

/// The SOA MINIMUM field of SOA RDATA in wire form (the last 4 octets).
fn soa_minimum(rdata: &[u8]) -> Option<u32> {
    let tail = rdata.get(rdata.len().checked_sub(4)?..)?;
    Some(u32::from_be_bytes([tail[0], tail[1], tail[2], tail[3]]))
}

fn node_records(node: &Node) -> usize {
    node.rrsets.iter().map(|s| s.rdata.len()).sum()
}

/// The case an existing node gave a name, or the lower-case name for a new one.
fn spelling(old: &ZoneTable, lower: &Name) -> Name {
    old.node(lower.wire()).map_or_else(|| lower.clone(), |n| n.name.clone())
}

/// The records of the zone at each watched (lower-case) name, in one pass and without allocating per record.
fn records_at<'z>(zone: &'z Zone, watch: &BTreeSet<Name>) -> HashMap<Box<[u8]>, Vec<&'z Record>> {
    let keys: HashSet<&[u8]> = watch.iter().map(|n| n.wire()).collect();
    let mut at: HashMap<Box<[u8]>, Vec<&Record>> = HashMap::new();
    let mut buf = [0u8; MAX_NAME_LEN];
    for record in zone.records.values() {
        let lower = name::lower_into(record.owner.wire(), &mut buf);
        if keys.contains(lower) {
            at.entry(lower.into()).or_default().push(record);
        }
    }
    at
}

/// Which of `names` (each with no records of its own) still have records below them: those stay as empty
/// non-terminals; the others disappear.
fn names_with_descendants(zone: &Zone, names: &[&Name]) -> HashSet<Box<[u8]>> {
    let mut found: HashSet<Box<[u8]>> = HashSet::new();
    if names.is_empty() {
        return found;
    }
    let wanted: HashSet<&[u8]> = names.iter().map(|n| n.wire()).collect();
    let mut buf = [0u8; MAX_NAME_LEN];
    for record in zone.records.values() {
        let lower = name::lower_into(record.owner.wire(), &mut buf);
        let mut pos = 0usize;
        while let Some(&len) = lower.get(pos) {
            if len == 0 {
                break;
            }
            pos += 1 + len as usize;
            if let Some(suffix) = lower.get(pos..) {
                if wanted.contains(suffix) {
                    found.insert(suffix.into());
                }
            }
        }
        if found.len() == wanted.len() {
            break;
        }
    }
    found
}

/// The generated SOA and NS, for a zone whose apex has none of its own.
fn add_generated(rrsets: &mut Vec<RRset>, zone: &Zone, nameserver: &Name) {
    if !rrsets.iter().any(|s| s.rtype == rtype::SOA) {
        add_record(rrsets, &generated_soa(zone, nameserver));
    }
    if !rrsets.iter().any(|s| s.rtype == rtype::NS) {
        let ns = Record { owner: zone.name.clone(), ttl: GENERATED_TTL, rdata: RData::Ns(nameserver.clone()) };
        add_record(rrsets, &ns);
    }
}

/// `SOA <nameserver> hostmaster.<zone> <serial> 3600 600 86400 60`, the serial being the zone's revision.
fn generated_soa(zone: &Zone, nameserver: &Name) -> Record {
    let rname = zone.name.prepend_label(b"hostmaster").unwrap_or_else(|| zone.name.clone());
    Record {
        owner: zone.name.clone(),
        ttl: GENERATED_TTL,
        rdata: RData::Soa {
            mname: nameserver.clone(),
            rname,
            serial: zone.revision as u32,
            refresh: 3600,
            retry: 600,
            expire: 86400,
            minimum: 60,
        },
    }
}

fn add_record(rrsets: &mut Vec<RRset>, record: &Record) {
    let mut wire = Vec::new();
    record.rdata.to_wire(&mut wire);
    let rtype = record.rdata.rtype();
    match rrsets.iter_mut().find(|s| s.rtype == rtype) {
        Some(set) => {
            if !set.rdata.iter().any(|d| **d == *wire) {
                let mut all = std::mem::take(&mut set.rdata).into_vec();
                all.push(wire.into_boxed_slice());
                set.rdata = all.into_boxed_slice();
            }
        }
        None => rrsets.push(RRset { rtype, ttl: record.ttl, rdata: vec![wire.into_boxed_slice()].into_boxed_slice() }),
    }
}

/// Every name between an owner and the apex exists (RFC 4592 §2.2.2): it answers NODATA and blocks wildcards.
fn add_empty_non_terminals(nodes: &mut HashMap<Box<[u8]>, (Name, Vec<RRset>), RandomState>, apex: &Name) {
    let apex_len = apex.wire().len();
    let owners: Vec<Name> = nodes.values().map(|(n, _)| n.clone()).collect();
    for owner in owners {
        let mut current = owner;
        while current.wire().len() > apex_len {
            let Some(parent) = current.parent() else { break };
            let key: Box<[u8]> = parent.lower().wire().into();
            if nodes.contains_key(&key) {
                break;
            }
            nodes.insert(key, (parent.clone(), Vec::new()));
            current = parent;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::NameMatch;
    use crate::state::{Uid, ZoneId, ZoneRecords};
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
    fn observe(table: &ZoneTable, name: &str) -> (u8, Vec<RRset>) {
        let lower = n(name).lower();
        match table.match_name(lower.wire()) {
            NameMatch::Exact(node) => (0, node.rrsets.to_vec()),
            NameMatch::Wildcard(node) => (1, node.rrsets.to_vec()),
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
            let mut records: ZoneRecords = initial.iter().enumerate().map(|(i, (o, k, v))| (format!("r{i}"), record(*o, *k, *v))).collect();
            let mut table = compile_zone(&zone(records.clone(), 1), &ns);
            for (step, (add, slot, owner, kind, value)) in steps.into_iter().enumerate() {
                let rid = format!("r{slot}");
                let mut owners = BTreeSet::new();
                if let Some(old) = records.get(&rid) {
                    owners.insert(old.owner.lower());
                }
                if add {
                    let r = record(owner, kind, value);
                    owners.insert(r.owner.lower());
                    records.insert(rid, r);
                } else {
                    records.remove(&rid);
                }
                let z = zone(records.clone(), 2 + step as u64);
                table = patch_zone(&table, &z, &ns, &owners);
                let fresh = compile_zone(&z, &ns);
                for probe in PROBES {
                    prop_assert_eq!(observe(&table, probe), observe(&fresh, probe), "probe {} after step {}", probe, step);
                }
                prop_assert_eq!(&table.negative_soa, &fresh.negative_soa);
                prop_assert_eq!(table.record_count, fresh.record_count);
            }
        }
    }
}
