//! The data plane's shell: sockets (`serve`), the request handler (`respond`), resolution outside the private zones
//! (`resolve`), and what is recorded of every answer (`metering`, `querylog`, `metrics`).

pub mod explain;
pub mod metering;
pub mod metrics;
pub mod observe;
pub mod querylog;
pub mod resolve;
pub mod respond;
pub mod serve;
