//! Reads of a partition's replica on this node that audits need: where each
//! of several times falls in its offsets, and which of an idempotent
//! producer's sequences it stored. A mirror's gap check compares the two:
//! the source's messages of an hour against what the destination stored of
//! them.

use ferry_proto::v1 as api;

use super::routing::GroupRoutes;
use super::status::ApiError;
use crate::domain::{hours, InvalidArgument, PartitionState, ProducerKey, TopicState};

/// Times a GetTopic may ask offsets for, at most.
pub const OFFSETS_FOR_TIMES_MAX: usize = 100;
/// Sequence bounds a GetProducer may ask counts for, at most.
pub const STORED_BELOW_MAX: usize = 1000;

/// For each partition, for each of `times`: the first offset published at or
/// after it (binary searches of the stored batches' publish times).
pub fn offsets_for_times(
    routes: &GroupRoutes,
    topic: &TopicState,
    states: &[PartitionState],
    times: &[i64],
) -> Result<Vec<Vec<u64>>, ApiError> {
    if times.len() > OFFSETS_FOR_TIMES_MAX {
        let problem = format!("{} times is over the limit of {OFFSETS_FOR_TIMES_MAX}", times.len());
        return Err(InvalidArgument::new("offsets_for_times_unix_micros", problem).into());
    }
    if times.is_empty() {
        return Ok(vec![Vec::new(); states.len()]);
    }
    let mut all = Vec::with_capacity(states.len());
    for (partition, state) in (0u32..).zip(states) {
        let replica = routes
            .replica_of(topic, partition)
            .ok_or_else(|| ApiError::Unavailable(format!("partition {partition}'s group is not open here yet")))?;
        let db = replica.state.db();
        let mut offsets = Vec::with_capacity(times.len());
        for &time in times {
            let (start, end) = (state.start_offset, state.next_offset);
            let mut offset = db.first_offset_where(topic.id, partition, start, end, |m| m.publish_time_us >= time)?;
            if offset == start && start > 0 {
                // The time may fall among deleted messages: the hour
                // boundaries still know where an hour began.
                let hour = hours::hour_at_or_after(time);
                if let Some(boundary) = db.hour_start_at_or_after(topic.id, partition, hour)? {
                    offset = offset.min(boundary);
                }
            }
            offsets.push(offset);
        }
        all.push(offsets);
    }
    Ok(all)
}

/// What `partition` of `topic` remembers of producer `producer_id`.
pub fn producer_info(
    routes: &GroupRoutes,
    topic: &TopicState,
    partition: u32,
    producer_id: u64,
    stored_below: &[u64],
) -> Result<api::ProducerInfo, ApiError> {
    if stored_below.len() > STORED_BELOW_MAX {
        let problem = format!("{} bounds is over the limit of {STORED_BELOW_MAX}", stored_below.len());
        return Err(InvalidArgument::new("stored_below", problem).into());
    }
    if partition >= topic.config.partitions {
        let problem = format!("{partition} is out of range: the topic has {} partitions", topic.config.partitions);
        return Err(InvalidArgument::new("partition", problem).into());
    }
    let replica = routes
        .replica_of(topic, partition)
        .ok_or_else(|| ApiError::Unavailable(format!("partition {partition}'s group is not open here yet")))?;
    let catalog = replica.state.catalog();
    let key = ProducerKey { topic_id: topic.id, partition, producer_id };
    let Some(state) = catalog.producers.get(&key) else {
        return Ok(api::ProducerInfo { known: false, ..Default::default() });
    };
    Ok(api::ProducerInfo {
        known: true,
        next_sequence: catalog.producers.next_sequence(&key).unwrap_or(0),
        stored_below: stored_below
            .iter()
            .map(|&bound| api::StoredCount { count: state.stored.stored_below(bound) })
            .collect(),
    })
}
