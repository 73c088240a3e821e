//! `ferry-metrics`: what Ferry's processes share to be scraped by Prometheus.
//!
//! - `exposition.rs`: the text format, one metric family at a time, names
//!   with their unit, label values escaped.
//! - `endpoint.rs`: `GET /metrics` over HTTP/1.1, rendering on each scrape.

pub mod endpoint;
pub mod exposition;

pub use endpoint::serve;
pub use exposition::Exposition;
