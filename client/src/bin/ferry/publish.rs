//! `ferry publish TOPIC`: every line of stdin (or `--file`) is one message,
//! sent through a batching, idempotent [`Publisher`].

use std::collections::BTreeMap;

use anyhow::Context;
use ferry_client::{Client, Message, Publisher, PublisherSettings};
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};

use crate::args::PublishArgs;

/// Messages whose answer the command waits for at once, at most.
const ANSWERS_AWAITED_MAX: usize = 10_000;

/// Parses `--attr key=value`.
pub fn attribute(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

pub async fn run(client: &Client, args: PublishArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.batch > 0, "--batch must be at least 1");
    let input: Box<dyn AsyncBufRead + Unpin + Send> = match &args.file {
        Some(path) => Box::new(BufReader::new(
            tokio::fs::File::open(path).await.with_context(|| format!("open {}", path.display()))?,
        )),
        None => Box::new(BufReader::new(tokio::io::stdin())),
    };
    let settings =
        PublisherSettings { batch_max_messages: args.batch, compression: args.compression, ..Default::default() };
    let publisher =
        Publisher::new(client, &args.topic, settings).await.with_context(|| format!("publish to {}", args.topic))?;
    let attributes: BTreeMap<String, String> = args.attr.iter().cloned().collect();
    let mut lines = input.lines();
    let mut answers = FuturesUnordered::new();
    let (mut published, mut skipped) = (0usize, 0usize);
    while let Some(line) = lines.next_line().await.context("read input")? {
        if line.is_empty() {
            // An empty message carries nothing; the server would refuse it.
            skipped += 1;
            continue;
        }
        let mut message = Message::new(line);
        message.attributes = attributes.clone();
        if let Some(key) = &args.ordering_key {
            message = message.ordering_key(key.clone());
        }
        answers.push(publisher.publish(message).await?);
        while answers.len() >= ANSWERS_AWAITED_MAX {
            answers.next().await.transpose().with_context(|| format!("publish to {}", args.topic))?;
            published += 1;
        }
    }
    while let Some(answer) = answers.next().await {
        answer.with_context(|| format!("publish to {}", args.topic))?;
        published += 1;
    }
    publisher.close().await;
    if skipped > 0 {
        eprintln!("ferry: skipped {skipped} empty lines");
    }
    println!("{published}");
    Ok(())
}
