//! A zone's records, ordered by owner name so that a change to one owner costs O(log n) at any zone size.
//!
//! The change path must find the records of one owner (to rebuild its node and check its rules) and whether a name
//! still has records below it (to keep or drop an empty non-terminal), in a zone of a million records, in well
//! under a millisecond. So records are kept in a persistent ordered set (imbl: a clone shares everything, an edit
//! costs O(log n)) ordered by the owner's wire bytes read from the end, case-insensitively, then by record id:
//! every owner's records are contiguous, and so are the records of every name below a name (their wire names end
//! with its wire name). The order is computed from the record itself: no second copy of any name is stored.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::name::{is_at_or_below, Name};
use crate::rdata::{RData, Record};

/// A record's id within its zone. Ids are short (`f0000042`, or an API-assigned id), so they are stored inline
/// (compact_str keeps up to 24 bytes without a heap allocation).
pub type RecordId = compact_str::CompactString;

/// One record and its id, ordered by (owner, id).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    id: RecordId,
    record: Record,
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
#[derive(Debug, Clone)]
pub struct ZoneRecords(Repr);

/// Two forms of the same order. A zone loaded whole (from a file, the config, an import) is a sorted array: built
/// by one sort, packed, never edited — a file-backed server never pays for a tree. The first edit turns it into the
/// persistent set, where every later edit costs O(log n) and a copy of the state shares everything.
#[derive(Debug, Clone)]
enum Repr {
    Sorted(Arc<[Entry]>),
    Set(imbl::OrdSet<Entry>),
}

impl Default for ZoneRecords {
    fn default() -> Self {
        ZoneRecords(Repr::Set(imbl::OrdSet::new()))
    }
}

/// Equal when every record is equal, data and TTL included (the set's own equality compares by order only, which
/// looks at owner and id). Both forms iterate in the same order, so they compare entry by entry.
impl PartialEq for ZoneRecords {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.entries().zip(other.entries()).all(|(a, b)| a == b)
    }
}

impl Eq for ZoneRecords {}

/// The smallest entry of an owner: an empty id sorts before every id.
fn first_of(owner: &Name) -> Entry {
    Entry {
        id: RecordId::const_new(""),
        record: Record { owner: owner.clone(), ttl: 0, rdata: RData::A(std::net::Ipv4Addr::UNSPECIFIED) },
    }
}

impl ZoneRecords {
    pub fn new() -> ZoneRecords {
        ZoneRecords::default()
    }

    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Sorted(entries) => entries.len(),
            Repr::Set(set) => set.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn entries(&self) -> Entries<'_> {
        match &self.0 {
            Repr::Sorted(entries) => Entries::Sorted(entries.iter()),
            Repr::Set(set) => Entries::Set(set.iter()),
        }
    }

    /// Every record, in owner order.
    pub fn values(&self) -> impl Iterator<Item = &Record> {
        self.entries().map(|e| &e.record)
    }

    /// Every (id, record), in owner order.
    pub fn iter(&self) -> impl Iterator<Item = (&RecordId, &Record)> {
        self.entries().map(|e| (&e.id, &e.record))
    }

    /// The persistent set, converting a loaded zone on its first edit.
    fn set_mut(&mut self) -> &mut imbl::OrdSet<Entry> {
        if let Repr::Sorted(entries) = &self.0 {
            self.0 = Repr::Set(entries.iter().cloned().collect());
        }
        match &mut self.0 {
            Repr::Set(set) => set,
            Repr::Sorted(_) => unreachable!("converted just above"),
        }
    }

    /// Adds a record under `id`. The caller removes any earlier record with the same id first (it may have had
    /// another owner); the same id at the same owner is replaced (the set compares owner and id only) and returned.
    pub fn insert(&mut self, id: RecordId, record: Record) -> Option<Record> {
        self.set_mut().insert(Entry { id, record }).map(|e| e.record)
    }

    /// Removes the record `id` whose owner is `owner`.
    pub fn remove(&mut self, id: &str, owner: &Name) -> Option<Record> {
        let mut probe = first_of(owner);
        probe.id = RecordId::from(id);
        self.set_mut().remove(&probe).map(|e| e.record)
    }

    /// The entries from the first of `owner` on, in order.
    fn starting_at<'r>(&'r self, owner: &Name) -> Entries<'r> {
        match &self.0 {
            Repr::Sorted(entries) => {
                let start = entries.partition_point(|e| owner_order(e.record.owner.wire(), owner.wire()).is_lt());
                Entries::Sorted(entries[start..].iter())
            }
            Repr::Set(set) => Entries::Range(set.range(first_of(owner)..)),
        }
    }

    /// The records whose owner is `owner` (in any case), by id.
    pub fn at<'r>(&'r self, owner: &'r Name) -> impl Iterator<Item = (&'r RecordId, &'r Record)> + 'r {
        let wire = owner.wire();
        self.starting_at(owner)
            .take_while(move |e| owner_order(e.record.owner.wire(), wire) == Ordering::Equal)
            .map(|e| (&e.id, &e.record))
    }

    /// Whether some record's owner lies strictly below `name`.
    pub fn has_below(&self, name: &Name) -> bool {
        let wire = name.wire();
        // Past the name's own records come the names whose wire ends with its wire: its descendants, and (only for
        // labels holding binary length-like bytes) a few names that merely end the same way, checked one by one.
        self.starting_at(name)
            .skip_while(|e| owner_order(e.record.owner.wire(), wire) == Ordering::Equal)
            .take_while(|e| ends_with_folded(e.record.owner.wire(), wire))
            .any(|e| is_at_or_below(e.record.owner.wire(), wire))
    }

    /// The record with id `id`, wherever its owner: a scan, for bulk operations that compare whole zones.
    pub fn find_id(&self, id: &str) -> Option<&Record> {
        self.entries().find(|e| e.id == id).map(|e| &e.record)
    }
}

/// Entries in order, from either form.
enum Entries<'r> {
    Sorted(std::slice::Iter<'r, Entry>),
    Set(imbl::ordset::Iter<'r, Entry, imbl::shared_ptr::DefaultSharedPtr>),
    Range(imbl::ordset::RangedIter<'r, Entry, imbl::shared_ptr::DefaultSharedPtr>),
}

impl<'r> Iterator for Entries<'r> {
    type Item = &'r Entry;

    fn next(&mut self) -> Option<&'r Entry> {
        match self {
            Entries::Sorted(it) => it.next(),
            Entries::Set(it) => it.next(),
            Entries::Range(it) => it.next(),
        }
    }
}

fn ends_with_folded(name: &[u8], suffix: &[u8]) -> bool {
    name.len() >= suffix.len() && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

impl FromIterator<(RecordId, Record)> for ZoneRecords {
    /// A zone loaded whole: one sort into the packed form. Ids are unique in every caller; should an (owner, id)
    /// repeat, one of its records is kept.
    fn from_iter<I: IntoIterator<Item = (RecordId, Record)>>(iter: I) -> Self {
        let mut entries: Vec<Entry> = iter.into_iter().map(|(id, record)| Entry { id, record }).collect();
        entries.sort_unstable();
        entries.dedup_by(|a, b| Ord::cmp(&*a, &*b) == Ordering::Equal);
        ZoneRecords(Repr::Sorted(entries.into()))
    }
}

/// Records from a file or the config, keyed by their position (stable for the same file).
pub fn records_from(records: Vec<Record>) -> ZoneRecords {
    records.into_iter().enumerate().map(|(i, r)| (compact_str::format_compact!("f{i:07}"), r)).collect()
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
        assert!(records.remove("3", &n("A.B.T.")).is_some());
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

    proptest! {
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
            // An edit turns the loaded (sorted) form into the set: the same records answer the same.
            let mut edited = records.clone();
            edited.insert(RecordId::from("edit"), a("edit.t."));
            edited.remove("edit", &n("EDIT.t."));
            prop_assert!(matches!(edited.0, Repr::Set(_)));
            prop_assert_eq!(&edited, &records);
            prop_assert_eq!(edited.at(&name).count(), records.at(&name).count());
            prop_assert_eq!(edited.has_below(&name), below);
        }
    }
}
