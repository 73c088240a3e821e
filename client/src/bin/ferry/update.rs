//! `ferry topic update` and `ferry sub update`: each flag given names a
//! setting to change (the update mask); settings not given keep their values.

use anyhow::Context;
use clap::Args as ClapArgs;
use ferry_client::{Client, SubscriptionSettings, TopicSettings};

use crate::output;

#[derive(Debug, ClapArgs)]
pub struct TopicUpdateArgs {
    pub name: String,
    /// Largest message in bytes; 0 = server default (10 MiB).
    #[arg(long)]
    pub max_message_bytes: Option<u32>,
    /// How long messages are kept, e.g. 3d; at most 31d.
    #[arg(long)]
    pub retention: Option<humantime::Duration>,
    /// Most bytes a partition keeps; 0 = no limit.
    #[arg(long)]
    pub retention_bytes: Option<u64>,
    /// The labels, KEY=VALUE, replacing all of them; repeat for more.
    #[arg(long, value_parser = crate::publish::attribute)]
    pub label: Vec<(String, String)>,
    /// Remove every label.
    #[arg(long, conflicts_with = "label")]
    pub clear_labels: bool,
}

#[derive(Debug, ClapArgs)]
pub struct SubUpdateArgs {
    pub name: String,
    /// How long a pulled message is leased before redelivery (10s..10m).
    #[arg(long)]
    pub ack_deadline: Option<humantime::Duration>,
    /// The retry policy's shortest wait before redelivering (with
    /// --retry-max-backoff; both 0s: at once).
    #[arg(long, requires = "retry_max_backoff")]
    pub retry_min_backoff: Option<humantime::Duration>,
    /// The retry policy's longest wait (with --retry-min-backoff).
    #[arg(long, requires = "retry_min_backoff")]
    pub retry_max_backoff: Option<humantime::Duration>,
    /// Dead-letter to this topic after --max-delivery-attempts (default 5).
    #[arg(long)]
    pub dead_letter_topic: Option<String>,
    /// Deliveries before dead-lettering (5..=100; with --dead-letter-topic).
    #[arg(long, requires = "dead_letter_topic")]
    pub max_delivery_attempts: Option<u32>,
    /// Stop dead-lettering.
    #[arg(long, conflicts_with = "dead_letter_topic")]
    pub no_dead_letter: bool,
    /// The labels, KEY=VALUE, replacing all of them; repeat for more.
    #[arg(long, value_parser = crate::publish::attribute)]
    pub label: Vec<(String, String)>,
    /// Remove every label.
    #[arg(long, conflicts_with = "label")]
    pub clear_labels: bool,
}

pub async fn topic(client: &Client, args: TopicUpdateArgs) -> anyhow::Result<()> {
    let mut mask = Vec::new();
    let mut settings = TopicSettings::default();
    if let Some(bytes) = args.max_message_bytes {
        settings.max_message_bytes = bytes;
        mask.push("max_message_bytes");
    }
    if let Some(retention) = args.retention {
        settings.retention = retention.into();
        mask.push("retention_seconds");
    }
    if let Some(bytes) = args.retention_bytes {
        settings.retention_bytes = bytes;
        mask.push("retention_bytes");
    }
    if !args.label.is_empty() || args.clear_labels {
        settings.labels = args.label.into_iter().collect();
        mask.push("labels");
    }
    anyhow::ensure!(!mask.is_empty(), "give at least one setting to change (see --help)");
    let name = args.name;
    let topic = client.update_topic(&name, settings, &mask).await.with_context(|| format!("update topic {name}"))?;
    output::print_json(&output::topic(&topic))
}

pub async fn subscription(client: &Client, args: SubUpdateArgs) -> anyhow::Result<()> {
    let mut mask = Vec::new();
    let mut settings = SubscriptionSettings::default();
    if let Some(deadline) = args.ack_deadline {
        settings.ack_deadline = deadline.into();
        mask.push("ack_deadline_seconds");
    }
    if let (Some(min), Some(max)) = (args.retry_min_backoff, args.retry_max_backoff) {
        (settings.retry_min_backoff, settings.retry_max_backoff) = (min.into(), max.into());
        mask.push("retry_policy");
    }
    if let Some(topic) = args.dead_letter_topic {
        settings.dead_letter_topic = topic;
        settings.max_delivery_attempts = args.max_delivery_attempts.unwrap_or(0);
        mask.push("dead_letter_policy");
    }
    if args.no_dead_letter {
        mask.push("dead_letter_policy");
    }
    if !args.label.is_empty() || args.clear_labels {
        settings.labels = args.label.into_iter().collect();
        mask.push("labels");
    }
    anyhow::ensure!(!mask.is_empty(), "give at least one setting to change (see --help)");
    let name = args.name;
    let subscription = client
        .update_subscription(&name, settings, &mask)
        .await
        .with_context(|| format!("update subscription {name}"))?;
    output::print_json(&output::subscription(&subscription))
}
