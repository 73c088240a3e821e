//! The history of a run: every operation's invocation and completion, every
//! fault, and the replicas' final logs, as JSON Lines. The workload and the
//! nemesis write it while the run goes; the checker reads it afterwards, so a
//! verdict can always be recomputed from the file alone.
//!
//! One line is one [`Event`], shaped like Jepsen's:
//!
//! ```json
//! {"index":7,"time_us":120345,"process":3,"type":"invoke","f":"publish","value":{"topic":"t","values":["3-17"],"idempotent":true}}
//! {"index":9,"time_us":121002,"process":3,"type":"ok","f":"publish","value":{"topic":"t","values":["3-17"],"idempotent":true,"positions":[{"partition":0,"offset":41}]}}
//! ```
//!
//! An operation is an `invoke` followed by one completion with the same
//! `process`: `ok` (it happened), `fail` (it certainly did not — only where the
//! server guarantees it) or `info` (unknown: a timeout, a lost connection).
//! After `info` the worker goes on as a new process, so a process never has
//! two operations open. Faults and final reads are single `info` events.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

/// One line of the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the history, from 0.
    pub index: u64,
    /// Microseconds since the run started (monotonic clock of the harness).
    pub time_us: u64,
    /// The worker incarnation; [`NEMESIS_PROCESS`] for faults and harness events.
    pub process: u64,
    #[serde(rename = "type")]
    pub kind: Kind,
    #[serde(flatten)]
    pub op: Op,
}

/// The process id of events the harness itself records.
pub const NEMESIS_PROCESS: u64 = u64::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Invoke,
    Ok,
    Fail,
    Info,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "f", content = "value", rename_all = "snake_case")]
pub enum Op {
    /// The run's shape, first line of every history.
    Run(Run),
    Publish(Publish),
    Pull(Pull),
    Ack(Settle),
    Nack(Settle),
    Fault(Fault),
    /// Where the run is: faults stop, the cluster is healed, the drain ends.
    Phase(Phase),
    /// One node's committed log of one partition, read after healing.
    ReplicaLog(ReplicaLog),
}

/// What a run was asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub nodes: u32,
    /// "namespaces" or "loopback" (see `cluster::net`); empty in histories
    /// recorded before the harness had two.
    #[serde(default)]
    pub network: String,
    /// Nemesis names as given (FAULTS.md names).
    pub nemeses: Vec<String>,
    pub seed: u64,
    pub topics: Vec<TopicInfo>,
    /// Every subscription exists before the first publish, so each must
    /// receive every acknowledged message of its topic.
    pub subscriptions: Vec<SubscriptionInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicInfo {
    pub name: String,
    pub partitions: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionInfo {
    pub name: String,
    pub topic: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position {
    pub partition: u32,
    pub offset: u64,
}

/// A batch of unique values `"<writer>-<counter>"`. `positions` is filled on
/// `ok`, one per value in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publish {
    pub topic: String,
    pub values: Vec<String>,
    /// Sent through the idempotent Publisher: a value stored twice is a bug.
    #[serde(default)]
    pub idempotent: bool,
    /// The ordering key of every value of the batch, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering_key: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub positions: Vec<Position>,
}

/// A pull (or a slice of a streaming pull) by one consumer session. The
/// deliveries are filled on `ok`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pull {
    pub subscription: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<Delivery>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub value: String,
    pub position: Position,
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering_key: Option<String>,
}

/// Acks or nacks of delivered messages of one subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settle {
    pub subscription: String,
    pub positions: Vec<Position>,
}

/// A fault, recorded when the nemesis starts or ends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// The nemesis name (`kill`, `partition-leader`, `power-loss` …).
    pub name: String,
    pub nodes: Vec<u64>,
    pub status: FaultStatus,
    /// What exactly was done, for people reading the report.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultStatus {
    /// The fault is in place (it really fired).
    Installed,
    /// The nemesis chose not to, or could not (e.g. no leader to isolate).
    Skipped,
    /// Tried, but whether it took effect is unknown.
    Unknown,
    /// The fault was undone.
    Healed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    pub name: PhaseName,
    /// For `drained`: did every acknowledged value reach every subscription?
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseName {
    /// Faults stop; the nemesis heals everything.
    Heal,
    /// The cluster has a leader again after healing.
    Healed,
    /// The final drain ended (see `complete`).
    Drained,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaLog {
    pub node: u64,
    pub topic: String,
    pub partition: u32,
    /// The first offset the node still holds (retention may have removed
    /// earlier ones).
    pub start_offset: u64,
    /// `(offset, value)` in offset order, every entry from `start_offset` on.
    pub entries: Vec<(u64, String)>,
}

/// Reads a history file, one event per line.
pub fn read(reader: impl BufRead) -> anyhow::Result<Vec<Event>> {
    let mut events = Vec::new();
    for (number, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let event = serde_json::from_str(&line).map_err(|e| anyhow::anyhow!("history line {}: {e}", number + 1))?;
        events.push(event);
    }
    Ok(events)
}

/// Writes one event as one line.
pub fn write(writer: &mut impl Write, event: &Event) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *writer, event)?;
    writer.write_all(b"\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_round_trips_through_one_json_line() {
        let event = Event {
            index: 9,
            time_us: 121_002,
            process: 3,
            kind: Kind::Ok,
            op: Op::Publish(Publish {
                topic: "t".into(),
                values: vec!["3-17".into()],
                idempotent: true,
                ordering_key: None,
                positions: vec![Position { partition: 0, offset: 41 }],
            }),
        };
        let mut line = Vec::new();
        write(&mut line, &event).expect("write");
        let text = String::from_utf8(line.clone()).expect("utf-8");
        assert!(text.contains(r#""type":"ok","f":"publish","value":{"topic":"t""#), "{text}");
        assert_eq!(read(line.as_slice()).expect("read"), vec![event]);
    }
}
