//! Raft: openraft's type configuration, the RocksDB log store and state
//! machine, snapshots as checkpoint directories, and the network.

pub mod arrivals;
pub mod backup;
pub mod codec;
pub mod errors;
pub mod groups;
pub mod log_db;
pub mod log_sizes;
pub mod log_store;
mod log_workers;
pub mod network;
pub mod rpc_codec;
pub mod snapshot_dir;
pub mod state_dirs;
pub mod state_machine;
pub mod type_config;
mod wal_trimmer;

pub use arrivals::{ArrivalWatch, Arrivals};
pub use groups::{group_root, GroupId, Groups, HostedGroup, META_GROUP};
pub use log_db::LogDb;
pub use log_store::{LogStore, SyncMode};
pub use state_machine::{AppliedState, StateMachine};
pub use type_config::{NodeId, Raft, TypeConfig};

/// Upper bounds of the buckets of a wait on storage (a raft-log fsync, an
/// entry's apply): from a disk with a write cache that ignores flushes
/// (tens of microseconds) through an SSD's milliseconds to a disk stalled
/// by other writers (seconds). A publish waits for one fsync on each voter
/// and its entry's apply on the leader; a proposal's whole wait (those and
/// the replication round trips) uses the same buckets, up to the default
/// commit timeout (5 s).
static STORAGE_WAIT_BOUNDS_SECONDS: [f64; 15] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
