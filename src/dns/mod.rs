//! The DNS vocabulary and codec: names, record data, master files, the wire format, cookies, and the types every
//! stage shares (`Rcode`, `Ede`, `Transport`). Knows nothing of VPCs, tenants or I/O.

pub mod cookie;
pub mod name;
pub mod rdata;
pub(crate) mod text;
pub mod wire;
pub mod zonefile;

/// Response codes (RFC 1035 §4.1.1, RFC 6891 §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Rcode {
    NoError = 0,
    FormErr = 1,
    ServFail = 2,
    NxDomain = 3,
    NotImp = 4,
    Refused = 5,
    BadVers = 16,
}

impl Rcode {
    pub fn name(self) -> &'static str {
        match self {
            Rcode::NoError => "NOERROR",
            Rcode::FormErr => "FORMERR",
            Rcode::ServFail => "SERVFAIL",
            Rcode::NxDomain => "NXDOMAIN",
            Rcode::NotImp => "NOTIMP",
            Rcode::Refused => "REFUSED",
            Rcode::BadVers => "BADVERS",
        }
    }
}

/// The transport a query came over: ANY is minimal over UDP only (RFC 8482 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

/// An Extended DNS Error: info-code and extra text (RFC 8914 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ede {
    pub code: u16,
    pub text: &'static str,
}
