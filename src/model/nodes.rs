//! A zone's names and RRsets in compact form: every node encoded back to back in one byte arena, found through a
//! hash index of offsets keyed on the lower-case owner name.
//!
//! Why: a table of per-record heap objects (a boxed key, a boxed name, a boxed RRset list, a box per RDATA) cost
//! about 300 bytes and four pointer chases per record. Here an A record costs its owner name, 12 bytes of framing
//! and 4 bytes of RDATA, plus 11 to 21 bytes of index; a lookup touches one index slot and one contiguous node.
//!
//! A node is: owner length (u8), the owner's wire name as the zone spells it, then its RRsets sorted by type, each
//! `type u16, ttl u32, count u16` followed by `count` × (`rdlength u16`, RDATA). All big-endian. A node with no
//! RRsets is an empty non-terminal. In the arena every node is preceded by its length (u32). Only this module
//! writes or parses the encoding; the readers below never panic on any bytes (a short read ends the iteration).
// Lengths and counts here become wire fields: a cast that could truncate one must say why it cannot.
#![deny(clippy::cast_possible_truncation)]

use std::sync::Arc;

use ahash::RandomState;
use hashbrown::HashTable;

use crate::dns::name::{lower_into, MAX_NAME_LEN};

/// One RRset of a node: type, TTL and the RDATA of its records, in uncompressed wire form.
#[derive(Debug, Clone, Copy)]
pub struct RRset<'a> {
    pub rtype: u16,
    pub ttl: u32,
    count: u16,
    /// `count` × (rdlength, RDATA).
    data: &'a [u8],
}

impl<'a> RRset<'a> {
    /// The RDATA of each record, in zone order.
    pub fn rdata(&self) -> Rdatas<'a> {
        Rdatas { rest: self.data, left: self.count }
    }

    pub fn first(&self) -> Option<&'a [u8]> {
        self.rdata().next()
    }

    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether both are the same RRset of the same table (not merely equal).
    pub fn same(&self, other: &RRset) -> bool {
        std::ptr::eq(self.data.as_ptr(), other.data.as_ptr()) && self.rtype == other.rtype
    }

    /// An RRset of no records (what a zone without SOA puts in a negative answer).
    pub fn empty(rtype: u16) -> RRset<'static> {
        RRset { rtype, ttl: 0, count: 0, data: &[] }
    }

    /// The same records with another TTL.
    pub(crate) fn at_ttl(self, ttl: u32) -> RRset<'a> {
        RRset { ttl, ..self }
    }
}

impl PartialEq for RRset<'_> {
    fn eq(&self, other: &Self) -> bool {
        (self.rtype, self.ttl, self.count, self.data) == (other.rtype, other.ttl, other.count, other.data)
    }
}

impl Eq for RRset<'_> {}

/// The RDATA of an RRset.
#[derive(Debug, Clone)]
pub struct Rdatas<'a> {
    rest: &'a [u8],
    left: u16,
}

impl<'a> Iterator for Rdatas<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let (len, rest) = take_u16(self.rest)?;
        let (rdata, rest) = rest.split_at_checked(usize::from(len))?;
        self.rest = rest;
        Some(rdata)
    }
}

/// One owner name and its RRsets, read from its encoding.
#[derive(Debug, Clone, Copy)]
pub struct Node<'a> {
    bytes: &'a [u8],
}

impl<'a> Node<'a> {
    /// The owner as its zone spells it (uncompressed wire form).
    pub fn name(&self) -> &'a [u8] {
        let len = self.bytes.first().map_or(0, |&l| usize::from(l));
        self.bytes.get(1..1 + len).unwrap_or(&[])
    }

    pub fn rrsets(&self) -> RRsets<'a> {
        let len = self.bytes.first().map_or(0, |&l| usize::from(l));
        RRsets { rest: self.bytes.get(1 + len..).unwrap_or(&[]) }
    }

    pub fn rrset(&self, rtype: u16) -> Option<RRset<'a>> {
        self.rrsets().find(|s| s.rtype == rtype)
    }

    pub(crate) fn is_empty_non_terminal(&self) -> bool {
        self.rrsets().next().is_none()
    }

    /// How many records the node holds.
    pub(crate) fn record_count(&self) -> usize {
        self.rrsets().map(|s| s.len()).sum()
    }
}

/// The RRsets of a node, in type order.
#[derive(Debug, Clone)]
pub struct RRsets<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for RRsets<'a> {
    type Item = RRset<'a>;

    fn next(&mut self) -> Option<RRset<'a>> {
        let (rtype, rest) = take_u16(self.rest)?;
        let ttl = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
        let (count, mut body) = take_u16(rest.get(4..)?)?;
        let start = body;
        for _ in 0..count {
            let (len, rest) = take_u16(body)?;
            body = rest.get(usize::from(len)..)?;
        }
        let data = &start[..start.len() - body.len()];
        self.rest = body;
        Some(RRset { rtype, ttl, count, data })
    }
}

fn take_u16(bytes: &[u8]) -> Option<(u16, &[u8])> {
    let (head, rest) = bytes.split_at_checked(2)?;
    Some((u16::from_be_bytes([head[0], head[1]]), rest))
}

fn write_rrset_header(out: &mut Vec<u8>, rtype: u16, ttl: u32, count: u16) {
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
}

/// Writes one node's encoding. RRsets are given in the order they are to be stored (sorted by type); each is
/// (type, TTL, RDATA in wire form). RDATA longer than 65,535 bytes cannot exist in DNS and is cut short.
pub(crate) struct NodeWriter<'o> {
    out: &'o mut Vec<u8>,
    /// Where the current RRset's count is, and how many records it has so far.
    open: Option<(usize, u16)>,
}

impl<'o> NodeWriter<'o> {
    pub(crate) fn new(out: &'o mut Vec<u8>, name: &[u8]) -> NodeWriter<'o> {
        let name = &name[..name.len().min(MAX_NAME_LEN)];
        // A wire name is at most 255 octets.
        out.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(name);
        NodeWriter { out, open: None }
    }

    /// Starts an RRset; records follow with `record`.
    pub(crate) fn rrset(&mut self, rtype: u16, ttl: u32) {
        write_rrset_header(self.out, rtype, ttl, 0);
        self.open = Some((self.out.len() - 2, 0));
    }

    pub(crate) fn record(&mut self, rdata: &[u8]) {
        let Some((at, count)) = &mut self.open else { return };
        if *count == u16::MAX {
            return;
        }
        *count += 1;
        let rdata = &rdata[..rdata.len().min(usize::from(u16::MAX))];
        self.out.extend_from_slice(&u16::try_from(rdata.len()).unwrap_or(u16::MAX).to_be_bytes());
        self.out.extend_from_slice(rdata);
        let (at, count) = (*at, *count);
        self.out[at..at + 2].copy_from_slice(&count.to_be_bytes());
    }
}

/// Every node of a zone in one arena, with a hash index on the lower-case owner for all but small zones.
///
/// Cheap to clone (two shared pointers): a patched table keeps its predecessor's arena, and the table holds the
/// arena inline, so that a lookup in a small zone touches the table and then its bytes, nothing in between.
#[derive(Clone)]
pub(crate) struct NodeArena {
    bytes: Arc<[u8]>,
    /// `None` for zones of at most [`SCAN_NODES`] nodes, which are scanned: their bytes span a cache line or two,
    /// while a hash probe would cost a cache miss more (at 100,000 small zones, most lookups miss the cache).
    index: Option<Arc<NodeIndex>>,
}

/// Zones of up to this many nodes are scanned instead of indexed.
pub(crate) const SCAN_NODES: usize = 8;

/// Open addressing with linear probing over one array of 8-byte slots: 32 bits of the name's hash above the
/// node's offset (0 = empty). A probe reads one slot, usually in the same cache line as its neighbours, and the
/// hash bits rule out almost every other name before its bytes are read: at a million names a lookup costs the
/// slot's line and the node's, where a table with separate control bytes costs three.
struct NodeIndex {
    slots: Box<[u64]>,
    len: usize,
    hasher: RandomState,
}

impl NodeIndex {
    /// An index of (hash, offset) pairs of distinct names; at most 3/4 full.
    fn build(offsets: impl ExactSizeIterator<Item = (u64, u32)>, hasher: RandomState) -> NodeIndex {
        let len = offsets.len();
        let capacity = (len * 4 / 3 + 1).next_power_of_two().max(8);
        let mut slots = vec![0u64; capacity].into_boxed_slice();
        let mask = capacity - 1;
        for (hash, offset) in offsets {
            let mut i = low_bits(hash, mask);
            while slots[i] != 0 {
                i = (i + 1) & mask;
            }
            slots[i] = (u64::from(tag(hash)) << 32) | u64::from(offset);
        }
        NodeIndex { slots, len, hasher }
    }

    /// The offsets whose slot carries `hash`'s tag, in probe order, up to the first empty slot.
    fn candidates(&self, hash: u64) -> impl Iterator<Item = u32> + '_ {
        let mask = self.slots.len() - 1;
        let wanted = tag(hash);
        let start = low_bits(hash, mask);
        (0..self.slots.len())
            .map(move |step| self.slots[(start + step) & mask])
            .take_while(|&slot| slot != 0)
            .filter(move |&slot| (slot >> 32) as u32 == wanted)
            .map(low32)
    }

    fn offsets(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots.iter().filter(|&&slot| slot != 0).map(|&slot| low32(slot))
    }
}

/// The slot a hash starts probing at: its bits under `mask` (a power of two less one, below the table's size).
fn low_bits(hash: u64, mask: usize) -> usize {
    usize::try_from(hash & u64::try_from(mask).unwrap_or(u64::MAX)).unwrap_or(0)
}

/// A slot's offset: its low 32 bits.
fn low32(slot: u64) -> u32 {
    u32::try_from(slot & u64::from(u32::MAX)).unwrap_or(0)
}

/// A slot's hash bits: never 0, so that a used slot is never 0.
fn tag(hash: u64) -> u32 {
    (hash >> 32) as u32 | 1
}

impl std::fmt::Debug for NodeArena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeArena").field("nodes", &self.len()).field("bytes", &self.bytes.len()).finish()
    }
}

/// Builds a [`NodeArena`] one node at a time.
pub(crate) struct ArenaBuilder {
    bytes: Vec<u8>,
    offsets: Vec<u32>,
}

impl ArenaBuilder {
    pub(crate) fn with_capacity(nodes: usize, bytes: usize) -> ArenaBuilder {
        ArenaBuilder { bytes: Vec::with_capacity(bytes), offsets: Vec::with_capacity(nodes) }
    }

    /// Appends a node written by `write`; false (and nothing appended) once the arena would pass 4 GiB, which
    /// the record limits keep far away.
    pub(crate) fn push(&mut self, name: &[u8], write: impl FnOnce(&mut NodeWriter)) -> bool {
        let start = self.bytes.len();
        let Ok(offset) = u32::try_from(start) else { return false };
        self.bytes.extend_from_slice(&[0; 4]);
        let mut writer = NodeWriter::new(&mut self.bytes, name);
        write(&mut writer);
        let Ok(len) = u32::try_from(self.bytes.len() - start - 4) else {
            self.bytes.truncate(start);
            return false;
        };
        if u32::try_from(self.bytes.len()).is_err() {
            self.bytes.truncate(start);
            return false;
        }
        self.bytes[start..start + 4].copy_from_slice(&len.to_be_bytes());
        self.offsets.push(offset);
        true
    }

    /// Indexes every node. Should two nodes have the same lower-case owner, one with records wins over an empty
    /// one (an empty non-terminal), else the first wins; a small zone keeps only the winners, in order.
    pub(crate) fn finish(self) -> NodeArena {
        let hasher = RandomState::new();
        // (hash, offset) of each distinct owner; the hash is kept so that neither growth nor the index rehashes.
        let mut offsets: HashTable<(u64, u32)> = HashTable::with_capacity(self.offsets.len());
        let mut buf = [0u8; MAX_NAME_LEN];
        for offset in self.offsets {
            let Some(node) = node_at(&self.bytes, offset) else { continue };
            let lower = lower_into(node.name(), &mut buf);
            let hash = hasher.hash_one(lower);
            let bytes = &self.bytes;
            match offsets.find_mut(hash, |&(_, o)| node_at(bytes, o).is_some_and(|n| same_name(n.name(), lower))) {
                Some((_, existing)) => {
                    let empty = node_at(bytes, *existing).is_none_or(|n| n.is_empty_non_terminal());
                    if empty && !node.is_empty_non_terminal() {
                        *existing = offset;
                    }
                }
                None => {
                    offsets.insert_unique(hash, (hash, offset), |&(h, _)| h);
                }
            }
        }
        if offsets.len() <= SCAN_NODES {
            let mut winners: Vec<u32> = offsets.into_iter().map(|(_, o)| o).collect();
            winners.sort_unstable();
            let mut bytes = Vec::new();
            for o in winners {
                let start = o as usize;
                let Some(node) = node_at(&self.bytes, o) else { continue };
                bytes.extend_from_slice(&self.bytes[start..start + 4 + node.bytes.len()]);
            }
            return NodeArena { bytes: bytes.into(), index: None };
        }
        let index = NodeIndex::build(offsets.into_iter(), hasher);
        NodeArena { bytes: self.bytes.into(), index: Some(Arc::new(index)) }
    }
}

impl NodeArena {
    /// The node whose owner is `lower` (a lower-case wire name).
    pub(crate) fn get(&self, lower: &[u8]) -> Option<Node<'_>> {
        match &self.index {
            Some(index) => {
                let hash = index.hasher.hash_one(lower);
                let matches = |&o: &u32| node_at(&self.bytes, o).is_some_and(|n| same_name(n.name(), lower));
                let found = index.candidates(hash).find(|o| matches(o))?;
                node_at(&self.bytes, found)
            }
            None => self.scan().find(|n| same_name(n.name(), lower)),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match &self.index {
            Some(index) => index.len,
            None => self.scan().count(),
        }
    }

    /// Every indexed node, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Node<'_>> {
        let indexed = self.index.iter().flat_map(|i| i.offsets().filter_map(|o| node_at(&self.bytes, o)));
        let scanned = self.index.is_none().then(|| self.scan()).into_iter().flatten();
        indexed.chain(scanned)
    }

    /// The nodes in arena order.
    fn scan(&self) -> impl Iterator<Item = Node<'_>> {
        let mut offset = 0u32;
        std::iter::from_fn(move || {
            let node = node_at(&self.bytes, offset)?;
            offset = offset.checked_add(4)?.checked_add(u32::try_from(node.bytes.len()).ok()?)?;
            Some(node)
        })
    }
}

fn node_at(bytes: &[u8], offset: u32) -> Option<Node<'_>> {
    let start = usize::try_from(offset).ok()?;
    let len = u32::from_be_bytes(bytes.get(start..start + 4)?.try_into().ok()?);
    let body = bytes.get(start + 4..start + 4 + usize::try_from(len).ok()?)?;
    Some(Node { bytes: body })
}

/// Wire names compare without regard to ASCII case (RFC 4343); length octets (< 64) are never letters.
fn same_name(spelled: &[u8], lower: &[u8]) -> bool {
    spelled.eq_ignore_ascii_case(lower)
}

/// A node held on its own (a changed node in a table's overlay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OwnedNode(Box<[u8]>);

impl OwnedNode {
    pub(crate) fn build(name: &[u8], write: impl FnOnce(&mut NodeWriter)) -> OwnedNode {
        let mut bytes = Vec::new();
        let mut writer = NodeWriter::new(&mut bytes, name);
        write(&mut writer);
        OwnedNode(bytes.into_boxed_slice())
    }

    pub(crate) fn get(&self) -> Node<'_> {
        Node { bytes: &self.0 }
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use super::*;

    #[test]
    fn nodes_round_trip_and_are_found_in_any_case() {
        let mut builder = ArenaBuilder::with_capacity(2, 64);
        assert!(builder.push(b"\x03WwW\x01t\x00", |w| {
            w.rrset(1, 300);
            w.record(&[10, 0, 0, 1]);
            w.record(&[10, 0, 0, 2]);
            w.rrset(16, 60);
            w.record(b"\x02hi");
        }));
        assert!(builder.push(b"\x01e\x01t\x00", |_| {}));
        let arena = builder.finish();
        let node = arena.get(b"\x03www\x01t\x00").expect("found");
        assert_eq!(node.name(), b"\x03WwW\x01t\x00");
        let a = node.rrset(1).expect("A");
        assert_eq!((a.ttl, a.len()), (300, 2));
        assert_eq!(a.rdata().collect::<Vec<_>>(), vec![&[10, 0, 0, 1][..], &[10, 0, 0, 2][..]]);
        assert_eq!(node.rrset(16).and_then(|t| t.first()), Some(&b"\x02hi"[..]));
        assert_eq!(node.record_count(), 3);
        assert!(arena.get(b"\x01e\x01t\x00").is_some_and(|n| n.is_empty_non_terminal()));
        assert!(arena.get(b"\x01x\x01t\x00").is_none());
        let soa = a.at_ttl(5);
        assert_eq!((soa.ttl, soa.len(), soa.data), (5, 2, a.data));
    }

    /// Small zones are scanned, larger ones indexed: both find every node in any case, nothing else, and keep
    /// the node with records over an empty non-terminal of the same owner.
    #[test]
    fn scanned_and_indexed_arenas_agree() {
        for count in [1, SCAN_NODES - 1, SCAN_NODES + 1, 40, 5000] {
            let mut builder = ArenaBuilder::with_capacity(count + 1, 64);
            let names: Vec<Vec<u8>> = (0..count).map(|i| format!("\x06H{i:05}\x01t\x00").into_bytes()).collect();
            // An empty non-terminal first, then the same owner with a record: the record wins.
            assert!(builder.push(&names[0], |_| {}));
            for (i, name) in names.iter().enumerate() {
                assert!(builder.push(name, |w| {
                    w.rrset(1, 60);
                    w.record(&[10, 0, 0, i as u8]);
                }));
            }
            let arena = builder.finish();
            assert_eq!(arena.index.is_none(), count <= SCAN_NODES, "{count} nodes");
            assert_eq!((arena.len(), arena.iter().count()), (count, count));
            for (i, name) in names.iter().enumerate() {
                let lower = name.to_ascii_lowercase();
                let node = arena.get(&lower).expect("found");
                assert_eq!(node.rrset(1).and_then(|a| a.first()), Some(&[10, 0, 0, i as u8][..]));
            }
            assert!(arena.get(b"\x06h99999\x01t\x00").is_none());
        }
    }

    #[test]
    fn truncated_encodings_read_as_fewer_records_not_panics() {
        let node = OwnedNode::build(b"\x01a\x00", |w| {
            w.rrset(1, 1);
            w.record(&[1, 2, 3, 4]);
        });
        for cut in 0..node.0.len() {
            let short = Node { bytes: &node.0[..cut] };
            let _ = short.name();
            let _ = short.rrsets().flat_map(|s| s.rdata().collect::<Vec<_>>()).count();
        }
    }
}
