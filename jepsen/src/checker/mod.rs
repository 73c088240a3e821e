//! The offline checker: reads a history and decides whether Ferry kept its
//! promises (FAULTS.md, "Anomalies").
//!
//! [`check`] indexes the history once ([`model`]), runs one check per concern
//! over the index, and turns what they found into a [`Report`]. Checks are
//! conservative: an anomaly is only reported where the history proves it, so
//! `invalid` means a real bug (or a harness bug); where the history cannot
//! decide, the verdict is `unknown` with reasons, never `valid`.
//!
//! **API Boundary:** only [`check`], [`CheckOptions`] and the report types are
//! public; the checks themselves are free to change.

mod anomaly;
mod delivery;
mod lost;
mod model;
mod offsets;
mod ordering;
mod replicas;
mod stats;
mod unseen;
mod verdict;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::Serialize;

pub use anomaly::{
    AbortedRead, Anomaly, Claim, DuplicatePublish, FirstDelivery, InconsistentOffsets, KeyOverlap, Lost, LostRegion,
    LostWrite, Missing, NodeEntry, OffsetDivergence, OrderingInversion, PartitionInversion, RedeliveredAfterAck,
    ReplicaDivergence, Source, Unexpected, LISTED_MAX, SOURCES_MAX,
};
pub use stats::{OpCounts, Stats};
pub use unseen::UnseenSeries;
pub use verdict::Verdict;

use crate::history::Event;

#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Fewer acknowledged values than this and the verdict is at best unknown:
    /// a run that did almost nothing proves almost nothing.
    pub min_acknowledged_publishes: u64,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions { min_acknowledged_publishes: 100 }
    }
}

/// What the checker found; written as `anomalies.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub verdict: Verdict,
    pub anomalies: Vec<Anomaly>,
    /// Why the verdict is not `valid` even without fatal anomalies; also
    /// listed when the verdict is `invalid`, for the record.
    pub unknown_reasons: Vec<String>,
    pub stats: Stats,
    pub unseen: Vec<UnseenSeries>,
}

impl Report {
    /// Anomalies per kind, for summary tables.
    pub fn anomaly_counts(&self) -> BTreeMap<&'static str, u64> {
        let mut counts = BTreeMap::new();
        for anomaly in &self.anomalies {
            *counts.entry(anomaly.kind()).or_default() += 1;
        }
        counts
    }
}

/// Checks a history (in any order; events are taken by `index`).
pub fn check(events: &[Event], options: &CheckOptions) -> Report {
    let model = model::Model::build(events);
    let mut anomalies = Vec::new();
    anomalies.extend(lost::lost(&model));
    anomalies.extend(lost::holes(&model));
    anomalies.extend(delivery::check(&model));
    anomalies.extend(offsets::check(&model));
    anomalies.extend(ordering::check(&model));
    anomalies.extend(replicas::check(&model));
    let stats = stats::collect(&model);
    let unknown_reasons = verdict::unknown_reasons(&model, &stats, options);
    let verdict = verdict::decide(&anomalies, &unknown_reasons);
    Report { verdict, anomalies, unknown_reasons, stats, unseen: unseen::series(&model) }
}
