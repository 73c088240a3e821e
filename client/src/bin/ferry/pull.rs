//! `ferry pull SUB`: pull up to `--max` messages, print them, optionally ack.

use std::io::Write;

use anyhow::Context;
use ferry_client::Client;

use crate::args::PullArgs;
use crate::output;

/// The server's largest pull.
const PULL_MESSAGES_MAX: usize = 1000;

pub async fn run(client: &Client, args: PullArgs) -> anyhow::Result<()> {
    let mut remaining = args.max;
    let mut wait = args.wait.into();
    while remaining > 0 {
        let want = remaining.min(PULL_MESSAGES_MAX) as u32;
        let received =
            client.pull(&args.subscription, want, wait).await.with_context(|| format!("pull {}", args.subscription))?;
        if received.is_empty() {
            break;
        }
        // Only the first pull waits; afterwards take what is there.
        wait = std::time::Duration::ZERO;
        remaining -= received.len();
        let mut stdout = std::io::stdout().lock();
        for message in &received {
            if args.json {
                serde_json::to_writer(&mut stdout, &output::received(message))?;
            } else {
                stdout.write_all(&message.message.data)?;
            }
            stdout.write_all(b"\n")?;
        }
        stdout.flush()?;
        drop(stdout);
        if args.ack {
            let ids: Vec<String> = received.into_iter().map(|m| m.ack_id).collect();
            client
                .acknowledge(&args.subscription, &ids)
                .await
                .with_context(|| format!("acknowledge on {}", args.subscription))?;
        }
    }
    Ok(())
}
