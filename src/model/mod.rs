//! The served model and its compilation: the state (`state`), its rules (`validate`), the immutable tables built from
//! it (`compile` → `snapshot`, `nodes`, `records`), and the pure query core over them (`classify`, `lookup`,
//! `explain`). No I/O, no locks.

pub(crate) mod billing;
pub(crate) mod classify;
pub mod compile;
pub mod explain;
pub mod identity;
pub mod lookup;
pub(crate) mod nodes;
pub(crate) mod publish;
pub(crate) mod records;
pub mod snapshot;
pub mod state;
pub mod validate;
