//! Consumes a subscription with a streaming `Subscriber`, acking each message
//! after printing it; stops after ten idle seconds.
//!
//! ```text
//! ferry sub create clicks-reader --topic clicks
//! cargo run -p ferry-client --example consume -- 127.0.0.1:7070 clicks-reader
//! ```

use std::time::Duration;

use ferry_client::{Client, SubscriberSettings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let server = args.next().unwrap_or_else(|| "127.0.0.1:7070".into());
    let subscription = args.next().unwrap_or_else(|| "clicks-reader".into());

    let client = Client::connect(&server).await?;
    let settings = SubscriberSettings { max_outstanding_messages: 100, ..Default::default() };
    let mut subscriber = client.subscribe(&subscription, settings).await?;
    while let Ok(Some(delivered)) = tokio::time::timeout(Duration::from_secs(10), subscriber.next()).await {
        let delivered = delivered?;
        let message = &delivered.message;
        println!(
            "{}:{} attempt {} {}",
            message.position.partition,
            message.position.offset,
            message.delivery_attempt,
            String::from_utf8_lossy(&message.message.data)
        );
        delivered.ack();
    }
    // Acks still batched are sent; anything held is given back.
    subscriber.close().await;
    Ok(())
}
