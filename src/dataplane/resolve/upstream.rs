//! What comes back from a route's servers, as the cache keeps it: hickory's records as owned wire records, the
//! rcode, and how long the answer may be cached (RFC 2308 for negative ones).

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use hickory_resolver::net::NetError;

use crate::dataplane::respond::{OwnedRr, Resolved};
use crate::dns::rdata::rtype;
use crate::dns::Rcode;

/// The longest a cached answer is kept, whatever its TTL (BIND's `max-cache-ttl` default is a week; a day here).
const MAX_CACHE_TTL: u32 = 86_400;
/// Negative answers without an SOA are cached this long (RFC 2308 §5 leaves it to the resolver).
const NEGATIVE_WITHOUT_SOA: u32 = 30;

/// How long an answer may be cached: its smallest TTL (positive), or the negative TTL of its SOA (RFC 2308 §5:
/// min(SOA TTL, SOA MINIMUM)); at most a day.
pub(super) fn cache_ttl(resolved: &Resolved) -> u32 {
    let positive = !resolved.answers.is_empty() && resolved.rcode == Rcode::NoError;
    let ttl = if positive {
        resolved.answers.iter().map(|rr| rr.ttl).min().unwrap_or(0)
    } else {
        resolved
            .authority
            .iter()
            .find(|rr| rr.rtype == rtype::SOA)
            .map(|soa| soa.ttl.min(soa_minimum(&soa.rdata).unwrap_or(soa.ttl)))
            .unwrap_or(NEGATIVE_WITHOUT_SOA)
    };
    ttl.min(MAX_CACHE_TTL)
}

/// The MINIMUM field of an uncompressed SOA RDATA: its last four bytes.
fn soa_minimum(rdata: &[u8]) -> Option<u32> {
    let tail = rdata.get(rdata.len().checked_sub(4)?..)?;
    Some(u32::from_be_bytes([tail[0], tail[1], tail[2], tail[3]]))
}

pub(super) fn is_timeout(e: &NetError) -> bool {
    matches!(e, NetError::Timeout) || e.to_string().contains("timed out")
}

/// A response's sections as owned records (names uncompressed), with its rcode.
pub(super) fn from_message(code: ResponseCode, answers: &[Record], authority: &[Record]) -> Resolved {
    let rcode = match code {
        ResponseCode::NoError => Rcode::NoError,
        ResponseCode::NXDomain => Rcode::NxDomain,
        ResponseCode::Refused => Rcode::Refused,
        _ => Rcode::ServFail,
    };
    let owned = |records: &[Record], only_soa: bool| -> Vec<OwnedRr> {
        records.iter().filter(|r| !only_soa || r.record_type() == RecordType::SOA).filter_map(owned_record).collect()
    };
    Resolved { rcode, answers: owned(answers, false), authority: owned(authority, true), ede: None }
}

/// One record with its owner and RDATA as uncompressed wire bytes.
fn owned_record(record: &Record) -> Option<OwnedRr> {
    let owner = record.name.to_bytes().ok()?;
    let mut rdata = Vec::new();
    let mut encoder = BinEncoder::new(&mut rdata);
    // Canonical form: no compression pointers inside RDATA copied into another message.
    encoder.set_canonical_form(true);
    record.data.emit(&mut encoder).ok()?;
    Some(OwnedRr { owner: owner.into(), rtype: u16::from(record.record_type()), ttl: record.ttl, rdata: rdata.into() })
}

/// A hickory name from a wire name.
pub(super) fn name_of(wire: &[u8]) -> Option<Name> {
    let mut labels = Vec::new();
    let mut pos = 0;
    while let Some(&len) = wire.get(pos) {
        if len == 0 {
            let mut name = Name::from_labels(labels).ok()?;
            name.set_fqdn(true);
            return Some(name);
        }
        labels.push(wire.get(pos + 1..pos + 1 + len as usize)?);
        pos += 1 + len as usize;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::resolve::lower;

    fn rr(rtype: u16, ttl: u32, rdata: &[u8]) -> OwnedRr {
        OwnedRr { owner: Box::new([]), rtype, ttl, rdata: rdata.into() }
    }

    #[test]
    fn positive_answers_live_for_their_smallest_ttl_negative_for_the_soa() {
        let positive = Resolved {
            rcode: Rcode::NoError,
            answers: vec![rr(rtype::A, 300, &[1, 2, 3, 4]), rr(rtype::A, 60, &[1, 2, 3, 5])],
            authority: vec![],
            ede: None,
        };
        assert_eq!(cache_ttl(&positive), 60);
        // SOA TTL 3600, MINIMUM 120: the negative TTL is 120 (RFC 2308 §5).
        let mut soa = b"\x02ns\x00\x04host\x00".to_vec();
        soa.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 120]);
        let negative = Resolved {
            rcode: Rcode::NxDomain,
            answers: vec![],
            authority: vec![rr(rtype::SOA, 3600, &soa)],
            ede: None,
        };
        assert_eq!(cache_ttl(&negative), 120);
        let bare = Resolved { rcode: Rcode::NxDomain, answers: vec![], authority: vec![], ede: None };
        assert_eq!(cache_ttl(&bare), NEGATIVE_WITHOUT_SOA);
        let huge = Resolved { rcode: Rcode::NoError, answers: vec![rr(rtype::A, u32::MAX, &[1, 2, 3, 4])], ..bare };
        assert_eq!(cache_ttl(&huge), MAX_CACHE_TTL);
    }

    #[test]
    fn wire_names_convert_both_ways() {
        let name = name_of(b"\x03www\x07example\x00").expect("name");
        assert_eq!(name.to_string(), "www.example.");
        assert_eq!(lower(b"\x03WWW\x07Example\x00").as_deref(), Some(&b"\x03www\x07example\x00"[..]));
        assert_eq!(name_of(b"\x03ww"), None);
    }
}
