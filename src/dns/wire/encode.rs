//! Response encoding: the header, our OPT record, and records with name compression (RFC 1035 §4.1.4). It writes
//! what it is told; which records go in, and what is truncated, is `respond`'s policy.
// Lengths and counts here become wire fields: a cast that could truncate one must say why it cannot.
#![deny(clippy::cast_possible_truncation)]

use smallvec::SmallVec;

use super::{FLAG_AA, FLAG_CD, FLAG_QR, FLAG_RD, HEADER_LEN};
use crate::dns::cookie::{self, CookieReply};
use crate::dns::name::wire_len;
use crate::dns::rdata::rtype;
use crate::dns::{Ede, Rcode};

use super::Edns;

/// The class of every record we write.
pub(super) const CLASS_IN: u16 = 1;
/// EDNS option code of Extended DNS Errors (RFC 8914).
pub(super) const EDNS_OPTION_EDE: u16 = 15;
/// The size of our OPT record with no options.
const OPT_LEN: usize = 11;
/// A compression pointer to the question's name, right after the header.
const QNAME_POINTER: [u8; 2] = [0xC0, 12];
const _: () = assert!(HEADER_LEN == 12);
/// At most this many name positions are remembered for compression: bounds the CPU one response can cost.
const MAX_COMPRESSION_ENTRIES: usize = 64;

/// The owner name a record is written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner<'s> {
    /// The query name exactly as the client wrote it (written as a pointer to the question).
    QName,
    /// An uncompressed wire name (a CNAME target, an additional-section name, an apex).
    Name(&'s [u8]),
}

/// Writes a response header: QR, the request's opcode, RD and CD copied, the rcode's low four bits, AA when
/// `authoritative`; one question or none, every other count zero (the caller sets them).
pub fn write_header(out: &mut Vec<u8>, id: u16, request_flags: u16, rcode: Rcode, qdcount: u16, authoritative: bool) {
    let mut flags = FLAG_QR | (request_flags & (0x7800 | FLAG_RD | FLAG_CD)) | (rcode as u16 & 0xF);
    if authoritative {
        flags |= FLAG_AA;
    }
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&qdcount.to_be_bytes());
    out.extend_from_slice(&[0; 6]);
}

/// Our OPT record: our UDP size, the extended rcode bits, DO echoed, a COOKIE when the client sent one, and an
/// Extended DNS Error if any. No other option is ever echoed.
pub fn write_opt(
    out: &mut Vec<u8>,
    udp_size: u16,
    rcode: Rcode,
    edns: Edns,
    ede: Option<Ede>,
    cookie: Option<&CookieReply>,
) {
    let ext_rcode = u32::from(rcode as u16 >> 4);
    let ttl = (ext_rcode << 24) | if edns.dnssec_ok { 0x8000 } else { 0 };
    out.push(0);
    out.extend_from_slice(&rtype::OPT.to_be_bytes());
    out.extend_from_slice(&udp_size.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    let rdlen = opt_len(ede, cookie) - OPT_LEN;
    out.extend_from_slice(&u16_len(rdlen).to_be_bytes());
    if let Some(c) = cookie {
        out.extend_from_slice(&cookie::OPTION_COOKIE.to_be_bytes());
        out.extend_from_slice(&u16_len(c.client.len() + c.server.len()).to_be_bytes());
        out.extend_from_slice(&c.client);
        out.extend_from_slice(&c.server);
    }
    if let Some(ede) = ede {
        out.extend_from_slice(&EDNS_OPTION_EDE.to_be_bytes());
        out.extend_from_slice(&u16_len(2 + ede.text.len()).to_be_bytes());
        out.extend_from_slice(&ede.code.to_be_bytes());
        out.extend_from_slice(ede.text.as_bytes());
    }
}

/// The size of our OPT record carrying `ede` and `cookie`.
pub fn opt_len(ede: Option<Ede>, cookie: Option<&CookieReply>) -> usize {
    OPT_LEN + ede.map_or(0, |e| 6 + e.text.len()) + cookie.map_or(0, |c| 4 + c.client.len() + c.server.len())
}

/// Sets the 16-bit field at `at` of a message we are writing (a count, the flags, a length).
pub fn set_count(out: &mut [u8], at: usize, value: u16) {
    if let Some(field) = out.get_mut(at..at + 2) {
        field.copy_from_slice(&value.to_be_bytes());
    }
}

/// A length we wrote ourselves, as the 16-bit field the format has: every message we write is at most 65535 bytes,
/// so the saturation never happens.
fn u16_len(len: usize) -> u16 {
    u16::try_from(len).unwrap_or(u16::MAX)
}

/// Writes records after the question, compressing only the names RFC 3597 §4 allows.
pub struct Encoder<'o> {
    out: &'o mut Vec<u8>,
    /// Offsets of names (or name suffixes) already in the message, case as written.
    names: SmallVec<[u16; 16]>,
}

/// A point an [`Encoder`] can go back to (a record set that did not fit).
#[derive(Clone, Copy)]
pub(crate) struct Mark {
    len: usize,
    names: usize,
}

impl<'o> Encoder<'o> {
    /// An encoder for a message whose question (name `qname`) follows the header; its name is known for
    /// compression from the start.
    pub fn new(out: &'o mut Vec<u8>, qname: &[u8]) -> Encoder<'o> {
        let mut names = SmallVec::new();
        let mut pos = 0;
        while let Some(&len) = qname.get(pos).filter(|&&len| len != 0) {
            if let Ok(at) = u16::try_from(HEADER_LEN + pos) {
                names.push(at);
            }
            pos += 1 + len as usize;
        }
        Encoder { out, names }
    }

    /// How many bytes of the message are written so far.
    pub fn written(&self) -> usize {
        self.out.len()
    }

    pub(crate) fn mark(&self) -> Mark {
        Mark { len: self.out.len(), names: self.names.len() }
    }

    /// Takes back everything written since `mark`.
    pub(crate) fn rollback(&mut self, mark: Mark) {
        self.out.truncate(mark.len);
        self.names.truncate(mark.names);
    }

    /// The message, to finish (counts, flags, OPT).
    pub fn out(&mut self) -> &mut Vec<u8> {
        self.out
    }

    /// One record.
    pub fn record(&mut self, owner: Owner, rtype: u16, ttl: u32, rdata: &[u8]) {
        match owner {
            Owner::QName => self.out.extend_from_slice(&QNAME_POINTER),
            Owner::Name(name) => self.name(name),
        }
        self.out.extend_from_slice(&rtype.to_be_bytes());
        self.out.extend_from_slice(&CLASS_IN.to_be_bytes());
        self.out.extend_from_slice(&ttl.to_be_bytes());
        let len_at = self.out.len();
        self.out.extend_from_slice(&[0, 0]);
        self.rdata(rtype, rdata);
        let len = u16_len(self.out.len() - len_at - 2);
        set_count(self.out, len_at, len);
    }

    fn rdata(&mut self, rtype: u16, rdata: &[u8]) {
        let split = |at: usize| rdata.split_at_checked(at).filter(|(_, rest)| !rest.is_empty());
        match rtype {
            rtype::NS | rtype::CNAME | rtype::PTR => self.name(rdata),
            rtype::MX => match split(2) {
                Some((pref, name)) => {
                    self.out.extend_from_slice(pref);
                    self.name(name);
                }
                None => self.out.extend_from_slice(rdata),
            },
            rtype::SOA => {
                let mname = wire_len(rdata);
                let rname = mname.and_then(|m| rdata.get(m..)).and_then(wire_len);
                match (mname, rname) {
                    (Some(m), Some(r)) => {
                        self.name(&rdata[..m]);
                        self.name(&rdata[m..m + r]);
                        self.out.extend_from_slice(&rdata[m + r..]);
                    }
                    _ => self.out.extend_from_slice(rdata),
                }
            }
            _ => self.out.extend_from_slice(rdata),
        }
    }

    /// Writes an uncompressed wire name, replacing its longest suffix already in the message by a pointer.
    fn name(&mut self, name: &[u8]) {
        let mut pos = 0;
        while let Some(&len) = name.get(pos).filter(|&&len| len != 0) {
            let Some(label) = name.get(pos..pos + 1 + len as usize) else { break };
            let suffix = &name[pos..];
            if let Some(&at) = self.names.iter().find(|&&at| self.matches(at as usize, suffix)) {
                self.out.extend_from_slice(&(0xC000 | at).to_be_bytes());
                return;
            }
            match u16::try_from(self.out.len()) {
                Ok(here) if here < 0x3FFF && self.names.len() < MAX_COMPRESSION_ENTRIES => self.names.push(here),
                _ => {}
            }
            self.out.extend_from_slice(label);
            pos += 1 + len as usize;
        }
        self.out.push(0);
    }

    /// True when the (possibly compressed) name at `at` in the message equals `suffix` byte for byte: compression is
    /// case-sensitive, as in BIND, so every name keeps the case its zone (or the client) gave it.
    fn matches(&self, mut at: usize, suffix: &[u8]) -> bool {
        let msg = &self.out[..];
        let mut pos = 0;
        for _ in 0..=MAX_COMPRESSION_ENTRIES * 2 {
            let Some(&len) = msg.get(at) else { return false };
            if len & 0xC0 == 0xC0 {
                let Some(&low) = msg.get(at + 1) else { return false };
                at = (((len & 0x3F) as usize) << 8) | low as usize;
                continue;
            }
            let len = len as usize;
            let (Some(mine), Some(theirs)) = (suffix.get(pos..pos + 1 + len), msg.get(at..at + 1 + len)) else {
                return false;
            };
            if mine != theirs {
                return false;
            }
            if len == 0 {
                return true;
            }
            pos += 1 + len;
            at += 1 + len;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_compressed_against_the_question_case_sensitively() {
        let qname = b"\x03www\x04corp\x00";
        let mut out = Vec::new();
        write_header(&mut out, 7, 0x0100, Rcode::NoError, 1, true);
        out.extend_from_slice(qname);
        out.extend_from_slice(&[0, 1, 0, 1]);
        let mut enc = Encoder::new(&mut out, qname);
        enc.record(Owner::QName, rtype::CNAME, 60, b"\x04mail\x04corp\x00");
        enc.record(Owner::Name(b"\x04mail\x04CORP\x00"), rtype::A, 60, &[10, 0, 0, 1]);
        let out = enc.out();
        // The CNAME target ends in a pointer to "corp" in the question; "CORP" differs in case and is written out.
        assert!(out.windows(2).any(|w| w == [0xC0, 16]));
        assert!(out.windows(4).any(|w| w == b"CORP"));
        assert_eq!(out[2] & 0x84, 0x84, "QR and AA");
        assert_eq!(out[3] & 0x01, 0x00, "RD is not RA");
    }

    #[test]
    fn a_rollback_forgets_the_names_it_wrote() {
        let mut out = vec![0; HEADER_LEN];
        let mut enc = Encoder::new(&mut out, b"\x00");
        let mark = enc.mark();
        enc.record(Owner::Name(b"\x01a\x00"), rtype::A, 1, &[1, 2, 3, 4]);
        enc.rollback(mark);
        assert_eq!(enc.written(), HEADER_LEN);
        enc.record(Owner::Name(b"\x01a\x00"), rtype::A, 1, &[1, 2, 3, 4]);
        assert_eq!(&enc.out()[HEADER_LEN..HEADER_LEN + 3], b"\x01a\x00", "written out again, not a dangling pointer");
    }

    #[test]
    fn opt_carries_ede_and_cookie() {
        let edns = Edns { udp_size: 4096, version: 0, dnssec_ok: true, cookie: None };
        let cookie = CookieReply { client: [1; 8], server: [2; cookie::SERVER_COOKIE_LEN], valid: true };
        let ede = Ede { code: 18, text: "x" };
        let mut out = Vec::new();
        write_opt(&mut out, 1232, Rcode::BadVers, edns, Some(ede), Some(&cookie));
        assert_eq!(out.len(), opt_len(Some(ede), Some(&cookie)));
        assert_eq!(&out[3..5], &1232u16.to_be_bytes());
        assert_eq!(out[5], 1, "extended rcode bits of BADVERS");
        assert_eq!(out[7] & 0x80, 0x80, "DO echoed");
    }
}
