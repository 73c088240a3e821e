//! What a route has done and how far behind the source it is, kept for the
//! life of the process (across failed runs) and shown two ways: logged as
//! `route progress` every [`REPORT_EVERY`], and served to Prometheus
//! (`--metrics-listen`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_client::Backlog;
use ferry_metrics::Exposition;

use crate::gap::{self, HourCount};

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
    /// Messages left out, by (partition, start of their publish hour), for
    /// the gap check; hours past the check's reach are dropped.
    filtered_by_hour: Mutex<BTreeMap<(u32, i64), u64>>,
    /// Per partition, the highest offset left out: a message redelivered
    /// after it was left out (its ack lost) is not counted twice.
    filtered_through: Mutex<BTreeMap<u32, u64>>,
    /// (partition, hour) pairs the gap check counted, and those whose
    /// mismatch it has seen once (and looks at again before reporting).
    gap_checked: Mutex<BTreeSet<(u32, i64)>>,
    gap_suspects: Mutex<BTreeSet<(u32, i64)>>,
    gap_hours_checked: AtomicU64,
    gap_hours_unknown: AtomicU64,
    gap_hours: AtomicU64,
    gap_messages: AtomicU64,
    gap_excess_messages: AtomicU64,
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
            filtered_by_hour: Mutex::default(),
            filtered_through: Mutex::default(),
            gap_checked: Mutex::default(),
            gap_suspects: Mutex::default(),
            gap_hours_checked: AtomicU64::new(0),
            gap_hours_unknown: AtomicU64::new(0),
            gap_hours: AtomicU64::new(0),
            gap_messages: AtomicU64::new(0),
            gap_excess_messages: AtomicU64::new(0),
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

    /// The message at `offset` of `partition`, published at
    /// `publish_time_us`, was left out.
    pub fn filtered(&self, partition: u32, offset: u64, publish_time_us: i64) {
        {
            let mut through = lock(&self.filtered_through);
            let highest = through.entry(partition).or_insert(0);
            if offset < *highest {
                return;
            }
            *highest = offset + 1;
        }
        self.filtered.fetch_add(1, Ordering::Relaxed);
        let hour = gap::hour_of(publish_time_us);
        let mut by_hour = lock(&self.filtered_by_hour);
        if let Some(count) = by_hour.get_mut(&(partition, hour)) {
            *count += 1;
            return;
        }
        by_hour.insert((partition, hour), 1);
        // A new hour: drop those two days back, past anything the gap check
        // still counts.
        let keep_from = hour - 48 * gap::HOUR_US;
        by_hour.retain(|&(_, h), _| h >= keep_from);
    }

    pub fn filtered_in(&self, partition: u32, hour_start_us: i64) -> u64 {
        lock(&self.filtered_by_hour).get(&(partition, hour_start_us)).copied().unwrap_or(0)
    }

    pub fn gap_checked(&self, partition: u32, hour_start_us: i64) -> bool {
        lock(&self.gap_checked).contains(&(partition, hour_start_us))
    }

    /// An hour the gap check could not count (the destination no longer
    /// tracks that far back, or does not know the route's producer).
    pub fn hour_unknown(&self) {
        self.gap_hours_unknown.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether this is the first time the gap check sees a mismatch for this
    /// hour (it then looks again before reporting it).
    pub fn first_sighting(&self, partition: u32, hour_start_us: i64) -> bool {
        lock(&self.gap_suspects).insert((partition, hour_start_us))
    }

    /// Records what the gap check counted for one hour of one partition.
    pub fn hour_checked(&self, count: &HourCount) {
        let mut checked = lock(&self.gap_checked);
        checked.insert((count.partition, count.hour_start_us));
        let keep_from = count.hour_start_us - 48 * gap::HOUR_US;
        checked.retain(|&(_, h)| h >= keep_from);
        self.gap_hours_checked.fetch_add(1, Ordering::Relaxed);
        lock(&self.gap_suspects).remove(&(count.partition, count.hour_start_us));
        let missing = count.missing();
        if missing != 0 {
            self.gap_hours.fetch_add(1, Ordering::Relaxed);
        }
        if missing > 0 {
            self.gap_messages.fetch_add(missing.unsigned_abs(), Ordering::Relaxed);
        } else {
            self.gap_excess_messages.fetch_add(missing.unsigned_abs(), Ordering::Relaxed);
        }
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
    let counters: [(&str, &str, Field); 10] = [
        (
            "ferry_mirror_gap_hours_checked_total",
            "Hours of a source partition whose source and destination counts were compared.",
            |p| &p.gap_hours_checked,
        ),
        (
            "ferry_mirror_gap_hours_unknown_total",
            "Closed hours the gap check could not count (the destination no longer tracks them).",
            |p| &p.gap_hours_unknown,
        ),
        (
            "ferry_mirror_gap_excess_messages_total",
            "Messages of checked hours the destination holds beyond the source's count (should stay 0).",
            |p| &p.gap_excess_messages,
        ),
        ("ferry_mirror_gap_hours_total", "Checked hours of a source partition whose counts did not match.", |p| {
            &p.gap_hours
        }),
        (
            "ferry_mirror_gap_messages_total",
            "Source messages of checked hours the destination does not hold (nor were left out on purpose).",
            |p| &p.gap_messages,
        ),
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

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
