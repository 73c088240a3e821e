//! The hourly gap check: for each closed hour of each source partition, the
//! source's count of messages against the destination's count of what the
//! route stored of them, each cluster answering from its own records:
//!
//! - the source: the offsets `[a, b)` its messages of the hour hold (the
//!   first offsets published at or after the hour's start and end, GetTopic
//!   `offsets_for_times`; a partition keeps its hour boundaries for a week,
//!   so this holds after the messages are deleted), so `b - a` messages;
//! - the destination: how many of the route's producer sequences (source
//!   offsets) in `[a, b)` it stored rather than saw skipped (GetProducer).
//!
//! The difference must be the messages this mirror left out on purpose (they
//! came from the destination cluster). Anything else is a gap — messages
//! trimmed by the source's retention before they were copied, acked on the
//! route's subscription by another consumer, or lost — and is logged and
//! counted in the metrics.
//!
//! An hour is checked once it has closed at the source (its end is a minute
//! older than the route's oldest uncopied message, or than the source's clock
//! when nothing is left), if it began after the route's subscription was
//! created, and only once per process, going back a day.
//! Limits: messages left out are counted by the process that saw them, so
//! for a route that filters (two clusters mirroring each other) an hour
//! copied partly before a restart may report the earlier process's filtered
//! messages as a gap. And each filtered message leaves a hole in the route
//! producer's stored runs, of which the destination keeps 256: on a route
//! that filters often, hours fall behind what it tracks before they close,
//! and are counted as unknown (`ferry_mirror_gap_hours_unknown_total`)
//! rather than checked.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use ferry_client::Client;

use crate::origin;
use crate::progress::Progress;
use crate::route::Route;

pub const HOUR_US: i64 = 3_600 * 1_000_000;
/// How long after its end an hour is left alone, so publishes in flight at
/// its end have landed.
const SETTLE_US: i64 = 60 * 1_000_000;
/// Closed hours each check looks back over.
const LOOKBACK_HOURS: i64 = 24;

/// What one check found for one hour of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourCount {
    pub partition: u32,
    pub hour_start_us: i64,
    pub source: u64,
    pub stored: u64,
    pub filtered: u64,
}

impl HourCount {
    /// Source messages neither stored at the destination nor left out on
    /// purpose (negative: stored more than the source holds).
    pub fn missing(&self) -> i64 {
        self.source as i64 - self.stored as i64 - self.filtered as i64
    }
}

/// Checks the closed hours not checked yet; returns what it counted.
pub async fn check(
    route: &Route,
    source: &Client,
    destination: &Client,
    progress: &Progress,
) -> anyhow::Result<Vec<HourCount>> {
    let subscription =
        source.get_subscription(&route.subscription).await.context("reading the route's subscription")?;
    // Hours before the route's subscription existed were never promised to
    // it: their messages may have been deleted (acked elsewhere) before.
    let promised_from = hour_of(origin::micros(subscription.create_time)) + HOUR_US;
    let backlog = subscription.backlog.context("a subscription without its backlog")?;
    let copied_until = backlog.oldest_unacked_publish_time.unwrap_or(backlog.as_of);
    let last_end = hour_of(origin::micros(copied_until) - SETTLE_US);
    let first_start = last_end - LOOKBACK_HOURS * HOUR_US;
    let bounds: Vec<i64> = (0..=LOOKBACK_HOURS).map(|i| first_start + i * HOUR_US).collect();
    let times: Vec<SystemTime> = bounds.iter().map(|&us| UNIX_EPOCH + Duration::from_micros(us as u64)).collect();
    let (topic, offsets) =
        source.offsets_for_times(&route.topic, &times).await.context("the source's offsets by hour")?;
    let created_us = origin::micros(topic.create_time);
    let starts: Vec<u64> = topic.partitions.iter().map(|p| p.start_offset).collect();
    let mut counts = Vec::new();
    for ((partition, offsets), start) in (0u32..).zip(offsets).zip(starts) {
        let producer_id = origin::producer_id(&route.source_cluster, &route.topic, created_us, partition);
        let info = destination
            .get_producer(&route.destination_topic, partition, producer_id, &offsets)
            .await
            .context("the destination's stored sequences")?;
        for i in 0..LOOKBACK_HOURS as usize {
            let hour_start_us = bounds[i];
            let (a, b) = (offsets[i], offsets[i + 1]);
            // Deleted at the source with no boundary left to say where the
            // hour began (older than the source keeps boundaries, or written
            // before it kept them): no count.
            let unknown = b < a || (start > 0 && a == start && b == start);
            if unknown || hour_start_us < promised_from || progress.gap_checked(partition, hour_start_us) {
                continue;
            }
            // An unknown producer (nothing stored yet, or forgotten) or
            // bounds below what the destination tracks: no count.
            let stored_below = |j: usize| info.stored_below.get(j).copied().flatten();
            let (Some(below_a), Some(below_b)) = (stored_below(i), stored_below(i + 1)) else {
                if b > a {
                    progress.hour_unknown();
                }
                continue;
            };
            let count = HourCount {
                partition,
                hour_start_us,
                source: b - a,
                stored: below_b.saturating_sub(below_a),
                filtered: progress.filtered_in(partition, hour_start_us),
            };
            // A mismatch is reported once it is seen twice: the answering
            // node's replica of a data group may have lagged the first time.
            if count.missing() != 0 && progress.first_sighting(partition, hour_start_us) {
                continue;
            }
            progress.hour_checked(&count);
            if count.missing() != 0 {
                tracing::warn!(
                    topic = %route.topic,
                    partition,
                    hour = %humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_micros(hour_start_us as u64)),
                    source = count.source,
                    stored = count.stored,
                    filtered = count.filtered,
                    missing = count.missing(),
                    "gap: the destination does not hold every source message of this hour"
                );
            }
            counts.push(count);
        }
    }
    Ok(counts)
}

/// The start of the hour holding `us`.
pub fn hour_of(us: i64) -> i64 {
    us.div_euclid(HOUR_US) * HOUR_US
}
