//! The history as the plots see it: client operations paired (invoke with its
//! completion), fault windows (installed until healed) and phase markers, all
//! on the harness clock (`time_us`). The checker has its own pairing; this one
//! only needs times and outcomes, and must never fail on an odd history.

use std::collections::HashMap;

use crate::history::{Event, FaultStatus, Kind, Op, PhaseName};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Publish,
    Pull,
    Ack,
    Nack,
}

/// One completed client operation. Invocations the history never completes
/// have no completion time and are left out of the plots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub f: Function,
    /// `Ok`, `Fail` or `Info` (never `Invoke`).
    pub outcome: Kind,
    pub invoke_us: u64,
    pub complete_us: u64,
    /// On `ok`: values acknowledged (publish) or messages delivered (pull).
    pub values: u64,
}

impl Operation {
    pub fn latency_us(&self) -> u64 {
        self.complete_us.saturating_sub(self.invoke_us)
    }
}

/// A fault in place: from its `installed` event to the matching `healed`
/// one, or to the end of the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultWindow {
    pub name: String,
    pub nodes: Vec<u64>,
    pub detail: String,
    pub start_us: u64,
    pub end_us: u64,
    pub healed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseMark {
    pub label: String,
    pub time_us: u64,
}

#[derive(Debug, Default)]
pub struct Timeline {
    pub ops: Vec<Operation>,
    pub faults: Vec<FaultWindow>,
    pub phases: Vec<PhaseMark>,
    /// The latest `time_us` of the history, 0 when it is empty.
    pub end_us: u64,
}

impl Timeline {
    pub fn build(events: &[Event]) -> Timeline {
        let mut sorted: Vec<&Event> = events.iter().collect();
        sorted.sort_by_key(|event| event.index);
        let mut timeline =
            Timeline { end_us: sorted.iter().map(|e| e.time_us).max().unwrap_or(0), ..Timeline::default() };
        // A process has at most one operation open (history.rs), so the open
        // invocation of a completion is found by its process alone.
        let mut open: HashMap<u64, &Event> = HashMap::new();
        let mut faults_open: Vec<FaultWindow> = Vec::new();
        for event in sorted {
            match &event.op {
                Op::Publish(_) | Op::Pull(_) | Op::Ack(_) | Op::Nack(_) => {
                    if event.kind == Kind::Invoke {
                        open.insert(event.process, event);
                    } else if let Some(invoke) = open.remove(&event.process) {
                        timeline.ops.extend(operation(invoke, event));
                    }
                }
                Op::Fault(fault) => match fault.status {
                    FaultStatus::Installed => faults_open.push(FaultWindow {
                        name: fault.name.clone(),
                        nodes: fault.nodes.clone(),
                        detail: fault.detail.clone(),
                        start_us: event.time_us,
                        end_us: event.time_us,
                        healed: false,
                    }),
                    FaultStatus::Healed => {
                        let exact = faults_open.iter().position(|w| w.name == fault.name && w.nodes == fault.nodes);
                        let same_name = || faults_open.iter().position(|w| w.name == fault.name);
                        if let Some(at) = exact.or_else(same_name) {
                            let mut window = faults_open.remove(at);
                            window.end_us = event.time_us;
                            window.healed = true;
                            timeline.faults.push(window);
                        }
                    }
                    FaultStatus::Skipped | FaultStatus::Unknown => {}
                },
                Op::Phase(phase) => timeline
                    .phases
                    .push(PhaseMark { label: phase_label(phase.name, phase.complete), time_us: event.time_us }),
                Op::Run(_) | Op::ReplicaLog(_) => {}
            }
        }
        for mut window in faults_open {
            window.end_us = timeline.end_us;
            timeline.faults.push(window);
        }
        timeline.faults.sort_by_key(|window| window.start_us);
        timeline
    }
}

/// `None` for events that are not client operations.
fn operation(invoke: &Event, completion: &Event) -> Option<Operation> {
    let (f, values) = match &completion.op {
        Op::Publish(publish) => (Function::Publish, publish.values.len()),
        Op::Pull(pull) => (Function::Pull, pull.messages.len()),
        Op::Ack(settle) => (Function::Ack, settle.positions.len()),
        Op::Nack(settle) => (Function::Nack, settle.positions.len()),
        Op::Run(_) | Op::Fault(_) | Op::Phase(_) | Op::ReplicaLog(_) => return None,
    };
    let values = if completion.kind == Kind::Ok { values as u64 } else { 0 };
    Some(Operation { f, outcome: completion.kind, invoke_us: invoke.time_us, complete_us: completion.time_us, values })
}

fn phase_label(name: PhaseName, complete: Option<bool>) -> String {
    match (name, complete) {
        (PhaseName::Heal, _) => "heal".to_string(),
        (PhaseName::Healed, _) => "healed".to_string(),
        (PhaseName::Drained, Some(false)) => "drained (incomplete)".to_string(),
        (PhaseName::Drained, _) => "drained".to_string(),
    }
}
