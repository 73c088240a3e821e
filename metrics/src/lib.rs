//! `ferry-metrics`: what Ferry's processes share to be scraped by Prometheus.
//!
//! - `exposition.rs`: the text format, one metric family at a time, names
//!   with their unit, label values escaped.
//! - `histogram.rs`: a distribution over fixed buckets, recorded with atomic
//!   adds.
//! - `endpoint.rs`: `GET /metrics` over HTTP/1.1, rendering on each scrape,
//!   and any other page a process serves beside it (`Routes`).

pub mod endpoint;
pub mod exposition;
pub mod histogram;

pub use endpoint::{serve, serve_routes, Render, RenderLater, Routes};
pub use exposition::Exposition;
pub use histogram::{Histogram, HistogramSnapshot};
