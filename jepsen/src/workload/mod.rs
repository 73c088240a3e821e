//! The workload: producers of unique values and consumers that pull and
//! settle them, every operation recorded in the history.

pub mod reader;
pub mod tracker;
pub mod writer;

use std::time::Duration;

pub use reader::{ReaderConfig, ReaderControl};
pub use tracker::Tracker;
pub use writer::WriterConfig;

/// An operation not answered within this is recorded as unknown (`info`).
pub const OP_TIMEOUT: Duration = Duration::from_secs(10);
