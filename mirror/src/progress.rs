//! What a route has done, reported to the log every [`REPORT_EVERY`] with
//! how far behind the source it is: the operator's view of lag and health
//! until the mirror serves metrics.

use std::time::{Duration, SystemTime};

use ferry_client::Backlog;

/// How often a route logs its progress.
pub const REPORT_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub struct Progress {
    /// Source messages stored at the destination (now or found stored) and
    /// acked, and their bytes as the rate limit counts them.
    pub copied: u64,
    pub copied_bytes: u64,
    /// Source messages left out: they came from the destination cluster.
    pub filtered: u64,
    /// Publishes that failed and were retried.
    pub failures: u64,
    /// When the destination last stored a batch.
    pub last_stored: Option<SystemTime>,
}

impl Progress {
    /// Logs the totals so far and the source subscription's `backlog`: the
    /// messages and seconds the route is behind.
    pub fn report(&self, topic: &str, backlog: Option<&Backlog>) {
        let behind_messages = backlog.map(|b| b.unacked_messages);
        let behind_seconds = backlog.map(|b| b.oldest_unacked_age.as_secs_f64());
        let since_stored = self.last_stored.and_then(|at| at.elapsed().ok()).map(|d| d.as_secs_f64());
        tracing::info!(
            topic,
            copied = self.copied,
            copied_bytes = self.copied_bytes,
            filtered = self.filtered,
            failures = self.failures,
            behind_messages,
            behind_seconds,
            seconds_since_stored = since_stored,
            "route progress"
        );
    }
}
