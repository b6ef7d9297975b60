//! The wire format. This file decodes: raw bytes → a validated [`Query`] borrowing from the packet, or the reason
//! it cannot be one; `encode` writes responses.
//!
//! Hand-written and allocation-free because it runs for every packet, including hostile ones: every length and
//! pointer is checked before use, compression pointers must point backwards and chains are bounded, and the whole
//! message (every record of every section) is walked so that lying counts are caught. It decodes only; the
//! decisions about what to answer live in `respond`.
// Lengths and counts here become wire fields: a cast that could truncate one must say why it cannot.
#![deny(clippy::cast_possible_truncation)]

mod encode;

pub use encode::{opt_len, set_count, write_header, write_opt, Encoder, Owner};

use crate::dns::cookie::{ClientCookie, OPTION_COOKIE};
use crate::dns::name::{MAX_LABEL_LEN, MAX_NAME_LEN};
use crate::dns::rdata::rtype;

/// Header flag bits (RFC 1035 §4.1.1).
pub(crate) const FLAG_QR: u16 = 0x8000;
pub(crate) const FLAG_AA: u16 = 0x0400;
pub(crate) const FLAG_TC: u16 = 0x0200;
pub(crate) const FLAG_RD: u16 = 0x0100;
pub(crate) const FLAG_RA: u16 = 0x0080;
pub(crate) const FLAG_CD: u16 = 0x0010;
/// Length of the DNS header.
pub(crate) const HEADER_LEN: usize = 12;
/// At most this many compression pointers are followed in one name.
const MAX_POINTER_HOPS: usize = 64;

/// EDNS(0) as the client sent it (RFC 6891).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    pub udp_size: u16,
    pub version: u8,
    pub dnssec_ok: bool,
    /// The client's COOKIE option (RFC 7873), when it sent one.
    pub cookie: Option<ClientCookie>,
}

/// A well-formed query with exactly one question.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    pub id: u16,
    pub opcode: u8,
    /// The request's flags word, for the bits a response copies (RD, CD).
    pub flags: u16,
    /// The question section's bytes (name, type, class), echoed verbatim in the response.
    pub question: &'a [u8],
    /// The question name in uncompressed wire form, in the client's case.
    pub qname: &'a [u8],
    pub qtype: u16,
    pub qclass: u16,
    pub edns: Option<Edns>,
}

/// Why a packet is not a query we answer normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than a header, or a response (QR=1): never answered, so that no packet loop can form.
    Drop,
    /// Malformed: answered FORMERR with the request's id, opcode and flags, and its question when that much was
    /// well-formed (`question_end` is where the question section ends in the packet).
    FormErr { id: u16, flags: u16, question_end: Option<usize> },
    /// No question, but a client cookie: the client asks for a server cookie (RFC 7873 §5.4), answered NOERROR.
    CookieOnly { id: u16, flags: u16, edns: Edns },
}

fn u16_at(b: &[u8], pos: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(pos)?, *b.get(pos + 1)?]))
}

/// Decodes a query. The header byte is checked before anything else is parsed.
pub fn decode(packet: &[u8]) -> Result<Query<'_>, DecodeError> {
    if packet.len() < HEADER_LEN {
        return Err(DecodeError::Drop);
    }
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    let flags = u16::from_be_bytes([packet[2], packet[3]]);
    if flags & FLAG_QR != 0 {
        return Err(DecodeError::Drop);
    }
    let formerr = DecodeError::FormErr { id, flags, question_end: None };
    let count = |i: usize| u16::from_be_bytes([packet[4 + 2 * i], packet[5 + 2 * i]]);
    let (qd, an, ns, ar) = (count(0), count(1), count(2), count(3));
    if qd > 1 {
        return Err(formerr);
    }
    let (qname_end, question_end) = if qd == 1 {
        let name_len = question_name_len(packet, HEADER_LEN).ok_or(formerr)?;
        (HEADER_LEN + name_len, HEADER_LEN + name_len + 4)
    } else {
        (HEADER_LEN, HEADER_LEN)
    };
    let qtype = if qd == 1 { u16_at(packet, qname_end).ok_or(formerr)? } else { 0 };
    let qclass = if qd == 1 { u16_at(packet, qname_end + 2).ok_or(formerr)? } else { 0 };
    let formerr = DecodeError::FormErr { id, flags, question_end: (qd == 1).then_some(question_end) };
    let edns = read_sections(packet, question_end, [an, ns, ar]).ok_or(formerr)?;
    if qd == 0 {
        // Only a cookie exchange may come without a question (RFC 7873 §5.4).
        return match edns {
            Some(edns) if edns.cookie.is_some() => Err(DecodeError::CookieOnly { id, flags, edns }),
            _ => Err(formerr),
        };
    }
    Ok(Query {
        id,
        opcode: ((flags >> 11) & 0xF) as u8,
        flags,
        question: &packet[HEADER_LEN..question_end],
        qname: &packet[HEADER_LEN..qname_end],
        qtype,
        qclass,
        edns,
    })
}

/// The question name must be uncompressed: nothing precedes it that a pointer could validly reach.
fn question_name_len(packet: &[u8], start: usize) -> Option<usize> {
    let mut pos = start;
    loop {
        let len = *packet.get(pos)? as usize;
        if len > MAX_LABEL_LEN {
            return None; // a pointer (0xC0) or a reserved label type (0x40, 0x80)
        }
        pos += 1 + len;
        if pos - start > MAX_NAME_LEN {
            return None;
        }
        if len == 0 {
            return Some(pos - start);
        }
    }
}

struct RawRr<'a> {
    rtype: u16,
    class: u16,
    ttl: u32,
    rdata: &'a [u8],
    root_owner: bool,
    end: usize,
}

fn read_rr(packet: &[u8], start: usize) -> Option<RawRr<'_>> {
    let (after_name, root_owner) = skip_name(packet, start)?;
    let rtype = u16_at(packet, after_name)?;
    let class = u16_at(packet, after_name + 2)?;
    let ttl = (u16_at(packet, after_name + 4)? as u32) << 16 | u16_at(packet, after_name + 6)? as u32;
    let rdlength = u16_at(packet, after_name + 8)? as usize;
    let rdata_start = after_name + 10;
    let rdata = packet.get(rdata_start..rdata_start + rdlength)?;
    Some(RawRr { rtype, class, ttl, rdata, root_owner, end: rdata_start + rdlength })
}

/// Walks a possibly compressed name; returns the offset after it (in the record) and whether it is the root.
/// Pointers must point strictly backwards, hops are bounded and the expanded name must fit 255 octets.
fn skip_name(packet: &[u8], start: usize) -> Option<(usize, bool)> {
    let mut pos = start;
    let mut end_in_record = None;
    let mut expanded = 0usize;
    let mut hops = 0usize;
    let mut labels = 0usize;
    loop {
        let len = *packet.get(pos)? as usize;
        match len & 0xC0 {
            0x00 => {
                expanded += 1 + len;
                if expanded > MAX_NAME_LEN {
                    return None;
                }
                if len == 0 {
                    let end = end_in_record.unwrap_or(pos + 1);
                    return Some((end, labels == 0));
                }
                labels += 1;
                pos += 1 + len;
            }
            0xC0 => {
                let target = (u16_at(packet, pos)? & 0x3FFF) as usize;
                hops += 1;
                if target >= pos || hops > MAX_POINTER_HOPS {
                    return None;
                }
                end_in_record.get_or_insert(pos + 2);
                pos = target;
            }
            _ => return None, // 0x40 and 0x80 label types are not supported (RFC 6891 §5)
        }
    }
}

/// Walks every record of the answer, authority and additional sections; returns the EDNS they carry, or `None`
/// when any is malformed: a record past the end, an OPT outside the additional section, two OPTs, an OPT with a
/// non-root owner (RFC 6891 §6.1.1), or malformed options.
fn read_sections(packet: &[u8], start: usize, counts: [u16; 3]) -> Option<Option<Edns>> {
    let mut pos = start;
    let mut edns = None;
    for (section, n) in counts.into_iter().enumerate() {
        for _ in 0..n {
            let rr = read_rr(packet, pos)?;
            if rr.rtype == rtype::OPT {
                if section != 2 || edns.is_some() || !rr.root_owner {
                    return None;
                }
                edns = Some(Edns {
                    udp_size: rr.class,
                    version: rr.ttl.to_be_bytes()[1],
                    dnssec_ok: rr.ttl & 0x8000 != 0,
                    cookie: read_options(rr.rdata)?,
                });
            }
            pos = rr.end;
        }
    }
    Some(edns)
}

/// EDNS options: each a code and a length that fit inside the OPT RDATA. Returns the COOKIE, if any; `None` when
/// malformed (a cookie of a length RFC 7873 §5.2.2 forbids included).
fn read_options(mut rdata: &[u8]) -> Option<Option<ClientCookie>> {
    let mut cookie = None;
    while !rdata.is_empty() {
        let code = u16_at(rdata, 0)?;
        let len = u16_at(rdata, 2)? as usize;
        let data = rdata.get(4..4 + len)?;
        if code == OPTION_COOKIE && cookie.is_none() {
            cookie = Some(ClientCookie::parse(data)?);
        }
        rdata = &rdata[4 + len..];
    }
    Some(cookie)
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use super::*;

    fn query(name: &[u8], qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(name);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        q
    }

    #[test]
    fn decodes_a_plain_query() {
        let q = query(b"\x03www\x04corp\x08internal\x00", 1);
        let d = decode(&q).unwrap();
        assert_eq!(d.id, 0x1234);
        assert_eq!(d.qname, b"\x03www\x04corp\x08internal\x00");
        assert_eq!(d.qtype, 1);
        assert!(d.edns.is_none());
    }

    #[test]
    fn drops_short_packets_and_responses() {
        assert_eq!(decode(&[0; 11]).unwrap_err(), DecodeError::Drop);
        let mut q = query(b"\x00", 1);
        q[2] |= 0x80;
        assert_eq!(decode(&q).unwrap_err(), DecodeError::Drop);
    }

    #[test]
    fn reads_edns_and_rejects_bad_opt() {
        let mut q = query(b"\x00", 1);
        q[11] = 1;
        q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0]);
        let d = decode(&q).unwrap();
        assert_eq!(d.edns.unwrap().udp_size, 1232);
        assert!(d.edns.unwrap().dnssec_ok);
        // Two OPT records.
        let mut two = q.clone();
        two[11] = 2;
        two.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        assert!(matches!(decode(&two), Err(DecodeError::FormErr { .. })));
        // Counts larger than the records present.
        let mut lying = q.clone();
        lying[11] = 3;
        assert!(matches!(decode(&lying), Err(DecodeError::FormErr { .. })));
    }

    #[test]
    fn rejects_pointer_loops_and_forward_pointers() {
        let mut q = query(b"\x00", 1);
        q[7] = 1; // one answer record whose owner points at itself
        let at = q.len() as u16;
        q.extend_from_slice(&(0xC000 | at).to_be_bytes());
        q.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert!(matches!(decode(&q), Err(DecodeError::FormErr { .. })));
        let mut p = query(b"\xC0\x0C", 1);
        p.truncate(p.len());
        assert!(matches!(decode(&p), Err(DecodeError::FormErr { .. })));
    }
}
