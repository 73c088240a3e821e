//! Mapping Ferry's storage failures into openraft's `StorageError`, with the
//! subject (log, vote, state machine, snapshot) openraft reports them under.

use openraft::storage::SnapshotSignature;
use openraft::StorageIOError;

use super::type_config::{LogId, NodeId, RaftStorageError};
use crate::storage::StorageError;

pub fn read_logs(e: StorageError) -> RaftStorageError {
    StorageIOError::read_logs(&e).into()
}

pub fn write_logs(e: StorageError) -> RaftStorageError {
    StorageIOError::write_logs(&e).into()
}

pub fn read_vote(e: StorageError) -> RaftStorageError {
    StorageIOError::read_vote(&e).into()
}

pub fn write_vote(e: StorageError) -> RaftStorageError {
    StorageIOError::write_vote(&e).into()
}

pub fn read_state(e: StorageError) -> RaftStorageError {
    StorageIOError::read_state_machine(&e).into()
}

pub fn apply(log_id: LogId) -> impl FnOnce(StorageError) -> RaftStorageError {
    move |e| StorageIOError::apply(log_id, &e).into()
}

pub fn read_snapshot(signature: Option<SnapshotSignature<NodeId>>) -> impl FnOnce(StorageError) -> RaftStorageError {
    move |e| StorageIOError::read_snapshot(signature, &e).into()
}

pub fn write_snapshot(signature: Option<SnapshotSignature<NodeId>>) -> impl FnOnce(StorageError) -> RaftStorageError {
    move |e| StorageIOError::write_snapshot(signature, &e).into()
}
