//! The report's three plots, all against seconds since the run started and
//! all with the fault windows shaded and the phases marked, so a dip in
//! throughput, a latency spike or a growing unseen curve can be read against
//! the fault that caused it.

use std::collections::HashMap;

use super::axis::Axis;
use super::svg::{Chart, Marker};
use super::timeline::{Function, Timeline};
use crate::checker::UnseenSeries;
use crate::history::Kind;

const X_LABEL: &str = "seconds since run start";
/// Throughput buckets are one second wide up to this many; longer runs get
/// wider buckets so the plot keeps one point per few pixels.
const BUCKETS_MAX: u64 = 2_000;
/// Room above the highest value: lines stay off the frame and mostly clear
/// of the fault labels at the top.
const HEADROOM: f64 = 1.12;
/// Latencies below this (ms) are drawn at it: a log axis has no zero.
const LATENCY_MS_MIN: f64 = 0.01;

const OK_COLOR: &str = "#1f77b4";
const FAIL_COLOR: &str = "#d62728";
const INFO_COLOR: &str = "#ff7f0e";
const DELIVERED_COLOR: &str = "#2ca02c";
const SERIES_COLORS: [&str; 6] = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const FAULT_COLORS: [&str; 6] = ["#d62728", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];
const PHASE_COLOR: &str = "#444";

fn seconds(time_us: u64) -> f64 {
    time_us as f64 / 1e6
}

fn x_axis(timeline: &Timeline) -> Axis {
    Axis::linear(X_LABEL, seconds(timeline.end_us))
}

/// Values acknowledged and delivered per second, failed and indeterminate
/// operations per second.
pub fn rate(timeline: &Timeline) -> String {
    let bucket_s = timeline.end_us.div_ceil(1_000_000).div_ceil(BUCKETS_MAX).max(1);
    let buckets = (timeline.end_us / (bucket_s * 1_000_000) + 1) as usize;
    let (mut acknowledged, mut delivered) = (vec![0u64; buckets], vec![0u64; buckets]);
    let (mut failed, mut indeterminate) = (vec![0u64; buckets], vec![0u64; buckets]);
    for op in &timeline.ops {
        let bucket = (op.complete_us / (bucket_s * 1_000_000)) as usize;
        match (op.f, op.outcome) {
            (Function::Publish, Kind::Ok) => acknowledged[bucket] += op.values,
            (Function::Pull, Kind::Ok) => delivered[bucket] += op.values,
            (_, Kind::Fail) => failed[bucket] += 1,
            (_, Kind::Info) => indeterminate[bucket] += 1,
            _ => {}
        }
    }
    let per_second = |counts: &[u64]| -> Vec<(f64, f64)> {
        let width = bucket_s as f64;
        counts.iter().enumerate().map(|(i, n)| ((i as f64 + 0.5) * width, *n as f64 / width)).collect()
    };
    let series = [
        (per_second(&acknowledged), OK_COLOR, "values acknowledged/s"),
        (per_second(&delivered), DELIVERED_COLOR, "values delivered/s"),
        (per_second(&failed), FAIL_COLOR, "fail completions/s"),
        (per_second(&indeterminate), INFO_COLOR, "info completions/s"),
    ];
    let y_max = series.iter().flat_map(|(points, _, _)| points).map(|(_, y)| *y).fold(0.0, f64::max);
    let title = format!("Throughput ({bucket_s} s buckets)");
    let mut chart = Chart::new(&title, x_axis(timeline), Axis::linear("per second", y_max * HEADROOM));
    shade_faults(&mut chart, timeline);
    if !timeline.ops.is_empty() {
        for (points, color, label) in &series {
            chart.line(points, color, label);
        }
    }
    chart.render()
}

/// Completion latency of publishes and pulls, by invocation time, colored
/// by outcome.
pub fn latency(timeline: &Timeline) -> String {
    let mut series = Vec::new();
    for (f, name, marker) in [(Function::Publish, "publish", Marker::Circle), (Function::Pull, "pull", Marker::Square)]
    {
        for (outcome, color) in [(Kind::Ok, OK_COLOR), (Kind::Fail, FAIL_COLOR), (Kind::Info, INFO_COLOR)] {
            let points: Vec<(f64, f64)> = timeline
                .ops
                .iter()
                .filter(|op| op.f == f && op.outcome == outcome)
                .map(|op| (seconds(op.invoke_us), (op.latency_us() as f64 / 1e3).max(LATENCY_MS_MIN)))
                .collect();
            if !points.is_empty() {
                series.push((points, color, marker, format!("{name} {}", outcome_name(outcome))));
            }
        }
    }
    let latencies = series.iter().flat_map(|(points, ..)| points).map(|(_, ms)| *ms);
    let (low, high) = latencies.fold((f64::MAX, 0.0f64), |(low, high), ms| (low.min(ms), high.max(ms)));
    // Without points, any sensible range: the chart says "no data".
    let (low, high) = if low > high { (1.0, 1_000.0) } else { (low, high) };
    let y = Axis::log("latency (ms, log)", low, high);
    let mut chart = Chart::new("Latency of publish and pull (by invocation time)", x_axis(timeline), y);
    shade_faults(&mut chart, timeline);
    for (points, color, marker, label) in &series {
        chart.scatter(points, color, *marker, label);
    }
    chart.render()
}

/// Acknowledged values a subscription has not been delivered yet.
pub fn unseen(timeline: &Timeline, series: &[UnseenSeries]) -> String {
    let y_max = series.iter().flat_map(|s| &s.points).map(|(_, count)| *count as f64).fold(0.0, f64::max);
    let y = Axis::linear("acknowledged, not yet delivered", y_max * HEADROOM);
    let mut chart = Chart::new("Unseen values per subscription", x_axis(timeline), y);
    shade_faults(&mut chart, timeline);
    for (i, one) in series.iter().enumerate() {
        let points: Vec<(f64, f64)> = one.points.iter().map(|(t, count)| (seconds(*t), *count as f64)).collect();
        chart.steps(&points, SERIES_COLORS[i % SERIES_COLORS.len()], &one.subscription);
    }
    chart.render()
}

/// Shades every fault window (one color per fault name) and marks phases.
fn shade_faults(chart: &mut Chart, timeline: &Timeline) {
    let mut colors: HashMap<&str, &str> = HashMap::new();
    for window in &timeline.faults {
        let next = FAULT_COLORS[colors.len() % FAULT_COLORS.len()];
        let color = *colors.entry(window.name.as_str()).or_insert(next);
        let nodes: Vec<String> = window.nodes.iter().map(|node| format!("n{node}")).collect();
        let end = if window.healed { "healed" } else { "never healed" };
        let tooltip = format!(
            "{} on [{}] {:.1}–{:.1} s, {end}. {}",
            window.name,
            nodes.join(", "),
            seconds(window.start_us),
            seconds(window.end_us),
            window.detail
        );
        chart.band(seconds(window.start_us), seconds(window.end_us), color, &window.name, tooltip.trim_end());
    }
    for phase in &timeline.phases {
        chart.vline(seconds(phase.time_us), PHASE_COLOR, &phase.label);
    }
}

fn outcome_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Invoke => "invoke",
        Kind::Ok => "ok",
        Kind::Fail => "fail",
        Kind::Info => "info",
    }
}
