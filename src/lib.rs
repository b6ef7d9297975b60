//! vpcdns: multi-tenant private DNS for VPCs.
//!
//! The query path is `serve` → `respond` (→ `wire` decode) → `classify` → `snapshot::View` → `lookup` →
//! `respond` (encode); the change path is `config` → `validate` → `compile` → `reload` (swap). See
//! ARCHITECTURE.md for the map and its invariants.

pub mod api;
pub mod classify;
pub mod cli;
pub mod compile;
pub mod config;
pub mod control;
pub mod cookie;
pub mod daemon;
pub mod explain;
pub mod lookup;
pub mod metering;
pub mod metrics;
pub mod name;
pub mod nodes;
pub mod notify;
pub mod querylog;
pub mod rdata;
pub mod records;
pub mod reload;
pub mod resolve;
pub mod respond;
pub mod serve;
pub mod snapshot;
pub mod state;
pub mod store;
#[cfg(test)]
mod testing;
pub mod validate;
pub mod wire;
pub mod zonefile;
