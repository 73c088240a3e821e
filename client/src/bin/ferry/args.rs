//! The command line: every flag and subcommand of `ferry`.

use clap::{Args as ClapArgs, Parser, Subcommand};

/// Ferry command-line tool: topics, subscriptions, publish and pull.
#[derive(Debug, Parser)]
#[command(name = "ferry", version)]
pub struct Args {
    /// Server address, HOST:PORT, or several separated by commas.
    #[arg(long, global = true, env = "FERRY_SERVER", default_value = "127.0.0.1:7070")]
    pub server: String,
    /// The token to present (`authorization: Bearer`), on a cluster that
    /// asks for one.
    #[arg(long, global = true, env = "FERRY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Speak TLS, checking the servers' certificates against this CA (PEM).
    #[arg(long, global = true, env = "FERRY_TLS_CA")]
    pub tls_ca: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, inspect and delete topics.
    Topic {
        #[command(subcommand)]
        command: TopicCommand,
    },
    /// Create, inspect and delete subscriptions.
    Sub {
        #[command(subcommand)]
        command: SubCommand,
    },
    /// Save a subscription's place to seek back to (Pub/Sub's snapshots).
    Bookmark {
        #[command(subcommand)]
        command: BookmarkCommand,
    },
    /// Publish every line of stdin (or a file) as one message; prints the count published.
    Publish(PublishArgs),
    /// Pull messages and print each one's data on its own line.
    Pull(PullArgs),
    /// Stream messages of a subscription as JSON lines, acking each once printed.
    Consume(ConsumeArgs),
    /// Follow log files like `tail -F` and publish every new line.
    Tail(crate::tail::TailArgs),
    /// Measure publish, consume or end-to-end throughput and latency.
    Bench(crate::bench::BenchArgs),
    /// Cluster members, leader and log positions; membership changes.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Members, leader, term, and each node's log, commit and apply index and lag.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Add a node (started with --join, or started empty): it catches up, then votes.
    AddNode { id: u64, addr: String },
    /// Remove a node from the cluster.
    RemoveNode { id: u64 },
    /// Hand a data group's leadership to another of its voters (for
    /// maintenance; the balancer keeps the spread even afterwards).
    TransferLeader {
        /// The data group (1..=the cluster's data groups).
        #[arg(long)]
        group: u32,
        /// The node to lead it.
        #[arg(long)]
        to: u64,
    },
    /// Restart every node, one at a time: before each, every member must
    /// serve and be caught up; then COMMAND restarts the node, and the next
    /// waits until it came back, serves and caught up. Group 0's leader goes
    /// last. Nodes stop gracefully on SIGTERM (they hand their leaderships
    /// over), so clients see a pause, not errors.
    RollingRestart(crate::rolling_restart::RollingRestartArgs),
    /// Back up the node `--server` names: a consistent copy of its state
    /// (RocksDB checkpoints) in a new directory on that node's filesystem,
    /// for `ferryd --restore-from`. Prints what it holds as JSON.
    Backup {
        /// Absolute path on the node; must not exist yet.
        #[arg(long)]
        dir: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic; prints it as JSON.
    Create {
        name: String,
        /// Partitions (the unit of ordering); 0 = server default (1).
        #[arg(long, default_value_t = 0)]
        partitions: u32,
        /// Largest message in bytes; 0 = server default (10 MiB).
        #[arg(long, default_value_t = 0)]
        max_message_bytes: u32,
        /// How long messages are kept, e.g. 7d (the default); at most 31d.
        #[arg(long)]
        retention: Option<humantime::Duration>,
        /// Most bytes a partition keeps; 0 = no limit.
        #[arg(long, default_value_t = 0)]
        retention_bytes: u64,
        /// A label, KEY=VALUE (Ferry keeps it, never reads it); repeat for more.
        #[arg(long, value_parser = crate::publish::attribute)]
        label: Vec<(String, String)>,
    },
    /// Change the settings given (the others keep theirs); prints the topic.
    Update(crate::update::TopicUpdateArgs),
    /// Print a topic as JSON.
    Get { name: String },
    /// Print every topic name.
    List,
    /// Delete a topic with its messages and subscriptions.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum SubCommand {
    /// Create a subscription; it receives what is published from now on.
    Create {
        name: String,
        #[arg(long)]
        topic: String,
        /// How long a pulled message is leased before redelivery, e.g. 30s (10s..10m).
        #[arg(long)]
        ack_deadline: Option<humantime::Duration>,
        /// Wait before redelivering a nacked or expired message, doubling per attempt.
        #[arg(long)]
        retry_min_backoff: Option<humantime::Duration>,
        /// The longest such wait.
        #[arg(long)]
        retry_max_backoff: Option<humantime::Duration>,
        /// Topic for messages delivered --max-delivery-attempts times without an ack.
        #[arg(long)]
        dead_letter_topic: Option<String>,
        /// Deliveries before dead-lettering (5..=100, default 5).
        #[arg(long, default_value_t = 0)]
        max_delivery_attempts: u32,
        /// A label, KEY=VALUE; repeat for more.
        #[arg(long, value_parser = crate::publish::attribute)]
        label: Vec<(String, String)>,
    },
    /// Change the settings given (the others keep theirs); prints the subscription.
    Update(crate::update::SubUpdateArgs),
    /// Print a subscription, with its backlog, as JSON.
    Get { name: String },
    /// Print a subscription's backlog: unacked messages and bytes, leased, oldest unacked age.
    Backlog { name: String },
    /// Replay or skip: messages published before TIME count as acked, later ones as unacked.
    Seek {
        name: String,
        /// An RFC 3339 time, e.g. 2026-11-22T10:00:00Z.
        #[arg(long, conflicts_with_all = ["ago", "bookmark"])]
        time: Option<humantime::Timestamp>,
        /// A time this long before now, e.g. 1h.
        #[arg(long, conflicts_with = "bookmark")]
        ago: Option<humantime::Duration>,
        /// Back to a bookmark of the subscription's topic.
        #[arg(long)]
        bookmark: Option<String>,
    },
    /// Print every subscription name.
    List {
        /// Only the subscriptions of this topic.
        #[arg(long)]
        topic: Option<String>,
    },
    /// Delete a subscription.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum BookmarkCommand {
    /// Save SUBSCRIPTION's ack floors as bookmark NAME; prints it as JSON.
    Create {
        name: String,
        #[arg(long)]
        subscription: String,
        /// A label, KEY=VALUE; repeat for more.
        #[arg(long, value_parser = crate::publish::attribute)]
        label: Vec<(String, String)>,
    },
    /// Print a bookmark as JSON.
    Get { name: String },
    /// Print every unexpired bookmark's name.
    List {
        /// Only the bookmarks of this topic.
        #[arg(long)]
        topic: Option<String>,
    },
    /// Delete a bookmark.
    Delete { name: String },
}

#[derive(Debug, ClapArgs)]
pub struct PublishArgs {
    pub topic: String,
    /// Read the lines from this file instead of stdin.
    #[arg(long)]
    pub file: Option<std::path::PathBuf>,
    /// An attribute for every message, KEY=VALUE; repeat for more.
    #[arg(long, value_parser = crate::publish::attribute)]
    pub attr: Vec<(String, String)>,
    /// An ordering key for every message (they go to one partition, in order).
    #[arg(long)]
    pub ordering_key: Option<String>,
    /// Most messages per publish call.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Wire compression of batches: none, zstd or lz4.
    #[arg(long, default_value = "none")]
    pub compression: ferry_client::Compression,
}

#[derive(Debug, ClapArgs)]
pub struct ConsumeArgs {
    pub subscription: String,
    /// Stop after this many messages (default: run until interrupted).
    #[arg(long)]
    pub max: Option<usize>,
    /// Stop once no message arrived for this long, e.g. 5s.
    #[arg(long)]
    pub idle_exit: Option<humantime::Duration>,
    /// Messages held unacked at once, at most (flow control).
    #[arg(long, default_value_t = 1000)]
    pub max_outstanding: u32,
}

#[derive(Debug, ClapArgs)]
pub struct PullArgs {
    pub subscription: String,
    /// Most messages to pull in all.
    #[arg(long, default_value_t = 100)]
    pub max: usize,
    /// Acknowledge the messages after printing them.
    #[arg(long)]
    pub ack: bool,
    /// Print each message as a JSON line: position, publish time, attributes,
    /// ack id and data.
    #[arg(long)]
    pub json: bool,
    /// How long to wait for a first message, e.g. 5s.
    #[arg(long, default_value = "0s")]
    pub wait: humantime::Duration,
}
