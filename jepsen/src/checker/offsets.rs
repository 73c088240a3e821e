//! Positions and values must map one to one within a topic: a position holds
//! one value (`inconsistent-offsets`), a value is stored at one position
//! (`duplicate-publish`). Every witness counts: `ok` publishes, deliveries and
//! the replicas' logs.

use std::collections::{BTreeMap, BTreeSet};

use super::anomaly::{Anomaly, Claim, DuplicatePublish, InconsistentOffsets, Source, SOURCES_MAX};
use super::model::Model;
use crate::history::Position;

/// Everything the history says is stored where.
#[derive(Default)]
struct Witnesses<'a> {
    /// (topic, position) → value → who said so.
    values_at: BTreeMap<(&'a str, Position), BTreeMap<&'a str, Vec<Source>>>,
    /// (topic, value) → positions.
    positions_of: BTreeMap<(&'a str, &'a str), BTreeSet<Position>>,
}

impl<'a> Witnesses<'a> {
    fn add(&mut self, topic: &'a str, position: Position, value: &'a str, source: Source) {
        let sources = self.values_at.entry((topic, position)).or_default().entry(value).or_default();
        if sources.len() < SOURCES_MAX {
            sources.push(source);
        }
        self.positions_of.entry((topic, value)).or_default().insert(position);
    }
}

pub fn check(model: &Model<'_>) -> Vec<Anomaly> {
    let witnesses = collect(model);
    let mut anomalies = Vec::new();
    for ((topic, position), claims) in &witnesses.values_at {
        if claims.len() > 1 {
            anomalies.push(Anomaly::InconsistentOffsets(InconsistentOffsets {
                topic: topic.to_string(),
                position: *position,
                claims: claims
                    .iter()
                    .map(|(value, sources)| Claim { value: value.to_string(), sources: sources.clone() })
                    .collect(),
            }));
        }
    }
    for ((topic, value), positions) in &witnesses.positions_of {
        if positions.len() > 1 {
            let idempotent = model.values.get(&(*topic, *value)).is_some_and(|info| info.idempotent);
            anomalies.push(Anomaly::DuplicatePublish(DuplicatePublish {
                topic: topic.to_string(),
                value: value.to_string(),
                idempotent,
                positions: positions.iter().copied().collect(),
            }));
        }
    }
    anomalies
}

fn collect<'a>(model: &Model<'a>) -> Witnesses<'a> {
    let mut witnesses = Witnesses::default();
    for (&(topic, value), info) in &model.values {
        for &(position, at) in &info.acknowledged {
            witnesses.add(topic, position, value, Source::Publish { at });
        }
    }
    for delivery in &model.deliveries {
        let source = Source::Delivery { subscription: delivery.subscription.to_string(), at: delivery.delivered_at };
        witnesses.add(delivery.topic, delivery.position, delivery.value, source);
    }
    for read in &model.replica_reads {
        let log = read.log;
        for (offset, value) in &log.entries {
            let position = Position { partition: log.partition, offset: *offset };
            witnesses.add(&log.topic, position, value, Source::Replica { node: log.node, at: read.at });
        }
    }
    witnesses
}
