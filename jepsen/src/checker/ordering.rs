//! Order of first-time deliveries (the first delivery of each position to a
//! subscription, in the order pulls completed; redeliveries may legitimately
//! go back).
//!
//! Ferry promises order per ordering key only: a key's messages go out one at
//! a time, the next once the previous is acked or dead-lettered. So a key's
//! first-time deliveries must rise (`ordering`), and the next must not go out
//! before the previous was acked (`ordering-key-overlap`). Messages without a
//! key carry no promise; inversions seen by one consumer are reported as
//! `partition-order`, for information.

use std::collections::{BTreeMap, HashSet};

use super::anomaly::{Anomaly, FirstDelivery, KeyOverlap, OrderingInversion, PartitionInversion};
use super::model::{Delivered, Model};

/// (subscription, ordering key, partition) or (subscription, process, partition).
type Group<'m, 'a, K> = BTreeMap<(&'a str, K, u32), Vec<&'m Delivered<'a>>>;

pub fn check(model: &Model<'_>) -> Vec<Anomaly> {
    let mut keyed: Group<'_, '_, &str> = BTreeMap::new();
    let mut unkeyed: Group<'_, '_, u64> = BTreeMap::new();
    let mut seen = HashSet::new();
    for delivery in &model.deliveries {
        if !seen.insert((delivery.subscription, delivery.position)) {
            continue;
        }
        let partition = delivery.position.partition;
        // The key the producer asked for is the promise; the delivery's own
        // key is the fallback for values no publish carried.
        let published_key = model.values.get(&(delivery.topic, delivery.value)).and_then(|info| info.ordering_key);
        match published_key.or(delivery.ordering_key) {
            Some(key) => keyed.entry((delivery.subscription, key, partition)).or_default().push(delivery),
            None => unkeyed.entry((delivery.subscription, delivery.process, partition)).or_default().push(delivery),
        }
    }
    let mut anomalies = Vec::new();
    for ((subscription, key, partition), firsts) in &keyed {
        for (earlier, later) in inversions(firsts) {
            anomalies.push(Anomaly::Ordering(OrderingInversion {
                subscription: subscription.to_string(),
                topic: later.topic.to_string(),
                ordering_key: key.to_string(),
                partition: *partition,
                earlier: first(earlier),
                later: first(later),
            }));
        }
        anomalies.extend(overlaps(model, key, firsts));
    }
    for ((subscription, process, partition), firsts) in &unkeyed {
        for (earlier, later) in inversions(firsts) {
            anomalies.push(Anomaly::PartitionOrder(PartitionInversion {
                subscription: subscription.to_string(),
                topic: later.topic.to_string(),
                process: *process,
                partition: *partition,
                earlier: first(earlier),
                later: first(later),
            }));
        }
    }
    anomalies
}

/// Each delivery below the highest offset delivered before it, with that one.
fn inversions<'m, 'a>(firsts: &[&'m Delivered<'a>]) -> Vec<(&'m Delivered<'a>, &'m Delivered<'a>)> {
    let mut found = Vec::new();
    let mut highest: Option<&Delivered<'_>> = None;
    for delivery in firsts {
        match highest {
            Some(top) if delivery.position.offset < top.position.offset => found.push((top, *delivery)),
            _ => highest = Some(delivery),
        }
    }
    found
}

/// Consecutive messages of a key (by offset) where the next went out before
/// any ack of the previous was even sent, and the previous was acked later.
/// A previous never acked `ok` (dead-lettered, `info` ack) proves nothing.
fn overlaps(model: &Model<'_>, key: &str, firsts: &[&Delivered<'_>]) -> Vec<Anomaly> {
    // Position in `firsts` is first-delivery order.
    let mut by_offset: Vec<(usize, &Delivered<'_>)> = firsts.iter().copied().enumerate().collect();
    by_offset.sort_by_key(|(_, delivery)| delivery.position.offset);
    let mut anomalies = Vec::new();
    for pair in by_offset.windows(2) {
        let [(previous_order, previous), (next_order, next)] = pair else { continue };
        if next_order < previous_order {
            continue; // Delivered before the previous at all: that is `ordering`.
        }
        let Some(ack) = model.acks.get(&(previous.subscription, previous.position)) else { continue };
        let (Some(_), Some(ack_invoked_at)) = (ack.first_ok_at, ack.first_invoked_at) else { continue };
        if next.delivered_at < ack_invoked_at {
            anomalies.push(Anomaly::OrderingKeyOverlap(KeyOverlap {
                subscription: next.subscription.to_string(),
                topic: next.topic.to_string(),
                ordering_key: key.to_string(),
                partition: next.position.partition,
                previous: first(previous),
                previous_ack_invoked_at: ack_invoked_at,
                next: first(next),
            }));
        }
    }
    anomalies
}

fn first(delivery: &Delivered<'_>) -> FirstDelivery {
    FirstDelivery {
        value: delivery.value.to_string(),
        offset: delivery.position.offset,
        delivered_at: delivery.delivered_at,
    }
}
