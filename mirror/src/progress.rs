//! What a route has done and how far behind the source it is, kept for the
//! life of the process (across failed runs) and shown two ways: logged as
//! `route progress` every [`REPORT_EVERY`], and served to Prometheus
//! (`--metrics-listen`).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_client::Backlog;
use ferry_metrics::Exposition;

/// How often a route logs its progress.
pub const REPORT_EVERY: Duration = Duration::from_secs(30);
/// How often the active instance reads how far behind it is.
pub const LAG_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct Progress {
    /// Source messages stored at the destination (now or found stored) and
    /// acked, and their bytes as the rate limit counts them.
    copied: AtomicU64,
    copied_bytes: AtomicU64,
    /// Source messages left out: they came from the destination cluster.
    filtered: AtomicU64,
    /// Publishes that failed and were retried.
    publish_failures: AtomicU64,
    /// Runs that failed and were started again.
    run_failures: AtomicU64,
    /// Whether this instance holds the route's lock (copies).
    active: AtomicBool,
    /// When the destination last stored a batch, µs since the Unix epoch;
    /// 0: never.
    last_stored_us: AtomicI64,
    /// The source subscription's unacked messages and the age of its oldest,
    /// as last read; -1 µs: not read yet.
    behind_messages: AtomicU64,
    behind_us: AtomicI64,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            copied: AtomicU64::new(0),
            copied_bytes: AtomicU64::new(0),
            filtered: AtomicU64::new(0),
            publish_failures: AtomicU64::new(0),
            run_failures: AtomicU64::new(0),
            active: AtomicBool::new(false),
            last_stored_us: AtomicI64::new(0),
            behind_messages: AtomicU64::new(0),
            behind_us: AtomicI64::new(-1),
        }
    }
}

impl Progress {
    pub fn stored(&self, messages: u64, bytes: u64) {
        self.copied.fetch_add(messages, Ordering::Relaxed);
        self.copied_bytes.fetch_add(bytes, Ordering::Relaxed);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64);
        self.last_stored_us.store(now, Ordering::Relaxed);
    }

    pub fn filtered(&self) {
        self.filtered.fetch_add(1, Ordering::Relaxed);
    }

    pub fn publish_failed(&self) {
        self.publish_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn run_failed(&self) {
        self.run_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_active(&self, active: bool) {
        self.active.store(active, Ordering::Relaxed);
    }

    /// Records the source subscription's backlog: how far behind the route is.
    pub fn behind(&self, backlog: &Backlog) {
        self.behind_messages.store(backlog.unacked_messages, Ordering::Relaxed);
        self.behind_us.store(backlog.oldest_unacked_age.as_micros() as i64, Ordering::Relaxed);
    }

    /// Logs the totals so far and how far behind the route last was.
    pub fn report(&self, topic: &str) {
        let behind_us = self.behind_us.load(Ordering::Relaxed);
        let last_stored_us = self.last_stored_us.load(Ordering::Relaxed);
        let now_us = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64);
        tracing::info!(
            topic,
            copied = self.copied.load(Ordering::Relaxed),
            copied_bytes = self.copied_bytes.load(Ordering::Relaxed),
            filtered = self.filtered.load(Ordering::Relaxed),
            failures = self.publish_failures.load(Ordering::Relaxed),
            behind_messages = self.behind_messages.load(Ordering::Relaxed),
            behind_seconds = (behind_us >= 0).then(|| behind_us as f64 / 1e6),
            seconds_since_stored = (last_stored_us > 0).then(|| (now_us - last_stored_us) as f64 / 1e6),
            "route progress"
        );
    }
}

/// The Prometheus text of several routes, each with its labels: a metric's
/// samples of every route together, as the format wants.
pub fn prometheus(routes: &[(&[(&str, &str)], &Progress)]) -> String {
    type Field = fn(&Progress) -> &AtomicU64;
    let counters: [(&str, &str, Field); 5] = [
        ("ferry_mirror_copied_messages_total", "Source messages stored at the destination and acked.", |p| &p.copied),
        ("ferry_mirror_copied_bytes_total", "Bytes of copied messages (data and attributes).", |p| &p.copied_bytes),
        (
            "ferry_mirror_filtered_messages_total",
            "Source messages that came from the destination cluster, not copied.",
            |p| &p.filtered,
        ),
        ("ferry_mirror_publish_failures_total", "Publishes to the destination that failed and were retried.", |p| {
            &p.publish_failures
        }),
        (
            "ferry_mirror_run_failures_total",
            "Runs that failed (a cluster unreachable, a stream lost, the lock lost) and started again.",
            |p| &p.run_failures,
        ),
    ];
    let mut text = Exposition::default();
    for (name, help, field) in counters {
        for (labels, progress) in routes {
            text.counter(name, help, labels, field(progress).load(Ordering::Relaxed));
        }
    }
    for (labels, progress) in routes {
        let active = if progress.active.load(Ordering::Relaxed) { 1.0 } else { 0.0 };
        text.gauge("ferry_mirror_active", "1 while this instance holds the route's lock and copies.", labels, active);
    }
    for (labels, progress) in routes {
        let help = "Source messages not yet copied (the route subscription's unacked messages).";
        let behind = progress.behind_messages.load(Ordering::Relaxed) as f64;
        text.gauge("ferry_mirror_behind_messages", help, labels, behind);
    }
    for (labels, progress) in routes {
        let behind_us = progress.behind_us.load(Ordering::Relaxed);
        if behind_us >= 0 {
            let help = "Age of the oldest source message not yet copied.";
            text.gauge("ferry_mirror_behind_seconds", help, labels, behind_us as f64 / 1e6);
        }
    }
    for (labels, progress) in routes {
        let last_stored_us = progress.last_stored_us.load(Ordering::Relaxed);
        if last_stored_us > 0 {
            let help = "When the destination last stored a batch of the route.";
            text.gauge("ferry_mirror_last_stored_timestamp_seconds", help, labels, last_stored_us as f64 / 1e6);
        }
    }
    text.into_text()
}
