//! The Ferry server: a Raft-replicated event queue node.
//!
//! Layers, from the bottom up (see ARCHITECTURE.md for the map):
//! - [`domain`]: the replicated state and its pure transition function;
//! - [`storage`]: RocksDB databases, key encodings, value framing;
//! - [`raft`]: openraft's log store, state machine, snapshots and network;
//! - [`delivery`]: leader-local leases and dispatch of messages to consumers;
//! - [`grpc`]: the public `ferry.v1` services;
//! - [`node`]: a running node, started with [`NodeBuilder`] and stopped cleanly;
//! - [`security`]: TLS, client tokens and the peer token.

pub mod clock;
pub mod config_file;
pub mod delivery;
pub mod domain;
pub mod grpc;
pub mod node;
pub mod raft;
pub mod security;
pub mod storage;

pub use node::{Node, NodeBuilder};

/// This build's version, and the git commit it was built from (`-dirty` when
/// the tree had changes; "unknown" outside a checkout).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const GIT_COMMIT: &str = env!("FERRY_GIT_COMMIT");
