//! Builds small histories by hand: each call appends an invocation and its
//! completion (or a harness event) with the next index, 1 ms apart.

use std::collections::BTreeMap;

use crate::checker::{check, CheckOptions, Report};
use crate::history::{
    Delivery, Event, Fault, FaultStatus, Kind, Op, Phase, PhaseName, Position, Publish, Pull, ReplicaLog, Run, Settle,
    SubscriptionInfo, TopicInfo, NEMESIS_PROCESS,
};

pub const TOPIC: &str = "t";
pub const SUB: &str = "s";

/// `(value, partition, offset)`.
pub type At<'v> = (&'v str, u32, u64);

pub fn pos(partition: u32, offset: u64) -> Position {
    Position { partition, offset }
}

/// Checks with a threshold the small histories reach.
pub fn check_small(events: &[Event]) -> Report {
    check(events, &CheckOptions { min_acknowledged_publishes: 1 })
}

pub struct HistoryBuilder {
    events: Vec<Event>,
    /// What `ok` publishes stored: (topic, partition) → offset → value.
    stored: BTreeMap<(String, u32), BTreeMap<u64, String>>,
}

impl HistoryBuilder {
    /// Topic `t` with `partitions`, the given subscriptions of it.
    pub fn new(partitions: u32, subscriptions: &[&str], nemeses: &[&str]) -> Self {
        let run = Run {
            nodes: 3,
            network: "namespaces".into(),
            nemeses: nemeses.iter().map(|name| name.to_string()).collect(),
            seed: 7,
            topics: vec![TopicInfo { name: TOPIC.into(), partitions }],
            subscriptions: subscriptions
                .iter()
                .map(|name| SubscriptionInfo { name: name.to_string(), topic: TOPIC.into() })
                .collect(),
        };
        let mut builder = HistoryBuilder { events: Vec::new(), stored: BTreeMap::new() };
        builder.push(NEMESIS_PROCESS, Kind::Info, Op::Run(run));
        builder
    }

    /// One subscription `s`, two partitions, no nemesis.
    pub fn simple() -> Self {
        HistoryBuilder::new(2, &[SUB], &[])
    }

    pub fn push(&mut self, process: u64, kind: Kind, op: Op) -> u64 {
        let index = self.events.len() as u64;
        self.events.push(Event { index, time_us: index * 1_000, process, kind, op });
        index
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }

    pub fn build(self) -> Vec<Event> {
        self.events
    }

    /// Invokes a publish; complete it with [`Self::complete_publish`].
    pub fn invoke_publish(&mut self, process: u64, values: &[&str], key: Option<&str>, idempotent: bool) -> u64 {
        let publish = Publish {
            topic: TOPIC.into(),
            values: values.iter().map(|value| value.to_string()).collect(),
            idempotent,
            ordering_key: key.map(str::to_string),
            positions: Vec::new(),
        };
        self.push(process, Kind::Invoke, Op::Publish(publish))
    }

    /// Completes the publish `process` has open; positions only on `ok`.
    pub fn complete_publish(&mut self, process: u64, kind: Kind, at: &[At<'_>]) -> u64 {
        let invoked = self.open_op(process);
        let Op::Publish(mut publish) = invoked else { panic!("process {process} has no open publish") };
        if kind == Kind::Ok {
            publish.positions = at.iter().map(|(_, partition, offset)| pos(*partition, *offset)).collect();
            for (value, partition, offset) in at {
                self.stored.entry((TOPIC.into(), *partition)).or_default().insert(*offset, value.to_string());
            }
        }
        self.push(process, kind, Op::Publish(publish))
    }

    /// A publish that completes at once; returns the completion index.
    pub fn publish(&mut self, process: u64, kind: Kind, at: &[At<'_>]) -> u64 {
        self.publish_with(process, kind, at, None, false)
    }

    pub fn publish_with(&mut self, process: u64, kind: Kind, at: &[At<'_>], key: Option<&str>, idem: bool) -> u64 {
        let values: Vec<&str> = at.iter().map(|(value, _, _)| *value).collect();
        self.invoke_publish(process, &values, key, idem);
        self.complete_publish(process, kind, at)
    }

    pub fn invoke_pull(&mut self, process: u64, subscription: &str) -> u64 {
        let pull = Pull { subscription: subscription.into(), messages: Vec::new() };
        self.push(process, Kind::Invoke, Op::Pull(pull))
    }

    /// Completes the pull `process` has open; messages only on `ok`.
    pub fn complete_pull(&mut self, process: u64, kind: Kind, messages: &[At<'_>]) -> u64 {
        let Op::Pull(mut pull) = self.open_op(process) else { panic!("process {process} has no open pull") };
        if kind == Kind::Ok {
            pull.messages = messages
                .iter()
                .map(|(value, partition, offset)| Delivery {
                    value: value.to_string(),
                    position: pos(*partition, *offset),
                    attempt: 1,
                    ordering_key: None,
                })
                .collect();
        }
        self.push(process, kind, Op::Pull(pull))
    }

    /// An `ok` pull that completes at once; returns the completion index.
    pub fn pull(&mut self, process: u64, subscription: &str, messages: &[At<'_>]) -> u64 {
        self.invoke_pull(process, subscription);
        self.complete_pull(process, Kind::Ok, messages)
    }

    pub fn invoke_ack(&mut self, process: u64, subscription: &str, positions: &[Position]) -> u64 {
        let settle = Settle { subscription: subscription.into(), positions: positions.to_vec() };
        self.push(process, Kind::Invoke, Op::Ack(settle))
    }

    pub fn complete_ack(&mut self, process: u64, kind: Kind) -> u64 {
        let op = self.open_op(process);
        self.push(process, kind, op)
    }

    /// An ack that completes at once; returns the completion index.
    pub fn ack(&mut self, process: u64, subscription: &str, kind: Kind, positions: &[Position]) -> u64 {
        self.invoke_ack(process, subscription, positions);
        self.complete_ack(process, kind)
    }

    /// Pulls every message of `at` in one pull and acks it, `ok`.
    pub fn consume(&mut self, process: u64, subscription: &str, at: &[At<'_>]) {
        self.pull(process, subscription, at);
        let positions: Vec<Position> = at.iter().map(|(_, partition, offset)| pos(*partition, *offset)).collect();
        self.ack(process, subscription, Kind::Ok, &positions);
    }

    pub fn fault(&mut self, name: &str, status: FaultStatus) -> u64 {
        let fault = Fault { name: name.into(), nodes: vec![1], status, detail: String::new() };
        self.push(NEMESIS_PROCESS, Kind::Info, Op::Fault(fault))
    }

    pub fn phase(&mut self, name: PhaseName, complete: Option<bool>) -> u64 {
        self.push(NEMESIS_PROCESS, Kind::Info, Op::Phase(Phase { name, complete }))
    }

    pub fn drained(&mut self, complete: bool) -> u64 {
        self.phase(PhaseName::Heal, None);
        self.phase(PhaseName::Healed, None);
        self.phase(PhaseName::Drained, Some(complete))
    }

    pub fn replica(&mut self, node: u64, partition: u32, start_offset: u64, entries: &[(u64, &str)]) -> u64 {
        let log = ReplicaLog {
            node,
            topic: TOPIC.into(),
            partition,
            start_offset,
            entries: entries.iter().map(|(offset, value)| (*offset, value.to_string())).collect(),
        };
        self.push(NEMESIS_PROCESS, Kind::Info, Op::ReplicaLog(log))
    }

    /// Every node's log is exactly what the `ok` publishes stored.
    pub fn replicas_agree(&mut self, nodes: &[u64]) {
        let stored = self.stored.clone();
        for ((_, partition), entries) in &stored {
            let entries: Vec<(u64, &str)> = entries.iter().map(|(offset, value)| (*offset, value.as_str())).collect();
            for node in nodes {
                self.replica(*node, *partition, 0, &entries);
            }
        }
    }

    /// A complete drain and agreeing replicas: a run that ended well.
    pub fn finish(mut self) -> Vec<Event> {
        self.drained(true);
        self.replicas_agree(&[1, 2, 3]);
        self.events
    }

    /// The invocation `process` has open, as the completion will carry it.
    fn open_op(&self, process: u64) -> Op {
        let invoke = self.events.iter().rev().find(|event| event.process == process);
        match invoke {
            Some(event) if event.kind == Kind::Invoke => event.op.clone(),
            _ => panic!("process {process} has no open operation"),
        }
    }
}

/// `count` values of writer 1, alternating partitions 0 and 1, published,
/// delivered and acked one by one: the clean part of most tests.
pub fn clean(builder: &mut HistoryBuilder, count: u64) -> Vec<(String, u32, u64)> {
    let mut values = Vec::new();
    for counter in 0..count {
        let (value, partition, offset) = (format!("1-{counter}"), (counter % 2) as u32, counter / 2);
        builder.publish(1, Kind::Ok, &[(&value, partition, offset)]);
        values.push((value, partition, offset));
    }
    for (value, partition, offset) in &values {
        builder.consume(10, SUB, &[(value, *partition, *offset)]);
    }
    values
}

/// The only anomaly of a report.
pub fn only(report: &Report) -> &crate::checker::Anomaly {
    assert_eq!(report.anomalies.len(), 1, "{:#?}", report.anomalies);
    &report.anomalies[0]
}
