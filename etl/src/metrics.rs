//! What a worker has done, as counters any thread can bump; `ferry-etl`
//! prints them and serves them for Prometheus.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use ferry_metrics::Exposition;

use crate::manifest::Manifest;

#[derive(Debug, Default)]
pub struct Metrics {
    pub records_staged: AtomicU64,
    pub staging_files_written: AtomicU64,
    pub staging_bytes_written: AtomicU64,
    /// Events routed to a later hour because theirs had closed.
    pub skewed: AtomicU64,
    /// Events past the late limit, sent to the dead-letter topic.
    pub too_late: AtomicU64,
    /// Staging writes retried after a storage error.
    pub upload_retries: AtomicU64,
    pub hours_closed: AtomicU64,
    pub records_closed: AtomicU64,
    pub part_files_written: AtomicU64,
    pub part_bytes_written: AtomicU64,
    pub duplicates_dropped: AtomicU64,
    /// How far the watermark is past the start of the oldest open hour, µs.
    pub watermark_lag_micros: AtomicI64,
    /// How long after it was due the last hour closed, µs.
    pub last_close_latency_micros: AtomicI64,
}

impl Metrics {
    pub fn set_watermark_lag(&self, micros: i64) {
        self.watermark_lag_micros.store(micros, Ordering::Relaxed);
    }

    pub fn hour_closed(&self, manifest: &Manifest, latency_micros: i64) {
        self.hours_closed.fetch_add(1, Ordering::Relaxed);
        self.records_closed.fetch_add(manifest.records, Ordering::Relaxed);
        self.part_files_written.fetch_add(manifest.files.len() as u64, Ordering::Relaxed);
        self.part_bytes_written.fetch_add(manifest.files.iter().map(|f| f.bytes).sum(), Ordering::Relaxed);
        self.duplicates_dropped.fetch_add(manifest.duplicates_dropped, Ordering::Relaxed);
        self.last_close_latency_micros.store(latency_micros, Ordering::Relaxed);
    }

    /// The Prometheus text exposition, every name with its unit.
    pub fn prometheus(&self, topic: &str) -> String {
        let counters = [
            ("ferry_etl_records_staged_total", "Events written to staging files.", &self.records_staged),
            ("ferry_etl_staging_files_written_total", "Staging files written.", &self.staging_files_written),
            ("ferry_etl_staging_bytes_written_total", "Bytes of staging files written.", &self.staging_bytes_written),
            ("ferry_etl_skewed_total", "Events put in a later hour because theirs had closed.", &self.skewed),
            ("ferry_etl_too_late_total", "Events past the late limit, dead-lettered.", &self.too_late),
            ("ferry_etl_upload_retries_total", "Staging writes retried after a storage error.", &self.upload_retries),
            ("ferry_etl_hours_closed_total", "Hours closed.", &self.hours_closed),
            ("ferry_etl_records_closed_total", "Events in closed hours.", &self.records_closed),
            ("ferry_etl_part_files_written_total", "Files of closed hours' parts.", &self.part_files_written),
            ("ferry_etl_part_bytes_written_total", "Bytes of closed hours' parts.", &self.part_bytes_written),
            ("ferry_etl_duplicates_dropped_total", "Duplicate events dropped at close.", &self.duplicates_dropped),
        ];
        let labels = [("topic", topic)];
        let mut text = Exposition::default();
        for (name, help, value) in counters {
            text.counter(name, help, &labels, value.load(Ordering::Relaxed));
        }
        let gauges = [
            (
                "ferry_etl_watermark_lag_seconds",
                "Watermark past the start of the oldest open hour.",
                &self.watermark_lag_micros,
            ),
            (
                "ferry_etl_close_latency_seconds",
                "How long after it was due the last hour closed.",
                &self.last_close_latency_micros,
            ),
        ];
        for (name, help, value) in gauges {
            text.gauge(name, help, &labels, value.load(Ordering::Relaxed) as f64 / 1e6);
        }
        text.into_text()
    }
}
