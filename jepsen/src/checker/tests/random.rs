//! Randomized sanity: histories of a simulated correct queue (in-order
//! cursors, redelivery of unacked messages, unknown outcomes, overlapping
//! operations) must be valid for every seed; dropping one acknowledged
//! value's deliveries, or redelivering an acked one, must make them invalid.

use std::collections::{BTreeMap, BTreeSet};

use super::builder::{check_small, pos, At, HistoryBuilder};
use crate::checker::{Anomaly, Verdict};
use crate::history::{Event, FaultStatus, Kind, Op, Position};

const PARTITIONS: u32 = 3;
const SUBSCRIPTIONS: [&str; 2] = ["a", "b"];

/// xorshift64*: deterministic, good enough to pick actions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// One subscription's delivery state in the simulated server.
#[derive(Default)]
struct Cursor {
    next: [u64; PARTITIONS as usize],
    /// Delivered, not acked: may come again.
    unacked: BTreeSet<Position>,
    /// Delivered in an `ok` pull: the consumer may ack it.
    seen: BTreeSet<Position>,
}

struct Sim {
    rng: Rng,
    builder: HistoryBuilder,
    log: [Vec<String>; PARTITIONS as usize],
    cursors: BTreeMap<&'static str, Cursor>,
    counter: u64,
    next_process: u64,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut builder = HistoryBuilder::new(PARTITIONS, &SUBSCRIPTIONS, &["kill"]);
        builder.fault("kill", FaultStatus::Installed);
        let cursors = SUBSCRIPTIONS.iter().map(|name| (*name, Cursor::default())).collect();
        Sim { rng: Rng(seed | 1), builder, log: Default::default(), cursors, counter: 0, next_process: 100 }
    }

    fn process(&mut self) -> u64 {
        self.next_process += 1;
        self.next_process
    }

    /// A batch stored at invoke time; the client may learn of it later, or never.
    fn publish(&mut self) {
        let process = self.process();
        let outcome = match self.rng.below(10) {
            0 => Kind::Fail,
            1 => Kind::Info,
            _ => Kind::Ok,
        };
        let mut batch = Vec::new();
        for _ in 0..=self.rng.below(3) {
            let partition = self.rng.below(u64::from(PARTITIONS)) as u32;
            batch.push((format!("1-{}", self.counter), partition));
            self.counter += 1;
        }
        let values: Vec<&str> = batch.iter().map(|(value, _)| value.as_str()).collect();
        self.builder.invoke_publish(process, &values, None, false);
        let mut at = Vec::new();
        for (value, partition) in &batch {
            let log = &mut self.log[*partition as usize];
            at.push((value.as_str(), *partition, log.len() as u64));
            if outcome != Kind::Fail {
                log.push(value.clone());
            }
        }
        if self.rng.chance(30) {
            self.pull();
        }
        self.builder.complete_publish(process, outcome, &at);
    }

    /// Unacked messages again now and then, then new ones in offset order.
    fn pull(&mut self) {
        let subscription = SUBSCRIPTIONS[self.rng.below(2) as usize];
        let process = self.process();
        let ok = !self.rng.chance(10);
        let again = self.rng.chance(30);
        let cursor = self.cursors.get_mut(subscription).expect("subscription");
        let mut positions: Vec<Position> = Vec::new();
        if again {
            positions.extend(cursor.unacked.iter().next().copied());
        }
        for _ in 0..=self.rng.below(3) {
            let partition = self.rng.below(u64::from(PARTITIONS)) as u32;
            let next = &mut cursor.next[partition as usize];
            if (*next as usize) < self.log[partition as usize].len() {
                positions.push(pos(partition, *next));
                *next += 1;
            }
        }
        cursor.unacked.extend(positions.iter().copied());
        if ok {
            cursor.seen.extend(positions.iter().copied());
        }
        let log = &self.log;
        let messages: Vec<At<'_>> = positions
            .iter()
            .map(|p| (log[p.partition as usize][p.offset as usize].as_str(), p.partition, p.offset))
            .collect();
        self.builder.invoke_pull(process, subscription);
        self.builder.complete_pull(process, if ok { Kind::Ok } else { Kind::Info }, &messages);
    }

    /// Acks what was seen; an `info` ack took effect or not.
    fn ack(&mut self, subscription: &'static str, all: bool) {
        let process = self.process();
        let outcome = if all || !self.rng.chance(10) { Kind::Ok } else { Kind::Info };
        let applied = outcome == Kind::Ok || self.rng.chance(50);
        let cursor = self.cursors.get_mut(subscription).expect("subscription");
        let chosen: Vec<Position> = cursor.seen.iter().copied().filter(|_| all || self.rng.chance(50)).collect();
        if chosen.is_empty() {
            return;
        }
        for position in &chosen {
            cursor.seen.remove(position);
            if applied {
                cursor.unacked.remove(position);
            }
        }
        self.builder.ack(process, subscription, outcome, &chosen);
    }

    /// Until every subscription has read and acked everything.
    fn drain(&mut self) {
        for subscription in SUBSCRIPTIONS {
            let process = self.process();
            let cursor = self.cursors.get_mut(subscription).expect("subscription");
            let mut positions: Vec<Position> = cursor.unacked.iter().copied().collect();
            for partition in 0..PARTITIONS {
                let next = &mut cursor.next[partition as usize];
                positions.extend((*next..self.log[partition as usize].len() as u64).map(|o| pos(partition, o)));
                *next = self.log[partition as usize].len() as u64;
            }
            let log = &self.log;
            let messages: Vec<At<'_>> = positions
                .iter()
                .map(|p| (log[p.partition as usize][p.offset as usize].as_str(), p.partition, p.offset))
                .collect();
            self.builder.pull(process, subscription, &messages);
            self.builder.ack(process, subscription, Kind::Ok, &positions);
            cursor.unacked.clear();
            cursor.seen.clear();
        }
        self.builder.drained(true);
        let entries: Vec<Vec<(u64, String)>> = self
            .log
            .iter()
            .map(|values| values.iter().enumerate().map(|(o, v)| (o as u64, v.clone())).collect())
            .collect();
        for node in 1..=3 {
            for (partition, log) in entries.iter().enumerate() {
                let log: Vec<(u64, &str)> = log.iter().map(|(o, v)| (*o, v.as_str())).collect();
                self.builder.replica(node, partition as u32, 0, &log);
            }
        }
    }

    fn run(seed: u64, steps: usize) -> Vec<Event> {
        let mut sim = Sim::new(seed);
        for _ in 0..steps {
            match sim.rng.below(3) {
                0 => sim.publish(),
                1 => sim.pull(),
                _ => {
                    let subscription = SUBSCRIPTIONS[sim.rng.below(2) as usize];
                    sim.ack(subscription, false);
                }
            }
        }
        sim.drain();
        sim.builder.build()
    }
}

/// An acknowledged value of a history, picked by `seed`.
fn acknowledged_value(events: &[Event], seed: u64) -> String {
    let acknowledged: Vec<&String> = events
        .iter()
        .filter(|event| event.kind == Kind::Ok)
        .filter_map(|event| match &event.op {
            Op::Publish(publish) => Some(&publish.values),
            _ => None,
        })
        .flatten()
        .collect();
    acknowledged[(seed as usize) % acknowledged.len()].clone()
}

#[test]
fn simulated_correct_queues_are_valid() {
    for seed in 0..30 {
        let report = check_small(&Sim::run(seed, 300));
        assert_eq!(report.verdict, Verdict::Valid, "seed {seed}: {report:#?}");
        assert!(report.anomalies.iter().all(|a| a.kind() == "partition-order"), "seed {seed}: {report:#?}");
    }
}

#[test]
fn dropping_every_delivery_of_one_acknowledged_value_is_caught() {
    for seed in 0..30 {
        let mut events = Sim::run(seed, 300);
        let victim = acknowledged_value(&events, seed);
        for event in &mut events {
            if let Op::Pull(pull) = &mut event.op {
                pull.messages.retain(|message| message.value != victim);
            }
        }
        let report = check_small(&events);
        assert_eq!(report.verdict, Verdict::Invalid, "seed {seed}, {victim}: {report:#?}");
        for anomaly in report.anomalies.iter().filter(|a| a.is_fatal()) {
            let names_victim = match anomaly {
                Anomaly::Lost(lost) => lost.values.iter().all(|m| m.value == victim),
                Anomaly::LostWrite(hole) => hole.missing.iter().all(|m| m.value == victim),
                _ => false,
            };
            assert!(names_victim, "seed {seed}, {victim}: {anomaly:#?}");
        }
    }
}

#[test]
fn redelivering_an_acked_message_is_caught() {
    for seed in 0..30 {
        let mut sim = Sim::new(seed);
        for _ in 0..200 {
            sim.publish();
        }
        sim.drain();
        let events = sim.builder.events().to_vec();
        let victim = acknowledged_value(&events, seed);
        let position = events
            .iter()
            .filter_map(|event| match &event.op {
                Op::Pull(pull) => pull.messages.iter().find(|m| m.value == victim).map(|m| m.position),
                _ => None,
            })
            .next()
            .expect("drained values are delivered");
        sim.builder.pull(999, SUBSCRIPTIONS[0], &[(&victim, position.partition, position.offset)]);
        let report = check_small(&sim.builder.build());
        assert_eq!(report.verdict, Verdict::Invalid, "seed {seed}");
        let kinds: Vec<&str> = report.anomalies.iter().map(Anomaly::kind).collect();
        assert_eq!(kinds, vec!["redelivered-after-ack"], "seed {seed}: {report:#?}");
    }
}
