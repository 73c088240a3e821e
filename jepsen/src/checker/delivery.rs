//! Checks of single deliveries: where the value came from (`unexpected`,
//! `aborted-read`) and whether its message was already acked
//! (`redelivered-after-ack`).

use std::collections::HashSet;

use super::anomaly::{AbortedRead, Anomaly, RedeliveredAfterAck, Unexpected};
use super::model::{Delivered, Model};

pub fn check(model: &Model<'_>) -> Vec<Anomaly> {
    let mut anomalies = Vec::new();
    // One report per (subscription, value) for provenance: a value delivered
    // ten times was still published (or not) once.
    let mut reported: HashSet<(&str, &str)> = HashSet::new();
    for delivery in &model.deliveries {
        if let Some(anomaly) = provenance(model, delivery) {
            if reported.insert((delivery.subscription, delivery.value)) {
                anomalies.push(anomaly);
            }
        }
        anomalies.extend(after_ack(model, delivery));
    }
    anomalies
}

fn provenance(model: &Model<'_>, delivery: &Delivered<'_>) -> Option<Anomaly> {
    let Some(info) = model.values.get(&(delivery.topic, delivery.value)) else {
        return Some(Anomaly::Unexpected(Unexpected {
            subscription: delivery.subscription.to_string(),
            topic: delivery.topic.to_string(),
            value: delivery.value.to_string(),
            position: delivery.position,
            delivered_at: delivery.delivered_at,
        }));
    };
    if !info.certainly_failed() {
        return None;
    }
    Some(Anomaly::AbortedRead(AbortedRead {
        subscription: delivery.subscription.to_string(),
        topic: delivery.topic.to_string(),
        value: delivery.value.to_string(),
        position: delivery.position,
        delivered_at: delivery.delivered_at,
        failed_at: info.attempts.iter().filter_map(|(_, at)| *at).collect(),
    }))
}

/// Only an `ok` ack counts, and only for pulls invoked after it completed:
/// an overlapping pull may have been served before the ack took effect.
fn after_ack(model: &Model<'_>, delivery: &Delivered<'_>) -> Option<Anomaly> {
    let ack = model.acks.get(&(delivery.subscription, delivery.position))?;
    let acked_at = ack.first_ok_at?;
    if delivery.pull_invoked_at <= acked_at {
        return None;
    }
    Some(Anomaly::RedeliveredAfterAck(RedeliveredAfterAck {
        subscription: delivery.subscription.to_string(),
        topic: delivery.topic.to_string(),
        value: delivery.value.to_string(),
        position: delivery.position,
        acked_at,
        pull_invoked_at: delivery.pull_invoked_at,
        delivered_at: delivery.delivered_at,
    }))
}
