//! Closing an hour on local disk: staged Avro files read back, merged,
//! deduplicated, written as parts (fsynced), the manifest written and the
//! staging files deleted — the second half of every event's way through
//! the ETL (the first, staging, is measured by `make bench-etl`).
//!
//!     cargo bench -p ferry-etl --bench close

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ferry_etl::avro::{self, Codec};
use ferry_etl::closer::close_hour;
use ferry_etl::config::Config;
use ferry_etl::envelope::Envelope;
use ferry_etl::format::Format;
use ferry_etl::hour::Hour;
use ferry_etl::naming::{staging_path, SetDigest};
use ferry_etl::store::Output;

/// Events per hour, in staging files of the default size, of 128 B payloads.
const EVENTS: u64 = 100_000;
const FILE_EVENTS: u64 = 5_000;
const PAYLOAD: usize = 128;

fn hour() -> Hour {
    "2026-11-22T13".parse().expect("an hour")
}

/// Payload bytes that compress about as well as typical JSON events.
fn payload(seed: u64) -> Bytes {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let text: Vec<u8> = (0..PAYLOAD)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            b"{\"user\":12345,\"page\":\"/a/b\"}"[(state >> 59) as usize % 28]
        })
        .collect();
    Bytes::from(text)
}

/// A fresh output holding one hour's staging files, ready to close.
fn staged(runtime: &tokio::runtime::Runtime) -> (tempfile::TempDir, Output) {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Output::open(&format!("file://{}", dir.path().display()), &[]).expect("output");
    runtime.block_on(async {
        for file in 0..EVENTS / FILE_EVENTS {
            let events: Vec<Envelope> = (file * FILE_EVENTS..(file + 1) * FILE_EVENTS)
                .map(|offset| Envelope {
                    event_id: Envelope::message_id("bench", 0, offset),
                    publish_time_micros: hour().start_micros() + offset as i64,
                    topic: "bench".into(),
                    partition: 0,
                    offset,
                    attributes: BTreeMap::from([("source".into(), "bench".into())]),
                    payload: payload(offset),
                    skewed: false,
                })
                .collect();
            let digest = SetDigest::of(hour(), events.iter().map(|e| (e.partition, e.offset)));
            let bytes = avro::write_file(&events, Codec::Zstandard, digest.sync_marker());
            output.create(&staging_path("bench", hour(), &digest), bytes.into()).await.expect("stage");
        }
    });
    (dir, output)
}

fn close(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut group = c.benchmark_group("close_hour");
    group.throughput(Throughput::Elements(EVENTS)).sample_size(10).measurement_time(Duration::from_secs(20));
    for (format, codec) in
        [(Format::Avro, Codec::Zstandard), (Format::Avro, Codec::Null), (Format::JsonLines, Codec::Deflate)]
    {
        let mut config = Config::new("bench", "bench-etl");
        (config.format, config.codec) = (format, codec);
        let name = format!("{}-{}-{EVENTS}x{PAYLOAD}B", format.name(), codec.name());
        group.bench_function(name, |b| {
            b.iter_batched(
                || staged(&runtime),
                |(dir, output)| {
                    let manifest = runtime.block_on(close_hour(&output, &config, hour())).expect("closes");
                    assert_eq!(manifest.records, EVENTS);
                    dir
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, close);
criterion_main!(benches);
