//! The DNS vocabulary and codec: names, record data, master files, the wire format, cookies, and the types every
//! stage shares (`Rcode`, `Ede`, `Transport`). Knows nothing of VPCs, tenants or I/O.

pub mod cookie;
pub mod name;
pub mod rdata;
pub mod wire;
pub mod zonefile;
