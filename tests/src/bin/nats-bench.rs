//! The workload of `ferry bench` against NATS JetStream, for the side-by-side
//! table of `scripts/bench-clusters`: publish with `--in-flight` acks
//! outstanding per task, or consume through a pull consumer acking each
//! message. Prints one JSON line with the same fields as `ferry bench --json`.
//!
//!     nats-bench --server 127.0.0.1:4222 --stream b128 --replicas 3 publish --size 128 --count 200000
//!     nats-bench --server 127.0.0.1:4222 --stream b128 consume --count 200000

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use futures::StreamExt;
use hdrhistogram::Histogram;

#[derive(Debug, Parser)]
struct Args {
    /// NATS server(s), comma-separated.
    #[arg(long, default_value = "127.0.0.1:4222")]
    server: String,
    /// The stream (and its one subject).
    #[arg(long)]
    stream: String,
    /// Replicas of the stream, when the publish creates it.
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Publish COUNT messages of SIZE bytes from CONCURRENCY tasks.
    Publish {
        #[arg(long, default_value_t = 128)]
        size: usize,
        #[arg(long, default_value_t = 200_000)]
        count: usize,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Publishes awaiting their ack per task.
        #[arg(long, default_value_t = 1_000)]
        in_flight: usize,
    },
    /// Consume COUNT messages, acking each.
    Consume {
        #[arg(long, default_value_t = 200_000)]
        count: usize,
        /// Messages asked for per pull.
        #[arg(long, default_value_t = 1_000)]
        batch: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = async_nats::connect(args.server.as_str()).await.with_context(|| format!("connect {}", args.server))?;
    let js = jetstream::new(client);
    match args.mode {
        Mode::Publish { size, count, concurrency, in_flight } => {
            let config = stream::Config {
                name: args.stream.clone(),
                subjects: vec![args.stream.clone()],
                storage: stream::StorageType::File,
                num_replicas: args.replicas,
                ..Default::default()
            };
            js.get_or_create_stream(config).await.map_err(|e| anyhow::anyhow!("create stream: {e}"))?;
            let payload = Bytes::from(vec![b'x'; size]);
            let started = Instant::now();
            let mut tasks = Vec::new();
            for task in 0..concurrency {
                let (js, subject, payload) = (js.clone(), args.stream.clone(), payload.clone());
                let share = count / concurrency + usize::from(task < count % concurrency);
                tasks.push(tokio::spawn(async move { publish(js, subject, payload, share, in_flight).await }));
            }
            let mut latency = histogram();
            for task in tasks {
                latency.add(task.await??)?;
            }
            report("publish", count, size, started.elapsed(), &latency);
        }
        Mode::Consume { count, batch } => {
            let stream = js.get_stream(&args.stream).await.map_err(|e| anyhow::anyhow!("get stream: {e}"))?;
            let config = consumer::pull::Config {
                durable_name: Some("bench".into()),
                ack_policy: consumer::AckPolicy::Explicit,
                ..Default::default()
            };
            let consumer = stream
                .get_or_create_consumer("bench", config)
                .await
                .map_err(|e| anyhow::anyhow!("create consumer: {e}"))?;
            let mut messages = consumer
                .stream()
                .max_messages_per_batch(batch)
                .messages()
                .await
                .map_err(|e| anyhow::anyhow!("consume: {e}"))?;
            let started = Instant::now();
            let (mut received, mut size) = (0, 0);
            while received < count {
                let message = messages
                    .next()
                    .await
                    .context("the consumer ended")?
                    .map_err(|e| anyhow::anyhow!("receive: {e}"))?;
                size = message.payload.len();
                message.ack().await.map_err(|e| anyhow::anyhow!("ack: {e}"))?;
                received += 1;
            }
            report("consume", count, size, started.elapsed(), &histogram());
        }
    }
    Ok(())
}

/// Publishes `count` messages, keeping up to `in_flight` acks outstanding;
/// returns the publish-to-ack latencies.
async fn publish(
    js: jetstream::Context,
    subject: String,
    payload: Bytes,
    count: usize,
    in_flight: usize,
) -> anyhow::Result<Histogram<u64>> {
    let mut latency = histogram();
    let mut pending: VecDeque<(Instant, jetstream::context::PublishAckFuture)> = VecDeque::with_capacity(in_flight);
    for _ in 0..count {
        if pending.len() >= in_flight {
            let (at, ack) = pending.pop_front().expect("in flight");
            ack.await.map_err(|e| anyhow::anyhow!("publish ack: {e}"))?;
            latency.record(micros(at.elapsed()))?;
        }
        let at = Instant::now();
        let ack = js.publish(subject.clone(), payload.clone()).await.map_err(|e| anyhow::anyhow!("publish: {e}"))?;
        pending.push_back((at, ack));
    }
    for (at, ack) in pending {
        ack.await.map_err(|e| anyhow::anyhow!("publish ack: {e}"))?;
        latency.record(micros(at.elapsed()))?;
    }
    Ok(latency)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

fn micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX).max(1)
}

fn report(mode: &str, messages: usize, size: usize, elapsed: Duration, latency: &Histogram<u64>) {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    let msgs_per_sec = messages as f64 / seconds;
    let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
    let value = serde_json::json!({
        "system": "nats-jetstream",
        "mode": mode,
        "messages": messages,
        "size_bytes": size,
        "seconds": seconds,
        "msgs_per_sec": msgs_per_sec,
        "mb_per_sec": msgs_per_sec * size as f64 / 1e6,
        "p50_ms": ms(0.5),
        "p99_ms": ms(0.99),
        "p999_ms": ms(0.999),
    });
    println!("{value}");
}
