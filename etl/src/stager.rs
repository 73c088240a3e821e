//! Staging: events from the subscription, buffered per target hour, written
//! as create-only staging files, acked once their file is stored and known
//! to be part of an open hour.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ferry_client::{Client, Delivered, Message};
use tokio::time::Instant;

use crate::avro;
use crate::closer::{read_intent, CloseError};
use crate::config::Config;
use crate::crash;
use crate::envelope::Envelope;
use crate::hour::{self, Hour};
use crate::metrics::Metrics;
use crate::naming::{self, SetDigest};
use crate::progress::Progress;
use crate::store::Output;

/// Attempts of one staging write before the worker gives up (and its
/// unacked events go to another worker).
const WRITE_ATTEMPTS: u32 = 8;

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error(transparent)]
    Close(#[from] CloseError),
    #[error("dead-lettering to {topic}: {source}")]
    DeadLetter { topic: String, source: ferry_client::Error },
}

/// Events bound for one hour, not yet written.
#[derive(Debug)]
struct Buffer {
    events: Vec<Envelope>,
    deliveries: Vec<Delivered>,
    payload_bytes: usize,
    opened: Instant,
}

pub struct Stager {
    client: Client,
    output: Output,
    config: Config,
    progress: Arc<tokio::sync::Mutex<Progress>>,
    metrics: Arc<Metrics>,
    buffers: BTreeMap<Hour, Buffer>,
    /// The latest hour seen closing without one of this worker's files:
    /// events of it and before go to a later hour, like those of closed ones.
    closing: Option<Hour>,
}

impl Stager {
    pub fn new(
        client: Client,
        output: Output,
        config: Config,
        progress: Arc<tokio::sync::Mutex<Progress>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self { client, output, config, progress, metrics, buffers: BTreeMap::new(), closing: None }
    }

    /// Takes one delivery; writes whatever buffer it fills.
    pub async fn take(&mut self, delivered: Delivered) -> Result<(), StageError> {
        let mut pending = vec![delivered];
        while let Some(delivered) = pending.pop() {
            if let Some(full) = self.buffer(delivered).await? {
                pending.extend(self.write(full).await?);
            }
        }
        Ok(())
    }

    /// Writes every buffer open longer than the file age limit.
    pub async fn write_aged(&mut self) -> Result<(), StageError> {
        let aged: Vec<Hour> = self
            .buffers
            .iter()
            .filter(|(_, buffer)| buffer.opened.elapsed() >= self.config.file_age_max)
            .map(|(hour, _)| *hour)
            .collect();
        self.write_hours(aged).await
    }

    /// Writes every buffer (on shutdown).
    pub async fn write_all(&mut self) -> Result<(), StageError> {
        while !self.buffers.is_empty() {
            let hours: Vec<Hour> = self.buffers.keys().copied().collect();
            self.write_hours(hours).await?;
        }
        Ok(())
    }

    async fn write_hours(&mut self, hours: Vec<Hour>) -> Result<(), StageError> {
        for hour in hours {
            for delivered in self.write(hour).await? {
                self.take(delivered).await?;
            }
        }
        Ok(())
    }

    /// Buffers a delivery for its target hour (or dead-letters it); returns
    /// the hour if its buffer is now full.
    async fn buffer(&mut self, delivered: Delivered) -> Result<Option<Hour>, StageError> {
        let received = &delivered.message;
        let publish_micros = hour::micros(received.publish_time);
        let own_hour = Hour::of_micros(publish_micros);
        let oldest_open = self.progress.lock().await.oldest_open().max(self.closing.map(Hour::next));
        let (target, skewed) = match oldest_open {
            Some(open) if own_hour < open => (open, true),
            _ => (own_hour, false),
        };
        if skewed
            && target.start_micros().saturating_sub(publish_micros) > hour::duration_micros(self.config.late_limit)
        {
            self.dead_letter(delivered).await?;
            return Ok(None);
        }
        let (partition, offset) = (received.position.partition, received.position.offset);
        let message = &received.message;
        let event = Envelope {
            event_id: if message.event_id.is_empty() {
                Envelope::message_id(&self.config.topic, partition, offset)
            } else {
                message.event_id.clone()
            },
            publish_time_micros: publish_micros,
            topic: self.config.topic.clone(),
            partition,
            offset,
            attributes: message.attributes.clone(),
            payload: message.data.clone(),
            skewed,
        };
        let buffer = self.buffers.entry(target).or_insert_with(|| Buffer {
            events: Vec::new(),
            deliveries: Vec::new(),
            payload_bytes: 0,
            opened: Instant::now(),
        });
        buffer.payload_bytes += event.payload.len();
        buffer.events.push(event);
        buffer.deliveries.push(delivered);
        let full =
            buffer.events.len() >= self.config.file_events_max || buffer.payload_bytes >= self.config.file_bytes_max;
        Ok(full.then_some(target))
    }

    /// Writes one hour's buffer as a staging file and acks its deliveries.
    /// Returns the deliveries to take again: those of a file that missed its
    /// hour's close (they now belong to a later hour).
    async fn write(&mut self, hour: Hour) -> Result<Vec<Delivered>, StageError> {
        let Some(Buffer { mut events, deliveries, .. }) = self.buffers.remove(&hour) else { return Ok(Vec::new()) };
        // One copy per position: a message redelivered to this worker while
        // buffered is staged once, and both deliveries are acked.
        events.sort_by_key(|event| (event.partition, event.offset));
        events.dedup_by_key(|event| (event.partition, event.offset));
        let digest = SetDigest::of(hour, events.iter().map(|event| (event.partition, event.offset)));
        let bytes = avro::write_file(&events, self.config.codec, digest.sync_marker());
        let path = naming::staging_path(&self.config.topic, hour, &digest);
        self.create_with_retries(&path, bytes.len(), bytes.into()).await?;
        crash::point("staged");

        // A close fixes its staging files when it starts: if this hour's
        // close started without this file, the events are not in the hour.
        if let Some(intent) = read_intent(&self.output, &self.config.topic, hour).await? {
            if !intent.staging.contains(&digest.staging_name()) {
                self.closing = self.closing.max(Some(hour));
                return Ok(deliveries);
            }
        }
        let skewed = events.iter().filter(|event| event.skewed).count() as u64;
        self.metrics.records_staged.fetch_add(events.len() as u64, Ordering::Relaxed);
        self.metrics.skewed.fetch_add(skewed, Ordering::Relaxed);
        for delivered in deliveries {
            delivered.ack();
        }
        Ok(Vec::new())
    }

    async fn create_with_retries(&self, path: &str, size: usize, bytes: bytes::Bytes) -> Result<(), StageError> {
        let mut backoff = Duration::from_millis(100);
        for attempt in 1..=WRITE_ATTEMPTS {
            match self.output.create(path, bytes.clone()).await {
                Ok(_) => {
                    self.metrics.staging_files_written.fetch_add(1, Ordering::Relaxed);
                    self.metrics.staging_bytes_written.fetch_add(size as u64, Ordering::Relaxed);
                    return Ok(());
                }
                Err(error) if attempt < WRITE_ATTEMPTS => {
                    tracing::warn!(%path, %error, attempt, "staging write failed; retrying");
                    self.metrics.upload_retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
                Err(error) => return Err(CloseError::from(error).into()),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Publishes a too-late event to the dead-letter topic, then acks it.
    async fn dead_letter(&self, delivered: Delivered) -> Result<(), StageError> {
        let received = &delivered.message;
        let mut message = Message::new(received.message.data.clone());
        message.attributes = received.message.attributes.clone();
        message.event_id = received.message.event_id.clone();
        let origin = [
            ("ferry-etl-topic", self.config.topic.clone()),
            ("ferry-etl-partition", received.position.partition.to_string()),
            ("ferry-etl-offset", received.position.offset.to_string()),
            ("ferry-etl-publish-time-micros", hour::micros(received.publish_time).to_string()),
        ];
        for (key, value) in origin {
            message.attributes.insert(key.to_owned(), value);
        }
        let topic = &self.config.dead_letter_topic;
        self.client
            .publish(topic, vec![message])
            .await
            .map_err(|source| StageError::DeadLetter { topic: topic.clone(), source })?;
        self.metrics.too_late.fetch_add(1, Ordering::Relaxed);
        delivered.ack();
        Ok(())
    }
}
