//! RDATA in presentation format, both ways: parsing tokens (RFC 1035 §5.1, the RFC 3597 generic `\\#` form) into
//! [`RData`], and printing it back.

use std::fmt::{self, Write as _};
use std::net::{Ipv4Addr, Ipv6Addr};

use super::{
    known_mnemonic, rtype, type_name, Caa, Hinfo, RData, RDataError, Soa, Token, MAX_CHAR_STRING, MAX_RDATA_LEN,
};
use crate::dns::name::{self, Name};

/// What a type's RDATA must contain, for "missing field" errors.
pub(super) fn usage(t: u16) -> &'static str {
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

pub(super) fn parse_typed(t: u16, tokens: &[Token], origin: &Name) -> Result<RData, RDataError> {
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

pub(super) fn valid_caa_tag(tag: &[u8]) -> bool {
    (1..=15).contains(&tag.len()) && tag.iter().all(u8::is_ascii_alphanumeric)
}

/// `\# <length> <hex>…` (RFC 3597 §5): the hex may be split across tokens.
pub(super) fn parse_generic(tokens: &[Token]) -> Result<Vec<u8>, RDataError> {
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
pub(super) fn decimal(text: &str) -> Option<u64> {
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

// Printing.

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
