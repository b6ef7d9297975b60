//! The process: the configuration file (`config`), `serve`'s life (`daemon`), file-mode reloads (`reload`), the
//! metrics exporter (`telemetry`) and the command line clients (`cli`).

pub mod cli;
pub mod config;
pub mod daemon;
pub mod reload;
pub(crate) mod telemetry;
