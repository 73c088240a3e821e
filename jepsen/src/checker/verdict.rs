//! From anomalies and evidence to one word. `invalid` needs one fatal
//! anomaly; `valid` needs enough evidence that the run could have failed:
//! enough acknowledged publishes, a complete drain (else losses are not
//! checked), every requested fault really fired, and the replicas compared.

use serde::Serialize;

use super::anomaly::Anomaly;
use super::model::Model;
use super::stats::Stats;
use super::CheckOptions;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Valid,
    Invalid,
    Unknown,
}

impl Verdict {
    /// The harness's exit status (FAULTS.md: 0 / 1 / 2).
    pub fn exit_code(&self) -> i32 {
        match self {
            Verdict::Valid => 0,
            Verdict::Invalid => 1,
            Verdict::Unknown => 2,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Invalid => "invalid",
            Verdict::Unknown => "unknown",
        }
    }
}

pub fn decide(anomalies: &[Anomaly], unknown_reasons: &[String]) -> Verdict {
    if anomalies.iter().any(Anomaly::is_fatal) {
        Verdict::Invalid
    } else if unknown_reasons.is_empty() {
        Verdict::Valid
    } else {
        Verdict::Unknown
    }
}

/// Why the history cannot show the run valid, whatever the anomalies.
pub fn unknown_reasons(model: &Model<'_>, stats: &Stats, options: &CheckOptions) -> Vec<String> {
    let mut reasons = Vec::new();
    if let Some(first) = model.malformed.first() {
        reasons.push(format!("{} malformed history events (first: {first})", model.malformed.len()));
    }
    if stats.values_acknowledged < options.min_acknowledged_publishes {
        reasons.push(format!(
            "only {} acknowledged publishes (min_acknowledged_publishes is {})",
            stats.values_acknowledged, options.min_acknowledged_publishes
        ));
    }
    match model.drain_complete {
        None => reasons.push("no drained phase: lost messages were not checked".to_string()),
        Some(false) => reasons.push("the drain did not complete: lost messages were not checked".to_string()),
        Some(true) => {}
    }
    for nemesis in model.run.iter().flat_map(|run| &run.nemeses) {
        if !model.faults_installed.contains_key(nemesis.as_str()) {
            reasons.push(format!("nemesis {nemesis:?} was requested but never installed"));
        }
    }
    if model.replica_reads.is_empty() {
        reasons.push("replicas were not compared".to_string());
    }
    reasons
}
