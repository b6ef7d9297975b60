//! vpcdns: multi-tenant private DNS for VPCs.
//!
//! The query path is `dataplane::serve` → `dataplane::respond` (→ `dns::wire` decode) → `model::classify` →
//! `model::lookup` → `dns::wire` encode; the change path is `process::config` → `model::validate` →
//! `model::compile` → a swapped `model::snapshot`. See ARCHITECTURE.md for the map and its invariants.

pub mod control;
pub mod dataplane;
pub mod dns;
pub mod model;
pub mod process;
pub mod settings;
#[cfg(test)]
mod testing;
