//! `ferry`: the Ferry command-line tool.

mod args;
mod bench;
mod cluster;
mod consume;
mod output;
mod publish;
mod pull;
mod rolling_restart;
mod tail;
mod update;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use ferry_client::{Client, ClientOptions, SubscriptionSettings, TopicSettings};

use args::{Args, BookmarkCommand, Command, SubCommand, TopicCommand};

// glibc's malloc took 16% of this tool's CPU while `bench consume` drained
// (decoding thousands of messages a second); see `ferryd`'s main.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ferry: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferry: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let options = ClientOptions { token: args.token.clone(), ..ClientOptions::default() };
    let client = Client::connect_with_options(&args.server, options.tls_ca_file(args.tls_ca.as_deref())?).await?;
    match args.command {
        Command::Topic { command } => topic(&client, command).await,
        Command::Sub { command } => sub(&client, command).await,
        Command::Bookmark { command } => bookmark(&client, command).await,
        Command::Publish(publish) => publish::run(&client, publish).await,
        Command::Pull(pull) => pull::run(&client, pull).await,
        Command::Consume(consume) => consume::run(&client, consume).await,
        Command::Tail(tail) => tail::run(&client, tail).await,
        Command::Cluster { command } => cluster::run(&client, command).await,
        Command::Bench(bench) => bench::run(&client, bench).await,
    }
}

async fn topic(client: &Client, command: TopicCommand) -> anyhow::Result<()> {
    match command {
        TopicCommand::Create { name, partitions, max_message_bytes, retention, retention_bytes, label } => {
            let retention = retention.map(Into::into).unwrap_or_default();
            let labels = label.into_iter().collect();
            let settings = TopicSettings { partitions, max_message_bytes, retention, retention_bytes, labels };
            let topic = client.create_topic(&name, settings).await.with_context(|| format!("create topic {name}"))?;
            output::print_json(&output::topic(&topic))
        }
        TopicCommand::Update(update) => update::topic(client, update).await,
        TopicCommand::Get { name } => {
            let topic = client.get_topic(&name).await.with_context(|| format!("get topic {name}"))?;
            output::print_json(&output::topic(&topic))
        }
        TopicCommand::List => {
            for topic in client.list_topics().await.context("list topics")? {
                println!("{}", topic.name);
            }
            Ok(())
        }
        TopicCommand::Delete { name } => {
            client.delete_topic(&name).await.with_context(|| format!("delete topic {name}"))
        }
    }
}

async fn bookmark(client: &Client, command: BookmarkCommand) -> anyhow::Result<()> {
    match command {
        BookmarkCommand::Create { name, subscription, label } => {
            let bookmark = client
                .create_bookmark(&name, &subscription, label.into_iter().collect())
                .await
                .with_context(|| format!("create bookmark {name}"))?;
            output::print_json(&output::bookmark(&bookmark))
        }
        BookmarkCommand::Get { name } => {
            let bookmark = client.get_bookmark(&name).await.with_context(|| format!("get bookmark {name}"))?;
            output::print_json(&output::bookmark(&bookmark))
        }
        BookmarkCommand::List { topic } => {
            for bookmark in client.list_bookmarks(topic.as_deref()).await.context("list bookmarks")? {
                println!("{}", bookmark.name);
            }
            Ok(())
        }
        BookmarkCommand::Delete { name } => {
            client.delete_bookmark(&name).await.with_context(|| format!("delete bookmark {name}"))
        }
    }
}

async fn sub(client: &Client, command: SubCommand) -> anyhow::Result<()> {
    match command {
        SubCommand::Create {
            name,
            topic,
            ack_deadline,
            retry_min_backoff,
            retry_max_backoff,
            dead_letter_topic,
            max_delivery_attempts,
            label,
        } => {
            let duration = |d: Option<humantime::Duration>| d.map(Into::into).unwrap_or_default();
            let settings = SubscriptionSettings {
                ack_deadline: duration(ack_deadline),
                retry_min_backoff: duration(retry_min_backoff),
                retry_max_backoff: duration(retry_max_backoff),
                dead_letter_topic: dead_letter_topic.unwrap_or_default(),
                max_delivery_attempts,
                labels: label.into_iter().collect(),
            };
            let subscription = client
                .create_subscription(&name, &topic, settings)
                .await
                .with_context(|| format!("create subscription {name}"))?;
            output::print_json(&output::subscription(&subscription))
        }
        SubCommand::Update(update) => update::subscription(client, update).await,
        SubCommand::Get { name } => {
            let subscription =
                client.get_subscription(&name).await.with_context(|| format!("get subscription {name}"))?;
            output::print_json(&output::subscription(&subscription))
        }
        SubCommand::Backlog { name } => {
            let subscription =
                client.get_subscription(&name).await.with_context(|| format!("get subscription {name}"))?;
            output::print_json(&output::backlog(subscription.backlog.as_ref()))
        }
        SubCommand::Seek { name, time, ago, bookmark } => {
            if let Some(bookmark) = bookmark {
                return client.seek_to_bookmark(&name, &bookmark).await.with_context(|| format!("seek {name}"));
            }
            let time = match (time, ago) {
                (Some(time), _) => time.into(),
                (None, Some(ago)) => std::time::SystemTime::now() - std::time::Duration::from(ago),
                (None, None) => anyhow::bail!("give --time, --ago or --bookmark"),
            };
            client.seek(&name, time).await.with_context(|| format!("seek {name}"))
        }
        SubCommand::List { topic } => {
            for subscription in client.list_subscriptions(topic.as_deref()).await.context("list subscriptions")? {
                println!("{}", subscription.name);
            }
            Ok(())
        }
        SubCommand::Delete { name } => {
            client.delete_subscription(&name).await.with_context(|| format!("delete subscription {name}"))
        }
    }
}
