//! Counts for the report and the chaos summary table: how much the run did,
//! which faults really fired, and how often values were delivered (duplicates
//! are allowed under at-least-once, so they are measured, not judged).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::model::{Model, Outcome};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub publishes: OpCounts,
    /// Distinct values with an `ok` publish.
    pub values_acknowledged: u64,
    /// Messages returned by `ok` pulls, redeliveries included.
    pub deliveries: u64,
    /// Positions in `ok` acks.
    pub acks_ok: u64,
    /// Nemesis name → faults recorded `installed`.
    pub faults_installed: BTreeMap<String, u64>,
    /// Subscription → (times a value was delivered → how many values).
    pub duplicates_delivered: BTreeMap<String, BTreeMap<u64, u64>>,
    /// Replica log events read after healing.
    pub replica_logs: u64,
}

/// Operations by outcome; `info` includes those the history never completed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OpCounts {
    pub invoked: u64,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
}

pub fn collect(model: &Model<'_>) -> Stats {
    let mut publishes = OpCounts { invoked: model.publishes.len() as u64, ..OpCounts::default() };
    for publish in &model.publishes {
        match publish {
            Outcome::Ok => publishes.ok += 1,
            Outcome::Fail => publishes.fail += 1,
            Outcome::Info => publishes.info += 1,
        }
    }
    Stats {
        publishes,
        values_acknowledged: model.values.values().filter(|info| info.is_acknowledged()).count() as u64,
        deliveries: model.deliveries.len() as u64,
        acks_ok: model.acked_positions,
        faults_installed: model.faults_installed.iter().map(|(name, count)| (name.to_string(), *count)).collect(),
        duplicates_delivered: delivery_distribution(model),
        replica_logs: model.replica_reads.len() as u64,
    }
}

fn delivery_distribution(model: &Model<'_>) -> BTreeMap<String, BTreeMap<u64, u64>> {
    let mut times: HashMap<(&str, &str), u64> = HashMap::new();
    for delivery in &model.deliveries {
        *times.entry((delivery.subscription, delivery.value)).or_default() += 1;
    }
    let mut distribution: BTreeMap<String, BTreeMap<u64, u64>> =
        model.topic_of.keys().map(|subscription| (subscription.to_string(), BTreeMap::new())).collect();
    for ((subscription, _), count) in times {
        *distribution.entry(subscription.to_string()).or_default().entry(count).or_default() += 1;
    }
    distribution
}
