//! The report folder of a run: anomalies, a summary and plots.
//!
//! [`write`] turns a history and the checker's [`Report`] into files people
//! read after a run: `anomalies.json` (the report itself), `summary.txt`, and
//! three SVG plots against the run's clock with the fault windows shaded —
//! `rate.svg` (throughput), `latency.svg` and `unseen.svg` (acknowledged but
//! not yet delivered, the liveness signal). The SVG is written by hand
//! ([`svg`]) so the harness needs no plotting crate.
//!
//! **API Boundary:** only [`write`] is public; file names are what CI and
//! people look for, so they are part of it.

mod axis;
mod plots;
mod summary;
mod svg;
mod timeline;

#[cfg(test)]
mod tests;

use std::path::Path;

use anyhow::Context;

use crate::checker::Report;
use crate::history::Event;
use timeline::Timeline;

/// Writes anomalies.json (the checker Report, pretty JSON), summary.txt
/// (verdict, unknown reasons, stats, anomaly counts by kind, faults fired by
/// name — short, human-readable), and the plots `rate.svg`, `latency.svg` and
/// `unseen.svg` into `dir` (which exists). An empty history still gives every
/// file; plots without data say so.
pub fn write(dir: &Path, events: &[Event], report: &Report) -> anyhow::Result<()> {
    let timeline = Timeline::build(events);
    let anomalies = serde_json::to_string_pretty(report).context("serializing the checker report")?;
    write_file(dir, "anomalies.json", &anomalies)?;
    write_file(dir, "summary.txt", &summary::render(events, timeline.end_us, report))?;
    write_file(dir, "rate.svg", &plots::rate(&timeline))?;
    write_file(dir, "latency.svg", &plots::latency(&timeline))?;
    write_file(dir, "unseen.svg", &plots::unseen(&timeline, &report.unseen))?;
    Ok(())
}

fn write_file(dir: &Path, name: &str, contents: &str) -> anyhow::Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))
}
