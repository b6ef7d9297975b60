//! Compilation: a validated [`State`] → an immutable [`Snapshot`].
//!
//! The only place that constructs snapshot types. Zone tables are compiled one zone at a time and cached by
//! (zone id, content revision, nameserver), so a change to one zone recompiles that zone only and every other
//! table is shared with the previous snapshot. Compile assumes `validate` passed; it never fails.

use std::collections::HashMap;
use std::sync::Arc;

use ahash::RandomState;

use crate::classify::{normalize_ip, Classifier, PrefixTable};
use crate::name::Name;
use crate::rdata::{rtype, RData, Record};
use crate::snapshot::{Node, RRset, Snapshot, View, VpcEntry, ZoneIdx, ZoneTable};
use crate::state::{State, Zone, ZoneId};

/// TTL of a generated SOA and NS.
pub const GENERATED_TTL: u32 = 3600;

/// Compiles states into snapshots, keeping the zone tables of the last compile for reuse.
#[derive(Default)]
pub struct Compiler {
    cache: HashMap<ZoneId, Arc<ZoneTable>>,
    generation: u64,
}

impl Compiler {
    /// Builds the snapshot of a validated state. Unchanged zones reuse their tables.
    pub fn compile(&mut self, state: &State) -> Snapshot {
        self.generation += 1;
        let mut cache = HashMap::with_capacity(state.zones.len());
        let mut zones = Vec::with_capacity(state.zones.len());
        let mut zone_index: HashMap<&ZoneId, ZoneIdx> = HashMap::with_capacity(state.zones.len());
        for zone in state.zones.values() {
            let table = match self.cache.get(&zone.id) {
                Some(t) if t.revision == zone.revision && t.nameserver == state.server.nameserver => t.clone(),
                _ => Arc::new(compile_zone(zone, &state.server.nameserver)),
            };
            zone_index.insert(&zone.id, zones.len() as ZoneIdx);
            cache.insert(zone.id.clone(), table.clone());
            zones.push(table);
        }
        self.cache = cache;

        let vpcs: Vec<VpcEntry> = state
            .vpcs
            .values()
            .map(|v| VpcEntry {
                id: v.id.clone(),
                account: v.account.clone(),
                meter_id: Arc::from(v.id.0.as_str()),
                meter_account: Arc::from(v.account.0.as_str()),
            })
            .collect();
        let vpc_index: HashMap<_, _> = state.vpcs.keys().enumerate().map(|(i, id)| (id, i)).collect();
        let mut views: Vec<View> = (0..vpcs.len()).map(|_| View { zones: HashMap::default(), depths: 0 }).collect();
        for zone in state.zones.values() {
            let idx = zone_index[&zone.id];
            let apex = zone.name.lower();
            for vpc in &zone.scope {
                if let Some(&v) = vpc_index.get(vpc) {
                    views[v].depths |= 1u128 << apex.label_count().min(127);
                    views[v].zones.insert(apex.wire().into(), idx);
                }
            }
        }
        Snapshot {
            generation: self.generation,
            revision: state.revision,
            classifier: build_classifier(state),
            vpcs,
            views,
            zones,
        }
    }
}

fn build_classifier(state: &State) -> Classifier {
    let mut classifier = Classifier::default();
    for vpc in state.vpcs.values() {
        for l in &vpc.listeners {
            let key = std::net::SocketAddr::new(normalize_ip(l.ip()), l.port());
            classifier.by_listener.entry(key).or_default();
        }
    }
    for (idx, vpc) in state.vpcs.values().enumerate() {
        let idx = idx as u32;
        for net in &vpc.cidrs {
            if vpc.listeners.is_empty() {
                classifier.unrestricted.insert(*net, idx);
                for table in classifier.by_listener.values_mut() {
                    table.insert(*net, idx);
                }
            } else {
                for l in &vpc.listeners {
                    let key = std::net::SocketAddr::new(normalize_ip(l.ip()), l.port());
                    classifier.by_listener.entry(key).or_insert_with(PrefixTable::default).insert(*net, idx);
                }
            }
        }
    }
    classifier
}

/// Compiles one zone: groups records into RRsets (dropping exact duplicates, the first TTL of an RRset winning as
/// in BIND), adds the generated SOA/NS where the zone has none, and adds a node for every empty non-terminal.
pub fn compile_zone(zone: &Zone, nameserver: &Name) -> ZoneTable {
    let apex_lower = zone.name.lower();
    let mut records: Vec<Record> = zone.records.clone();
    let has = |t: u16| zone.records.iter().any(|r| r.rdata.rtype() == t && r.owner.lower() == apex_lower);
    if !has(rtype::SOA) {
        records.push(generated_soa(zone, nameserver));
    }
    if !has(rtype::NS) {
        records.push(Record { owner: zone.name.clone(), ttl: GENERATED_TTL, rdata: RData::Ns(nameserver.clone()) });
    }
    let mut nodes: HashMap<Box<[u8]>, (Name, Vec<RRset>), RandomState> = HashMap::default();
    for record in &records {
        let key: Box<[u8]> = record.owner.lower().wire().into();
        let entry = nodes.entry(key).or_insert_with(|| (record.owner.clone(), Vec::new()));
        add_record(&mut entry.1, record);
    }
    add_empty_non_terminals(&mut nodes, &zone.name);
    let negative_soa = negative_soa(&records, &apex_lower);
    let record_count = nodes.values().map(|(_, sets)| sets.iter().map(|s| s.rdata.len()).sum::<usize>()).sum();
    let nodes: HashMap<Box<[u8]>, Node, RandomState> = nodes
        .into_iter()
        .map(|(key, (name, mut rrsets))| {
            rrsets.sort_by_key(|s| s.rtype);
            (key, Node { name, rrsets: rrsets.into_boxed_slice() })
        })
        .collect();
    let has_wildcards = nodes.keys().any(|k| k.starts_with(b"\x01*"));
    ZoneTable {
        id: zone.id.clone(),
        name: zone.name.clone(),
        owner: zone.account.clone(),
        meter_id: Arc::from(zone.id.0.as_str()),
        meter_owner: Arc::from(zone.account.0.as_str()),
        revision: zone.revision,
        nameserver: nameserver.clone(),
        nodes,
        negative_soa_zero_ttl: RRset { ttl: 0, ..negative_soa.clone() },
        negative_soa,
        has_wildcards,
        record_count,
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

fn negative_soa(records: &[Record], apex_lower: &Name) -> RRset {
    let soa = records.iter().find(|r| r.rdata.rtype() == rtype::SOA && r.owner.lower() == *apex_lower);
    let (ttl, wire) = match soa {
        Some(r) => {
            let minimum = match &r.rdata {
                RData::Soa { minimum, .. } => *minimum,
                _ => r.ttl,
            };
            let mut wire = Vec::new();
            r.rdata.to_wire(&mut wire);
            (r.ttl.min(minimum), wire)
        }
        None => (0, Vec::new()),
    };
    RRset { rtype: rtype::SOA, ttl, rdata: vec![wire.into_boxed_slice()].into_boxed_slice() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    fn zones(www: &str) -> String {
        format!(
            r#"
[[zones]]
name = "a.internal."
account = "1"
scope = ["v1"]
records = [{{ name = "www", type = "A", data = "{www}" }}]
[[zones]]
name = "b.internal."
account = "1"
scope = ["v1"]
records = [{{ name = "x.y.z", type = "A", data = "10.0.0.9" }}]
"#
        )
    }

    #[test]
    fn a_change_recompiles_only_the_zone_it_touched() {
        let mut compiler = Compiler::default();
        let first = testing::state(&zones("10.0.0.1"), None);
        let one = compiler.compile(&first);
        let second = testing::state(&zones("10.0.0.2"), Some(&first));
        let two = compiler.compile(&second);
        assert_eq!(two.generation, one.generation + 1);
        let (a1, b1) = (&one.zones[0], &one.zones[1]);
        let (a2, b2) = (&two.zones[0], &two.zones[1]);
        assert!(!Arc::ptr_eq(a1, a2), "the changed zone is rebuilt");
        assert!(Arc::ptr_eq(b1, b2), "the unchanged zone's table is shared");
        assert!(a2.revision > a1.revision, "the changed zone's serial grows");
        assert_eq!(b2.revision, b1.revision);
    }

    #[test]
    fn generated_soa_ns_and_empty_non_terminals() {
        let snap = Compiler::default().compile(&testing::state(&zones("10.0.0.1"), None));
        let b = &snap.zones[1];
        let apex = b.apex().expect("apex node");
        assert!(apex.rrset(rtype::SOA).is_some() && apex.rrset(rtype::NS).is_some());
        let ent = Name::from_text("y.z.b.internal.", None).expect("name");
        assert!(b.node(ent.wire()).is_some_and(Node::is_empty_non_terminal));
        assert_eq!(b.negative_soa.ttl, 60, "min(3600, minimum 60)");
        assert_eq!(b.record_count, 3);
    }
}
