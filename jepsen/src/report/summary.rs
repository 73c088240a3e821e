//! `summary.txt`: what a person reads first — the verdict and why, how much
//! the run did, anomalies by kind and which faults really fired. The details
//! are in `anomalies.json`; this stays a screenful.

use std::collections::BTreeMap;

use crate::checker::Report;
use crate::history::{Event, FaultStatus, Op};

pub fn render(events: &[Event], end_us: u64, report: &Report) -> String {
    let mut out = format!("verdict: {}\n", report.verdict.as_str());
    out.push_str(&run_line(events, end_us));
    if !report.unknown_reasons.is_empty() {
        out.push_str("\nunknown reasons:\n");
        for reason in &report.unknown_reasons {
            out.push_str(&format!("  - {reason}\n"));
        }
    }
    out.push_str(&stats(report));
    out.push_str(&anomalies(report));
    out.push_str(&faults(events));
    out
}

fn run_line(events: &[Event], end_us: u64) -> String {
    let duration = format!("{:.1} s of history", end_us as f64 / 1e6);
    let run = events.iter().find_map(|event| match &event.op {
        Op::Run(run) => Some(run),
        _ => None,
    });
    match run {
        Some(run) => {
            let nemeses = if run.nemeses.is_empty() { "none".to_string() } else { run.nemeses.join(", ") };
            let network = if run.network.is_empty() { String::new() } else { format!(" on {}", run.network) };
            format!("run: {} nodes{network}, seed {}, nemeses: {nemeses}; {duration}\n", run.nodes, run.seed)
        }
        None => format!("run: no run event; {duration}\n"),
    }
}

fn stats(report: &Report) -> String {
    let stats = &report.stats;
    let p = &stats.publishes;
    let mut out = format!("\npublishes: {} invoked, {} ok, {} fail, {} info\n", p.invoked, p.ok, p.fail, p.info);
    out.push_str(&format!(
        "values: {} acknowledged, {} deliveries, {} acked by consumers\n",
        stats.values_acknowledged, stats.deliveries, stats.acks_ok
    ));
    for (subscription, distribution) in &stats.duplicates_delivered {
        let times: Vec<String> = distribution.iter().map(|(times, values)| format!("{times}x: {values}")).collect();
        let times = if times.is_empty() { "nothing delivered".to_string() } else { times.join(", ") };
        out.push_str(&format!("  {subscription}: values by times delivered: {times}\n"));
    }
    out.push_str(&format!("replica logs read: {}\n", stats.replica_logs));
    out
}

fn anomalies(report: &Report) -> String {
    let counts = report.anomaly_counts();
    if counts.is_empty() {
        return "\nanomalies: none\n".to_string();
    }
    let mut out = "\nanomalies:\n".to_string();
    for (kind, count) in counts {
        let fatal = report.anomalies.iter().any(|anomaly| anomaly.kind() == kind && anomaly.is_fatal());
        let note = if fatal { "" } else { " (not fatal)" };
        out.push_str(&format!("  {kind}: {count}{note}\n"));
    }
    out
}

/// Faults by name and status: a requested fault that was only ever skipped
/// proves nothing, so the summary shows that next to what fired.
fn faults(events: &[Event]) -> String {
    let mut by_name: BTreeMap<&str, [u64; 4]> = BTreeMap::new();
    for event in events {
        if let Op::Fault(fault) = &event.op {
            let slot = match fault.status {
                FaultStatus::Installed => 0,
                FaultStatus::Skipped => 1,
                FaultStatus::Unknown => 2,
                FaultStatus::Healed => 3,
            };
            by_name.entry(fault.name.as_str()).or_default()[slot] += 1;
        }
    }
    if by_name.is_empty() {
        return "\nfaults: none\n".to_string();
    }
    let mut out = "\nfaults (installed / skipped / unknown / healed):\n".to_string();
    for (name, [installed, skipped, unknown, healed]) in by_name {
        out.push_str(&format!("  {name}: {installed} / {skipped} / {unknown} / {healed}\n"));
    }
    out
}
