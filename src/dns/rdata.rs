//! Record data (RDATA): typed values for the record types vpcdns serves, their presentation-format parsing
//! (RFC 1035 §5.1, RFC 3597 generic `\#` form), their presentation-format printing and their uncompressed wire form.
//!
//! This module must not do I/O and must not know about zones (which names belong where, CNAME rules, duplicates…):
//! it only turns tokens or wire octets into one record's data and back. It must never panic on input: every
//! malformed token or octet becomes an [`RDataError`]. Tokens come from the zone-file tokenizer
//! ([`crate::dns::text::Token`], re-exported here as [`Token`]).

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::dns::name::{self, Name, NameError};
pub use crate::dns::text::Token;

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

// ---------------------------------------------------------------------------------------------------------------
// Presentation-format parsing.

/// What a type's RDATA must contain, for "missing field" errors.
fn usage(t: u16) -> &'static str {
    match t {
        rtype::A => "A needs one IPv4 address",
        rtype::AAAA => "AAAA needs one IPv6 address",
        rtype::NS => "NS needs a name server name",
        rtype::CNAME => "CNAME needs a target name",
        rtype::PTR => "PTR needs a target name",
        rtype::DNAME => "DNAME needs a target name",
        rtype::MX => "MX needs a preference and an exchange",
        rtype::SRV => "SRV needs a priority, a weight, a port and a target",
        rtype::SOA => "SOA needs mname, rname, serial, refresh, retry, expire and minimum",
        rtype::TXT | rtype::SPF => "TXT needs at least one string",
        rtype::HINFO => "HINFO needs a CPU string and an OS string",
        rtype::CAA => "CAA needs flags, a tag and a value",
        _ => "missing record data",
    }
}

fn parse_typed(t: u16, tokens: &[Token], origin: &Name) -> Result<RData, RDataError> {
    let mut f = Fields { tokens, pos: 0, rtype: t };
    let rdata = match t {
        rtype::A => RData::A(parse_ipv4(f.word()?)?),
        rtype::AAAA => RData::Aaaa(parse_ipv6(f.word()?)?),
        rtype::NS => RData::Ns(f.name(origin)?),
        rtype::CNAME => RData::Cname(f.name(origin)?),
        rtype::PTR => RData::Ptr(f.name(origin)?),
        rtype::DNAME => RData::Dname(f.name(origin)?),
        rtype::MX => RData::Mx { preference: f.number("MX preference")?, exchange: f.name(origin)? },
        rtype::SRV => parse_srv(&mut f, origin)?,
        rtype::SOA => parse_soa(&mut f, origin)?,
        rtype::TXT => RData::Txt(f.strings()?),
        rtype::SPF => spf(f.strings()?),
        rtype::HINFO => RData::Hinfo(Box::new(Hinfo { cpu: f.string()?, os: f.string()? })),
        rtype::CAA => parse_caa(&mut f)?,
        other => return Err(unsupported(other)),
    };
    f.finish()?;
    Ok(rdata)
}

fn unsupported(t: u16) -> RDataError {
    match known_mnemonic(t) {
        Some(name) => RDataError::Unsupported { name, number: t },
        None => RDataError::NeedsGeneric(t),
    }
}

/// Strict dotted quad: four decimal parts, no leading zeros, nothing else.
fn parse_ipv4(text: &str) -> Result<Ipv4Addr, RDataError> {
    text.parse().map_err(|_| RDataError::BadIpv4(text.into()))
}

/// Any RFC 4291 §2.2 text form, including an embedded dotted quad.
fn parse_ipv6(text: &str) -> Result<Ipv6Addr, RDataError> {
    text.parse().map_err(|_| RDataError::BadIpv6(text.into()))
}

fn parse_srv(f: &mut Fields<'_>, origin: &Name) -> Result<RData, RDataError> {
    Ok(RData::Srv {
        priority: f.number("SRV priority")?,
        weight: f.number("SRV weight")?,
        port: f.number("SRV port")?,
        target: f.name(origin)?,
    })
}

fn parse_soa(f: &mut Fields<'_>, origin: &Name) -> Result<RData, RDataError> {
    Ok(RData::Soa(Box::new(Soa {
        mname: f.name(origin)?,
        rname: f.name(origin)?,
        serial: f.number("SOA serial")?,
        refresh: f.ttl("SOA refresh")?,
        retry: f.ttl("SOA retry")?,
        expire: f.ttl("SOA expire")?,
        minimum: f.ttl("SOA minimum")?,
    })))
}

/// SPF has TXT's syntax but no typed variant: it is kept as opaque data.
fn spf(strings: Vec<Box<[u8]>>) -> RData {
    let mut data = Vec::new();
    RData::Txt(strings).to_wire(&mut data);
    RData::Unknown { rtype: rtype::SPF, data: data.into() }
}

fn parse_caa(f: &mut Fields<'_>) -> Result<RData, RDataError> {
    let flags = f.number("CAA flags")?;
    let tag_text = f.word()?;
    let tag = unescape(tag_text).ok_or_else(|| RDataError::BadEscape(tag_text.into()))?;
    if !valid_caa_tag(&tag) {
        return Err(RDataError::BadCaaTag(tag_text.into()));
    }
    let value = f.next()?;
    let value = unescape(&value.text).ok_or_else(|| RDataError::BadEscape(value.text.clone()))?;
    Ok(RData::Caa(Box::new(Caa { flags, tag: tag.into(), value: value.into() })))
}

fn valid_caa_tag(tag: &[u8]) -> bool {
    (1..=15).contains(&tag.len()) && tag.iter().all(u8::is_ascii_alphanumeric)
}

/// `\# <length> <hex>…` (RFC 3597 §5): the hex may be split across tokens.
fn parse_generic(tokens: &[Token]) -> Result<Vec<u8>, RDataError> {
    let (length, hex) = tokens.split_first().ok_or(RDataError::Missing("\\# needs a length and hex data"))?;
    if length.quoted {
        return Err(RDataError::Quoted(length.text.clone()));
    }
    let declared = decimal(&length.text)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n <= MAX_RDATA_LEN)
        .ok_or_else(|| RDataError::BadNumber { what: "\\# length", text: length.text.clone() })?;
    let data = decode_hex(hex)?;
    if data.len() != declared {
        return Err(RDataError::GenericLength { declared, actual: data.len() });
    }
    Ok(data)
}

fn decode_hex(tokens: &[Token]) -> Result<Vec<u8>, RDataError> {
    let mut data = Vec::new();
    let mut high: Option<u8> = None;
    for token in tokens {
        if token.quoted {
            return Err(RDataError::BadHex(token.text.clone()));
        }
        for c in token.text.chars() {
            let digit = c.to_digit(16).ok_or_else(|| RDataError::BadHex(token.text.clone()))? as u8;
            match high.take() {
                Some(h) => data.push((h << 4) | digit),
                None => high = Some(digit),
            }
        }
    }
    match high {
        Some(_) => Err(RDataError::OddHex),
        None => Ok(data),
    }
}

/// A plain unsigned decimal number (ASCII digits only: no sign, no spaces).
fn decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.bytes().try_fold(0u64, |acc, b| acc.checked_mul(10)?.checked_add(u64::from(b - b'0')))
}

/// A BIND TTL value: plain seconds (`3600`) or unit groups (`1w2d`, `1h30m`, `90S`; units w d h m s in either
/// case). Returns `None` for malformed text or a value above 2^32-1.
pub fn parse_ttl(text: &str) -> Option<u32> {
    if text.is_empty() {
        return None;
    }
    if let Some(seconds) = decimal(text) {
        return u32::try_from(seconds).ok();
    }
    let mut total: u64 = 0;
    let mut rest = text.as_bytes();
    while !rest.is_empty() {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let (number, unit) = (rest.get(..digits)?, rest.get(digits)?);
        if digits == 0 {
            return None;
        }
        let value = number.iter().try_fold(0u64, |acc, b| acc.checked_mul(10)?.checked_add(u64::from(b - b'0')))?;
        total = total.checked_add(value.checked_mul(ttl_unit(*unit)?)?)?;
        rest = rest.get(digits + 1..)?;
    }
    u32::try_from(total).ok()
}

fn ttl_unit(unit: u8) -> Option<u64> {
    match unit.to_ascii_lowercase() {
        b'w' => Some(604_800),
        b'd' => Some(86_400),
        b'h' => Some(3_600),
        b'm' => Some(60),
        b's' => Some(1),
        _ => None,
    }
}

/// Decodes `\X` and `\DDD` escapes of a token (quoted or not) into octets.
pub fn unescape(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'\\' {
            let (byte, used) = name::unescape(bytes.get(i + 1..)?)?;
            out.push(byte);
            i += 1 + used;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Some(out)
}

/// A cursor over one record's RDATA tokens.
struct Fields<'t> {
    tokens: &'t [Token],
    pos: usize,
    rtype: u16,
}

impl<'t> Fields<'t> {
    fn next(&mut self) -> Result<&'t Token, RDataError> {
        let token = self.tokens.get(self.pos).ok_or(RDataError::Missing(usage(self.rtype)))?;
        self.pos += 1;
        Ok(token)
    }

    /// An unquoted token: names and numbers cannot be quoted (as in BIND).
    fn word(&mut self) -> Result<&'t str, RDataError> {
        let token = self.next()?;
        if token.quoted {
            return Err(RDataError::Quoted(token.text.clone()));
        }
        Ok(&token.text)
    }

    fn name(&mut self, origin: &Name) -> Result<Name, RDataError> {
        Name::from_text(self.word()?, Some(origin)).map_err(RDataError::BadName)
    }

    fn number<T: TryFrom<u64>>(&mut self, what: &'static str) -> Result<T, RDataError> {
        let text = self.word()?;
        decimal(text).and_then(|n| T::try_from(n).ok()).ok_or_else(|| RDataError::BadNumber { what, text: text.into() })
    }

    fn ttl(&mut self, what: &'static str) -> Result<u32, RDataError> {
        let text = self.word()?;
        parse_ttl(text).ok_or_else(|| RDataError::BadNumber { what, text: text.into() })
    }

    /// One character-string, quoted or bare.
    fn string(&mut self) -> Result<Box<[u8]>, RDataError> {
        let token = self.next()?;
        let bytes = unescape(&token.text).ok_or_else(|| RDataError::BadEscape(token.text.clone()))?;
        if bytes.len() > MAX_CHAR_STRING {
            return Err(RDataError::StringTooLong(type_name(self.rtype).into_owned()));
        }
        Ok(bytes.into())
    }

    /// All remaining tokens as character-strings; at least one.
    fn strings(&mut self) -> Result<Vec<Box<[u8]>>, RDataError> {
        let mut strings = vec![self.string()?];
        while self.pos < self.tokens.len() {
            strings.push(self.string()?);
        }
        Ok(strings)
    }

    fn finish(&self) -> Result<(), RDataError> {
        match self.tokens.get(self.pos) {
            Some(extra) => {
                Err(RDataError::TooManyTokens { rtype: type_name(self.rtype).into_owned(), extra: extra.text.clone() })
            }
            None => Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Wire decoding.

struct WireReader<'d> {
    data: &'d [u8],
    pos: usize,
    rtype: u16,
}

impl<'d> WireReader<'d> {
    fn error(&self, reason: &'static str) -> RDataError {
        RDataError::BadWire { rtype: type_name(self.rtype).into_owned(), reason }
    }

    fn take(&mut self, n: usize) -> Result<&'d [u8], RDataError> {
        let end = self.pos.checked_add(n).filter(|end| *end <= self.data.len());
        let bytes = end.and_then(|end| self.data.get(self.pos..end)).ok_or_else(|| self.error("truncated"))?;
        self.pos += n;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RDataError> {
        let bytes = self.take(N)?;
        bytes.try_into().map_err(|_| self.error("truncated"))
    }

    fn u8(&mut self) -> Result<u8, RDataError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, RDataError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, RDataError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn name(&mut self) -> Result<Name, RDataError> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let len = name::wire_len(rest).ok_or_else(|| self.error("bad or compressed domain name"))?;
        let wire = self.take(len)?;
        Name::from_wire(wire).ok_or_else(|| self.error("bad domain name"))
    }

    fn char_string(&mut self) -> Result<Box<[u8]>, RDataError> {
        let len = self.u8()?;
        Ok(self.take(usize::from(len))?.into())
    }

    fn char_strings(&mut self) -> Result<Vec<Box<[u8]>>, RDataError> {
        let mut strings = vec![self.char_string()?];
        while self.pos < self.data.len() {
            strings.push(self.char_string()?);
        }
        Ok(strings)
    }

    fn rest(&mut self) -> &'d [u8] {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        self.pos = self.data.len();
        rest
    }

    fn finish(&self) -> Result<(), RDataError> {
        if self.pos == self.data.len() {
            Ok(())
        } else {
            Err(self.error("trailing octets"))
        }
    }
}

fn soa_from_wire(r: &mut WireReader<'_>) -> Result<RData, RDataError> {
    Ok(RData::Soa(Box::new(Soa {
        mname: r.name()?,
        rname: r.name()?,
        serial: r.u32()?,
        refresh: r.u32()?,
        retry: r.u32()?,
        expire: r.u32()?,
        minimum: r.u32()?,
    })))
}

fn caa_from_wire(r: &mut WireReader<'_>) -> Result<RData, RDataError> {
    let flags = r.u8()?;
    let tag = r.char_string()?;
    if !valid_caa_tag(&tag) {
        return Err(r.error("CAA tag must be 1 to 15 ASCII letters and digits"));
    }
    Ok(RData::Caa(Box::new(Caa { flags, tag, value: r.rest().into() })))
}

// ---------------------------------------------------------------------------------------------------------------
// Presentation-format printing.

impl fmt::Display for RData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RData::A(addr) => write!(f, "{addr}"),
            RData::Aaaa(addr) => write!(f, "{addr}"),
            RData::Ns(n) | RData::Cname(n) | RData::Ptr(n) | RData::Dname(n) => write!(f, "{n}"),
            RData::Mx { preference, exchange } => write!(f, "{preference} {exchange}"),
            RData::Srv { priority, weight, port, target } => write!(f, "{priority} {weight} {port} {target}"),
            RData::Soa(soa) => {
                let Soa { mname, rname, serial, refresh, retry, expire, minimum } = &**soa;
                write!(f, "{mname} {rname} {serial} {refresh} {retry} {expire} {minimum}")
            }
            RData::Txt(strings) => write_strings(f, strings.iter().map(|s| &s[..])),
            RData::Hinfo(hinfo) => write_strings(f, [&hinfo.cpu[..], &hinfo.os[..]]),
            RData::Caa(caa) => {
                let Caa { flags, tag, value } = &**caa;
                write!(f, "{flags} ")?;
                write_bare(f, tag)?;
                f.write_char(' ')?;
                write_quoted(f, value)
            }
            RData::Unknown { data, .. } => write_generic(f, data),
        }
    }
}

fn write_strings<'a>(f: &mut fmt::Formatter<'_>, strings: impl IntoIterator<Item = &'a [u8]>) -> fmt::Result {
    for (i, s) in strings.into_iter().enumerate() {
        if i > 0 {
            f.write_char(' ')?;
        }
        write_quoted(f, s)?;
    }
    Ok(())
}

/// A character-string in double quotes, with `\"`, `\\` and `\DDD` for anything not printable ASCII.
fn write_quoted(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    f.write_char('"')?;
    for &b in bytes {
        match b {
            b'"' | b'\\' => write!(f, "\\{}", b as char)?,
            0x20..=0x7e => f.write_char(b as char)?,
            _ => write!(f, "\\{b:03}")?,
        }
    }
    f.write_char('"')
}

/// An unquoted token: letters and digits as they are, everything else as `\DDD`.
fn write_bare(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for &b in bytes {
        if b.is_ascii_alphanumeric() {
            f.write_char(b as char)?;
        } else {
            write!(f, "\\{b:03}")?;
        }
    }
    Ok(())
}

/// RFC 3597 generic form: `\# 4 0a000001`.
fn write_generic(f: &mut fmt::Formatter<'_>, data: &[u8]) -> fmt::Result {
    write!(f, "\\# {}", data.len())?;
    if !data.is_empty() {
        f.write_char(' ')?;
        for b in data {
            write!(f, "{b:02x}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Name {
        Name::from_text("corp.internal.", None).expect("valid origin")
    }

    fn n(text: &str) -> Name {
        Name::from_text(text, None).expect("valid test name")
    }

    fn parse(t: u16, text: &str) -> Result<RData, RDataError> {
        RData::from_text(t, text, &origin())
    }

    fn ok(t: u16, text: &str) -> RData {
        match parse(t, text) {
            Ok(rdata) => rdata,
            Err(e) => panic!("{text:?} should parse as {}: {e}", type_name(t)),
        }
    }

    fn err(t: u16, text: &str) -> String {
        match parse(t, text) {
            Ok(rdata) => panic!("{text:?} should not parse as {}, got {rdata:?}", type_name(t)),
            Err(e) => e.to_string(),
        }
    }

    fn wire(rdata: &RData) -> Vec<u8> {
        let mut out = Vec::new();
        rdata.to_wire(&mut out);
        out
    }

    #[test]
    fn mnemonics_and_type_numbers() {
        assert_eq!(type_from_mnemonic("A"), Some(rtype::A));
        assert_eq!(type_from_mnemonic("aaaa"), Some(rtype::AAAA));
        assert_eq!(type_from_mnemonic("TYPE65534"), Some(65534));
        assert_eq!(type_from_mnemonic("type1"), Some(rtype::A));
        assert_eq!(type_from_mnemonic("SSHFP"), Some(44));
        assert_eq!(type_from_mnemonic("nsap-ptr"), Some(23));
        for bad in ["", "TYPE", "TYPE65536", "TYPE+1", "TYPE000001", "FOO", "TYPE1a", "TYPÉ1"] {
            assert_eq!(type_from_mnemonic(bad), None, "{bad:?}");
        }
        assert_eq!(type_name(rtype::CAA), "CAA");
        assert_eq!(type_name(65534), "TYPE65534");
        assert!(is_meta_type(rtype::OPT) && is_meta_type(rtype::ANY) && !is_meta_type(rtype::CAA));
    }

    #[test]
    fn addresses() {
        assert_eq!(ok(rtype::A, "10.0.0.1"), RData::A(Ipv4Addr::new(10, 0, 0, 1)));
        for bad in ["10.0.0", "10.0.0.1.", "010.0.0.1", "10.0.0.256", "+1.0.0.1", "1.2.3.4x", " ", "\"10.0.0.1\""] {
            assert!(parse(rtype::A, bad).is_err(), "{bad:?}");
        }
        assert_eq!(err(rtype::A, "10.0.0"), "bad IPv4 address \"10.0.0\"");
        assert_eq!(err(rtype::A, "10.0.0.1 10.0.0.2"), "unexpected \"10.0.0.2\" after the A data");
        assert_eq!(err(rtype::A, ""), "A needs one IPv4 address");
        assert_eq!(ok(rtype::AAAA, "2001:db8::1").to_string(), "2001:db8::1");
        assert_eq!(ok(rtype::AAAA, "::ffff:10.0.0.1").to_string(), "::ffff:10.0.0.1");
        assert_eq!(ok(rtype::AAAA, "2001:DB8:0:0:0:0:0:1"), ok(rtype::AAAA, "2001:db8::1"));
        assert!(parse(rtype::AAAA, "2001:db8::1::2").is_err());
        assert!(parse(rtype::AAAA, "10.0.0.1").is_err());
    }

    #[test]
    fn names_complete_with_origin() {
        assert_eq!(ok(rtype::NS, "ns1"), RData::Ns(n("ns1.corp.internal.")));
        assert_eq!(ok(rtype::CNAME, "@"), RData::Cname(origin()));
        assert_eq!(ok(rtype::PTR, "host.example."), RData::Ptr(n("host.example.")));
        assert_eq!(ok(rtype::DNAME, "other.example."), RData::Dname(n("other.example.")));
        assert_eq!(ok(rtype::CNAME, "WWW").to_string(), "WWW.corp.internal.");
        assert!(err(rtype::NS, "a..b").starts_with("bad domain name"));
        assert!(parse(rtype::NS, "\"ns1\"").is_err());
        assert_eq!(err(rtype::CNAME, "a b"), "unexpected \"b\" after the CNAME data");
    }

    #[test]
    fn mx_and_srv() {
        assert_eq!(ok(rtype::MX, "10 mail"), RData::Mx { preference: 10, exchange: n("mail.corp.internal.") });
        assert_eq!(ok(rtype::MX, "10 @").to_string(), "10 corp.internal.");
        assert_eq!(err(rtype::MX, "10"), "MX needs a preference and an exchange");
        assert_eq!(err(rtype::MX, "65536 mail"), "bad MX preference \"65536\"");
        assert!(parse(rtype::MX, "-1 mail").is_err());
        let srv = ok(rtype::SRV, "0 5 5060 sip");
        assert_eq!(srv.to_string(), "0 5 5060 sip.corp.internal.");
        assert_eq!(srv.additional_name(), Some(&n("sip.corp.internal.")));
        let none = ok(rtype::SRV, "0 0 0 .");
        assert_eq!(none.to_string(), "0 0 0 .");
        assert_eq!(none.additional_name(), None);
        assert_eq!(ok(rtype::NS, "ns").additional_name(), Some(&n("ns.corp.internal.")));
        assert_eq!(ok(rtype::A, "1.2.3.4").additional_name(), None);
        assert!(parse(rtype::SRV, "1 2 3").is_err());
    }

    #[test]
    fn soa_accepts_ttl_units() {
        let soa = ok(rtype::SOA, "ns1 hostmaster 2024010101 1h30m 15M 1w 2D");
        assert_eq!(
            soa,
            RData::Soa(Box::new(Soa {
                mname: n("ns1.corp.internal."),
                rname: n("hostmaster.corp.internal."),
                serial: 2024010101,
                refresh: 5400,
                retry: 900,
                expire: 604800,
                minimum: 172800,
            }))
        );
        assert_eq!(soa.to_string(), "ns1.corp.internal. hostmaster.corp.internal. 2024010101 5400 900 604800 172800");
        assert_eq!(err(rtype::SOA, "ns1 hm 1 2 3 4"), usage(rtype::SOA));
        assert_eq!(err(rtype::SOA, "ns1 hm 1h 2 3 4 5"), "bad SOA serial \"1h\"");
        assert_eq!(err(rtype::SOA, "ns1 hm 1 2x 3 4 5"), "bad SOA refresh \"2x\"");
        assert!(parse(rtype::SOA, "ns1 hm 4294967296 2 3 4 5").is_err());
    }

    #[test]
    fn ttl_values() {
        assert_eq!(parse_ttl("3600"), Some(3600));
        assert_eq!(parse_ttl("1h30m"), Some(5400));
        assert_eq!(parse_ttl("1W2d3H4m5S"), Some(788645));
        assert_eq!(parse_ttl("4294967295"), Some(u32::MAX));
        for bad in ["", "h", "1h30", "1x", "4294967296", "7102w", "-1", "1 h", "1hh"] {
            assert_eq!(parse_ttl(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn txt_strings_and_escapes() {
        let txt = ok(rtype::TXT, r#""v=spf1" "-all""#);
        assert_eq!(txt, RData::Txt(vec![b"v=spf1"[..].into(), b"-all"[..].into()]));
        assert_eq!(txt.to_string(), r#""v=spf1" "-all""#);
        assert_eq!(wire(&txt), b"\x06v=spf1\x04-all");
        let escaped = ok(rtype::TXT, r#""say \"hi\" \\ \007;(x)" bare\032word"#);
        assert_eq!(escaped, RData::Txt(vec![b"say \"hi\" \\ \x07;(x)"[..].into(), b"bare word"[..].into()]));
        assert_eq!(escaped.to_string(), r#""say \"hi\" \\ \007;(x)" "bare word""#);
        assert_eq!(ok(rtype::TXT, "\"\"").to_string(), "\"\"");
        assert_eq!(ok(rtype::TXT, "\"héllo\""), RData::Txt(vec!["héllo".as_bytes().into()]));
        assert_eq!(ok(rtype::TXT, &format!("\"{}\"", "a".repeat(255))).rtype(), rtype::TXT);
        assert_eq!(err(rtype::TXT, &format!("\"{}\"", "a".repeat(256))), "TXT string longer than 255 octets");
        assert_eq!(err(rtype::TXT, ""), "TXT needs at least one string");
        assert!(err(rtype::TXT, r#""bad \25 escape""#).starts_with("bad escape"));
        assert!(parse(rtype::TXT, r#""\256""#).is_err());
        assert!(parse(rtype::TXT, "\"unterminated").is_err());
        let huge = vec![format!("\"{}\"", "a".repeat(255)); 300].join(" ");
        assert_eq!(err(rtype::TXT, &huge), "record data of 76800 octets is longer than 65535");
    }

    #[test]
    fn hinfo_and_caa() {
        let hinfo = ok(rtype::HINFO, "\"Intel Xeon\" Linux");
        assert_eq!(hinfo.to_string(), "\"Intel Xeon\" \"Linux\"");
        assert_eq!(err(rtype::HINFO, "x86"), "HINFO needs a CPU string and an OS string");
        assert!(parse(rtype::HINFO, "a b c").is_err());
        let caa = ok(rtype::CAA, "0 issue \"ca.example\"");
        assert_eq!(caa.to_string(), "0 issue \"ca.example\"");
        assert_eq!(wire(&caa), b"\x00\x05issueca.example");
        assert_eq!(ok(rtype::CAA, "128 iodef mailto:x@example.com").to_string(), "128 iodef \"mailto:x@example.com\"");
        assert!(parse(rtype::CAA, "256 issue x").is_err());
        assert!(err(rtype::CAA, "0 is-sue x").starts_with("CAA tag"));
        assert!(parse(rtype::CAA, "0 abcdefghijklmnop x").is_err());
        assert!(parse(rtype::CAA, "0 issue").is_err());
        assert!(parse(rtype::CAA, "0 \"issue\" x").is_err());
    }

    #[test]
    fn generic_form() {
        assert_eq!(ok(rtype::A, "\\# 4 0A000001"), RData::A(Ipv4Addr::new(10, 0, 0, 1)));
        let unknown = ok(65534, "\\# 3 ab cdef");
        assert_eq!(unknown, RData::Unknown { rtype: 65534, data: vec![0xab, 0xcd, 0xef].into() });
        assert_eq!(unknown.to_string(), "\\# 3 abcdef");
        assert_eq!(ok(65534, "\\# 0").to_string(), "\\# 0");
        assert_eq!(ok(rtype::SSHFP, "\\# 2 0102"), RData::Unknown { rtype: 44, data: vec![1, 2].into() });
        assert_eq!(err(rtype::A, "\\# 4 0a0000"), "\\# length 4 does not match 3 octets of data");
        assert_eq!(err(65534, "\\# 1 abc"), "\\# hex data has an odd number of digits");
        assert!(parse(65534, "\\# 1 zz").is_err());
        assert!(parse(65534, "\\#").is_err());
        assert!(parse(65534, "\\# 65536").is_err());
        assert!(parse(rtype::A, "\\# 3 0a0000").is_err());
        assert!(parse(rtype::TXT, "\\# 0").is_err());
        let soa = ok(rtype::SOA, "a. b. 1 2 3 4 5");
        let hex: String = wire(&soa).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(ok(rtype::SOA, &format!("\\# {} {hex}", wire(&soa).len())), soa);
    }

    #[test]
    fn unsupported_and_meta_types() {
        assert_eq!(
            err(rtype::SSHFP, "1 1 abcd"),
            "type SSHFP is not supported in presentation form; write it as TYPE44 \\# <length> <hex>"
        );
        assert!(err(65534, "abc").contains("\\#"));
        assert!(err(rtype::OPT, "\\# 0").contains("meta"));
        assert!(parse(rtype::ANY, "1.2.3.4").is_err());
        assert_eq!(ok(rtype::SPF, "\"v=spf1 -all\"").to_string(), "\\# 12 0b763d73706631202d616c6c");
    }

    #[test]
    fn wire_round_trips() {
        let cases = [
            (rtype::A, "192.0.2.1"),
            (rtype::AAAA, "2001:db8::1"),
            (rtype::NS, "Ns1.Example."),
            (rtype::CNAME, "a.b."),
            (rtype::PTR, "."),
            (rtype::DNAME, "x.y."),
            (rtype::MX, "10 mx.example."),
            (rtype::SRV, "1 2 3 t.example."),
            (rtype::SOA, "a. b. 1 2 3 4 5"),
            (rtype::TXT, "\"a\" \"\" \"\\255\""),
            (rtype::HINFO, "a b"),
            (rtype::CAA, "0 issue \";\""),
            (65534, "\\# 2 beef"),
        ];
        for (t, text) in cases {
            let rdata = ok(t, text);
            assert_eq!(rdata.rtype(), t);
            let bytes = wire(&rdata);
            assert_eq!(RData::from_wire(t, &bytes).as_ref(), Ok(&rdata), "{text}");
            let printed = rdata.to_string();
            assert_eq!(RData::from_text(t, &printed, &Name::root()).as_ref(), Ok(&rdata), "{printed}");
        }
    }

    #[test]
    fn bad_wire_data() {
        assert!(RData::from_wire(rtype::A, &[1, 2, 3]).is_err());
        assert!(RData::from_wire(rtype::A, &[1, 2, 3, 4, 5]).is_err());
        assert!(RData::from_wire(rtype::NS, &[0xc0, 0x0c]).is_err());
        assert!(RData::from_wire(rtype::MX, &[0, 1, 3, b'a']).is_err());
        assert!(RData::from_wire(rtype::TXT, &[]).is_err());
        assert!(RData::from_wire(rtype::TXT, &[5, b'a']).is_err());
        assert!(RData::from_wire(rtype::CAA, &[0, 0]).is_err());
        assert_eq!(
            RData::from_wire(rtype::SOA, &[0, 0, 1]).map_err(|e| e.to_string()),
            Err("bad SOA record data: truncated".to_string())
        );
    }

    #[test]
    fn random_wire_bytes_never_panic() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let types = [1, 2, 5, 6, 12, 13, 15, 16, 28, 33, 39, 257, 65534];
        for round in 0..3000 {
            let bytes: Vec<u8> = (0..round % 40)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    // Mostly small values, so that lengths and labels often line up.
                    if state % 3 == 0 {
                        (state >> 8) as u8
                    } else {
                        (state >> 8) as u8 % 8
                    }
                })
                .collect();
            let t = types[round % types.len()];
            if let Ok(rdata) = RData::from_wire(t, &bytes) {
                assert_eq!(wire(&rdata), bytes);
                let _ = rdata.to_string();
            }
        }
    }
}
