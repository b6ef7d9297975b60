//! The data plane's shell: sockets (`serve`), the request handler (`respond`), resolution outside the private zones
//! (`resolve`), and what is recorded of every answer (`metering`, `querylog`, `metrics`).

pub mod explain;
pub(crate) mod metering;
pub(crate) mod metrics;
pub(crate) mod observe;
pub mod proxy;
pub(crate) mod querylog;
pub(crate) mod resolve;
pub mod respond;
pub(crate) mod serve;
