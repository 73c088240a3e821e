//! What one ETL worker does, and its bounds.

use std::path::PathBuf;
use std::time::Duration;

use crate::avro::Codec;
use crate::format::Format;

/// One topic's worker.
#[derive(Debug, Clone)]
pub struct Config {
    pub topic: String,
    pub subscription: String,
    /// What the closed hours' parts are written as (staging files are Avro).
    pub format: Format,
    pub codec: Codec,
    /// A staging file is written once it has been open this long, so data
    /// reaches storage promptly at low rates too.
    pub file_age_max: Duration,
    /// … or once it holds this many events or payload bytes.
    pub file_events_max: usize,
    pub file_bytes_max: usize,
    /// How far past an hour's end the watermark must be before it closes.
    pub grace: Duration,
    /// How long since the hour's last staging file was written, at least,
    /// before it closes.
    pub quiet: Duration,
    /// Events more than this behind the oldest open hour go to the dead-letter topic.
    pub late_limit: Duration,
    /// Where too-late events go (created if missing): `<topic>.etl-late` by default.
    pub dead_letter_topic: String,
    /// Memory a close sorts in; beyond it, the sorts spill to `scratch_dir`.
    pub close_memory_max: usize,
    pub scratch_dir: PathBuf,
    /// A closed hour's parts hold at most this many events or payload bytes.
    pub part_events_max: usize,
    pub part_bytes_max: usize,
    /// How often the closer looks at the watermark.
    pub close_check_every: Duration,
}

impl Config {
    pub fn new(topic: &str, subscription: &str) -> Self {
        Self {
            topic: topic.to_owned(),
            subscription: subscription.to_owned(),
            format: Format::default(),
            codec: Codec::default(),
            file_age_max: Duration::from_secs(10),
            file_events_max: 5_000,
            file_bytes_max: 64 << 20,
            grace: Duration::from_secs(5 * 60),
            quiet: Duration::from_secs(30),
            late_limit: Duration::from_secs(24 * 3600),
            dead_letter_topic: format!("{topic}.etl-late"),
            close_memory_max: 256 << 20,
            scratch_dir: std::env::temp_dir(),
            part_events_max: 1_000_000,
            part_bytes_max: 256 << 20,
            close_check_every: Duration::from_secs(5),
        }
    }
}
