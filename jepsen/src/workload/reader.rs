//! A consumer: pulls from one subscription and mostly acks, sometimes nacks,
//! and sometimes lets the ack deadline run out, so redelivery is exercised.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferry_client::{Client, ReceivedMessage};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{Tracker, OP_TIMEOUT};
use crate::history::{Delivery, Kind, Op, Position, Pull, Settle};
use crate::recorder::Recorder;

/// Messages per pull.
const PULL_MAX: u32 = 100;

#[derive(Debug, Clone)]
pub struct ReaderConfig {
    pub subscription: String,
    pub seed: u64,
}

/// Shared switches of all readers.
#[derive(Debug, Default)]
pub struct ReaderControl {
    /// Ack everything (the final drain): no nacks, no expiries.
    pub settle_all: AtomicBool,
    pub stop: AtomicBool,
}

pub async fn run(
    client: Client,
    recorder: Arc<Recorder>,
    tracker: Arc<Tracker>,
    config: ReaderConfig,
    control: Arc<ReaderControl>,
) {
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut process = recorder.new_process();
    let subscription = config.subscription;
    while !control.stop.load(Ordering::Relaxed) {
        let pull = Pull { subscription: subscription.clone(), messages: Vec::new() };
        recorder.record(process, Kind::Invoke, Op::Pull(pull.clone()));
        let pulled = tokio::time::timeout(OP_TIMEOUT, client.pull(&subscription, PULL_MAX, Duration::from_millis(500)));
        let received = match pulled.await {
            Ok(Ok(received)) => received,
            _ => {
                recorder.record(process, Kind::Info, Op::Pull(pull));
                process = recorder.new_process();
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let messages: Vec<Delivery> = received.iter().map(delivery).collect();
        tracker.delivered(&subscription, messages.iter().map(|d| d.value.as_str()));
        recorder.record(process, Kind::Ok, Op::Pull(Pull { messages, ..pull }));
        if received.is_empty() {
            continue;
        }
        let roll = rng.gen_range(0..100);
        let verdict = if control.settle_all.load(Ordering::Relaxed) || roll < 85 {
            Verdict::Ack
        } else if roll < 93 {
            Verdict::Nack
        } else {
            // Leave them leased: they come back after the ack deadline.
            continue;
        };
        if !settle(&client, &recorder, process, &subscription, &received, verdict).await {
            process = recorder.new_process();
        }
    }
}

enum Verdict {
    Ack,
    Nack,
}

/// Acks or nacks `received`; false if the outcome is unknown (the process
/// must then go on under a new id).
async fn settle(
    client: &Client,
    recorder: &Recorder,
    process: u64,
    subscription: &str,
    received: &[ReceivedMessage],
    verdict: Verdict,
) -> bool {
    let settle = Settle {
        subscription: subscription.to_owned(),
        positions: received
            .iter()
            .map(|m| Position { partition: m.position.partition, offset: m.position.offset })
            .collect(),
    };
    let ids: Vec<String> = received.iter().map(|m| m.ack_id.clone()).collect();
    let (invoke, done) = match verdict {
        Verdict::Ack => (Op::Ack(settle.clone()), Op::Ack(settle)),
        Verdict::Nack => (Op::Nack(settle.clone()), Op::Nack(settle)),
    };
    recorder.record(process, Kind::Invoke, invoke);
    let certain = match verdict {
        // A stale ack (the message was redelivered meanwhile) is ignored by
        // the server; recording it as ok would claim an ack that did not happen.
        Verdict::Ack => matches!(
            tokio::time::timeout(OP_TIMEOUT, client.acknowledge(subscription, &ids)).await,
            Ok(Ok(outcome)) if outcome.stale == 0
        ),
        Verdict::Nack => {
            matches!(
                tokio::time::timeout(OP_TIMEOUT, client.modify_ack_deadline(subscription, &ids, 0)).await,
                Ok(Ok(_))
            )
        }
    };
    recorder.record(process, if certain { Kind::Ok } else { Kind::Info }, done);
    certain
}

fn delivery(message: &ReceivedMessage) -> Delivery {
    let key = &message.message.ordering_key;
    Delivery {
        value: String::from_utf8_lossy(&message.message.data).into_owned(),
        position: Position { partition: message.position.partition, offset: message.position.offset },
        attempt: message.delivery_attempt,
        ordering_key: (!key.is_empty()).then(|| key.clone()),
    }
}
