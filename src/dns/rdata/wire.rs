//! RDATA wire decoding (uncompressed names), for `RData::from_wire`.

use super::text::valid_caa_tag;
use super::{type_name, Caa, RData, RDataError, Soa};
use crate::dns::name::{self, Name};

pub(super) struct WireReader<'d> {
    pub(super) data: &'d [u8],
    pub(super) pos: usize,
    pub(super) rtype: u16,
}

impl<'d> WireReader<'d> {
    pub(super) fn error(&self, reason: &'static str) -> RDataError {
        RDataError::BadWire { rtype: type_name(self.rtype).into_owned(), reason }
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'d [u8], RDataError> {
        let end = self.pos.checked_add(n).filter(|end| *end <= self.data.len());
        let bytes = end.and_then(|end| self.data.get(self.pos..end)).ok_or_else(|| self.error("truncated"))?;
        self.pos += n;
        Ok(bytes)
    }

    pub(super) fn array<const N: usize>(&mut self) -> Result<[u8; N], RDataError> {
        let bytes = self.take(N)?;
        bytes.try_into().map_err(|_| self.error("truncated"))
    }

    pub(super) fn u8(&mut self) -> Result<u8, RDataError> {
        Ok(self.array::<1>()?[0])
    }

    pub(super) fn u16(&mut self) -> Result<u16, RDataError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(super) fn u32(&mut self) -> Result<u32, RDataError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(super) fn name(&mut self) -> Result<Name, RDataError> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let len = name::wire_len(rest).ok_or_else(|| self.error("bad or compressed domain name"))?;
        let wire = self.take(len)?;
        Name::from_wire(wire).ok_or_else(|| self.error("bad domain name"))
    }

    pub(super) fn char_string(&mut self) -> Result<Box<[u8]>, RDataError> {
        let len = self.u8()?;
        Ok(self.take(usize::from(len))?.into())
    }

    pub(super) fn char_strings(&mut self) -> Result<Vec<Box<[u8]>>, RDataError> {
        let mut strings = vec![self.char_string()?];
        while self.pos < self.data.len() {
            strings.push(self.char_string()?);
        }
        Ok(strings)
    }

    pub(super) fn rest(&mut self) -> &'d [u8] {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        self.pos = self.data.len();
        rest
    }

    pub(super) fn finish(&self) -> Result<(), RDataError> {
        if self.pos == self.data.len() {
            Ok(())
        } else {
            Err(self.error("trailing octets"))
        }
    }
}

pub(super) fn soa_from_wire(r: &mut WireReader<'_>) -> Result<RData, RDataError> {
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

pub(super) fn caa_from_wire(r: &mut WireReader<'_>) -> Result<RData, RDataError> {
    let flags = r.u8()?;
    let tag = r.char_string()?;
    if !valid_caa_tag(&tag) {
        return Err(r.error("CAA tag must be 1 to 15 ASCII letters and digits"));
    }
    Ok(RData::Caa(Box::new(Caa { flags, tag, value: r.rest().into() })))
}
