//! The openraft type configuration: what Ferry's Raft log carries.

use openraft::BasicNode;

use super::snapshot_dir::SnapshotDir;
use crate::domain::{Command, Response};

/// Node ids are chosen by the operator (`--node-id`), a node's address is its
/// internal gRPC address.
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// Ferry's Raft types: commands in, responses out, snapshots as directories.
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = NodeId,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = SnapshotDir,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type Membership = openraft::Membership<NodeId, BasicNode>;
pub type StoredMembership = openraft::StoredMembership<NodeId, BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, BasicNode>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type RaftStorageError = openraft::StorageError<NodeId>;
