//! `Subscriber`: a consumer on StreamingPull, the fast path.
//!
//! A background task owns the stream. It hands messages to
//! [`Subscriber::next`] (at most `max_outstanding_messages` held), batches the
//! acks and nacks of [`Delivered`] handles onto the stream, extends the
//! leases of messages still being worked on (up to a maximum), and reconnects
//! — following the leader — when the stream breaks. [`Subscriber::close`]
//! nacks what is still held, so other consumers get it at once.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use ferry_proto::v1 as api;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use crate::client::subscriber as subscriber_stub;
use crate::error::{Error, Result};
use crate::held::HeldMessages;
use crate::router::Router;
use crate::types::{received_from_api, ReceivedMessage};

/// How long closing may take to hand over the final acks and nacks.
const CLOSE_SEND_MAX: Duration = Duration::from_secs(5);

/// How a [`Subscriber`] consumes.
#[derive(Debug, Clone)]
pub struct SubscriberSettings {
    /// Messages held (delivered, not yet acked or nacked) at most.
    pub max_outstanding_messages: u32,
    /// Bytes held at most (at least one message is always delivered).
    pub max_outstanding_bytes: u64,
    /// Acks sent together, at most.
    pub ack_batch_max: usize,
    /// How long an ack may wait for others to share its batch.
    pub ack_linger: Duration,
    /// Leases are extended while a message is held, up to this long in all.
    pub max_lease_extension: Duration,
}

impl Default for SubscriberSettings {
    fn default() -> Self {
        Self {
            max_outstanding_messages: 1000,
            max_outstanding_bytes: 100 * 1024 * 1024,
            ack_batch_max: 1000,
            ack_linger: Duration::from_millis(5),
            max_lease_extension: Duration::from_secs(3600),
        }
    }
}

enum Verdict {
    Ack,
    Nack,
}

/// A delivered message. Ack it when done; dropping it without an ack is a nack.
#[derive(Debug)]
pub struct Delivered {
    pub message: ReceivedMessage,
    /// Names the message to the pump (see `Pump::held`).
    seq: u64,
    verdicts: mpsc::UnboundedSender<(u64, Verdict)>,
    settled: bool,
}

impl Delivered {
    /// Acknowledges: once committed, never delivered to this subscription again.
    pub fn ack(mut self) {
        self.settle(Verdict::Ack);
    }

    /// Gives the message back for redelivery (after the subscription's retry backoff).
    pub fn nack(mut self) {
        self.settle(Verdict::Nack);
    }

    fn settle(&mut self, verdict: Verdict) {
        if !self.settled {
            self.settled = true;
            let _ = self.verdicts.send((self.seq, verdict));
        }
    }
}

impl Drop for Delivered {
    fn drop(&mut self) {
        self.settle(Verdict::Nack);
    }
}

/// A streaming consumer of one subscription.
#[derive(Debug)]
pub struct Subscriber {
    /// A response's messages at a time: one channel send per message cost
    /// the consumer a tenth of its CPU. Every message in it is held (see
    /// `Pump::held`), so it never holds more batches than the limit, and
    /// room is left for the error that ends a subscriber.
    messages: mpsc::Receiver<Result<Vec<Delivered>>>,
    /// The rest of the batch [`Subscriber::next`] hands out.
    ready: std::vec::IntoIter<Delivered>,
    close: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    stats: Arc<Mutex<SubscriberStats>>,
}

/// What a subscriber has done so far.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SubscriberStats {
    pub received: u64,
    /// Acks the server confirmed as committed.
    pub acks_confirmed: u64,
    /// Acks the server refused (superseded deliveries).
    pub acks_rejected: u64,
    pub reconnects: u64,
}

impl Subscriber {
    pub(crate) async fn start(
        router: Arc<Router>,
        subscription: &str,
        ack_deadline: Duration,
        mut settings: SubscriberSettings,
    ) -> Result<Self> {
        // 0 is the server's default, as the protocol says: the limit this
        // side keeps must be the one the server keeps.
        if settings.max_outstanding_messages == 0 {
            settings.max_outstanding_messages = SubscriberSettings::default().max_outstanding_messages;
        }
        // Batches hold a message at least, and held messages are bounded.
        let (messages_tx, messages) = mpsc::channel(settings.max_outstanding_messages as usize + 1);
        let (close, closed) = oneshot::channel();
        let stats = Arc::new(Mutex::new(SubscriberStats::default()));
        let pump = Pump {
            router,
            subscription: subscription.to_owned(),
            settings,
            ack_deadline,
            messages: messages_tx,
            held: HeldMessages::default(),
            waiting: VecDeque::new(),
            next_seq: 0,
            acks: Vec::new(),
            nacks: Vec::new(),
            stats: Arc::clone(&stats),
        };
        // Open the first stream here, so a bad subscription fails `subscribe`.
        let stream = pump.open().await?;
        let task = tokio::spawn(pump.run(stream, closed));
        Ok(Self { messages, ready: Vec::new().into_iter(), close: Some(close), task, stats })
    }

    /// The next message; `None` once the subscriber is closed, or after an
    /// error it cannot recover from (which is returned once first).
    pub async fn next(&mut self) -> Option<Result<Delivered>> {
        loop {
            if let Some(delivered) = self.ready.next() {
                return Some(Ok(delivered));
            }
            match self.messages.recv().await? {
                Ok(batch) => self.ready = batch.into_iter(),
                Err(e) => return Some(Err(e)),
            }
        }
    }

    pub fn stats(&self) -> SubscriberStats {
        self.stats.lock().clone()
    }

    /// Nacks every message still held, sends the pending acks and ends the stream.
    pub async fn close(mut self) {
        if let Some(close) = self.close.take() {
            let _ = close.send(());
        }
        // Drain what is queued so it is nacked rather than stuck in the channel.
        self.ready = Vec::new().into_iter();
        self.messages.close();
        while self.messages.recv().await.is_some() {}
        let _ = (&mut self.task).await;
    }
}

/// A message the application holds: what its verdict sends, and when its
/// lease is extended.
struct Held {
    ack_id: String,
    lease: Lease,
}

/// A lease as this side extends it.
#[derive(Clone, Copy)]
struct Lease {
    /// When the server granted it (near enough: when it arrived).
    since: Instant,
    extended_until: Instant,
}

impl Lease {
    /// Whether it is to be extended now, and if so, extends it.
    fn extend(&mut self, now: Instant, ack_deadline: Duration, max_extension: Duration) -> bool {
        let due = self.extended_until <= now + ack_deadline / 3 && now.duration_since(self.since) < max_extension;
        if due {
            self.extended_until = now + ack_deadline;
        }
        due
    }
}

/// A response's messages the application has no room for yet.
struct Waiting {
    lease: Lease,
    messages: std::vec::IntoIter<api::ReceivedMessage>,
}

impl Waiting {
    /// The ack ids of what is still waiting, to give back with a nack.
    fn into_ack_ids(self) -> impl Iterator<Item = String> {
        self.messages.map(|message| message.ack_id)
    }
}

struct Stream {
    requests: mpsc::Sender<api::StreamingPullRequest>,
    responses: Streaming<api::StreamingPullResponse>,
}

/// The task behind a subscriber.
struct Pump {
    router: Arc<Router>,
    subscription: String,
    settings: SubscriberSettings,
    ack_deadline: Duration,
    messages: mpsc::Sender<Result<Vec<Delivered>>>,
    /// By the number this pump gave each message as it handed it over (an
    /// ack id as the key cost a tenth of the consumer's CPU in hashing it
    /// twice). At most `max_outstanding_messages`, the queued ones included.
    held: HeldMessages<Held>,
    /// Messages received that would take the application past its limit,
    /// waiting for it to settle some (see [`Pump::hand_over`]), a response
    /// at a time. At most two windows (see [`Pump::receive`]) and
    /// `max_lease_extension`: past either, they go back to the server.
    waiting: VecDeque<Waiting>,
    next_seq: u64,
    acks: Vec<String>,
    nacks: Vec<String>,
    stats: Arc<Mutex<SubscriberStats>>,
}

impl Pump {
    async fn open(&self) -> Result<Stream> {
        let first = api::StreamingPullRequest {
            subscription: self.subscription.clone(),
            max_outstanding_messages: self.settings.max_outstanding_messages,
            max_outstanding_bytes: self.settings.max_outstanding_bytes,
            ..Default::default()
        };
        let requests_slot: Arc<Mutex<Option<mpsc::Sender<api::StreamingPullRequest>>>> = Arc::default();
        let responses = self
            .router
            .call(|channel| {
                let (requests, outgoing) = mpsc::channel(16);
                let first = first.clone();
                *requests_slot.lock() = Some(requests.clone());
                async move {
                    let _ = requests.send(first).await;
                    subscriber_stub(channel).streaming_pull(ReceiverStream::new(outgoing)).await
                }
            })
            .await?;
        let requests = requests_slot.lock().take().ok_or_else(|| Error::Protocol("stream without a sender".into()))?;
        Ok(Stream { requests, responses })
    }

    async fn run(mut self, mut stream: Stream, mut closed: oneshot::Receiver<()>) {
        let (verdicts, mut verdicts_rx) = mpsc::unbounded_channel();
        let mut tick = tokio::time::interval(self.settings.ack_linger.max(Duration::from_millis(1)));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Ends with the stream to finish on: the application went away or
        // closed (acks and nacks still go out).
        let stream = loop {
            tokio::select! {
                response = stream.responses.message() => match response {
                    Ok(Some(response)) => {
                        self.receive(response);
                        if self.hand_over(&verdicts).await.is_err() {
                            break stream;
                        }
                    }
                    // The server ended the stream (leadership moved) or it
                    // broke: reconnect. Its server gave the leases of what
                    // waits back (or lost them with its leadership).
                    Ok(None) | Err(_) => {
                        self.waiting.clear();
                        match self.reconnect().await {
                            Some(fresh) => stream = fresh,
                            None => return,
                        }
                    }
                },
                Some(first) = verdicts_rx.recv() => {
                    // Take every verdict already queued, not one per turn of
                    // this loop: each turn polls the response stream too.
                    let mut next = Some(first);
                    while let Some((seq, verdict)) = next {
                        self.settle(seq, verdict);
                        if self.acks.len() >= self.settings.ack_batch_max {
                            self.flush(&stream);
                        }
                        next = verdicts_rx.try_recv().ok();
                    }
                    if self.hand_over(&verdicts).await.is_err() {
                        break stream;
                    }
                }
                _ = tick.tick() => {
                    self.flush(&stream);
                    self.extend_leases(&stream);
                }
                _ = &mut closed => break stream,
            }
        };
        self.finish(stream, &mut verdicts_rx).await;
    }

    /// Settles what the application decided, nacks the rest it held, and
    /// ends the stream.
    async fn finish(&mut self, stream: Stream, verdicts: &mut mpsc::UnboundedReceiver<(u64, Verdict)>) {
        while let Ok((seq, verdict)) = verdicts.try_recv() {
            self.settle(seq, verdict);
        }
        self.nacks.extend(self.held.drain().map(|held| held.ack_id));
        self.nacks.extend(self.waiting.drain(..).flat_map(Waiting::into_ack_ids));
        self.say_goodbye(stream).await;
    }

    /// Records the application's verdict on a message it held.
    fn settle(&mut self, seq: u64, verdict: Verdict) {
        let Some(Held { ack_id, .. }) = self.held.remove(seq) else { return };
        match verdict {
            Verdict::Ack => self.acks.push(ack_id),
            Verdict::Nack => self.nacks.push(ack_id),
        }
    }

    /// Sends the last acks and nacks, then ends the stream cleanly: our side
    /// closes first and we read until the server ends its side, so the last
    /// request is not cut off with the connection. Bounded in time: a server
    /// that does not answer gets the messages back at their deadlines.
    async fn say_goodbye(&mut self, stream: Stream) {
        let Stream { requests, mut responses } = stream;
        let last_words = self.take_settled();
        let goodbye = async move {
            if let Some(request) = last_words {
                let _ = requests.send(request).await;
            }
            drop(requests);
            while let Ok(Some(_)) = responses.message().await {}
        };
        let _ = tokio::time::timeout(CLOSE_SEND_MAX, goodbye).await;
    }

    /// Takes a response off the stream: its ack confirmation counts at
    /// once, its messages wait for [`hand_over`](Self::hand_over).
    fn receive(&mut self, response: api::StreamingPullResponse) {
        let mut stats = self.stats.lock();
        if let Some(confirmation) = response.ack_confirmation {
            stats.acks_confirmed += u64::from(confirmation.acked_count);
            stats.acks_rejected += confirmation.rejected_ack_ids.len() as u64;
        }
        stats.received += response.messages.len() as u64;
        drop(stats);
        if !response.messages.is_empty() {
            // One clock read per response, not per message: a response
            // carries up to a thousand.
            let now = Instant::now();
            let lease = Lease { since: now, extended_until: now + self.ack_deadline };
            self.waiting.push_back(Waiting { lease, messages: response.messages.into_iter() });
        }
        // The server offers a fresh window whenever it counts this stream's
        // leases as gone (a seek, leases past `max_lease_extension`, a data
        // group's new leader). Beyond two windows, the oldest responses
        // waiting go back, never handed over.
        let bound = 2 * self.settings.max_outstanding_messages as usize;
        let mut waiting: usize = self.waiting.iter().map(|waiting| waiting.messages.len()).sum();
        while self.waiting.len() > 1 && waiting > bound {
            if let Some(stale) = self.waiting.pop_front() {
                waiting -= stale.messages.len();
                self.nacks.extend(stale.into_ack_ids());
            }
        }
    }

    /// Hands waiting messages to the application, as many as keep what it
    /// holds within `max_outstanding_messages` (all of a response larger
    /// than that, once it holds nothing). The server's flow control keeps
    /// to that too, but it counts per stream: after a reconnect or a seek it
    /// offers a whole window again while the application still holds the
    /// messages it had. `Err` once the application is gone, or after a
    /// message the server sent broken (the application is told).
    async fn hand_over(&mut self, verdicts: &mpsc::UnboundedSender<(u64, Verdict)>) -> std::result::Result<(), ()> {
        let limit = self.settings.max_outstanding_messages as usize;
        while let Some(waiting) = self.waiting.front_mut() {
            let room = match self.held.len() {
                0 => waiting.messages.len(),
                held => limit.saturating_sub(held).min(waiting.messages.len()),
            };
            if room == 0 {
                return Ok(());
            }
            let lease = waiting.lease;
            let mut batch = Vec::with_capacity(room);
            let mut broken = None;
            for received in waiting.messages.by_ref().take(room) {
                let message = match received_from_api(received) {
                    Ok(message) => message,
                    Err(missing) => {
                        // Given back as the subscriber ends, with the rest
                        // it has not handed over, so it comes again at once
                        // rather than when its lease runs out.
                        self.nacks.push(missing.ack_id.clone());
                        broken = Some(Error::from(missing));
                        break;
                    }
                };
                let seq = self.next_seq;
                self.next_seq += 1;
                self.held.insert(seq, Held { ack_id: message.ack_id.clone(), lease });
                batch.push(Delivered { message, seq, verdicts: verdicts.clone(), settled: false });
            }
            if waiting.messages.len() == 0 {
                self.waiting.pop_front();
            }
            // Never waits: each batch in the channel holds a held message,
            // and one more place is kept for the error.
            if !batch.is_empty() {
                self.messages.send(Ok(batch)).await.map_err(|_| ())?;
            }
            if let Some(e) = broken {
                let _ = self.messages.send(Err(e)).await;
                return Err(());
            }
        }
        Ok(())
    }

    /// Sends pending acks and nacks on the stream, if it has room.
    fn flush(&mut self, stream: &Stream) {
        let Some(request) = self.take_settled() else { return };
        if let Some(mut request) = send_or_return(stream, request) {
            // Kept for the next flush. They are bounded: the server delivers
            // no more while this consumer holds its maximum.
            self.acks = std::mem::take(&mut request.ack_ids);
            self.nacks = request.deadline_changes.pop().map(|change| change.ack_ids).unwrap_or_default();
        }
    }

    /// The pending acks and nacks as one request.
    fn take_settled(&mut self) -> Option<api::StreamingPullRequest> {
        if self.acks.is_empty() && self.nacks.is_empty() {
            return None;
        }
        let nacks = std::mem::take(&mut self.nacks);
        Some(api::StreamingPullRequest {
            ack_ids: std::mem::take(&mut self.acks),
            deadline_changes: if nacks.is_empty() {
                Vec::new()
            } else {
                vec![api::DeadlineChange { ack_ids: nacks, seconds: 0 }]
            },
            ..Default::default()
        })
    }

    /// Extends the leases of held and waiting messages about to run out,
    /// until `max_lease_extension` after they arrived.
    fn extend_leases(&mut self, stream: &Stream) {
        let now = Instant::now();
        // Waiting past that, they go back (by arrival, so from the front).
        while let Some(waiting) = self.waiting.front() {
            if now.duration_since(waiting.lease.since) < self.settings.max_lease_extension {
                break;
            }
            if let Some(lapsed) = self.waiting.pop_front() {
                self.nacks.extend(lapsed.into_ack_ids());
            }
        }
        // Room is reserved first: while the queue is full (the server is
        // slow to read it) the leases stay due for the next tick, rather
        // than every due ack id being copied only to be dropped each tick.
        // A broken stream takes nothing: the pump reconnects when it reads
        // the break.
        let Ok(room) = stream.requests.try_reserve() else { return };
        let mut ack_ids = Vec::new();
        for (_, held) in self.held.iter_mut() {
            if held.lease.extend(now, self.ack_deadline, self.settings.max_lease_extension) {
                ack_ids.push(held.ack_id.clone());
            }
        }
        for waiting in &mut self.waiting {
            if waiting.lease.extend(now, self.ack_deadline, self.settings.max_lease_extension) {
                ack_ids.extend(waiting.messages.as_slice().iter().map(|message| message.ack_id.clone()));
            }
        }
        if ack_ids.is_empty() {
            return;
        }
        let seconds = u32::try_from(self.ack_deadline.as_secs()).unwrap_or(600).clamp(10, 600);
        room.send(api::StreamingPullRequest {
            deadline_changes: vec![api::DeadlineChange { ack_ids, seconds }],
            ..Default::default()
        });
    }

    /// Opens a new stream after the old one ended, retrying within the
    /// client's budget; `None` if that failed or the application went away.
    async fn reconnect(&mut self) -> Option<Stream> {
        loop {
            if self.messages.is_closed() {
                return None;
            }
            match self.open().await {
                Ok(stream) => {
                    self.stats.lock().reconnects += 1;
                    // Leases of the old stream may be gone; acks still apply.
                    return Some(stream);
                }
                Err(e) if e.code() == Some(tonic::Code::NotFound) => {
                    let _ = self.messages.send(Err(e)).await;
                    return None;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

/// Queues a request on the stream without waiting. A full queue hands the
/// request back: waiting here would stop this task from reading responses,
/// and a server blocked on sending them would never read the queue — each
/// side waiting for the other. A broken stream drops it: unacked messages are
/// redelivered, and the pump reconnects when it reads the break.
fn send_or_return(stream: &Stream, request: api::StreamingPullRequest) -> Option<api::StreamingPullRequest> {
    match stream.requests.try_send(request) {
        Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => None,
        Err(mpsc::error::TrySendError::Full(request)) => Some(request),
    }
}
