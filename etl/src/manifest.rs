//! The JSON documents the ETL keeps beside an hour's data: the close intent
//! (`_CLOSING`), the manifest (`_SUCCESS`) and the topic's start.

use serde::{Deserialize, Serialize};

use crate::format::Format;

/// What a close of one hour will write, fixed before the first part is:
/// a retried or concurrent close follows it exactly, so the parts come out
/// the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    pub hour: String,
    /// Staging file names (under `_staging/`), sorted.
    pub staging: Vec<String>,
    pub codec: String,
    /// Intents from before JSON Lines parts existed are Avro ones.
    #[serde(default)]
    pub format: Format,
    pub part_events_max: usize,
    pub part_bytes_max: usize,
}

/// `_SUCCESS`: the hour is complete, and this is all of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub topic: String,
    pub hour: String,
    /// What the parts are; their names say it too.
    #[serde(default)]
    pub format: Format,
    pub files: Vec<FileEntry>,
    pub records: u64,
    /// Copies of events dropped (redeliveries, producer retries).
    pub duplicates_dropped: u64,
    /// Events in this hour that belonged to an earlier, closed one.
    pub skewed: u64,
    /// Staging files merged into the parts.
    pub staging_files: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub records: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// `<topic>/_etl/start`: the first hour the ETL writes for the topic; every
/// hour from it on closes, empty or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Start {
    pub hour: String,
}
