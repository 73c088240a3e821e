//! `ferry consume SUB`: stream messages (StreamingPull), print each as a JSON
//! line, and ack it only after it was written out.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use ferry_client::{Client, SubscriberSettings};

use crate::args::ConsumeArgs;
use crate::output;

pub async fn run(client: &Client, args: ConsumeArgs) -> anyhow::Result<()> {
    let settings = SubscriberSettings { max_outstanding_messages: args.max_outstanding, ..Default::default() };
    let mut subscriber = client
        .subscribe(&args.subscription, settings)
        .await
        .with_context(|| format!("subscribe to {}", args.subscription))?;
    let idle: Option<Duration> = args.idle_exit.map(Into::into);
    let mut consumed = 0usize;
    let outcome = loop {
        if args.max.is_some_and(|max| consumed >= max) {
            break Ok(());
        }
        let next = match idle {
            Some(idle) => match tokio::time::timeout(idle, subscriber.next()).await {
                Ok(next) => next,
                Err(_) => break Ok(()),
            },
            None => tokio::select! {
                next = subscriber.next() => next,
                _ = tokio::signal::ctrl_c() => break Ok(()),
            },
        };
        let delivered = match next {
            Some(Ok(delivered)) => delivered,
            Some(Err(error)) => break Err(anyhow::Error::new(error).context(format!("consume {}", args.subscription))),
            None => break Ok(()),
        };
        let mut stdout = std::io::stdout().lock();
        serde_json::to_writer(&mut stdout, &output::received(&delivered.message))?;
        stdout.write_all(b"\n")?;
        stdout.flush()?;
        drop(stdout);
        // Printed and flushed: now it may be acked.
        delivered.ack();
        consumed += 1;
    };
    // Sends the pending acks and gives back what was not printed.
    subscriber.close().await;
    outcome
}
