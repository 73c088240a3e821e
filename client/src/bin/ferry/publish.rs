//! `ferry publish TOPIC`: every stdin line is one message.

use anyhow::Context;
use ferry_client::{Client, Message};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::args::PublishArgs;

pub async fn run(client: &Client, args: PublishArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.batch > 0, "--batch must be at least 1");
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut batch = Vec::with_capacity(args.batch);
    let (mut published, mut skipped) = (0usize, 0usize);
    while let Some(line) = lines.next_line().await.context("read stdin")? {
        if line.is_empty() {
            // An empty message carries nothing; the server would refuse it.
            skipped += 1;
            continue;
        }
        batch.push(Message::new(line));
        if batch.len() == args.batch {
            published += publish(client, &args.topic, &mut batch).await?;
        }
    }
    if !batch.is_empty() {
        published += publish(client, &args.topic, &mut batch).await?;
    }
    if skipped > 0 {
        eprintln!("ferry: skipped {skipped} empty lines");
    }
    println!("{published}");
    Ok(())
}

async fn publish(client: &Client, topic: &str, batch: &mut Vec<Message>) -> anyhow::Result<usize> {
    let count = batch.len();
    client.publish(topic, std::mem::take(batch)).await.with_context(|| format!("publish to {topic}"))?;
    Ok(count)
}
