//! `Publisher`: the fast, never-wedging producer.
//!
//! [`Publisher::publish`] queues a message and returns a [`PublishHandle`], a
//! future that resolves with the message's position once it is durable.
//! Behind it, one task per partition (a *lane*) gathers queued messages into
//! batches (by count, bytes and linger), compresses them if asked, and keeps
//! a window of batches in flight to the leader.
//!
//! Every lane publishes idempotently: it has a random producer id and numbers
//! its messages, so when a batch is retried after its answer was lost — a
//! leader died, a connection broke — the cluster recognises it and stores it
//! once. Results are handled in batch order; a batch that failed is resent
//! (following the leader, with backoff) until it succeeds or its delivery
//! timeout passes, and later batches that the cluster refused for coming after
//! a gap are resent behind it. Only a batch that fails for good resolves its
//! handles with an error; the lane then starts a new producer id so the
//! batches after it are not stuck behind the hole.
//!
//! The queue is bounded in messages and bytes. When it is full `publish`
//! waits for room, or — with [`PublisherSettings::block_when_full`] off —
//! fails at once with [`Error::QueueFull`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use ferry_proto::compression;
use ferry_proto::v1 as api;
use futures::stream::{FuturesOrdered, StreamExt};
use prost::Message as _;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::{sleep, sleep_until, Instant};
use tonic::Code;

use crate::client::{publisher as publisher_stub, rpc, Client};
use crate::error::{Error, Result};
use crate::router::Router;
use crate::routes::PartitionRoutes;
use crate::types::{message_to_api, Message, Position};

/// Most batches a lane keeps in flight: the server remembers the last eight
/// batches of each producer, so a retry of any in-flight batch is recognised.
pub const IN_FLIGHT_BATCHES_MAX: usize = 8;
const RESEND_BACKOFF_MIN: Duration = Duration::from_millis(50);
const RESEND_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Wire compression of publish batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    None,
    Zstd,
    Lz4,
}

impl std::str::FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "none" => Ok(Compression::None),
            "zstd" => Ok(Compression::Zstd),
            "lz4" => Ok(Compression::Lz4),
            other => Err(format!("unknown compression {other:?}: use none, zstd or lz4")),
        }
    }
}

impl Compression {
    fn codec(self) -> api::Compression {
        match self {
            Compression::None => api::Compression::None,
            Compression::Zstd => api::Compression::Zstd,
            Compression::Lz4 => api::Compression::Lz4,
        }
    }
}

/// How a [`Publisher`] batches, bounds and retries.
#[derive(Debug, Clone)]
pub struct PublisherSettings {
    /// A batch is sent when it holds this many messages ...
    pub batch_max_messages: usize,
    /// ... or this many bytes of message data and attributes ...
    pub batch_max_bytes: usize,
    /// ... or its first message has waited this long.
    pub linger: Duration,
    /// Batches per partition sent and not yet answered (1..=8).
    pub max_in_flight_batches: usize,
    /// Messages queued or in flight, at most.
    pub max_pending_messages: usize,
    /// Bytes queued or in flight, at most.
    pub max_pending_bytes: usize,
    /// When the queue is full: wait for room (true) or fail with `QueueFull`.
    pub block_when_full: bool,
    pub compression: Compression,
    /// How long a message may take from `publish` to durable, retries
    /// included, before its handle resolves with an error.
    pub delivery_timeout: Duration,
}

impl Default for PublisherSettings {
    fn default() -> Self {
        Self {
            batch_max_messages: 1000,
            batch_max_bytes: 1024 * 1024,
            linger: Duration::from_millis(5),
            max_in_flight_batches: 4,
            max_pending_messages: 100_000,
            max_pending_bytes: 64 * 1024 * 1024,
            block_when_full: true,
            compression: Compression::None,
            delivery_timeout: Duration::from_secs(120),
        }
    }
}

/// Resolves with the message's position once it is committed and durable.
#[derive(Debug)]
pub struct PublishHandle {
    outcome: oneshot::Receiver<Result<Position>>,
}

impl Future for PublishHandle {
    type Output = Result<Position>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.outcome).poll(cx).map(|r| r.unwrap_or(Err(Error::Closed)))
    }
}

/// A message waiting in a lane, with the queue room it holds.
struct Queued {
    message: api::Message,
    size: usize,
    outcome: oneshot::Sender<Result<Position>>,
    deadline: Instant,
    _room: (OwnedSemaphorePermit, OwnedSemaphorePermit),
}

/// Publishes to one topic. Cheap to share behind an `Arc`; [`close`](Self::close) flushes.
///
/// ```no_run
/// # async fn demo() -> ferry_client::Result<()> {
/// use ferry_client::{Client, Message, Publisher, PublisherSettings};
/// let client = Client::connect("127.0.0.1:7070").await?;
/// let publisher = Publisher::new(&client, "clicks", PublisherSettings::default()).await?;
/// let handles = vec![
///     publisher.publish(Message::new("a")).await?,
///     publisher.publish(Message::new("b").ordering_key("user-1")).await?,
/// ];
/// for handle in handles {
///     let position = handle.await?; // durable on a majority from here on
///     println!("stored at {}:{}", position.partition, position.offset);
/// }
/// publisher.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Publisher {
    lanes: Vec<mpsc::Sender<Queued>>,
    tasks: Vec<JoinHandle<()>>,
    /// Keeps the lanes' routes current (ends once the lanes have).
    routing: JoinHandle<()>,
    messages_room: Arc<Semaphore>,
    bytes_room: Arc<Semaphore>,
    settings: PublisherSettings,
    partitions: u32,
    /// Counts keyless messages, to spread them over partitions a batch at a
    /// time. Starts at the start of a batch in any partition, as `Client`'s
    /// count of keyless batches starts anywhere.
    keyless: std::sync::atomic::AtomicU64,
}

impl Publisher {
    /// Looks the topic up (for its partition count) and starts the lanes.
    pub async fn new(client: &Client, topic: &str, settings: PublisherSettings) -> Result<Self> {
        let settings = PublisherSettings {
            max_in_flight_batches: settings.max_in_flight_batches.clamp(1, IN_FLIGHT_BATCHES_MAX),
            batch_max_messages: settings.batch_max_messages.max(1),
            max_pending_messages: settings.max_pending_messages.clamp(1, Semaphore::MAX_PERMITS),
            max_pending_bytes: settings.max_pending_bytes.clamp(1, u32::MAX as usize),
            ..settings
        };
        let partitions = client.get_topic(topic).await?.settings.partitions.max(1);
        let (routes, routing) = PartitionRoutes::follow(client.router(), topic).await;
        let mut lanes = Vec::with_capacity(partitions as usize);
        let mut tasks = Vec::with_capacity(partitions as usize);
        for partition in 0..partitions {
            let (sender, receiver) = mpsc::channel(settings.max_pending_messages);
            let lane = Lane::new(client.router(), Arc::clone(&routes), topic, partition, &settings, receiver);
            lanes.push(sender);
            tasks.push(tokio::spawn(lane.run()));
        }
        Ok(Self {
            lanes,
            tasks,
            routing,
            messages_room: Arc::new(Semaphore::new(settings.max_pending_messages)),
            bytes_room: Arc::new(Semaphore::new(settings.max_pending_bytes)),
            keyless: std::sync::atomic::AtomicU64::new(
                u64::from(rand::random::<u32>()) * settings.batch_max_messages as u64,
            ),
            settings,
            partitions,
        })
    }

    /// Queues a message; the handle resolves once it is durable. Waits while
    /// the queue is full (or fails with [`Error::QueueFull`], see the settings).
    pub async fn publish(&self, message: Message) -> Result<PublishHandle> {
        let message = message_to_api(message);
        let size = message.data.len() + message.attributes.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        // A message larger than the whole byte bound takes all of it.
        let bytes = size.clamp(1, self.settings.max_pending_bytes) as u32;
        let room = if self.settings.block_when_full {
            let messages = self.messages_room.clone().acquire_owned().await.map_err(|_| Error::Closed)?;
            let bytes = self.bytes_room.clone().acquire_many_owned(bytes).await.map_err(|_| Error::Closed)?;
            (messages, bytes)
        } else {
            let full = || Error::QueueFull {
                messages: self.settings.max_pending_messages,
                bytes: self.settings.max_pending_bytes,
            };
            let messages = self.messages_room.clone().try_acquire_owned().map_err(|_| full())?;
            let bytes = self.bytes_room.clone().try_acquire_many_owned(bytes).map_err(|_| full())?;
            (messages, bytes)
        };
        let partition = self.partition_for(&message.ordering_key);
        let (outcome, receiver) = oneshot::channel();
        let deadline = Instant::now() + self.settings.delivery_timeout;
        let queued = Queued { message, size, outcome, deadline, _room: room };
        self.lanes[partition as usize].send(queued).await.map_err(|_| Error::Closed)?;
        Ok(PublishHandle { outcome: receiver })
    }

    /// Waits until every message queued so far is durable (or failed).
    pub async fn flush(&self) {
        let all = self.settings.max_pending_messages as u32;
        // Room comes back as messages resolve: all of it back means none pending.
        if let Ok(permits) = self.messages_room.acquire_many(all).await {
            drop(permits);
        }
    }

    /// Sends everything still queued, waits for the answers, and stops.
    pub async fn close(self) {
        let Publisher { lanes, tasks, routing, .. } = self;
        drop(lanes);
        for task in tasks {
            let _ = task.await;
        }
        routing.abort();
    }

    /// Keyed messages go where the server would put them; keyless ones fill
    /// one partition's batch before moving to the next, so batches stay large.
    fn partition_for(&self, ordering_key: &str) -> u32 {
        if !ordering_key.is_empty() {
            return ferry_proto::partition_of_key(ordering_key, self.partitions);
        }
        let n = self.keyless.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ((n / self.settings.batch_max_messages as u64) % u64::from(self.partitions)) as u32
    }
}

/// A batch of one lane, with the sequence numbers it was sent under.
struct Batch {
    producer_id: u64,
    first_sequence: u64,
    messages: Vec<Queued>,
    /// The request body: the messages, or their compressed form.
    payload: Payload,
}

#[derive(Clone)]
pub(crate) enum Payload {
    Plain(Vec<api::Message>),
    Compressed(api::Compression, Bytes),
}

impl Payload {
    /// `plain` as sent under `compression`: uncompressed if compressing fails.
    pub(crate) fn new(compression: Compression, plain: Vec<api::Message>) -> Self {
        match compression.codec() {
            api::Compression::None => Payload::Plain(plain),
            codec => {
                let list = api::MessageList { messages: plain };
                match compression::compress(codec, &list.encode_to_vec()) {
                    Ok(packed) => Payload::Compressed(codec, Bytes::from(packed)),
                    Err(error) => {
                        tracing::warn!(%error, "sending a batch uncompressed");
                        Payload::Plain(list.messages)
                    }
                }
            }
        }
    }

    /// Puts the messages into `request`.
    pub(crate) fn fill(&self, request: &mut api::PublishRequest) {
        match self {
            Payload::Plain(messages) => request.messages = messages.clone(),
            Payload::Compressed(codec, packed) => {
                request.compression = *codec as i32;
                request.compressed_messages = packed.clone();
            }
        }
    }
}

type Sent = Pin<Box<dyn Future<Output = (Batch, Result<api::PublishResponse>)> + Send>>;

/// One partition's sender: batches, sequences, in-flight window, resends.
struct Lane {
    router: Arc<Router>,
    /// Where the partition is led, to send there without a hop.
    routes: Arc<PartitionRoutes>,
    topic: String,
    partition: u32,
    settings: PublisherSettings,
    queue: mpsc::Receiver<Queued>,
    producer_id: u64,
    next_sequence: u64,
    /// The batch being gathered, and when it must go.
    gathering: Vec<Queued>,
    gathering_bytes: usize,
    send_at: Option<Instant>,
}

fn new_producer_id() -> u64 {
    rand::random::<u64>().max(1)
}

impl Lane {
    fn new(
        router: Arc<Router>,
        routes: Arc<PartitionRoutes>,
        topic: &str,
        partition: u32,
        settings: &PublisherSettings,
        queue: mpsc::Receiver<Queued>,
    ) -> Self {
        Self {
            router,
            routes,
            topic: topic.to_owned(),
            partition,
            settings: settings.clone(),
            queue,
            producer_id: new_producer_id(),
            next_sequence: 0,
            gathering: Vec::new(),
            gathering_bytes: 0,
            send_at: None,
        }
    }

    async fn run(mut self) {
        let mut in_flight: FuturesOrdered<Sent> = FuturesOrdered::new();
        let mut open = true;
        while open || !in_flight.is_empty() {
            let has_room = in_flight.len() < self.settings.max_in_flight_batches;
            tokio::select! {
                // `gather` keeps its progress in `self`, so losing the race
                // to an answer drops nothing.
                gathered = self.gather(), if open && has_room => match gathered {
                    Some(messages) => {
                        let batch = self.seal(messages);
                        in_flight.push_back(self.send(batch));
                    }
                    None => open = false,
                },
                Some((batch, result)) = in_flight.next() => match self.settle(batch, result).await {
                    Settled::Done => {}
                    Settled::Failed => self.recover(None, &mut in_flight).await,
                    Settled::ProducerForgotten(batch) => self.recover(Some(batch), &mut in_flight).await,
                },
            }
        }
    }

    /// Waits for the next batch's messages; `None` once the queue is closed and empty.
    async fn gather(&mut self) -> Option<Vec<Queued>> {
        loop {
            let full = self.gathering.len() >= self.settings.batch_max_messages
                || self.gathering_bytes >= self.settings.batch_max_bytes;
            if full {
                return Some(self.take_gathered());
            }
            let received = match self.send_at {
                None => self.queue.recv().await,
                Some(at) => tokio::select! {
                    received = self.queue.recv() => received,
                    _ = sleep_until(at) => return Some(self.take_gathered()),
                },
            };
            match received {
                Some(queued) => {
                    if self.gathering.is_empty() {
                        self.send_at = Some(Instant::now() + self.settings.linger);
                    }
                    self.gathering_bytes += queued.size;
                    self.gathering.push(queued);
                }
                None if self.gathering.is_empty() => return None,
                None => return Some(self.take_gathered()),
            }
        }
    }

    fn take_gathered(&mut self) -> Vec<Queued> {
        self.send_at = None;
        self.gathering_bytes = 0;
        std::mem::take(&mut self.gathering)
    }

    /// Numbers a batch and builds its payload.
    fn seal(&mut self, mut messages: Vec<Queued>) -> Batch {
        let plain: Vec<api::Message> = messages.iter_mut().map(|q| std::mem::take(&mut q.message)).collect();
        let payload = Payload::new(self.settings.compression, plain);
        let first_sequence = self.next_sequence;
        self.next_sequence += messages.len() as u64;
        Batch { producer_id: self.producer_id, first_sequence, messages, payload }
    }

    /// One attempt to publish a batch: at the partition's leader when the
    /// routes know it, else (or if it fails there) with the router's leader
    /// following.
    fn call(&self, batch: &Batch) -> impl Future<Output = Result<api::PublishResponse>> + Send + 'static {
        let mut request = api::PublishRequest {
            topic: self.topic.clone(),
            producer_id: batch.producer_id,
            sequence: batch.first_sequence,
            partition: Some(self.partition),
            ..Default::default()
        };
        batch.payload.fill(&mut request);
        let router = self.router.clone();
        let leader = self.routes.leader(self.partition);
        // A stale route costs a hop until the lane's routes are next asked for.
        async move {
            let routed = router.call_routed(leader.as_deref(), rpc!(publisher_stub, publish, request)).await?;
            Ok(routed.answer)
        }
    }

    fn send(&self, batch: Batch) -> Sent {
        let call = self.call(&batch);
        Box::pin(async move { (batch, call.await) })
    }

    /// Resolves a batch's handles from its answer, resending it while the
    /// failure is one a resend can cure.
    async fn settle(&self, batch: Batch, mut result: Result<api::PublishResponse>) -> Settled {
        let deadline = batch.messages.iter().map(|q| q.deadline).min().unwrap_or_else(Instant::now);
        let mut backoff = RESEND_BACKOFF_MIN;
        let mut unknown_before = false;
        loop {
            match result {
                Ok(response) => {
                    resolve(batch, response);
                    return Settled::Done;
                }
                // Every earlier batch is settled by now, so a producer still
                // unknown after one resend was forgotten by the cluster.
                Err(error) if error.reason() == Some("unknown-producer") && unknown_before => {
                    return Settled::ProducerForgotten(batch)
                }
                Err(error) if is_transient(&error) && Instant::now() < deadline => {
                    tracing::debug!(partition = self.partition, %error, "resending a publish batch");
                    match error.reason() {
                        // The batch overtook an earlier one on its way to
                        // Raft; that one is settled now, so resend at once.
                        Some("unknown-producer") => unknown_before = true,
                        Some("sequence-gap") => {}
                        _ => {
                            sleep(backoff).await;
                            backoff = (backoff * 2).min(RESEND_BACKOFF_MAX);
                        }
                    }
                    result = self.call(&batch).await;
                }
                Err(error) => {
                    tracing::warn!(partition = self.partition, %error, "a publish batch failed for good");
                    fail(batch, &error);
                    return Settled::Failed;
                }
            }
        }
    }

    /// Handles a batch that could not be settled under the lane's producer
    /// id: its sequence numbers may never be committed, and later batches
    /// would wait behind the hole forever. Starts a new producer id and sends
    /// `head` (if it is still to be published) and every batch still in
    /// flight under it, in order, before any new batch.
    async fn recover(&mut self, mut head: Option<Batch>, in_flight: &mut FuturesOrdered<Sent>) {
        self.renew_producer();
        loop {
            let (batch, result) = match head.take() {
                Some(batch) => (batch, None),
                None => match in_flight.next().await {
                    Some((batch, result)) => (batch, Some(result)),
                    None => return,
                },
            };
            let retry = match result {
                Some(Ok(response)) => {
                    resolve(batch, response);
                    continue;
                }
                Some(Err(error)) if !is_transient(&error) => {
                    fail(batch, &error);
                    continue;
                }
                _ => batch,
            };
            head = self.renumber_and_send(retry).await;
        }
    }

    /// Sends a batch under the current producer id; returns it if the
    /// cluster forgot that producer too.
    async fn renumber_and_send(&mut self, mut batch: Batch) -> Option<Batch> {
        batch.producer_id = self.producer_id;
        batch.first_sequence = self.next_sequence;
        self.next_sequence += batch.messages.len() as u64;
        let result = self.call(&batch).await;
        match self.settle(batch, result).await {
            Settled::Done => None,
            Settled::Failed => {
                self.renew_producer();
                None
            }
            Settled::ProducerForgotten(batch) => {
                self.renew_producer();
                Some(batch)
            }
        }
    }

    fn renew_producer(&mut self) {
        self.producer_id = new_producer_id();
        self.next_sequence = 0;
    }
}

/// How settling a batch ended.
enum Settled {
    Done,
    /// Failed for good; its handles hold the error.
    Failed,
    /// The cluster does not know the producer (any more): the batch is not
    /// stored and must go out under a new producer id.
    ProducerForgotten(Batch),
}

/// Failures a resend may cure: the leader moved or is being elected, a
/// connection broke, the cluster is busy, or an earlier batch is still missing.
fn is_transient(error: &Error) -> bool {
    match error {
        Error::Status { code, .. } => matches!(
            code,
            Code::Unavailable
                | Code::DeadlineExceeded
                | Code::ResourceExhausted
                | Code::Aborted
                | Code::Unknown
                | Code::Cancelled
                | Code::FailedPrecondition
        ),
        Error::Connect { .. } => true,
        _ => false,
    }
}

fn resolve(batch: Batch, response: api::PublishResponse) {
    if response.positions.len() != batch.messages.len() {
        let error =
            Error::Protocol(format!("{} positions for {} messages", response.positions.len(), batch.messages.len()));
        return fail(batch, &error);
    }
    for (queued, position) in batch.messages.into_iter().zip(response.positions) {
        let _ = queued.outcome.send(Ok(Position { partition: position.partition, offset: position.offset }));
    }
}

fn fail(batch: Batch, error: &Error) {
    for queued in batch.messages {
        let _ = queued.outcome.send(Err(error.duplicate()));
    }
}
