//! TESTING ONLY (`ferryd --unsafe-ack-before-commit`): answers a plain
//! publish as soon as it is handed to Raft, before any quorum has it.
//!
//! This is the classic way a replicated queue loses acknowledged data — a
//! leader that dies before replicating takes "acknowledged" messages with
//! it. It exists so the fault harness can prove it notices (FAULTS.md,
//! "Proving the harness can fail"); nothing else may use it.
//!
//! The offsets it answers with are the ones the batch gets if it commits:
//! batches are submitted one at a time, in log order, and numbered from the
//! partition's applied end at the start of the leader's term.

use std::collections::HashMap;

use tokio::sync::Mutex;

use super::proposer::Proposer;
use super::status::ApiError;
use crate::domain::{Command, PublishBatch};

#[derive(Debug, Default)]
pub struct EarlyAck {
    next: Mutex<NextOffsets>,
}

/// Per (topic id, partition), the offset the next submitted batch will get,
/// in the term they were counted in.
#[derive(Debug, Default)]
struct NextOffsets {
    term: u64,
    by_partition: HashMap<(u64, u32), u64>,
}

impl EarlyAck {
    /// Submits the batch and returns its (expected) first offset without
    /// waiting for the commit.
    pub async fn publish(&self, proposer: &Proposer, batch: PublishBatch) -> Result<u64, ApiError> {
        let term = proposer.leader_term()?;
        let key = (batch.topic_id, batch.partition);
        let count = batch.messages.len() as u64;
        let mut next = self.next.lock().await;
        if next.term != term {
            *next = NextOffsets { term, by_partition: HashMap::new() };
        }
        let first = match next.by_partition.get(&key) {
            Some(&offset) => offset,
            None => {
                let catalog = proposer.state().catalog();
                let partition =
                    catalog.topic_by_id(batch.topic_id).and_then(|t| t.partitions.get(batch.partition as usize));
                partition.map_or(0, |p| p.next_offset)
            }
        };
        let submitted = proposer.submit(Command::Publish(batch)).await?;
        next.by_partition.insert(key, first + count);
        drop(next);
        tokio::spawn(async move {
            if let Err(error) = submitted.outcome().await {
                tracing::warn!(%error, "an early-acknowledged publish did not commit");
            }
        });
        Ok(first)
    }
}
