//! `ferry`: the Ferry command-line tool.

mod args;
mod cluster;
mod output;
mod publish;
mod pull;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use ferry_client::{Client, SubscriptionSettings, TopicSettings};

use args::{Args, Command, SubCommand, TopicCommand};

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
    let client = Client::connect(&args.server).await?;
    match args.command {
        Command::Topic { command } => topic(&client, command).await,
        Command::Sub { command } => sub(&client, command).await,
        Command::Publish(publish) => publish::run(&client, publish).await,
        Command::Pull(pull) => pull::run(&client, pull).await,
        Command::Cluster { command } => cluster::run(&client, command).await,
    }
}

async fn topic(client: &Client, command: TopicCommand) -> anyhow::Result<()> {
    match command {
        TopicCommand::Create { name, partitions, max_message_bytes } => {
            let settings = TopicSettings { partitions, max_message_bytes };
            let topic = client.create_topic(&name, settings).await.with_context(|| format!("create topic {name}"))?;
            output::print_json(&output::topic(&topic))
        }
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

async fn sub(client: &Client, command: SubCommand) -> anyhow::Result<()> {
    match command {
        SubCommand::Create { name, topic, ack_deadline } => {
            let settings = SubscriptionSettings { ack_deadline: ack_deadline.map(Into::into).unwrap_or_default() };
            let subscription = client
                .create_subscription(&name, &topic, settings)
                .await
                .with_context(|| format!("create subscription {name}"))?;
            output::print_json(&output::subscription(&subscription))
        }
        SubCommand::Get { name } => {
            let subscription =
                client.get_subscription(&name).await.with_context(|| format!("get subscription {name}"))?;
            output::print_json(&output::subscription(&subscription))
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
