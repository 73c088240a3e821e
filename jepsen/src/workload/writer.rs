//! A producer: publishes unique values `"<process>-<counter>"` in small
//! batches, either plainly or through the idempotent Publisher.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferry_client::{Client, Message, Publisher, PublisherSettings};

use super::{Tracker, OP_TIMEOUT};
use crate::history::{Kind, Op, Position, Publish};
use crate::recorder::Recorder;

#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub topic: String,
    pub batch: usize,
    /// Through the idempotent Publisher (a value stored twice is then a bug).
    pub idempotent: bool,
    pub ordering_key: Option<String>,
    /// Pause between batches, to keep the history readable.
    pub pause: Duration,
}

pub async fn run(
    client: Client,
    recorder: Arc<Recorder>,
    tracker: Arc<Tracker>,
    config: WriterConfig,
    stop: Arc<AtomicBool>,
) {
    let publisher = if config.idempotent {
        let settings = PublisherSettings {
            linger: Duration::from_millis(1),
            delivery_timeout: OP_TIMEOUT,
            ..PublisherSettings::default()
        };
        match Publisher::new(&client, &config.topic, settings).await {
            Ok(publisher) => Some(publisher),
            Err(error) => {
                eprintln!("ferry-jepsen: no publisher for {}: {error}", config.topic);
                return;
            }
        }
    } else {
        None
    };
    let mut process = recorder.new_process();
    let mut counter = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let values: Vec<String> = (0..config.batch)
            .map(|_| {
                counter += 1;
                format!("{process}-{counter}")
            })
            .collect();
        let publish = Publish {
            topic: config.topic.clone(),
            values: values.clone(),
            idempotent: config.idempotent,
            ordering_key: config.ordering_key.clone(),
            positions: Vec::new(),
        };
        recorder.record(process, Kind::Invoke, Op::Publish(publish.clone()));
        let messages = values.iter().map(|v| message(v, config.ordering_key.as_deref())).collect();
        let sent = match &publisher {
            Some(publisher) => tokio::time::timeout(OP_TIMEOUT, through_publisher(publisher, messages)).await,
            None => tokio::time::timeout(OP_TIMEOUT, plainly(&client, &config.topic, messages)).await,
        };
        match sent {
            Ok(Ok(positions)) => {
                tracker.acknowledged(&values);
                recorder.record(process, Kind::Ok, Op::Publish(Publish { positions, ..publish }));
            }
            // Timed out or failed in a way that may still have stored it.
            _ => {
                recorder.record(process, Kind::Info, Op::Publish(publish));
                process = recorder.new_process();
                counter = 0;
            }
        }
        tokio::time::sleep(config.pause).await;
    }
}

fn message(value: &str, ordering_key: Option<&str>) -> Message {
    let message = Message::new(value.to_owned());
    match ordering_key {
        Some(key) => message.ordering_key(key),
        None => message,
    }
}

async fn plainly(client: &Client, topic: &str, messages: Vec<Message>) -> ferry_client::Result<Vec<Position>> {
    let positions = client.publish(topic, messages).await?;
    Ok(positions.into_iter().map(|p| Position { partition: p.partition, offset: p.offset }).collect())
}

async fn through_publisher(publisher: &Publisher, messages: Vec<Message>) -> ferry_client::Result<Vec<Position>> {
    let mut handles = Vec::with_capacity(messages.len());
    for message in messages {
        handles.push(publisher.publish(message).await?);
    }
    let mut positions = Vec::with_capacity(handles.len());
    for handle in handles {
        let position = handle.await?;
        positions.push(Position { partition: position.partition, offset: position.offset });
    }
    Ok(positions)
}
