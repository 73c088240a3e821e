//! The history indexed once for every check: operations paired (invoke with
//! its completion), publishes by value, deliveries in history order, acks by
//! (subscription, position). Checks read this and never walk raw events, so
//! the pairing rules live in one place.
//!
//! Nothing here judges the system; what the checker cannot make sense of (a
//! completion without an invoke, a malformed `ok`) goes to `malformed`, which
//! makes the verdict unknown: a harness bug must not pass as a valid run.

use std::collections::{BTreeMap, HashMap};

use crate::history::{Event, FaultStatus, Kind, Op, PhaseName, Position, ReplicaLog, Run};

/// How an operation ended. An operation whose completion is missing (the
/// history stops first) is `Info`: its outcome is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Fail,
    Info,
}

/// Everything known about one value of one topic.
#[derive(Debug, Default)]
pub struct ValueInfo<'a> {
    /// Every publish that carried it (retries may carry a value again).
    pub attempts: Vec<(Outcome, Option<u64>)>,
    pub idempotent: bool,
    pub ordering_key: Option<&'a str>,
    /// Positions and completion indexes of the `ok` publishes.
    pub acknowledged: Vec<(Position, u64)>,
}

impl ValueInfo<'_> {
    pub fn is_acknowledged(&self) -> bool {
        !self.acknowledged.is_empty()
    }

    /// Every publish of it certainly did not happen.
    pub fn certainly_failed(&self) -> bool {
        !self.attempts.is_empty()
            && !self.is_acknowledged()
            && self.attempts.iter().all(|(outcome, _)| *outcome == Outcome::Fail)
    }
}

/// One message returned by an `ok` pull.
#[derive(Debug)]
pub struct Delivered<'a> {
    pub subscription: &'a str,
    pub topic: &'a str,
    pub value: &'a str,
    pub position: Position,
    pub ordering_key: Option<&'a str>,
    pub process: u64,
    pub pull_invoked_at: u64,
    pub delivered_at: u64,
}

/// The acks of one (subscription, position).
#[derive(Debug, Default, Clone, Copy)]
pub struct AckInfo {
    /// Earliest invocation of any ack of it, whatever the outcome.
    pub first_invoked_at: Option<u64>,
    /// Earliest `ok` completion.
    pub first_ok_at: Option<u64>,
}

/// A replica log and the index of its event.
#[derive(Debug)]
pub struct ReplicaRead<'a> {
    pub at: u64,
    pub log: &'a ReplicaLog,
}

#[derive(Debug, Default)]
pub struct Model<'a> {
    /// Events by index.
    pub events: Vec<&'a Event>,
    pub run: Option<&'a Run>,
    /// Subscription → topic, from the run.
    pub topic_of: BTreeMap<&'a str, &'a str>,
    /// How each publish operation ended.
    pub publishes: Vec<Outcome>,
    /// (topic, value) → what happened to it.
    pub values: BTreeMap<(&'a str, &'a str), ValueInfo<'a>>,
    /// In history order: pull completion, then order within the pull.
    pub deliveries: Vec<Delivered<'a>>,
    pub acks: HashMap<(&'a str, Position), AckInfo>,
    pub acked_positions: u64,
    pub replica_reads: Vec<ReplicaRead<'a>>,
    /// `complete` of the last `drained` phase; `None` if there was none.
    pub drain_complete: Option<bool>,
    pub faults_installed: BTreeMap<&'a str, u64>,
    pub malformed: Vec<String>,
}

impl<'a> Model<'a> {
    pub fn build(events: &'a [Event]) -> Model<'a> {
        let mut model = Model { events: events.iter().collect(), ..Model::default() };
        model.events.sort_by_key(|event| event.index);
        model.read_run();
        let mut open: HashMap<u64, &'a Event> = HashMap::new();
        for position in 0..model.events.len() {
            let event = model.events[position];
            if position > 0 && model.events[position - 1].index == event.index {
                model.malformed.push(format!("two events have index {}", event.index));
            }
            model.take(event, &mut open);
        }
        // Still open when the history ends: outcome unknown.
        let mut unfinished: Vec<&Event> = open.into_values().collect();
        unfinished.sort_by_key(|event| event.index);
        for invoke in unfinished {
            model.record(invoke, None);
        }
        model
    }

    /// Subscriptions of a topic, in the run's order.
    pub fn subscriptions_of<'s>(&'s self, topic: &'s str) -> impl Iterator<Item = &'a str> + 's {
        self.topic_of.iter().filter(move |(_, t)| **t == topic).map(|(s, _)| *s)
    }

    fn read_run(&mut self) {
        match self.events.first().map(|event| &event.op) {
            Some(Op::Run(run)) => {
                self.run = Some(run);
                for subscription in &run.subscriptions {
                    self.topic_of.insert(&subscription.name, &subscription.topic);
                }
            }
            _ => self.malformed.push("the history does not start with a run event".to_string()),
        }
    }

    /// One event: pairs client operations, notes harness events.
    fn take(&mut self, event: &'a Event, open: &mut HashMap<u64, &'a Event>) {
        match &event.op {
            Op::Run(_) if event.index != self.events[0].index => {
                self.malformed.push(format!("a second run event at index {}", event.index));
            }
            Op::Run(_) => {}
            Op::Fault(fault) => {
                if fault.status == FaultStatus::Installed {
                    *self.faults_installed.entry(&fault.name).or_default() += 1;
                }
            }
            Op::Phase(phase) => {
                if phase.name == PhaseName::Drained {
                    self.drain_complete = Some(phase.complete == Some(true));
                }
            }
            Op::ReplicaLog(log) => self.replica_reads.push(ReplicaRead { at: event.index, log }),
            Op::Publish(_) | Op::Pull(_) | Op::Ack(_) | Op::Nack(_) => self.pair(event, open),
        }
    }

    fn pair(&mut self, event: &'a Event, open: &mut HashMap<u64, &'a Event>) {
        if event.kind == Kind::Invoke {
            if let Some(previous) = open.insert(event.process, event) {
                self.malformed.push(format!(
                    "process {} invoked at index {} while its operation from index {} was open",
                    event.process, event.index, previous.index
                ));
                self.record(previous, None);
            }
            return;
        }
        match open.remove(&event.process) {
            Some(invoke) if std::mem::discriminant(&invoke.op) == std::mem::discriminant(&event.op) => {
                self.record(invoke, Some(event));
            }
            Some(invoke) => {
                self.malformed.push(format!(
                    "completion at index {} does not match its invocation at index {}",
                    event.index, invoke.index
                ));
                self.record(invoke, None);
            }
            None => self.malformed.push(format!("completion at index {} without an invocation", event.index)),
        }
    }

    /// One operation; `completion` is `None` when its outcome is unknown.
    fn record(&mut self, invoke: &'a Event, completion: Option<&'a Event>) {
        let outcome = match completion.map(|event| event.kind) {
            Some(Kind::Ok) => Outcome::Ok,
            Some(Kind::Fail) => Outcome::Fail,
            _ => Outcome::Info,
        };
        let complete_at = completion.map(|event| event.index);
        match (&invoke.op, completion.map(|event| &event.op)) {
            (Op::Publish(_), completed) => {
                let completed = completed.filter(|_| outcome == Outcome::Ok);
                self.record_publish(invoke, completed, outcome, complete_at);
            }
            (Op::Pull(_), Some(Op::Pull(pull))) if outcome == Outcome::Ok => {
                let Some(&topic) = self.topic_of.get(pull.subscription.as_str()) else {
                    self.malformed.push(format!("pull of unknown subscription {:?}", pull.subscription));
                    return;
                };
                let (pull_invoked_at, delivered_at) = (invoke.index, complete_at.unwrap_or(invoke.index));
                for message in &pull.messages {
                    self.deliveries.push(Delivered {
                        subscription: &pull.subscription,
                        topic,
                        value: &message.value,
                        position: message.position,
                        ordering_key: message.ordering_key.as_deref(),
                        process: invoke.process,
                        pull_invoked_at,
                        delivered_at,
                    });
                }
            }
            (Op::Ack(settle), _) => {
                for position in &settle.positions {
                    let ack = self.acks.entry((settle.subscription.as_str(), *position)).or_default();
                    ack.first_invoked_at = Some(ack.first_invoked_at.map_or(invoke.index, |at| at.min(invoke.index)));
                    if let (Outcome::Ok, Some(done)) = (outcome, complete_at) {
                        ack.first_ok_at = Some(ack.first_ok_at.map_or(done, |at| at.min(done)));
                        self.acked_positions += 1;
                    }
                }
            }
            _ => {}
        }
    }

    fn record_publish(&mut self, invoke: &'a Event, ok: Option<&'a Op>, outcome: Outcome, complete_at: Option<u64>) {
        let Op::Publish(publish) = &invoke.op else { return };
        self.publishes.push(outcome);
        for value in &publish.values {
            let info = self.values.entry((&publish.topic, value)).or_default();
            info.attempts.push((outcome, complete_at));
            info.idempotent |= publish.idempotent;
            info.ordering_key = info.ordering_key.or(publish.ordering_key.as_deref());
        }
        let (Some(Op::Publish(done)), Some(at)) = (ok, complete_at) else { return };
        if done.values != publish.values || done.values.len() != done.positions.len() {
            self.malformed.push(format!("ok publish at index {at} does not give one position per invoked value"));
        }
        for (value, position) in done.values.iter().zip(&done.positions) {
            let info = self.values.entry((&publish.topic, value)).or_default();
            info.acknowledged.push((*position, at));
        }
    }
}
