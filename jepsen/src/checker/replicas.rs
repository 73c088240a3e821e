//! After healing every node's committed log of a partition must be the same
//! and hold every acknowledged message.
//!
//! Nodes are read one after another while the cluster may still commit, so
//! their logs may end at different offsets. To stay conservative only two
//! things are flagged: an offset two nodes hold with different values, and an
//! acknowledged position (at or after the node's `start_offset`, before which
//! retention may have trimmed) that a node lacks or holds with another value.

use std::collections::{BTreeMap, BTreeSet};

use super::anomaly::{Anomaly, NodeEntry, OffsetDivergence, ReplicaDivergence, LISTED_MAX};
use super::model::Model;
use crate::history::ReplicaLog;

/// One node's view of a partition: its start offset and offset → value.
struct NodeLog<'a> {
    start_offset: u64,
    entries: BTreeMap<u64, &'a str>,
}

pub fn check(model: &Model<'_>) -> Vec<Anomaly> {
    let acknowledged_by_partition = acknowledged_offsets(model);
    let mut anomalies = Vec::new();
    for ((topic, partition), nodes) in logs_by_partition(model) {
        let none = BTreeMap::new();
        let acknowledged = acknowledged_by_partition.get(&(topic, partition)).unwrap_or(&none);
        let offsets: BTreeSet<u64> =
            acknowledged.keys().copied().chain(nodes.values().flat_map(|log| log.entries.keys().copied())).collect();
        let mut divergent = Vec::new();
        for offset in offsets {
            let expected = acknowledged.get(&offset).copied();
            if let Some(divergence) = at_offset(offset, expected, &nodes) {
                divergent.push(divergence);
            }
        }
        if divergent.is_empty() {
            continue;
        }
        anomalies.push(Anomaly::ReplicaDivergence(ReplicaDivergence {
            topic: topic.to_string(),
            partition,
            count: divergent.len() as u64,
            offsets: divergent.into_iter().take(LISTED_MAX).collect(),
        }));
    }
    anomalies
}

/// The last log read from each node, per (topic, partition).
fn logs_by_partition<'a>(model: &Model<'a>) -> BTreeMap<(&'a str, u32), BTreeMap<u64, NodeLog<'a>>> {
    let mut logs: BTreeMap<(&str, u32), BTreeMap<u64, NodeLog<'_>>> = BTreeMap::new();
    for read in &model.replica_reads {
        let log: &ReplicaLog = read.log;
        let entries = log.entries.iter().map(|(offset, value)| (*offset, value.as_str())).collect();
        let node = NodeLog { start_offset: log.start_offset, entries };
        logs.entry((&log.topic, log.partition)).or_default().insert(log.node, node);
    }
    logs
}

/// (topic, partition) → offset → value of the `ok` publishes.
fn acknowledged_offsets<'a>(model: &Model<'a>) -> BTreeMap<(&'a str, u32), BTreeMap<u64, &'a str>> {
    let mut offsets: BTreeMap<(&str, u32), BTreeMap<u64, &str>> = BTreeMap::new();
    for (&(topic, value), info) in &model.values {
        for (position, _) in &info.acknowledged {
            // Two values at one offset are `inconsistent-offsets`; keep the first.
            offsets.entry((topic, position.partition)).or_default().entry(position.offset).or_insert(value);
        }
    }
    offsets
}

fn at_offset(offset: u64, expected: Option<&str>, nodes: &BTreeMap<u64, NodeLog<'_>>) -> Option<OffsetDivergence> {
    let covering: Vec<(u64, Option<&str>)> = nodes
        .iter()
        .filter(|(_, log)| offset >= log.start_offset)
        .map(|(node, log)| (*node, log.entries.get(&offset).copied()))
        .collect();
    let held: BTreeSet<&str> = covering.iter().filter_map(|(_, value)| *value).collect();
    let disagree = held.len() > 1;
    let lacks_acknowledged = expected.is_some_and(|value| covering.iter().any(|(_, held)| *held != Some(value)));
    if !disagree && !lacks_acknowledged {
        return None;
    }
    Some(OffsetDivergence {
        offset,
        acknowledged: expected.map(str::to_string),
        nodes: covering.into_iter().map(|(node, value)| NodeEntry { node, value: value.map(str::to_string) }).collect(),
    })
}
