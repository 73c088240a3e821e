//! `ferry-etl`: consumes a Ferry subscription and writes its events into
//! event-time hourly buckets on storage, each hour closed exactly once and
//! never changed after. See ARCHITECTURE.md, "Hourly-bucket ETL".

pub mod avro;
pub mod envelope;
pub mod hour;
pub mod merge;
pub mod naming;
pub mod store;
