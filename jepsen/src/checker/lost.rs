//! Acknowledged values a subscription never got.
//!
//! `lost` needs a complete drain: before it, "not delivered yet" and "never
//! will be" look the same. The hole rule (`lost-write`) needs no drain: once
//! offset `o` of a partition was delivered, every acknowledged value below it
//! was readable, so it must have been delivered at least once already.
//! One window remains: a message leased to a pull that ended `info` is only
//! redelivered when its lease expires, so a history cut off within an ack
//! deadline of such a pull can show a hole that is not one. The harness's
//! drain (which waits far longer than a deadline) closes that window.
//! Messages with an ordering key are left out of the hole rule: each waits,
//! by contract, until the previous one of its key is acked, so a later
//! offset of another key can rightly go out first. `lost` covers them.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::anomaly::{Anomaly, Lost, LostRegion, LostWrite, Missing, LISTED_MAX};
use super::model::Model;

/// `lost`, per subscription, writer and region; nothing without a complete drain.
pub fn lost(model: &Model<'_>) -> Vec<Anomaly> {
    if model.drain_complete != Some(true) {
        return Vec::new();
    }
    let mut anomalies = Vec::new();
    for (&subscription, &topic) in &model.topic_of {
        let delivered = delivered_values(model, subscription);
        let ranges = counter_ranges(&delivered);
        // (writer, region) → missing values, by counter.
        let mut groups: BTreeMap<(&str, LostRegion), Vec<(u64, Missing)>> = BTreeMap::new();
        for (&(value_topic, value), info) in &model.values {
            let Some(&(position, published_at)) = info.acknowledged.first() else { continue };
            if value_topic != topic || delivered.contains(value) || info.ordering_key.is_some() {
                continue;
            }
            let (writer, counter) = split_value(value).unwrap_or((value, 0));
            let region = region_of(counter, ranges.get(writer));
            let missing = Missing { value: value.to_string(), position, published_at };
            groups.entry((writer, region)).or_default().push((counter, missing));
        }
        for ((writer, region), mut values) in groups {
            values.sort_by_key(|(counter, _)| *counter);
            anomalies.push(Anomaly::Lost(Lost {
                subscription: subscription.to_string(),
                topic: topic.to_string(),
                writer: writer.to_string(),
                region,
                count: values.len() as u64,
                values: values.into_iter().take(LISTED_MAX).map(|(_, missing)| missing).collect(),
            }));
        }
    }
    anomalies
}

/// `lost-write`, per subscription and partition, below the highest delivered offset.
pub fn holes(model: &Model<'_>) -> Vec<Anomaly> {
    let mut anomalies = Vec::new();
    for (&subscription, &topic) in &model.topic_of {
        let delivered = delivered_values(model, subscription);
        // partition → (highest delivered offset, where it was delivered).
        let mut highest: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
        for delivery in model.deliveries.iter().filter(|d| d.subscription == subscription) {
            let entry = highest.entry(delivery.position.partition).or_insert((0, delivery.delivered_at));
            if delivery.position.offset > entry.0 {
                *entry = (delivery.position.offset, delivery.delivered_at);
            }
        }
        // One pass over the values: partition → acknowledged values below its highest.
        let mut missing: BTreeMap<u32, Vec<Missing>> = BTreeMap::new();
        for (&(value_topic, value), info) in &model.values {
            if value_topic != topic || delivered.contains(value) || info.ordering_key.is_some() {
                continue;
            }
            for &(position, published_at) in &info.acknowledged {
                if highest.get(&position.partition).is_some_and(|(offset, _)| position.offset < *offset) {
                    let entry = missing.entry(position.partition).or_default();
                    entry.push(Missing { value: value.to_string(), position, published_at });
                }
            }
        }
        for (partition, mut missing) in missing {
            let (delivered_offset, delivered_at) = highest[&partition];
            missing.sort_by_key(|m| m.position);
            anomalies.push(Anomaly::LostWrite(LostWrite {
                subscription: subscription.to_string(),
                topic: topic.to_string(),
                partition,
                delivered_offset,
                delivered_at,
                count: missing.len() as u64,
                missing: missing.into_iter().take(LISTED_MAX).collect(),
            }));
        }
    }
    anomalies
}

/// Values delivered at least once to a subscription.
fn delivered_values<'a>(model: &Model<'a>, subscription: &str) -> HashSet<&'a str> {
    model.deliveries.iter().filter(|d| d.subscription == subscription).map(|d| d.value).collect()
}

/// `"<writer>-<counter>"` → (writer, counter).
pub fn split_value(value: &str) -> Option<(&str, u64)> {
    let (writer, counter) = value.rsplit_once('-')?;
    Some((writer, counter.parse().ok()?))
}

/// Per writer, the lowest and highest delivered counter.
fn counter_ranges<'a>(delivered: &HashSet<&'a str>) -> HashMap<&'a str, (u64, u64)> {
    let mut ranges: HashMap<&str, (u64, u64)> = HashMap::new();
    for (writer, counter) in delivered.iter().filter_map(|value| split_value(value)) {
        let range = ranges.entry(writer).or_insert((counter, counter));
        *range = (range.0.min(counter), range.1.max(counter));
    }
    ranges
}

fn region_of(counter: u64, delivered: Option<&(u64, u64)>) -> LostRegion {
    match delivered {
        Some(&(lowest, _)) if counter < lowest => LostRegion::Prefix,
        Some(&(_, highest)) if counter < highest => LostRegion::Middle,
        _ => LostRegion::Postfix,
    }
}
