//! Folding zone documents and their records: a zone's records arrive as separate documents, possibly before the
//! zone itself (keys are listed in order) and in generations (a bulk change writes the next one aside and switches
//! the zone to it in one small commit).

use std::collections::{BTreeSet, HashMap};

use super::ControlState;
use crate::control::docs::{decode, generation_of, RecordDoc, ZoneDoc};
use crate::dns::name::Name;
use crate::dns::rdata::Record;
use crate::model::state::{DirtyZone, Fallback, RecordId, Uid, Zone, ZoneId, ZoneRecords};

/// Record writes (`None` = removed) for a zone not seen yet, in the order they came: the last write of an id
/// counts. A list, not a map, because at start-up it holds every record of the store, arriving in id order.
#[derive(Debug, Clone, Default)]
pub(crate) struct PendingRecords(pub(super) Vec<(RecordId, Option<Record>, u64)>);

impl PendingRecords {
    /// The last write of `id`, if it holds a record: that record's revision.
    pub(super) fn revision(&self, id: &str) -> Option<u64> {
        let (_, record, revision) = self.0.iter().rev().find(|(rid, _, _)| rid == id)?;
        record.as_ref().map(|_| *revision)
    }

    /// The ids whose last write holds a record.
    pub(super) fn ids(&self) -> Vec<&str> {
        let mut last: HashMap<&str, bool> = HashMap::new();
        for (rid, record, _) in &self.0 {
            last.insert(rid.as_str(), record.is_some());
        }
        last.into_iter().filter_map(|(id, live)| live.then_some(id)).collect()
    }

    /// The zone's records: the last write of each id that holds one.
    pub(super) fn into_records(self) -> ZoneRecords {
        let mut writes = self.0;
        // Stable: the writes of one id stay in the order they came (and ids that came in order cost one pass).
        writes.sort_by(|a, b| a.0.cmp(&b.0));
        let mut live: Vec<(RecordId, Record, u64)> = Vec::with_capacity(writes.len());
        let mut writes = writes.into_iter().peekable();
        while let Some((id, record, revision)) = writes.next() {
            let superseded = writes.peek().is_some_and(|next| next.0 == id);
            if let (false, Some(record)) = (superseded, record) {
                live.push((id, record, revision));
            }
        }
        ZoneRecords::from_revisions(live)
    }
}

impl ControlState {
    pub(super) fn apply_zone(&mut self, id: &str, value: Option<&[u8]>, revision: u64) -> Result<(), String> {
        let id = ZoneId(id.to_string());
        let Some(value) = value else {
            self.zone_docs.remove(&id);
            self.scopes.remove(&id);
            self.state.zones.remove(&id);
            self.pending_records.remove(&id);
            self.staged.remove(&id);
            self.dirty.zones.insert(id, DirtyZone { full: true, owners: BTreeSet::new() });
            self.dirty.structure = true;
            return Ok(());
        };
        let doc: ZoneDoc = decode(value)?;
        let name = Name::from_text(&doc.name, Some(&Name::root())).map_err(|e| e.to_string())?;
        let account = Uid(doc.account.clone());
        let same_generation = self.zone_docs.get(&id).is_none_or(|old| old.generation == doc.generation);
        let fallback = crate::model::state::Fallback::parse(&doc.fallback).unwrap_or_default();
        let known = self.state.zones.get(&id).is_some_and(|z| z.name == name && z.account == account);
        match (known, same_generation) {
            // The document is rewritten with every content change: its revision is the zone's (the SOA serial).
            (true, true) => {
                if let Some(zone) = self.state.zones.get_mut(&id) {
                    zone.revision = revision;
                    zone.fallback = fallback;
                }
                self.dirty.zones.entry(id.clone()).or_default();
            }
            (true, false) => self.switch_generation(&id, &doc.generation, revision, fallback),
            (false, _) => self.add_zone(&id, &doc, name, account, revision, fallback),
        }
        self.zone_docs.insert(id, doc);
        Ok(())
    }

    /// A switch of generation: the staged records of the new one become the zone's; the old ones are unreachable
    /// from now on (their deletion follows).
    fn switch_generation(&mut self, id: &ZoneId, generation: &str, revision: u64, fallback: Fallback) {
        let staged = self.staged.entry(id.clone()).or_default();
        let mut live = Vec::new();
        staged.retain(|rid, (record, rev)| {
            let mine = generation_of(rid) == generation;
            if mine {
                live.push((rid.clone(), record.clone(), *rev));
            }
            !mine
        });
        if staged.is_empty() {
            self.staged.remove(id);
        }
        live.sort_by(|a, b| a.0.cmp(&b.0));
        let records = ZoneRecords::from_revisions(live);
        records.index_ids();
        if let Some(zone) = self.state.zones.get_mut(id) {
            zone.records = records;
            zone.revision = revision;
            zone.fallback = fallback;
        }
        self.dirty.zones.insert(id.clone(), DirtyZone { full: true, owners: BTreeSet::new() });
    }

    /// A zone not held yet (or renamed, or moved to another account). Keys are listed in order, so its scope and
    /// records may have arrived before it; writes of other generations wait aside (see `staged`).
    fn add_zone(&mut self, id: &ZoneId, doc: &ZoneDoc, name: Name, account: Uid, revision: u64, fallback: Fallback) {
        let scope = self.scopes.get(id).cloned().unwrap_or_default();
        let mut pending = self.pending_records.remove(id).unwrap_or_default();
        if pending.0.iter().any(|(rid, _, _)| generation_of(rid) != doc.generation) {
            let (mine, others): (Vec<_>, Vec<_>) =
                pending.0.into_iter().partition(|(rid, _, _)| generation_of(rid) == doc.generation);
            pending = PendingRecords(mine);
            let staged = self.staged.entry(id.clone()).or_default();
            for (rid, record, rev) in others {
                match record {
                    Some(record) => staged.insert(rid, (record, rev)),
                    None => staged.remove(&rid),
                };
            }
        }
        let records = pending.into_records();
        // Changes name records by id: index the ids now rather than on the first change.
        records.index_ids();
        let origin = format!("store zone {}", doc.id);
        let zone = Zone { id: id.clone(), name, account, scope, records, revision, origin, fallback };
        self.state.zones.insert(id.clone(), zone);
        self.dirty.zones.insert(id.clone(), DirtyZone { full: true, owners: BTreeSet::new() });
        self.dirty.structure = true;
    }

    pub(super) fn apply_record(
        &mut self,
        zone_id: &str,
        rid: &str,
        value: Option<&[u8]>,
        revision: u64,
    ) -> Result<(), String> {
        let new = match value {
            Some(value) => {
                let doc: RecordDoc = decode(value)?;
                // Stored owners and data are absolute, so no origin is needed to read them back.
                Some(doc.to_record(&Name::root())?)
            }
            None => None,
        };
        let other_generation = self
            .zone_docs
            .get(zone_id)
            .is_some_and(|doc| self.state.zones.contains_key(zone_id) && generation_of(rid) != doc.generation);
        if other_generation {
            let staged = self.staged.entry(ZoneId(zone_id.to_string())).or_default();
            match new {
                Some(record) => {
                    staged.insert(rid.into(), (record, revision));
                }
                None => {
                    staged.remove(rid);
                }
            }
            return Ok(());
        }
        let Some(zone) = self.state.zones.get_mut(zone_id) else {
            // Records before their zone (or of a zone deleted in the same change): kept aside until it arrives.
            // (Looked up before inserting: `entry` would copy the zone id for every record.)
            match self.pending_records.get_mut(zone_id) {
                Some(pending) => pending.0.push((rid.into(), new, revision)),
                None if new.is_some() => {
                    let pending = PendingRecords(vec![(rid.into(), new, revision)]);
                    self.pending_records.insert(ZoneId(zone_id.to_string()), pending);
                }
                None => {}
            }
            return Ok(());
        };
        let old = zone.records.remove(rid);
        if let Some(record) = &new {
            zone.records.insert(rid.into(), record.clone(), revision);
        }
        let dirty = self.dirty.zones.entry(ZoneId(zone_id.to_string())).or_default();
        if !dirty.full {
            for record in old.iter().chain(new.iter()) {
                dirty.owners.insert(record.owner.lower());
            }
        }
        Ok(())
    }
}
