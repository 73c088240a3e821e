//! Reads for audits, such as a mirror's gap check: where times fall in a
//! topic's partitions, and which of an idempotent producer's sequences a
//! partition stored.

use std::time::SystemTime;

use ferry_proto::v1 as api;

use crate::client::{publisher, rpc, Client};
use crate::error::Result;
use crate::types::{micros_of, topic_from_api, Topic};

/// What a partition remembers of an idempotent producer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProducerInfo {
    /// False when the partition does not know the producer (never seen, or
    /// forgotten after a week idle).
    pub known: bool,
    pub next_sequence: u64,
    /// For each asked bound: how many of the producer's sequences below it
    /// were stored (skipped ones not counted); `None` when the partition no
    /// longer tracks that far back.
    pub stored_below: Vec<Option<u64>>,
}

impl Client {
    /// The topic, and for each partition (in order), for each of `times`:
    /// the offset of the first message published at or after it (the end
    /// offset when none is yet; among deleted messages, whole hours from the
    /// partition's hour boundaries, other times the start offset). One call,
    /// so the offsets and the partitions' start offsets agree.
    pub async fn offsets_for_times(&self, topic: &str, times: &[SystemTime]) -> Result<(Topic, Vec<Vec<u64>>)> {
        let request = api::GetTopicRequest {
            name: topic.to_owned(),
            offsets_for_times_unix_micros: times.iter().map(|&t| micros_of(t)).collect(),
        };
        let reply = self.router().call(rpc!(publisher, get_topic, request)).await?;
        let offsets = reply.partitions.iter().map(|p| p.offsets_for_times.clone()).collect();
        Ok((topic_from_api(reply), offsets))
    }

    /// What `partition` of `topic` remembers of producer `producer_id`,
    /// with the count of its sequences stored below each of `stored_below`.
    pub async fn get_producer(
        &self,
        topic: &str,
        partition: u32,
        producer_id: u64,
        stored_below: &[u64],
    ) -> Result<ProducerInfo> {
        let request = api::GetProducerRequest {
            topic: topic.to_owned(),
            partition,
            producer_id,
            stored_below: stored_below.to_vec(),
        };
        let info = self.router().call(rpc!(publisher, get_producer, request)).await?;
        Ok(ProducerInfo {
            known: info.known,
            next_sequence: info.next_sequence,
            stored_below: info.stored_below.into_iter().map(|c| c.count).collect(),
        })
    }
}
