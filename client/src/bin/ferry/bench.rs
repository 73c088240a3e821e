//! `ferry bench`: throughput and latency of publish, consume and end to end.
//!
//! - `publish`: `--count` messages (or as many as `--duration` allows) of
//!   `--size` bytes in batches of `--batch`, from `--concurrency` publishers
//!   (each with `--in-flight` batches in flight), over `--topics` topics;
//!   latency is publish-to-ack of each batch. With `--publisher`, messages go
//!   one by one through the batching [`Publisher`] (idempotent, optionally
//!   `--compression`ed) and latency is per message.
//! - `consume`: publishes `--count` messages first (timed apart: the
//!   backlog's publish rate), then drains them with `--concurrency` streaming
//!   consumers, acking each; the catch-up ratio is the drain rate over the
//!   backlog's publish rate.
//! - `end-to-end`: publishes at `--rate` while consumers read; latency is
//!   from just before the publish call to the consumer's receipt (the send
//!   time travels in the message).
//!
//! Topics are created when missing. Prints a table, or one JSON object per
//! mode with `--json`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bytes::Bytes;
use clap::{Args as ClapArgs, ValueEnum};
use ferry_client::{
    Client, Code, Message, Publisher, PublisherSettings, SubscriberSettings, SubscriptionSettings, TopicSettings,
};
use futures::FutureExt;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use rand::RngCore;
use serde_json::json;
use tokio::time::Instant;

/// Messages one task of `--publisher` waits on at once.
const ANSWERS_PER_TASK_MAX: usize = 20_000;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Mode {
    Publish,
    Consume,
    EndToEnd,
}

#[derive(Debug, ClapArgs)]
pub struct BenchArgs {
    pub mode: Mode,
    /// Topic to use (with --topics N > 1: TOPIC-0 .. TOPIC-(N-1)).
    #[arg(long, default_value = "bench")]
    pub topic: String,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 128)]
    pub size: usize,
    /// Messages in all.
    #[arg(long, default_value_t = 100_000)]
    pub count: u64,
    /// Messages per publish call.
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Publishers (publish mode) or consumers (consume modes) running at once;
    /// each publisher has one batch in flight. Consume modes run at least one
    /// consumer per topic.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Spread messages over this many topics: batch k goes to topic k mod N,
    /// and consume modes run at least one consumer per topic.
    #[arg(long, default_value_t = 1)]
    pub topics: usize,
    /// Partitions of each topic the run creates; 0 = the server's default.
    /// On a cluster with data groups, partitions spread a topic's load over
    /// the groups' leaders.
    #[arg(long, default_value_t = 0)]
    pub partitions: u32,
    /// Target publish rate in messages per second; 0 = as fast as possible.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Publish mode: run this long instead of a fixed --count, e.g. 30s.
    #[arg(long)]
    pub duration: Option<humantime::Duration>,
    /// Batches each publisher keeps in flight.
    #[arg(long, default_value_t = 1)]
    pub in_flight: usize,
    /// Publish through the batching, idempotent Publisher (per-message handles).
    #[arg(long)]
    pub publisher: bool,
    /// Consume modes: time each consumer spends on a message before acking it
    /// (e.g. 1ms), standing in for the work real consumers do; with it, more
    /// consumers drain faster as long as the server spreads the messages.
    #[arg(long)]
    pub work: Option<humantime::Duration>,
    /// Wire compression with --publisher: none, zstd or lz4.
    #[arg(long, default_value = "none")]
    pub compression: ferry_client::Compression,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// What one run measured.
struct Figures {
    mode: &'static str,
    messages: u64,
    elapsed: Duration,
    size: usize,
    latency_ms: Histogram<u64>,
    /// Consume mode: how long publishing the backlog took, to compare the
    /// catch-up rate with.
    backlog_published_in: Option<Duration>,
}

impl Figures {
    fn new(mode: &'static str, messages: u64, elapsed: Duration, size: usize, latency_ms: Histogram<u64>) -> Self {
        Self { mode, messages, elapsed, size, latency_ms, backlog_published_in: None }
    }

    fn percentile_ms(&self, q: f64) -> f64 {
        self.latency_ms.value_at_quantile(q) as f64 / 1000.0
    }

    fn print(&self, json: bool) {
        let seconds = self.elapsed.as_secs_f64().max(1e-9);
        let msgs_per_sec = self.messages as f64 / seconds;
        let mb_per_sec = msgs_per_sec * self.size as f64 / 1e6;
        let (p50, p99, p999) = (self.percentile_ms(0.5), self.percentile_ms(0.99), self.percentile_ms(0.999));
        let backlog_msgs_per_sec = self.backlog_published_in.map(|t| self.messages as f64 / t.as_secs_f64().max(1e-9));
        if json {
            let mut value = json!({
                "mode": self.mode,
                "messages": self.messages,
                "size_bytes": self.size,
                "seconds": seconds,
                "msgs_per_sec": msgs_per_sec,
                "mb_per_sec": mb_per_sec,
                "p50_ms": p50,
                "p99_ms": p99,
                "p999_ms": p999,
            });
            if let Some(rate) = backlog_msgs_per_sec {
                value["backlog_publish_msgs_per_sec"] = json!(rate);
            }
            println!("{value}");
        } else {
            println!(
                "{:<11} {:>10} msgs in {:>7.2}s  {:>11.0} msgs/s {:>8.2} MB/s  latency p50 {:>7.2} ms  p99 {:>7.2} ms  p999 {:>7.2} ms",
                self.mode, self.messages, seconds, msgs_per_sec, mb_per_sec, p50, p99, p999
            );
            if let Some(rate) = backlog_msgs_per_sec {
                println!("backlog published at {rate:.0} msgs/s; caught up at {:.2}× that", msgs_per_sec / rate);
            }
        }
    }
}

fn histogram() -> Histogram<u64> {
    // Microseconds, up to an hour, 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

pub async fn run(client: &Client, args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.batch > 0 && args.concurrency > 0 && args.topics > 0 && args.in_flight > 0,
        "--batch, --concurrency, --in-flight and --topics must be at least 1"
    );
    anyhow::ensure!(
        args.duration.is_none() || matches!(args.mode, Mode::Publish),
        "--duration is for the publish mode; the others drain a fixed --count"
    );
    anyhow::ensure!(args.size >= 8, "--size must be at least 8 (the send time travels in the payload)");
    let topics = topic_names(&args);
    for topic in &topics {
        ensure_topic(client, topic, args.partitions).await?;
    }
    let figures = match args.mode {
        Mode::Publish if args.publisher => publish_one_by_one(client, &args, &topics).await?,
        Mode::Publish => publish(client, &args, &topics, None).await?,
        Mode::Consume => consume(client, &args, &topics).await?,
        Mode::EndToEnd => end_to_end(client, &args, &topics).await?,
    };
    figures.print(args.json);
    Ok(())
}

fn topic_names(args: &BenchArgs) -> Vec<String> {
    if args.topics == 1 {
        vec![args.topic.clone()]
    } else {
        (0..args.topics).map(|i| format!("{}-{i}", args.topic)).collect()
    }
}

async fn ensure_topic(client: &Client, topic: &str, partitions: u32) -> anyhow::Result<()> {
    match client.create_topic(topic, TopicSettings { partitions, ..Default::default() }).await {
        Err(e) if e.code() != Some(Code::AlreadyExists) => Err(e).with_context(|| format!("create topic {topic}")),
        _ => Ok(()),
    }
}

/// A subscription named after the run, created fresh so it starts at the end.
async fn fresh_subscription(client: &Client, topic: &str, tag: &str) -> anyhow::Result<String> {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let name = format!("{topic}-{tag}-{nanos}");
    let settings = SubscriptionSettings { ack_deadline: Duration::from_secs(600), ..Default::default() };
    client.create_subscription(&name, topic, settings).await.with_context(|| format!("create subscription {name}"))?;
    Ok(name)
}

fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// A payload of `size` bytes whose first eight hold the send time.
/// A message: the send time, then bytes that do not compress. A payload
/// that compresses would flatter the disk figures (RocksDB compresses what it
/// flushes) against real events and against NATS, which does not compress.
fn payload(size: usize, sent_us: u64) -> Bytes {
    const POOL_BYTES: usize = 1 << 20;
    static POOL: OnceLock<Vec<u8>> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let pool = POOL.get_or_init(|| {
        let mut pool = vec![0u8; POOL_BYTES];
        rand::thread_rng().fill_bytes(&mut pool);
        pool
    });
    let mut data = Vec::with_capacity(size);
    data.extend_from_slice(&sent_us.to_be_bytes());
    // Each message starts somewhere else in the pool, so neighbours differ.
    let mut at = (NEXT.fetch_add(1, Ordering::Relaxed) as usize).wrapping_mul(7_919) % POOL_BYTES;
    while data.len() < size {
        let take = (size - data.len()).min(POOL_BYTES - at);
        data.extend_from_slice(&pool[at..at + take]);
        at = 0;
    }
    Bytes::from(data)
}

/// Publishes `args.count` messages (or for `args.duration`); `paced`
/// spreads them at `args.rate`.
async fn publish(
    client: &Client,
    args: &BenchArgs,
    topics: &[String],
    paced: Option<Instant>,
) -> anyhow::Result<Figures> {
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(histogram()));
    let started = paced.unwrap_or_else(Instant::now);
    let until = args.duration.map(|d| started + d.into());
    let count = if until.is_some() { u64::MAX } else { args.count };
    let mut tasks = Vec::new();
    // Each of the `in_flight` senders of a publisher has one batch in flight.
    for _ in 0..args.concurrency * args.in_flight {
        let (client, next, done, latencies) =
            (client.clone(), Arc::clone(&next), Arc::clone(&done), Arc::clone(&latencies));
        let topics = topics.to_vec();
        let (batch, size, rate) = (args.batch as u64, args.size, args.rate);
        tasks.push(tokio::spawn(async move {
            loop {
                let first = next.fetch_add(batch, Ordering::Relaxed);
                if first >= count || until.is_some_and(|t| Instant::now() >= t) {
                    return Ok::<_, anyhow::Error>(());
                }
                let n = batch.min(count - first);
                // Batch k goes to topic k mod T, so every topic gets its share
                // whatever the number of publishers.
                let topic = &topics[(first / batch) as usize % topics.len()];
                if rate > 0 {
                    // Batch `first` is due when the rate says so.
                    let due = started + Duration::from_secs_f64(first as f64 / rate as f64);
                    tokio::time::sleep_until(due).await;
                }
                let sent = now_micros();
                let messages = (0..n).map(|_| Message::new(payload(size, sent))).collect();
                let begun = Instant::now();
                client.publish(topic, messages).await.with_context(|| format!("publish to {topic}"))?;
                let micros = begun.elapsed().as_micros() as u64;
                latencies.lock().record(micros.max(1)).ok();
                done.fetch_add(n, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    let latency_ms = latencies.lock().clone();
    let messages = done.load(Ordering::Relaxed);
    Ok(Figures::new("publish", messages, started.elapsed(), args.size, latency_ms))
}

/// Publishes through one [`Publisher`] per topic, a message at a time (message
/// n to topic n mod T), from `args.concurrency` tasks; latency is from `publish` to the handle resolving.
async fn publish_one_by_one(client: &Client, args: &BenchArgs, topics: &[String]) -> anyhow::Result<Figures> {
    let settings = PublisherSettings {
        batch_max_messages: args.batch,
        max_in_flight_batches: args.in_flight,
        compression: args.compression,
        ..Default::default()
    };
    let mut publishers = Vec::new();
    for topic in topics {
        publishers.push(Publisher::new(client, topic, settings.clone()).await?);
    }
    let publishers = Arc::new(publishers);
    let next = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(histogram()));
    let started = Instant::now();
    let until = args.duration.map(|d| started + d.into());
    let count = if until.is_some() { u64::MAX } else { args.count };
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (publishers, next, latencies, size) =
            (Arc::clone(&publishers), Arc::clone(&next), Arc::clone(&latencies), args.size);
        tasks.push(tokio::spawn(async move {
            // Handles in publish order: a Publisher resolves them in order per
            // partition, so waiting on the oldest first costs little accuracy
            // and, unlike a set of futures, nothing per wake-up.
            let mut answers: VecDeque<(Instant, ferry_client::PublishHandle)> = VecDeque::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let stop = n >= count || until.is_some_and(|t| Instant::now() >= t);
                if stop || answers.len() >= ANSWERS_PER_TASK_MAX {
                    let Some((begun, handle)) = answers.pop_front() else { break };
                    let result: ferry_client::Result<_> = handle.await;
                    result?;
                    latencies.lock().record((begun.elapsed().as_micros() as u64).max(1)).ok();
                    if stop {
                        continue;
                    }
                }
                let begun = Instant::now();
                // Message n goes to topic n mod T.
                let publisher = &publishers[(n % publishers.len() as u64) as usize];
                let handle = publisher.publish(Message::new(payload(size, now_micros()))).await?;
                answers.push_back((begun, handle));
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let latency_ms = latencies.lock().clone();
    let messages = latency_ms.len();
    Ok(Figures::new("publish", messages, started.elapsed(), args.size, latency_ms))
}

/// Drains `expected` messages from the subscriptions with `args.concurrency`
/// streaming consumers; records receive latency from the payload's send time.
async fn drain(
    client: &Client,
    args: &BenchArgs,
    subscriptions: &[String],
    expected: u64,
    latencies: Arc<Mutex<Histogram<u64>>>,
) -> anyhow::Result<Duration> {
    let received = Arc::new(AtomicU64::new(0));
    // Set by whichever consumer takes the last message, so the others stop
    // at once rather than at their next wait's end (a tail the elapsed time
    // counted).
    let (done_tx, done) = tokio::sync::watch::channel(false);
    let done_tx = Arc::new(done_tx);
    let started = Instant::now();
    let mut tasks = Vec::new();
    // At least one consumer per subscription, or some would never be drained.
    for worker in 0..args.concurrency.max(subscriptions.len()) {
        let subscription = subscriptions[worker % subscriptions.len()].clone();
        let (client, received, latencies) = (client.clone(), Arc::clone(&received), Arc::clone(&latencies));
        let (done_tx, mut done) = (Arc::clone(&done_tx), done.clone());
        let work: Option<Duration> = args.work.map(Into::into);
        tasks.push(tokio::spawn(async move {
            // A consumer that works on each message holds few at a time, so
            // the rest go to the others.
            let max_outstanding_messages = if work.is_some() { 10 } else { 5000 };
            let settings = SubscriberSettings { max_outstanding_messages, ..Default::default() };
            let mut subscriber = client.subscribe(&subscription, settings).await?;
            // Recorded here and merged once: a shared histogram's lock per
            // message was the consumers' to fight over.
            let mut own_latencies = histogram();
            let mut clock = Clock::default();
            while received.load(Ordering::Relaxed) < expected {
                let next = match subscriber.next().now_or_never() {
                    // At hand, from this batch or one queued behind it: the
                    // clock read up to 63 messages ago stands (microseconds
                    // ago, unless the consumer was descheduled meanwhile).
                    Some(next) => next,
                    None => {
                        let next = tokio::select! {
                            next = subscriber.next() => next,
                            _ = done.wait_for(|done| *done) => break,
                        };
                        clock.waited();
                        next
                    }
                };
                let Some(delivered) = next else { break };
                let delivered = delivered?;
                if let Some(sent) = delivered.message.message.data.get(..8) {
                    let sent = u64::from_be_bytes(sent.try_into().unwrap_or([0; 8]));
                    own_latencies.record(clock.now_micros().saturating_sub(sent).max(1)).ok();
                }
                if let Some(work) = work {
                    tokio::time::sleep(work).await;
                    clock.waited();
                }
                delivered.ack();
                if received.fetch_add(1, Ordering::Relaxed) + 1 >= expected {
                    done_tx.send_replace(true);
                }
            }
            latencies.lock().add(&own_latencies).ok();
            subscriber.close().await;
            Ok::<_, anyhow::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(started.elapsed())
}

/// The wall clock as a consumer reads it: once per wait, and once every
/// [`Clock::READS_EVERY`] messages taken from a batch at hand. A read per
/// message was a twentieth of the consumer's CPU, and messages of one batch
/// arrive together anyway.
#[derive(Default)]
struct Clock {
    now_us: Option<u64>,
    uses: u32,
}

impl Clock {
    const READS_EVERY: u32 = 64;

    fn now_micros(&mut self) -> u64 {
        self.uses += 1;
        match self.now_us {
            Some(now) if self.uses < Self::READS_EVERY => now,
            _ => {
                self.uses = 0;
                *self.now_us.insert(now_micros())
            }
        }
    }

    /// Time has passed: the next use reads the clock.
    fn waited(&mut self) {
        self.now_us = None;
    }
}

async fn consume(client: &Client, args: &BenchArgs, topics: &[String]) -> anyhow::Result<Figures> {
    let mut subscriptions = Vec::new();
    for topic in topics {
        subscriptions.push(fresh_subscription(client, topic, "consume").await?);
    }
    let backlog = publish(client, args, topics, None).await?;
    let latencies = Arc::new(Mutex::new(histogram()));
    let elapsed = drain(client, args, &subscriptions, args.count, Arc::clone(&latencies)).await?;
    let latency_ms = latencies.lock().clone();
    let figures = Figures::new("consume", args.count, elapsed, args.size, latency_ms);
    Ok(Figures { backlog_published_in: Some(backlog.elapsed), ..figures })
}

async fn end_to_end(client: &Client, args: &BenchArgs, topics: &[String]) -> anyhow::Result<Figures> {
    let mut subscriptions = Vec::new();
    for topic in topics {
        subscriptions.push(fresh_subscription(client, topic, "e2e").await?);
    }
    let latencies = Arc::new(Mutex::new(histogram()));
    let consumer = {
        let (client, latencies) = (client.clone(), Arc::clone(&latencies));
        let args = BenchArgs { mode: args.mode, topic: args.topic.clone(), json: args.json, duration: None, ..*args };
        let subscriptions = subscriptions.clone();
        tokio::spawn(async move { drain(&client, &args, &subscriptions, args.count, latencies).await })
    };
    publish(client, args, topics, Some(Instant::now())).await?;
    let elapsed = consumer.await??;
    let latency_ms = latencies.lock().clone();
    Ok(Figures::new("end-to-end", args.count, elapsed, args.size, latency_ms))
}
