//! A route: one source topic copied into a destination topic through a
//! subscription on the source, acking each source message only once the
//! destination has stored it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{bail, Context};
use ferry_client::{
    Client, ClientOptions, Code, Compression, Delivered, Error, Message, ProducerSequence, Subscriber,
    SubscriberSettings, SubscriptionSettings,
};
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::gap;
use crate::lane::{Batch, Lane, Next, Refusal};
use crate::lock::{self, LockSettings};
use crate::origin;
use crate::progress::{Progress, LAG_EVERY, REPORT_EVERY};
use crate::rate::RateLimit;
use crate::stopped;

/// What one route copies, and where.
#[derive(Debug, Clone)]
pub struct Route {
    /// The source cluster's seed addresses, comma-separated.
    pub source: String,
    pub destination: String,
    /// How each side is reached (token, TLS).
    pub source_options: ClientOptions,
    pub destination_options: ClientOptions,
    /// The names the clusters go by in origin attributes (and loop checks).
    pub source_cluster: String,
    pub destination_cluster: String,
    pub topic: String,
    pub destination_topic: String,
    /// The route's subscription on the source; the mirror must be its only
    /// consumer (its ack floor is the mirror's proof of what is done).
    pub subscription: String,
    /// Messages per destination batch, at most.
    pub batch_messages: usize,
    /// How batches travel to the destination.
    pub compression: Compression,
    /// Message bytes (data and attributes, before compression) sent per
    /// second at most; `None`: as fast as the destination takes them.
    pub max_bytes_per_second: Option<u64>,
    /// The lock that makes one of the route's instances the active one.
    pub lock: LockSettings,
    /// Create the destination topic, like the source's, when it is missing.
    pub create_destination_topic: bool,
    /// How often the active instance runs the hourly gap check.
    pub gap_check_every: Duration,
}

/// Messages a route holds (received, not yet stored at the destination):
/// the server's bound on a stream's outstanding messages.
const HELD_MAX: u32 = 10_000;
/// The route subscription's ack deadline. The subscriber extends it while a
/// message is held; it is how long an instance that died holding messages
/// delays the one taking over.
const ACK_DEADLINE: Duration = Duration::from_secs(15);
/// How often a lane waiting for proof re-reads the source's ack floors.
const FLOOR_POLL: Duration = Duration::from_millis(500);
/// How long a lane waits after a failed publish before sending again (the
/// client already retried an unavailable destination for its budget).
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// How long a failed run waits before the next, at first and at most.
const RESTART_MIN: Duration = Duration::from_secs(1);
const RESTART_MAX: Duration = Duration::from_secs(30);

/// Runs `route` until `stop` turns true, starting it over after any failure
/// (a cluster unreachable at start, the subscription stream lost): a
/// mirror's job is to keep copying, and what a failed run held is
/// redelivered to the next. Failures are logged, with a growing pause.
pub async fn run_until_stopped(route: Route, progress: Arc<Progress>, mut stop: watch::Receiver<bool>) {
    let mut pause = RESTART_MIN;
    loop {
        let started = Instant::now();
        let result = run(&route, &progress, stop.clone()).await;
        progress.set_active(false);
        match result {
            Ok(()) => return,
            Err(e) => {
                progress.run_failed();
                tracing::error!(error = format!("{e:#}"), pause = ?pause, "the route failed; starting it again");
            }
        }
        if started.elapsed() > RESTART_MAX {
            pause = RESTART_MIN;
        }
        tokio::select! {
            () = stopped(&mut stop) => return,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(RESTART_MAX);
    }
}

/// One run of `route`: until `stop` turns true (`Ok`) or a failure.
pub async fn run(route: &Route, progress: &Progress, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    let source = Client::connect_with_options(&route.source, route.source_options.clone());
    let source = source.await.context("connect to the source")?;
    let destination = Client::connect_with_options(&route.destination, route.destination_options.clone());
    let destination = destination.await.context("connect to the destination")?;
    let (partitions, source_created_us) = check_topics(route, &source, &destination).await?;
    let Some(mut lock) = lock::acquire(&destination, &route.lock, &mut stop).await? else {
        return Ok(());
    };
    progress.set_active(true);
    let mut subscriber = subscribe(route, &source).await?;
    let mut copying = Copying::new(route, source, destination, (partitions, source_created_us), progress);
    let mut publishing = FuturesUnordered::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut report = tokio::time::interval_at(Instant::now() + REPORT_EVERY, REPORT_EVERY);
    let mut lag = tokio::time::interval(LAG_EVERY);
    let mut gaps = tokio::time::interval_at(Instant::now() + route.gap_check_every, route.gap_check_every);
    tracing::info!(topic = %route.topic, partitions, "mirroring");
    loop {
        publishing.extend(copying.start_batches(Instant::now()));
        tokio::select! {
            () = stopped(&mut stop) => break,
            Some((partition, bytes, result)) = publishing.next() => copying.published(partition, bytes, result),
            received = subscriber.next() => match received {
                Some(Ok(delivered)) => copying.received(delivered),
                Some(Err(e)) => return Err(e).context("reading the source subscription"),
                None => bail!("the source subscription ended"),
            },
            () = sleep_until(copying.floors_due), if copying.floors_due.is_some() => copying.read_floors().await,
            _ = lag.tick() => copying.read_lag().await,
            _ = gaps.tick() => copying.check_gaps().await,
            _ = report.tick() => progress.report(&route.topic),
            // Lanes waiting out a retry or the rate limit look again.
            _ = tick.tick() => {}
            reason = lock.lost() => {
                // Hand back what it holds, for the instance that took over.
                subscriber.close().await;
                bail!("lost the route's lock: {reason}");
            }
        }
    }
    subscriber.close().await;
    lock.release().await;
    Ok(())
}

/// A batch's publish to the destination: its partition, its bytes, the answer.
type Publishing = Pin<Box<dyn Future<Output = (u32, u64, ferry_client::Result<()>)> + Send>>;

/// One run's state: a lane per partition and what each waits for.
struct Copying<'a> {
    route: &'a Route,
    source: Client,
    destination: Client,
    lanes: Vec<Lane<Delivered>>,
    /// A lane whose publish failed, or that the rate limit held back, waits.
    retry_at: Vec<Option<Instant>>,
    /// When to read the source's ack floors for lanes that must prove a gap.
    floors_due: Option<Instant>,
    limit: Option<RateLimit>,
    progress: &'a Progress,
    /// The source topic's creation time: which incarnation it copies.
    source_created_us: i64,
}

impl<'a> Copying<'a> {
    fn new(
        route: &'a Route,
        source: Client,
        destination: Client,
        (partitions, source_created_us): (u32, i64),
        progress: &'a Progress,
    ) -> Self {
        Copying {
            route,
            source,
            destination,
            lanes: (0..partitions).map(|_| Lane::default()).collect(),
            retry_at: vec![None; partitions as usize],
            floors_due: None,
            limit: route.max_bytes_per_second.map(|rate| RateLimit::new(rate, Instant::now())),
            progress,
            source_created_us,
        }
    }

    /// The publishes of every lane that has a batch ready and may send it.
    fn start_batches(&mut self, now: Instant) -> Vec<Publishing> {
        let mut started = Vec::new();
        for (partition, lane) in self.lanes.iter_mut().enumerate() {
            if self.retry_at[partition].is_some_and(|at| now < at) {
                continue;
            }
            match lane.next(self.route.batch_messages) {
                Next::Send(batch) => {
                    let messages = copies(self.route, lane, &batch);
                    let bytes = messages.iter().map(message_bytes).sum();
                    if let Some(Err(at)) = self.limit.as_mut().map(|limit| limit.admit(bytes, now)) {
                        self.retry_at[partition] = Some(at);
                        continue;
                    }
                    lane.sending(&batch);
                    let destination = self.destination.clone();
                    let producer_id = origin::producer_id(
                        &self.route.source_cluster,
                        &self.route.topic,
                        self.source_created_us,
                        partition as u32,
                    );
                    let sequence = ProducerSequence {
                        partition: partition as u32,
                        producer_id,
                        first_sequence: batch.offsets.start,
                        skip_from: batch.skip_from,
                    };
                    started.push(publish(destination, self.route, sequence, messages, bytes));
                }
                Next::NeedFloor => {
                    self.floors_due.get_or_insert(now);
                }
                Next::Idle => {}
            }
        }
        started
    }

    /// A publish answered: acks at the source what the destination stored.
    fn published(&mut self, partition: u32, bytes: u64, result: ferry_client::Result<()>) {
        let lane = &mut self.lanes[partition as usize];
        let stored = match result {
            Ok(()) => {
                let stored = lane.stored();
                self.progress.stored(stored.len() as u64, bytes);
                stored
            }
            Err(e) => match refusal(&e) {
                Some(refusal) => {
                    // Found stored by an earlier try: copied all the same.
                    let found = lane.refused(refusal);
                    if !found.is_empty() {
                        self.progress.stored(found.len() as u64, 0);
                    }
                    found
                }
                None => {
                    tracing::warn!(partition, error = %e, "publishing to the destination failed; retrying");
                    self.progress.publish_failed();
                    lane.failed();
                    self.retry_at[partition as usize] = Some(Instant::now() + RETRY_AFTER);
                    Vec::new()
                }
            },
        };
        for delivered in stored {
            delivered.ack();
        }
    }

    /// A source message arrived: to its lane, or acked and left out when it
    /// came from the destination cluster (loop prevention).
    fn received(&mut self, delivered: Delivered) {
        let position = delivered.message.position;
        let lane = &mut self.lanes[position.partition as usize];
        if origin::came_from(&delivered.message, &self.route.destination_cluster) {
            let published = delivered.message.publish_time.duration_since(UNIX_EPOCH).unwrap_or_default();
            self.progress.filtered(position.partition, position.offset, published.as_micros() as i64);
            lane.filter(position.offset);
            delivered.ack();
        } else if let Some(done) = lane.receive(position.offset, delivered) {
            done.ack();
        }
    }

    /// Reads the source subscription's ack floors into the lanes; lanes still
    /// waiting for proof read them again after [`FLOOR_POLL`]. A failure only
    /// delays them.
    async fn read_floors(&mut self) {
        self.floors_due = None;
        match self.source.get_subscription(&self.route.subscription).await {
            Ok(found) => {
                for progress in found.backlog.map(|b| b.partitions).unwrap_or_default() {
                    if let Some(lane) = self.lanes.get_mut(progress.partition as usize) {
                        lane.set_floor(progress.ack_floor);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading the source's ack floors failed"),
        }
        if self.lanes.iter().any(|lane| lane.next(self.route.batch_messages) == Next::NeedFloor) {
            self.floors_due = Some(Instant::now() + FLOOR_POLL);
        }
    }

    /// Compares the source's and the destination's counts of the hours
    /// closed since the last check; a failure only delays it.
    async fn check_gaps(&self) {
        match gap::check(self.route, &self.source, &self.destination, self.progress).await {
            Ok(counts) if !counts.is_empty() => {
                let missing: i64 = counts.iter().map(gap::HourCount::missing).sum();
                tracing::info!(topic = %self.route.topic, hours = counts.len(), missing, "gap check");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = format!("{e:#}"), "the gap check failed"),
        }
    }

    /// Reads how far behind the route is: the source subscription's backlog.
    async fn read_lag(&self) {
        match self.source.get_subscription(&self.route.subscription).await {
            Ok(found) => {
                if let Some(backlog) = found.backlog {
                    self.progress.behind(&backlog);
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading the route's backlog failed"),
        }
    }
}

/// The source topic's partition count, checked against the destination's
/// (source partition p goes to destination partition p, ordering keys with
/// it), and the source topic's creation time.
async fn check_topics(route: &Route, source: &Client, destination: &Client) -> anyhow::Result<(u32, i64)> {
    let from = source.get_topic(&route.topic).await.with_context(|| format!("source topic {}", route.topic))?;
    let to = match destination.get_topic(&route.destination_topic).await {
        Err(e) if e.code() == Some(Code::NotFound) && route.create_destination_topic => {
            tracing::info!(topic = %route.destination_topic, partitions = from.settings.partitions, "creating the destination topic");
            match destination.create_topic(&route.destination_topic, from.settings.clone()).await {
                // Another instance may have created it meanwhile.
                Err(e) if e.code() == Some(Code::AlreadyExists) => destination.get_topic(&route.destination_topic).await,
                created => created,
            }
        }
        found => found,
    }
    .with_context(|| format!("destination topic {}", route.destination_topic))?;
    let (partitions, theirs) = (from.settings.partitions, to.settings.partitions);
    if partitions != theirs {
        bail!(
            "the destination topic {} has {theirs} partitions and the source topic {} has {partitions}: \
             a mirror keeps each message in its partition, so they must match",
            route.destination_topic,
            route.topic
        );
    }
    Ok((partitions, origin::micros(from.create_time)))
}

/// Opens the route's subscription. Created on first use, it starts at the
/// oldest message the source still holds: a new route copies the topic's
/// retained history, not only what is published after it.
async fn subscribe(route: &Route, source: &Client) -> anyhow::Result<Subscriber> {
    let settings = SubscriptionSettings { ack_deadline: ACK_DEADLINE, ..Default::default() };
    match source.create_subscription(&route.subscription, &route.topic, settings).await {
        Ok(_) => source
            .seek(&route.subscription, UNIX_EPOCH)
            .await
            .context(format!("start the subscription {} at the oldest message", route.subscription))?,
        Err(Error::Status { code: Code::AlreadyExists, .. }) => {}
        Err(e) => return Err(e).context(format!("create the subscription {}", route.subscription)),
    }
    let settings = SubscriberSettings { max_outstanding_messages: HELD_MAX, ..Default::default() };
    source.subscribe(&route.subscription, settings).await.context("subscribe to the source")
}

/// The destination copies of a batch's messages.
fn copies(route: &Route, lane: &Lane<Delivered>, batch: &Batch) -> Vec<Message> {
    let copy = |delivered: &Delivered| {
        let received = &delivered.message;
        Message {
            data: received.message.data.clone(),
            attributes: origin::attributes(&route.source_cluster, &route.topic, received),
            ordering_key: received.message.ordering_key.clone(),
            event_id: received.message.event_id.clone(),
        }
    };
    lane.items(batch.offsets.clone()).map(|(_, delivered)| copy(delivered)).collect()
}

fn publish(
    destination: Client,
    route: &Route,
    sequence: ProducerSequence,
    messages: Vec<Message>,
    bytes: u64,
) -> Publishing {
    let (topic, compression, partition) = (route.destination_topic.clone(), route.compression, sequence.partition);
    Box::pin(async move {
        let result = destination.publish_sequenced(&topic, sequence, messages, compression).await;
        (partition, bytes, result.map(|_| ()))
    })
}

/// A message's bytes as the rate limit counts them.
fn message_bytes(message: &Message) -> u64 {
    let attributes: usize = message.attributes.iter().map(|(k, v)| k.len() + v.len()).sum();
    (message.data.len() + attributes + message.ordering_key.len() + message.event_id.len()) as u64
}

/// What a refusal says about the destination's position, if it is one.
fn refusal(error: &Error) -> Option<Refusal> {
    match (error.reason(), error.next_sequence()) {
        (Some("sequence-committed"), Some(next)) => Some(Refusal::Committed { next }),
        (Some("sequence-gap"), Some(next)) => Some(Refusal::Gap { next }),
        (Some("unknown-producer"), _) => Some(Refusal::UnknownProducer),
        _ => None,
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}
