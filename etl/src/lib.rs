//! `ferry-etl`: consumes a Ferry subscription and writes its events into
//! event-time hourly buckets on storage, each hour closed exactly once and
//! never changed after. See ARCHITECTURE.md, "Hourly-bucket ETL".

pub mod avro;
pub mod closer;
pub mod config;
pub mod crash;
pub mod envelope;
pub mod format;
pub mod hour;
pub mod jsonl;
pub mod manifest;
pub mod merge;
pub mod metrics;
pub mod naming;
pub mod progress;
pub mod spill;
pub mod stager;
pub mod store;
pub mod verify;
pub mod worker;
