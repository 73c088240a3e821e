//! "Acknowledged but not yet delivered", per subscription over time: the
//! liveness signal. It should rise while faults block delivery and fall back
//! to zero once the cluster heals.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use super::model::Model;
use crate::history::{Kind, Op};

/// One subscription's curve. The count is sampled at every completion event;
/// a point is kept only where the count changes (and at the last event), which
/// loses nothing for a step plot and keeps the report small.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnseenSeries {
    pub subscription: String,
    /// `(time_us, count)`.
    pub points: Vec<(u64, u64)>,
}

/// One subscription's state while the history is replayed.
#[derive(Default)]
struct Tally<'a> {
    delivered: HashSet<&'a str>,
    unseen: HashSet<&'a str>,
    points: Vec<(u64, u64)>,
}

pub fn series(model: &Model<'_>) -> Vec<UnseenSeries> {
    let mut tallies: BTreeMap<&str, Tally<'_>> =
        model.topic_of.keys().map(|subscription| (*subscription, Tally::default())).collect();
    let mut acknowledged: HashSet<(&str, &str)> = HashSet::new();
    let mut last_time_us = 0;
    for event in &model.events {
        if event.kind == Kind::Invoke {
            continue;
        }
        match (&event.op, event.kind) {
            (Op::Publish(publish), Kind::Ok) => {
                for value in &publish.values {
                    if !acknowledged.insert((&publish.topic, value)) {
                        continue;
                    }
                    for subscription in model.subscriptions_of(&publish.topic) {
                        if let Some(tally) = tallies.get_mut(subscription) {
                            if !tally.delivered.contains(value.as_str()) {
                                tally.unseen.insert(value);
                            }
                        }
                    }
                }
            }
            (Op::Pull(pull), Kind::Ok) => {
                if let Some(tally) = tallies.get_mut(pull.subscription.as_str()) {
                    for message in &pull.messages {
                        tally.delivered.insert(&message.value);
                        tally.unseen.remove(message.value.as_str());
                    }
                }
            }
            _ => {}
        }
        for tally in tallies.values_mut() {
            let count = tally.unseen.len() as u64;
            if tally.points.last().is_none_or(|(_, last)| *last != count) {
                tally.points.push((event.time_us, count));
            }
        }
        last_time_us = event.time_us;
    }
    tallies
        .into_iter()
        .map(|(subscription, mut tally)| {
            if let Some(&(time_us, count)) = tally.points.last() {
                if time_us != last_time_us {
                    tally.points.push((last_time_us, count));
                }
            }
            UnseenSeries { subscription: subscription.to_string(), points: tally.points }
        })
        .collect()
}
