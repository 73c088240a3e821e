//! RocksDB storage: two databases per node, their column families, key
//! encodings and value framing.
//!
//! - `raft-log/` holds the Raft log and vote. Its WAL is the durability point of
//!   the node: every append is fsynced before openraft hears it is durable.
//! - `state-N/` holds the state machine (catalog, messages, acks). It is written
//!   without a WAL: after a crash it is rebuilt by re-applying the Raft log from
//!   its last flushed `applied` id, and the log is never purged past a flushed
//!   state (snapshots flush first). So message data is written to the WAL once.

pub mod acked_ranges;
pub mod background;
pub mod batches;
pub mod codec;
pub mod db;
pub mod disk_space;
pub mod files;
pub mod keys;
pub mod records;
pub mod state_db;

pub use codec::CodecError;
pub use state_db::DiskUsage;

/// A failure of the disk or of stored data. Fatal to the node: a replica that
/// cannot read or write its state must stop rather than diverge.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("rocksdb: {context}")]
    RocksDb {
        context: String,
        #[source]
        source: rocksdb::Error,
    },
    #[error("stored data is corrupt: {context}")]
    Corrupt {
        context: String,
        #[source]
        source: CodecError,
    },
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

impl StorageError {
    pub fn rocksdb(context: impl Into<String>) -> impl FnOnce(rocksdb::Error) -> Self {
        let context = context.into();
        move |source| StorageError::RocksDb { context, source }
    }

    pub fn corrupt(context: impl Into<String>) -> impl FnOnce(CodecError) -> Self {
        let context = context.into();
        move |source| StorageError::Corrupt { context, source }
    }

    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| StorageError::Io { context, source }
    }
}
