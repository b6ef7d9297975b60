//! Record data (RDATA): typed values for the record types vpcdns serves, their presentation-format parsing
//! (RFC 1035 §5.1, RFC 3597 generic `\#` form), their presentation-format printing and their uncompressed wire form.
//!
//! This module must not do I/O and must not know about zones (which names belong where, CNAME rules, duplicates…):
//! it only turns tokens or wire octets into one record's data and back. It must never panic on input: every
//! malformed token or octet becomes an [`RDataError`]. Tokens come from the zone-file tokenizer
//! ([`crate::dns::text::Token`], re-exported here as [`Token`]).

use std::borrow::Cow;

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::dns::name::{Name, NameError};
pub use crate::dns::text::Token;

#[cfg(test)]
mod tests;
mod text;
mod wire;

use text::{decimal, parse_generic, parse_typed};
pub use text::{parse_ttl, unescape};
use wire::{caa_from_wire, soa_from_wire, WireReader};

/// Resource record type numbers (IANA "Resource Record (RR) TYPEs").
pub mod rtype {
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const CNAME: u16 = 5;
    pub const SOA: u16 = 6;
    pub const NULL: u16 = 10;
    pub const PTR: u16 = 12;
    pub const HINFO: u16 = 13;
    pub const MX: u16 = 15;
    pub const TXT: u16 = 16;
    pub const AAAA: u16 = 28;
    pub const SRV: u16 = 33;
    pub const NAPTR: u16 = 35;
    pub const DNAME: u16 = 39;
    pub const OPT: u16 = 41;
    pub const DS: u16 = 43;
    pub const SSHFP: u16 = 44;
    pub const RRSIG: u16 = 46;
    pub const NSEC: u16 = 47;
    pub const DNSKEY: u16 = 48;
    pub const NSEC3: u16 = 50;
    pub const NSEC3PARAM: u16 = 51;
    pub const TLSA: u16 = 52;
    pub const SVCB: u16 = 64;
    pub const HTTPS: u16 = 65;
    pub const SPF: u16 = 99;
    pub const TKEY: u16 = 249;
    pub const TSIG: u16 = 250;
    pub const IXFR: u16 = 251;
    pub const AXFR: u16 = 252;
    pub const MAILB: u16 = 253;
    pub const MAILA: u16 = 254;
    pub const ANY: u16 = 255;
    pub const URI: u16 = 256;
    pub const CAA: u16 = 257;
}

/// IANA mnemonics, so that every registered type is at least recognised by name.
const MNEMONICS: &[(u16, &str)] = &[
    (1, "A"),
    (2, "NS"),
    (3, "MD"),
    (4, "MF"),
    (5, "CNAME"),
    (6, "SOA"),
    (7, "MB"),
    (8, "MG"),
    (9, "MR"),
    (10, "NULL"),
    (11, "WKS"),
    (12, "PTR"),
    (13, "HINFO"),
    (14, "MINFO"),
    (15, "MX"),
    (16, "TXT"),
    (17, "RP"),
    (18, "AFSDB"),
    (19, "X25"),
    (20, "ISDN"),
    (21, "RT"),
    (22, "NSAP"),
    (23, "NSAP-PTR"),
    (24, "SIG"),
    (25, "KEY"),
    (26, "PX"),
    (27, "GPOS"),
    (28, "AAAA"),
    (29, "LOC"),
    (30, "NXT"),
    (31, "EID"),
    (32, "NIMLOC"),
    (33, "SRV"),
    (34, "ATMA"),
    (35, "NAPTR"),
    (36, "KX"),
    (37, "CERT"),
    (38, "A6"),
    (39, "DNAME"),
    (40, "SINK"),
    (41, "OPT"),
    (42, "APL"),
    (43, "DS"),
    (44, "SSHFP"),
    (45, "IPSECKEY"),
    (46, "RRSIG"),
    (47, "NSEC"),
    (48, "DNSKEY"),
    (49, "DHCID"),
    (50, "NSEC3"),
    (51, "NSEC3PARAM"),
    (52, "TLSA"),
    (53, "SMIMEA"),
    (55, "HIP"),
    (56, "NINFO"),
    (57, "RKEY"),
    (58, "TALINK"),
    (59, "CDS"),
    (60, "CDNSKEY"),
    (61, "OPENPGPKEY"),
    (62, "CSYNC"),
    (63, "ZONEMD"),
    (64, "SVCB"),
    (65, "HTTPS"),
    (66, "DSYNC"),
    (99, "SPF"),
    (100, "UINFO"),
    (101, "UID"),
    (102, "GID"),
    (103, "UNSPEC"),
    (104, "NID"),
    (105, "L32"),
    (106, "L64"),
    (107, "LP"),
    (108, "EUI48"),
    (109, "EUI64"),
    (128, "NXNAME"),
    (249, "TKEY"),
    (250, "TSIG"),
    (251, "IXFR"),
    (252, "AXFR"),
    (253, "MAILB"),
    (254, "MAILA"),
    (255, "ANY"),
    (256, "URI"),
    (257, "CAA"),
    (258, "AVC"),
    (259, "DOA"),
    (260, "AMTRELAY"),
    (261, "RESINFO"),
    (262, "WALLET"),
    (263, "CLA"),
    (264, "IPN"),
    (32768, "TA"),
    (32769, "DLV"),
];

/// The longest RDATA a record can carry (RDLENGTH is 16 bits).
pub const MAX_RDATA_LEN: usize = 65535;
/// The longest character-string (RFC 1035 §3.3).
pub const MAX_CHAR_STRING: usize = 255;

/// The type number for a mnemonic (case-insensitive) or an RFC 3597 `TYPEnnn` form.
pub fn type_from_mnemonic(s: &str) -> Option<u16> {
    if let Some(number) = generic_type_number(s) {
        return Some(number);
    }
    MNEMONICS.iter().find(|(_, m)| m.eq_ignore_ascii_case(s)).map(|(t, _)| *t)
}

/// `TYPEnnn` with 1 to 5 decimal digits and a value that fits 16 bits.
fn generic_type_number(s: &str) -> Option<u16> {
    let prefix = s.get(..4)?;
    let digits = s.get(4..)?;
    if !prefix.eq_ignore_ascii_case("TYPE") || digits.is_empty() || digits.len() > 5 {
        return None;
    }
    decimal(digits).and_then(|n| u16::try_from(n).ok())
}

/// The IANA mnemonic, or `TYPEnnn` for a number without one.
pub fn type_name(t: u16) -> Cow<'static, str> {
    match known_mnemonic(t) {
        Some(m) => Cow::Borrowed(m),
        None => Cow::Owned(format!("TYPE{t}")),
    }
}

/// The IANA mnemonic of a registered type.
pub fn known_mnemonic(t: u16) -> Option<&'static str> {
    MNEMONICS.iter().find(|(n, _)| *n == t).map(|(_, m)| *m)
}

/// OPT and the query/meta range 128..=255 (RFC 6895 §3.1) never hold zone data.
pub fn is_meta_type(t: u16) -> bool {
    t == rtype::OPT || (128..=255).contains(&t)
}

/// One resource record of class IN, as read from a zone file.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Record {
    pub owner: Name,
    pub ttl: u32,
    pub rdata: RData,
}

impl Record {
    /// The record's size in a message without compression: owner, type, class, TTL, length and data (what a
    /// byte quota counts).
    pub fn wire_size(&self) -> usize {
        self.owner.wire().len() + 10 + self.rdata.wire_len()
    }
}

/// SOA RDATA (RFC 1035 §3.3.13).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Soa {
    pub mname: Name,
    pub rname: Name,
    pub serial: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
}

/// HINFO RDATA: two character-strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hinfo {
    pub cpu: Box<[u8]>,
    pub os: Box<[u8]>,
}

/// CAA RDATA (RFC 8659).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caa {
    pub flags: u8,
    pub tag: Box<[u8]>,
    pub value: Box<[u8]>,
}

/// The data of one record.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Ns(Name),
    Cname(Name),
    Ptr(Name),
    Dname(Name),
    Mx {
        preference: u16,
        exchange: Name,
    },
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: Name,
    },
    /// Boxed, as are HINFO and CAA: rare types kept out of line so that every record stays small.
    Soa(Box<Soa>),
    /// One or more character-strings, each at most 255 octets.
    Txt(Vec<Box<[u8]>>),
    Hinfo(Box<Hinfo>),
    Caa(Box<Caa>),
    /// RFC 3597 opaque data of a type without a typed variant.
    Unknown {
        rtype: u16,
        data: Box<[u8]>,
    },
}

/// Why record data was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RDataError {
    #[error("bad IPv4 address {0:?}")]
    BadIpv4(String),
    #[error("bad IPv6 address {0:?}")]
    BadIpv6(String),
    #[error("bad domain name: {0}")]
    BadName(NameError),
    #[error("bad {what} {text:?}")]
    BadNumber { what: &'static str, text: String },
    #[error("{0}")]
    Missing(&'static str),
    #[error("unexpected {extra:?} after the {rtype} data")]
    TooManyTokens { rtype: String, extra: String },
    #[error("unexpected quoted string {0:?} where a name or number belongs")]
    Quoted(String),
    #[error("bad escape sequence in {0:?}")]
    BadEscape(String),
    #[error("{0} string longer than 255 octets")]
    StringTooLong(String),
    #[error("CAA tag {0:?} must be 1 to 15 ASCII letters and digits")]
    BadCaaTag(String),
    #[error("\\# length {declared} does not match {actual} octets of data")]
    GenericLength { declared: usize, actual: usize },
    #[error("bad hex data {0:?} in \\# form")]
    BadHex(String),
    #[error("\\# hex data has an odd number of digits")]
    OddHex,
    #[error("type {name} is not supported in presentation form; write it as TYPE{number} \\# <length> <hex>")]
    Unsupported { name: &'static str, number: u16 },
    #[error("type TYPE{0} has no known presentation form; write its data as \\# <length> <hex> (RFC 3597)")]
    NeedsGeneric(u16),
    #[error("type {0} is a query or meta type and cannot hold record data")]
    MetaType(String),
    #[error("bad {rtype} record data: {reason}")]
    BadWire { rtype: String, reason: &'static str },
    #[error("record data of {0} octets is longer than 65535")]
    TooLong(usize),
    #[error("{0}")]
    Syntax(String),
}

impl RData {
    /// The record type number.
    pub fn rtype(&self) -> u16 {
        match self {
            RData::A(_) => rtype::A,
            RData::Aaaa(_) => rtype::AAAA,
            RData::Ns(_) => rtype::NS,
            RData::Cname(_) => rtype::CNAME,
            RData::Ptr(_) => rtype::PTR,
            RData::Dname(_) => rtype::DNAME,
            RData::Mx { .. } => rtype::MX,
            RData::Srv { .. } => rtype::SRV,
            RData::Soa(_) => rtype::SOA,
            RData::Txt(_) => rtype::TXT,
            RData::Hinfo(_) => rtype::HINFO,
            RData::Caa(_) => rtype::CAA,
            RData::Unknown { rtype, .. } => *rtype,
        }
    }

    /// Uncompressed wire form of the RDATA only (no RDLENGTH), case preserved. Character-strings longer than 255
    /// octets (which only hand-built values can hold) are cut to 255.
    pub fn to_wire(&self, out: &mut Vec<u8>) {
        match self {
            RData::A(addr) => out.extend_from_slice(&addr.octets()),
            RData::Aaaa(addr) => out.extend_from_slice(&addr.octets()),
            RData::Ns(n) | RData::Cname(n) | RData::Ptr(n) | RData::Dname(n) => out.extend_from_slice(n.wire()),
            RData::Mx { preference, exchange } => {
                out.extend_from_slice(&preference.to_be_bytes());
                out.extend_from_slice(exchange.wire());
            }
            RData::Srv { priority, weight, port, target } => {
                for value in [priority, weight, port] {
                    out.extend_from_slice(&value.to_be_bytes());
                }
                out.extend_from_slice(target.wire());
            }
            RData::Soa(soa) => {
                let Soa { mname, rname, serial, refresh, retry, expire, minimum } = &**soa;
                out.extend_from_slice(mname.wire());
                out.extend_from_slice(rname.wire());
                for value in [serial, refresh, retry, expire, minimum] {
                    out.extend_from_slice(&value.to_be_bytes());
                }
            }
            RData::Txt(strings) => strings.iter().for_each(|s| push_char_string(out, s)),
            RData::Hinfo(hinfo) => {
                let Hinfo { cpu, os } = &**hinfo;
                push_char_string(out, cpu);
                push_char_string(out, os);
            }
            RData::Caa(caa) => {
                let Caa { flags, tag, value } = &**caa;
                out.push(*flags);
                push_char_string(out, tag);
                out.extend_from_slice(value);
            }
            RData::Unknown { data, .. } => out.extend_from_slice(data),
        }
    }

    /// The length of [`RData::to_wire`]'s output, without writing it.
    pub fn wire_len(&self) -> usize {
        let string = |s: &[u8]| 1 + s.len().min(MAX_CHAR_STRING);
        match self {
            RData::A(_) => 4,
            RData::Aaaa(_) => 16,
            RData::Ns(n) | RData::Cname(n) | RData::Ptr(n) | RData::Dname(n) => n.wire().len(),
            RData::Mx { exchange, .. } => 2 + exchange.wire().len(),
            RData::Srv { target, .. } => 6 + target.wire().len(),
            RData::Soa(soa) => soa.mname.wire().len() + soa.rname.wire().len() + 20,
            RData::Txt(strings) => strings.iter().map(|s| string(s)).sum(),
            RData::Hinfo(hinfo) => string(&hinfo.cpu) + string(&hinfo.os),
            RData::Caa(caa) => 1 + string(&caa.tag) + caa.value.len(),
            RData::Unknown { data, .. } => data.len(),
        }
    }

    /// Decodes RDATA wire bytes of type `rtype` (uncompressed names); for types without a typed variant gives
    /// `Unknown`.
    pub fn from_wire(rtype: u16, data: &[u8]) -> Result<RData, RDataError> {
        let mut r = WireReader { data, pos: 0, rtype };
        let rdata = match rtype {
            rtype::A => RData::A(Ipv4Addr::from(r.array::<4>()?)),
            rtype::AAAA => RData::Aaaa(Ipv6Addr::from(r.array::<16>()?)),
            rtype::NS => RData::Ns(r.name()?),
            rtype::CNAME => RData::Cname(r.name()?),
            rtype::PTR => RData::Ptr(r.name()?),
            rtype::DNAME => RData::Dname(r.name()?),
            rtype::MX => RData::Mx { preference: r.u16()?, exchange: r.name()? },
            rtype::SRV => RData::Srv { priority: r.u16()?, weight: r.u16()?, port: r.u16()?, target: r.name()? },
            rtype::SOA => soa_from_wire(&mut r)?,
            rtype::TXT => RData::Txt(r.char_strings()?),
            rtype::HINFO => RData::Hinfo(Box::new(Hinfo { cpu: r.char_string()?, os: r.char_string()? })),
            rtype::CAA => caa_from_wire(&mut r)?,
            _ => return Ok(RData::Unknown { rtype, data: data.into() }),
        };
        r.finish()?;
        Ok(rdata)
    }

    /// Parses presentation-format RDATA tokens for type `rtype`. Relative names complete with `origin`, `@` is the
    /// origin. The RFC 3597 generic form `\# <len> <hex…>` is accepted for every type and, for a typed type,
    /// decoded through [`RData::from_wire`].
    pub fn parse(rtype: u16, tokens: &[Token], origin: &Name) -> Result<RData, RDataError> {
        if is_meta_type(rtype) {
            return Err(RDataError::MetaType(type_name(rtype).into_owned()));
        }
        let rdata = match tokens.split_first() {
            Some((first, rest)) if !first.quoted && first.text == "\\#" => {
                RData::from_wire(rtype, &parse_generic(rest)?)?
            }
            _ => parse_typed(rtype, tokens, origin)?,
        };
        check_size(&rdata)?;
        Ok(rdata)
    }

    /// Parses one line of RDATA text, e.g. `10 mail` or `"v=spf1" "-all"`, tokenized with the zone-file rules.
    pub fn from_text(rtype: u16, text: &str, origin: &Name) -> Result<RData, RDataError> {
        let tokens = crate::dns::text::tokenize(text).map_err(RDataError::Syntax)?;
        RData::parse(rtype, &tokens, origin)
    }

    /// The name whose A/AAAA belong in the additional section: MX exchange, SRV target, NS name. The root (a
    /// "no service" SRV target or null MX) has no addresses and gives `None`.
    pub fn additional_name(&self) -> Option<&Name> {
        let name = match self {
            RData::Mx { exchange, .. } => exchange,
            RData::Srv { target, .. } => target,
            RData::Ns(name) => name,
            _ => return None,
        };
        (name.label_count() > 0).then_some(name)
    }
}

fn push_char_string(out: &mut Vec<u8>, s: &[u8]) {
    let s = &s[..s.len().min(MAX_CHAR_STRING)];
    out.push(s.len() as u8);
    out.extend_from_slice(s);
}

/// Refuses values whose wire form would not fit RDLENGTH.
fn check_size(rdata: &RData) -> Result<(), RDataError> {
    if !matches!(rdata, RData::Txt(_) | RData::Caa(_) | RData::Unknown { .. }) {
        return Ok(());
    }
    let mut wire = Vec::new();
    rdata.to_wire(&mut wire);
    if wire.len() > MAX_RDATA_LEN {
        return Err(RDataError::TooLong(wire.len()));
    }
    Ok(())
}
