//! Publishes lines of stdin through a `Publisher` and prints where each went.
//!
//! ```text
//! ferry topic create clicks
//! seq 1 10 | cargo run -p ferry-client --example publish -- 127.0.0.1:7070 clicks
//! ```

use ferry_client::{Client, Compression, Message, Publisher, PublisherSettings};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let server = args.next().unwrap_or_else(|| "127.0.0.1:7070".into());
    let topic = args.next().unwrap_or_else(|| "clicks".into());

    let client = Client::connect(&server).await?;
    let settings = PublisherSettings { compression: Compression::Zstd, ..Default::default() };
    let publisher = Publisher::new(&client, &topic, settings).await?;

    // Queue everything first: the publisher batches while we read.
    let mut handles = Vec::new();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let message = Message::new(line).attribute("source", "example");
        handles.push(publisher.publish(message).await?);
    }
    for handle in handles {
        let position = handle.await?;
        println!("partition {} offset {}", position.partition, position.offset);
    }
    publisher.close().await;
    Ok(())
}
