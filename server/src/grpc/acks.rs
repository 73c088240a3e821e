//! Acks, shared by unary Acknowledge and StreamingPull: decoding ack ids
//! against a subscription, and committing them through Raft.

use std::sync::Arc;

use super::proposer::{Proposer, Submitted};
use super::status::ApiError;
use crate::delivery::{AckId, AckPlan, Dispatcher};
use crate::domain::{self, AckBatch, Command, InvalidArgument, PartitionAcks, SubscriptionState};

/// Decodes each ack id and checks it belongs to `subscription` and names a
/// published offset; one result per id, errors naming `ack_ids[i]`.
pub fn decode(
    proposer: &Proposer,
    subscription: &SubscriptionState,
    ids: &[String],
) -> Vec<Result<AckId, InvalidArgument>> {
    let ends = proposer.state().catalog().partition_ends(subscription.topic_id);
    ids.iter()
        .enumerate()
        .map(|(i, text)| {
            // The field's name is built only for an error: this runs for every ack.
            let invalid = |problem: String| InvalidArgument::new(format!("ack_ids[{i}]"), problem);
            let id = AckId::decode(text).map_err(|e| invalid(e.to_string()))?;
            if id.subscription_id != subscription.id {
                return Err(invalid(format!("belongs to another subscription than {:?}", subscription.name)));
            }
            match ends.get(id.partition as usize) {
                Some(end) if id.offset < *end => Ok(id),
                _ => Err(invalid("names a message that was never delivered".to_owned())),
            }
        })
        .collect()
}

/// The outcome of committing acks.
#[derive(Debug, Default)]
pub struct Committed {
    pub acked: Vec<AckId>,
    /// Acks of a delivery superseded by a redelivery: ignored.
    pub stale: Vec<AckId>,
}

/// Commits acks through Raft; returns once they are committed (or failed).
pub async fn commit(
    proposer: &Proposer,
    dispatcher: &Arc<Dispatcher>,
    term: u64,
    subscription: &SubscriptionState,
    ids: Vec<AckId>,
) -> Result<Committed, ApiError> {
    submit(proposer, dispatcher, term, subscription, ids).await.committed().await
}

/// Marks acks as committing and hands them to Raft, without waiting for the
/// commit: acks submitted one after another enter the log in that order. A
/// stream's acks then apply in the order its consumer sent them, so the
/// floor climbs without storing them individually first.
pub async fn submit(
    proposer: &Proposer,
    dispatcher: &Arc<Dispatcher>,
    term: u64,
    subscription: &SubscriptionState,
    ids: Vec<AckId>,
) -> Submitting {
    let plan = dispatcher.begin_ack(term, subscription, &ids);
    let submitted = if plan.commit.is_empty() {
        None
    } else {
        let mut partitions: Vec<PartitionAcks> = Vec::new();
        for &(partition, offset) in &plan.commit {
            match partitions.iter_mut().find(|p| p.partition == partition) {
                Some(group) => group.offsets.push(offset),
                None => partitions.push(PartitionAcks { partition, offsets: vec![offset] }),
            }
        }
        let command = Command::Acknowledge(AckBatch { subscription_id: subscription.id, partitions });
        Some(proposer.submit(command).await)
    };
    Submitting { dispatcher: Arc::clone(dispatcher), term, subscription: subscription.clone(), ids, plan, submitted }
}

/// Acks handed to Raft by [`submit`].
pub struct Submitting {
    dispatcher: Arc<Dispatcher>,
    term: u64,
    subscription: SubscriptionState,
    ids: Vec<AckId>,
    plan: AckPlan,
    /// `None` when nothing needed committing.
    submitted: Option<Result<Submitted, ApiError>>,
}

impl Submitting {
    /// Waits for the commit, then settles the acks' leases.
    pub async fn committed(self) -> Result<Committed, ApiError> {
        let Self { dispatcher, term, subscription, ids, plan, submitted } = self;
        let Some(submitted) = submitted else {
            return Ok(Committed { acked: Vec::new(), stale: plan.stale });
        };
        let result = match submitted {
            Ok(submitted) => submitted.outcome().await,
            Err(e) => Err(e),
        };
        dispatcher.finish_ack(term, &subscription, &plan.commit, result.is_ok());
        match result? {
            domain::Response::Acknowledged { .. } => {
                let acked = ids.into_iter().filter(|id| !plan.stale.contains(id)).collect();
                Ok(Committed { acked, stale: plan.stale })
            }
            other => Err(ApiError::Internal(format!("acknowledge answered {other:?}"))),
        }
    }
}
