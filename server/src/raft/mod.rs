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
