//! One topic's worker: the stager on the subscription and the closer on a
//! timer, sharing the topic's progress, until told to stop — then every
//! buffer is written and acked before the stream ends.

use std::sync::Arc;

use ferry_client::{Client, Code, Error, SubscriberSettings, TopicSettings};
use tokio::sync::watch;

use crate::closer::{self, CloseError};
use crate::config::Config;
use crate::hour::Hour;
use crate::metrics::Metrics;
use crate::progress::Progress;
use crate::stager::{StageError, Stager};
use crate::store::Output;

/// The most unacked messages the server lets one stream hold.
const STREAM_OUTSTANDING_MAX: u32 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("subscription {subscription}: {source}")]
    Subscribe { subscription: String, source: Error },
    #[error("creating the dead-letter topic {topic}: {source}")]
    DeadLetterTopic { topic: String, source: Error },
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error(transparent)]
    Close(#[from] CloseError),
}

/// Runs until `stop` turns true (or an error); returns after the last acks.
pub async fn run(
    client: Client,
    output: Output,
    config: Config,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), WorkerError> {
    ensure_dead_letter_topic(&client, &config.dead_letter_topic).await?;
    let now = Hour::of_micros(closer::watermark(&client, &config.subscription).await.map_err(CloseError::from)?);
    let progress = Progress::load(&output, &config.topic, now).await.map_err(CloseError::from)?;
    let progress = Arc::new(tokio::sync::Mutex::new(progress));

    let settings = SubscriberSettings {
        // Buffered events are unacked, so this bounds what a worker can
        // buffer: twice a file, within the server's per-stream limit.
        max_outstanding_messages: u32::try_from(config.file_events_max.saturating_mul(2))
            .unwrap_or(u32::MAX)
            .min(STREAM_OUTSTANDING_MAX),
        max_outstanding_bytes: (config.file_bytes_max as u64).saturating_mul(2),
        ..SubscriberSettings::default()
    };
    let mut subscriber = client
        .subscribe(&config.subscription, settings)
        .await
        .map_err(|source| WorkerError::Subscribe { subscription: config.subscription.clone(), source })?;

    let closing = tokio::spawn(close_loop(
        client.clone(),
        output.clone(),
        config.clone(),
        progress.clone(),
        metrics.clone(),
        stop.clone(),
    ));
    let mut stager = Stager::new(client, output, config.clone(), progress, metrics);
    let mut tick = tokio::time::interval(
        config.file_age_max.min(std::time::Duration::from_secs(1)).max(std::time::Duration::from_millis(50)),
    );
    let outcome: Result<(), WorkerError> = loop {
        tokio::select! {
            next = subscriber.next() => match next {
                Some(Ok(delivered)) => if let Err(error) = stager.take(delivered).await { break Err(error.into()) },
                Some(Err(source)) => break Err(WorkerError::Subscribe { subscription: config.subscription.clone(), source }),
                None => break Ok(()),
            },
            _ = tick.tick() => if let Err(error) = stager.write_aged().await { break Err(error.into()) },
            _ = stop.wait_for(|stop| *stop) => break Ok(()),
        }
    };
    // Whatever happened, what is buffered is written if it can be, and the
    // acks of what was written reach the server before the stream ends.
    let written = stager.write_all().await;
    subscriber.close().await;
    let closed = closing.await.unwrap_or(Ok(()));
    outcome?;
    written?;
    closed
}

async fn close_loop(
    client: Client,
    output: Output,
    config: Config,
    progress: Arc<tokio::sync::Mutex<Progress>>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), WorkerError> {
    let mut tick = tokio::time::interval(config.close_check_every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stop| *stop) => return Ok(()),
        }
        match closer::close_ready_hours(&client, &output, &config, &progress, &metrics).await {
            Ok(_) => {}
            // The server or the store may be away for a while; the next tick tries again.
            Err(CloseError::Watermark(error)) => tracing::warn!(%error, "reading the watermark"),
            Err(CloseError::Store(error)) => tracing::warn!(%error, "closing hours"),
            Err(error) => return Err(error.into()),
        }
    }
}

async fn ensure_dead_letter_topic(client: &Client, topic: &str) -> Result<(), WorkerError> {
    match client.create_topic(topic, TopicSettings::default()).await {
        Ok(_) | Err(Error::Status { code: Code::AlreadyExists, .. }) => Ok(()),
        Err(source) => Err(WorkerError::DeadLetterTopic { topic: topic.to_owned(), source }),
    }
}
