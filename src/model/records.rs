//! A zone's records, ordered by owner name so that a change to one owner costs O(log n) at any zone size.
//!
//! The change path must find the records of one owner (to rebuild its node and check its rules) and whether a name
//! still has records below it (to keep or drop an empty non-terminal), in a zone of a million records, in well
//! under a millisecond. So records are kept in a persistent ordered set (imbl: a clone shares everything, an edit
//! costs O(log n)) ordered by the owner's wire bytes read from the end, case-insensitively, then by record id:
//! every owner's records are contiguous, and so are the records of every name below a name (their wire names end
//! with its wire name). The order is computed from the record itself: no second copy of any name is stored.

use std::cmp::Ordering;
use std::sync::{Arc, OnceLock};

use crate::dns::name::{is_at_or_below, Name};
use crate::dns::rdata::{RData, Record};

/// A record's id within its zone. Ids are short (`f0000042`, or an API-assigned id), so they are stored inline
/// (compact_str keeps up to 24 bytes without a heap allocation).
pub type RecordId = compact_str::CompactString;

/// One record, its id and the store revision that last wrote it (0 for records from files), ordered by (owner,
/// id) — the order's equality looks at owner and id only.
#[derive(Debug, Clone)]
struct Entry {
    id: RecordId,
    record: Record,
    revision: u64,
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        owner_order(self.record.owner.wire(), other.record.owner.wire()).then_with(|| self.id.cmp(&other.id))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Entry {}

/// Wire names compared byte by byte from the last byte backwards, ASCII case folded: equal names (in any case)
/// are equal, and a name's descendants, whose wire names end with its own, sort right after it.
///
/// Eight bytes at a time: read little-endian, a word's last byte is its most significant, so comparing the words as
/// numbers compares their bytes from the end, as the order wants. Building a zone of a million records makes
/// tens of millions of these comparisons.
fn owner_order(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (a.len(), b.len());
    while i >= 8 && j >= 8 {
        let x = fold_word(u64::from_le_bytes(word(&a[i - 8..i])));
        let y = fold_word(u64::from_le_bytes(word(&b[j - 8..j])));
        if x != y {
            return x.cmp(&y);
        }
        i -= 8;
        j -= 8;
    }
    let mut x = a[..i].iter().rev();
    let mut y = b[..j].iter().rev();
    loop {
        match (x.next(), y.next()) {
            (Some(p), Some(q)) => match p.to_ascii_lowercase().cmp(&q.to_ascii_lowercase()) {
                Ordering::Equal => {}
                unequal => return unequal,
            },
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
        }
    }
}

fn word(bytes: &[u8]) -> [u8; 8] {
    let mut w = [0u8; 8];
    w.copy_from_slice(bytes);
    w
}

/// `to_ascii_lowercase` on each byte of a word at once: 0x20 is added to the bytes in `A..=Z` and to no other.
fn fold_word(x: u64) -> u64 {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let low7 = x & !HIGH;
    let at_least_a = low7.wrapping_add(0x3f3f_3f3f_3f3f_3f3f); // high bit set where the byte is >= 'A'
    let above_z = low7.wrapping_add(0x2525_2525_2525_2525); // high bit set where the byte is > 'Z'
    let upper = (at_least_a & !above_z) & !x & HIGH; // ASCII bytes in 'A'..='Z'
    x | (upper >> 2)
}

/// A zone's records: see the module documentation.
///
/// A packed `base`, sorted once when the zone is loaded whole (from a file, the config, the store at start-up),
/// plus the edits since: base entries `removed` (by position) and entries `added` (a persistent set). A clone
/// shares all of it, an edit costs O(log n), and loading a million records costs one sort instead of a million
/// tree inserts. Once the edits pass an eighth of the base they are folded into a new base.
#[derive(Debug, Clone, Default)]
pub struct ZoneRecords {
    base: Arc<[Entry]>,
    /// Positions in `base` sorted by id, built on first use (a zone served from a file never needs it).
    by_id: Arc<OnceLock<Box<[u32]>>>,
    removed: imbl::OrdSet<u32>,
    added: imbl::OrdSet<Entry>,
    /// The owner of every added entry, by id (the set is ordered by owner first).
    added_owners: imbl::HashMap<RecordId, Name>,
    /// The records' wire size in all ([`Record::wire_size`]), kept as they come and go (byte quotas read it).
    bytes: usize,
}

/// Edits are folded into the base once they pass max(this, base / 8).
const FOLD_MIN: usize = 1024;

/// Equal when every record is equal, id, data and TTL included (revisions are not compared).
impl PartialEq for ZoneRecords {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self.entries().zip(other.entries()).all(|(a, b)| a.id == b.id && a.record == b.record)
    }
}

impl Eq for ZoneRecords {}

/// The smallest entry of an owner: an empty id sorts before every id.
fn first_of(owner: &Name) -> Entry {
    Entry {
        id: RecordId::const_new(""),
        record: Record { owner: owner.clone(), ttl: 0, rdata: RData::A(std::net::Ipv4Addr::UNSPECIFIED) },
        revision: 0,
    }
}

impl ZoneRecords {
    pub fn new() -> ZoneRecords {
        ZoneRecords::default()
    }

    /// Records loaded whole: one sort. Ids are unique in every caller; should an (owner, id) repeat, one of its
    /// records is kept.
    pub(crate) fn from_revisions(records: impl IntoIterator<Item = (RecordId, Record, u64)>) -> ZoneRecords {
        let entries = records.into_iter().map(|(id, record, revision)| Entry { id, record, revision }).collect();
        ZoneRecords::packed(entries)
    }

    fn packed(mut entries: Vec<Entry>) -> ZoneRecords {
        entries.sort_unstable();
        entries.dedup();
        let bytes = entries.iter().map(|e| e.record.wire_size()).sum();
        ZoneRecords { base: entries.into(), bytes, ..ZoneRecords::default() }
    }

    /// The records' wire size in all.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.base.len() - self.removed.len() + self.added.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every entry, in order, from position `start` of the base and from `added_from` of the added set.
    fn merged<'r>(&'r self, start: usize, added: AddedIter<'r>) -> Merged<'r> {
        let base = self.base.get(start..).unwrap_or_default().iter().zip(start as u32..);
        Merged { base: base.peekable(), added: added.peekable(), removed: &self.removed }
    }

    fn entries(&self) -> Merged<'_> {
        self.merged(0, AddedIter::All(self.added.iter()))
    }

    /// Every record, in owner order.
    pub fn values(&self) -> impl Iterator<Item = &Record> {
        self.entries().map(|e| &e.record)
    }

    /// Every (id, record), in owner order.
    pub fn iter(&self) -> impl Iterator<Item = (&RecordId, &Record)> {
        self.entries().map(|e| (&e.id, &e.record))
    }

    /// Builds the index of ids now (it is otherwise built by the first lookup by id).
    pub(crate) fn index_ids(&self) {
        self.ids();
    }

    /// Base positions sorted by id.
    fn ids(&self) -> &[u32] {
        self.by_id.get_or_init(|| {
            // Sorted on the ids' first eight bytes first: comparing integers is what makes a million ids sort fast.
            let id = |pos: u32| self.base[pos as usize].id.as_bytes();
            let mut ids: Vec<(u64, u32)> = (0..self.base.len() as u32).map(|pos| (prefix_key(id(pos)), pos)).collect();
            ids.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| id(a.1).cmp(id(b.1))));
            ids.into_iter().map(|(_, pos)| pos).collect()
        })
    }

    /// The base position of `id`, unless that entry was removed since.
    fn base_position(&self, id: &str) -> Option<u32> {
        let by_id = self.ids();
        let at = by_id.partition_point(|&pos| self.base[pos as usize].id.as_str() < id);
        let pos = *by_id.get(at)?;
        (self.base[pos as usize].id == id && !self.removed.contains(&pos)).then_some(pos)
    }

    fn entry(&self, id: &str) -> Option<&Entry> {
        if let Some(owner) = self.added_owners.get(id) {
            let mut probe = first_of(owner);
            probe.id = RecordId::from(id);
            return self.added.get(&probe);
        }
        self.base_position(id).map(|pos| &self.base[pos as usize])
    }

    /// The record with id `id`, and the store revision that wrote it.
    pub fn get(&self, id: &str) -> Option<(&Record, u64)> {
        self.entry(id).map(|e| (&e.record, e.revision))
    }

    /// Adds a record under `id`, written at store revision `revision`; returns the record `id` had before,
    /// whatever its owner.
    pub fn insert(&mut self, id: RecordId, record: Record, revision: u64) -> Option<Record> {
        let old = self.remove(&id);
        self.added_owners.insert(id.clone(), record.owner.clone());
        self.bytes += record.wire_size();
        self.added.insert(Entry { id, record, revision });
        self.fold_if_large();
        old
    }

    /// Removes the record `id`, whatever its owner.
    pub fn remove(&mut self, id: &str) -> Option<Record> {
        if let Some(owner) = self.added_owners.remove(id) {
            let mut probe = first_of(&owner);
            probe.id = RecordId::from(id);
            let old = self.added.remove(&probe).map(|e| e.record);
            self.bytes = self.bytes.saturating_sub(old.as_ref().map_or(0, Record::wire_size));
            return old;
        }
        let pos = self.base_position(id)?;
        self.removed.insert(pos);
        let old = self.base[pos as usize].record.clone();
        self.bytes = self.bytes.saturating_sub(old.wire_size());
        self.fold_if_large();
        Some(old)
    }

    /// A new base once the edits pass an eighth of it: O(n), once per n/8 edits.
    fn fold_if_large(&mut self) {
        if self.removed.len() + self.added.len() > FOLD_MIN.max(self.base.len() / 8) {
            let indexed = self.by_id.get().is_some();
            *self = ZoneRecords::packed(self.entries().cloned().collect());
            if indexed {
                self.index_ids();
            }
        }
    }

    /// The entries from the first of `owner` on, in order.
    fn starting_at<'r>(&'r self, owner: &Name) -> Merged<'r> {
        let start = self.base.partition_point(|e| owner_order(e.record.owner.wire(), owner.wire()).is_lt());
        self.merged(start, AddedIter::Range(self.added.range(first_of(owner)..)))
    }

    /// The records whose owner is `owner` (in any case), by id.
    pub fn at<'r>(&'r self, owner: &'r Name) -> impl Iterator<Item = (&'r RecordId, &'r Record)> + 'r {
        let wire = owner.wire();
        self.starting_at(owner)
            .take_while(move |e| owner_order(e.record.owner.wire(), wire) == Ordering::Equal)
            .map(|e| (&e.id, &e.record))
    }

    /// Whether some record's owner lies strictly below `name`.
    pub(crate) fn has_below(&self, name: &Name) -> bool {
        let wire = name.wire();
        // Past the name's own records come the names whose wire ends with its wire: its descendants, and (only for
        // labels holding binary length-like bytes) a few names that merely end the same way, checked one by one.
        self.starting_at(name)
            .skip_while(|e| owner_order(e.record.owner.wire(), wire) == Ordering::Equal)
            .take_while(|e| ends_with_folded(e.record.owner.wire(), wire))
            .any(|e| is_at_or_below(e.record.owner.wire(), wire))
    }
}

type SetIter<'r> = imbl::ordset::Iter<'r, Entry, imbl::shared_ptr::DefaultSharedPtr>;
type SetRange<'r> = imbl::ordset::RangedIter<'r, Entry, imbl::shared_ptr::DefaultSharedPtr>;

/// The added entries, all or from some owner on.
enum AddedIter<'r> {
    All(SetIter<'r>),
    Range(SetRange<'r>),
}

impl<'r> Iterator for AddedIter<'r> {
    type Item = &'r Entry;

    fn next(&mut self) -> Option<&'r Entry> {
        match self {
            AddedIter::All(it) => it.next(),
            AddedIter::Range(it) => it.next(),
        }
    }
}

/// Base entries not removed and added entries, merged in order (no (owner, id) is in both: replacing a base entry
/// removes it).
struct Merged<'r> {
    base: std::iter::Peekable<std::iter::Zip<std::slice::Iter<'r, Entry>, std::ops::RangeFrom<u32>>>,
    added: std::iter::Peekable<AddedIter<'r>>,
    removed: &'r imbl::OrdSet<u32>,
}

impl<'r> Iterator for Merged<'r> {
    type Item = &'r Entry;

    fn next(&mut self) -> Option<&'r Entry> {
        if !self.removed.is_empty() {
            while self.base.next_if(|(_, pos)| self.removed.contains(pos)).is_some() {}
        }
        match (self.base.peek(), self.added.peek()) {
            (Some((b, _)), Some(a)) if a < b => self.added.next(),
            (Some(_), _) => self.base.next().map(|(b, _)| b),
            (None, _) => self.added.next(),
        }
    }
}

/// The first eight bytes of `bytes`, zero-padded, as a big-endian number: the numbers compare as the bytes do
/// (ties left to a full comparison).
fn prefix_key(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    let len = bytes.len().min(8);
    word[..len].copy_from_slice(&bytes[..len]);
    u64::from_be_bytes(word)
}

fn ends_with_folded(name: &[u8], suffix: &[u8]) -> bool {
    name.len() >= suffix.len() && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

impl FromIterator<(RecordId, Record)> for ZoneRecords {
    /// A zone loaded whole (from a file or the config): one sort into the packed form.
    fn from_iter<I: IntoIterator<Item = (RecordId, Record)>>(iter: I) -> Self {
        ZoneRecords::from_revisions(iter.into_iter().map(|(id, record)| (id, record, 0)))
    }
}

/// Records from a file or the config, keyed by their position (stable for the same file).
pub fn records_from(records: Vec<Record>) -> ZoneRecords {
    records_with_ids(records.into_iter().map(|r| (None, r)).collect())
}

/// Records with the ids a file gives them (an export carries the store's ids); the others get `f<n>` ids.
pub fn records_with_ids(records: Vec<(Option<String>, Record)>) -> ZoneRecords {
    records
        .into_iter()
        .enumerate()
        .map(|(i, (id, r))| (id.map_or_else(|| compact_str::format_compact!("f{i:07}"), Into::into), r))
        .collect()
}

/// Whether a record id was given by its file (`records_with_ids`), not made up for it.
pub(crate) fn is_declared_id(id: &str) -> bool {
    !(id.len() == 8 && id.starts_with('f') && id[1..].bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn n(text: &str) -> Name {
        Name::from_text(text, None).expect("name")
    }

    fn a(owner: &str) -> Record {
        Record { owner: n(owner), ttl: 1, rdata: RData::A(std::net::Ipv4Addr::LOCALHOST) }
    }

    #[test]
    fn owners_and_descendants_are_found_in_any_case() {
        let records: ZoneRecords = [("1", "www.t."), ("2", "WWW.t."), ("3", "a.b.t."), ("4", "bb.t."), ("5", "xb.t.")]
            .into_iter()
            .map(|(id, owner)| (RecordId::from(id), a(owner)))
            .collect();
        assert_eq!(records.at(&n("www.T.")).count(), 2);
        assert!(records.has_below(&n("b.t.")));
        assert!(!records.has_below(&n("www.t.")));
        assert!(records.has_below(&n("t.")));
        let mut records = records;
        assert!(records.remove("3").is_some());
        assert!(!records.has_below(&n("b.t.")), "bb.t. and xb.t. end like b.t. but are not below it");
    }

    #[test]
    fn equality_sees_data_not_just_owner_and_id() {
        let one: ZoneRecords = [(RecordId::from("1"), a("www.t."))].into_iter().collect();
        let mut other = a("www.t.");
        other.ttl = 2;
        let two: ZoneRecords = [(RecordId::from("1"), other)].into_iter().collect();
        assert_ne!(one, two);
        assert_eq!(one, one.clone());
    }

    /// What the records must read as: a plain map by id, ordered on demand.
    fn model_order(model: &std::collections::BTreeMap<String, (Record, u64)>) -> Vec<(String, Record)> {
        let mut all: Vec<(String, Record)> = model.iter().map(|(id, (r, _))| (id.clone(), r.clone())).collect();
        all.sort_by(|x, y| owner_order(x.1.owner.wire(), y.1.owner.wire()).then_with(|| x.0.cmp(&y.0)));
        all
    }

    fn check_against(records: &ZoneRecords, model: &std::collections::BTreeMap<String, (Record, u64)>) {
        let got: Vec<(String, Record)> = records.iter().map(|(id, r)| (id.to_string(), r.clone())).collect();
        assert_eq!(got, model_order(model));
        assert_eq!(records.len(), model.len());
        for (id, (record, revision)) in model {
            assert_eq!(records.get(id), Some((record, *revision)), "id {id}");
        }
    }

    /// Thousands of edits on a loaded zone: the edits fold into new bases on the way, and every read agrees with a
    /// plain map throughout.
    #[test]
    fn edits_fold_into_the_base_and_read_the_same() {
        let mut model = std::collections::BTreeMap::new();
        let initial: Vec<(RecordId, Record, u64)> =
            (0..3000).map(|i| (RecordId::from(format!("r{i}")), a(&format!("h{}.t.", i % 700)), 1)).collect();
        for (id, r, rev) in &initial {
            model.insert(id.to_string(), (r.clone(), *rev));
        }
        let mut records = ZoneRecords::from_revisions(initial);
        check_against(&records, &model);
        let mut folds = 0;
        for step in 0..6000u64 {
            let id = format!("r{}", (step * 7919) % 4000);
            let before = records.base.len();
            if step % 3 == 0 {
                assert_eq!(records.remove(&id).is_some(), model.remove(&id).is_some());
            } else {
                let r = a(&format!("H{}.t.", step % 900));
                let old = records.insert(RecordId::from(id.as_str()), r.clone(), step);
                assert_eq!(old, model.insert(id, (r, step)).map(|(r, _)| r));
            }
            folds += usize::from(records.base.len() != before && records.removed.is_empty());
            if step % 500 == 0 {
                check_against(&records, &model);
            }
        }
        check_against(&records, &model);
        assert!(folds >= 2, "the edits were folded {folds} times");
    }

    proptest! {
        /// Any edits, on any loaded zone: reads agree with a plain map.
        #[test]
        fn edits_read_like_a_map(initial in prop::collection::vec(0..12usize, 0..30),
                                 edits in prop::collection::vec((any::<bool>(), 0..40usize, 0..12usize), 0..40),
                                 probe in 0..12usize) {
            const NAMES: [&str; 12] = ["t.", "a.t.", "A.t.", "b.a.t.", "ba.t.", "c.b.a.t.", "x.t.", "X.T.", "ab.t.",
                                       "b.t.", "a.b.t.", "*.t."];
            let mut model = std::collections::BTreeMap::new();
            let loaded: Vec<(RecordId, Record, u64)> =
                initial.iter().enumerate().map(|(i, o)| (RecordId::from(format!("r{i}")), a(NAMES[*o]), 1)).collect();
            for (id, r, rev) in &loaded {
                model.insert(id.to_string(), (r.clone(), *rev));
            }
            let mut records = ZoneRecords::from_revisions(loaded);
            for (step, (add, slot, owner)) in edits.into_iter().enumerate() {
                let id = format!("r{slot}");
                if add {
                    let r = a(NAMES[owner]);
                    let old = records.insert(RecordId::from(id.as_str()), r.clone(), step as u64 + 2);
                    prop_assert_eq!(old, model.insert(id, (r, step as u64 + 2)).map(|(r, _)| r));
                } else {
                    prop_assert_eq!(records.remove(&id).is_some(), model.remove(&id).is_some());
                }
            }
            check_against(&records, &model);
            let name = n(NAMES[probe]);
            let same = |r: &Record| r.owner.wire().eq_ignore_ascii_case(name.wire());
            let at: Vec<String> = records.at(&name).map(|(id, _)| id.to_string()).collect();
            let expected: Vec<String> = model_order(&model).into_iter().filter(|(_, r)| same(r)).map(|(id, _)| id).collect();
            prop_assert_eq!(at, expected);
            let below = model.values().any(|(r, _)| !same(r) && is_at_or_below(r.owner.wire(), name.wire()));
            prop_assert_eq!(records.has_below(&name), below);
        }

        /// The word-at-a-time order is the byte-at-a-time order on case-folded, reversed bytes.
        #[test]
        fn owner_order_is_reversed_folded_byte_order(a in prop::collection::vec(any::<u8>(), 0..40),
                                                     b in prop::collection::vec(any::<u8>(), 0..40)) {
            let key = |w: &[u8]| w.iter().rev().map(u8::to_ascii_lowercase).collect::<Vec<u8>>();
            prop_assert_eq!(owner_order(&a, &b), key(&a).cmp(&key(&b)));
            let word = |w: &[u8; 8]| fold_word(u64::from_le_bytes(*w)).to_le_bytes();
            let sample: [u8; 8] = std::array::from_fn(|i| a.get(i).copied().unwrap_or(b'Q'));
            prop_assert_eq!(word(&sample).to_vec(), sample.iter().map(u8::to_ascii_lowercase).collect::<Vec<u8>>());
        }

        /// `at` and `has_below` agree with a scan of every record.
        #[test]
        fn index_agrees_with_a_scan(owners in prop::collection::vec(0..12usize, 0..40), probe in 0..12usize) {
            const NAMES: [&str; 12] = ["t.", "a.t.", "A.t.", "b.a.t.", "ba.t.", "c.b.a.t.", "x.t.", "X.T.", "ab.t.",
                                       "b.t.", "a.b.t.", "*.t."];
            let records: ZoneRecords =
                owners.iter().enumerate().map(|(i, o)| (RecordId::from(i.to_string()), a(NAMES[*o]))).collect();
            let name = n(NAMES[probe]);
            let same = |r: &Record| r.owner.wire().eq_ignore_ascii_case(name.wire());
            prop_assert_eq!(records.at(&name).count(), records.values().filter(|r| same(r)).count());
            let below = records.values().any(|r| !same(r) && is_at_or_below(r.owner.wire(), name.wire()));
            prop_assert_eq!(records.has_below(&name), below);
            // An edit that is undone leaves the same records, answering the same.
            let mut edited = records.clone();
            edited.insert(RecordId::from("edit"), a("edit.t."), 1);
            prop_assert!(edited.remove("edit").is_some());
            prop_assert_eq!(&edited, &records);
            prop_assert_eq!(edited.at(&name).count(), records.at(&name).count());
            prop_assert_eq!(edited.has_below(&name), below);
        }
    }
}
