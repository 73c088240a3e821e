//! `ferry-mirror`: runs one route until interrupted.

use clap::Parser;
use ferry_mirror::Route;

/// Copies a topic from a source Ferry cluster into a destination cluster:
/// every acknowledged source message once, in per-partition order.
#[derive(Debug, Parser)]
#[command(name = "ferry-mirror", version)]
struct Args {
    /// Source cluster addresses, comma-separated.
    #[arg(long, env = "FERRY_MIRROR_SOURCE")]
    source: String,
    /// Destination cluster addresses, comma-separated.
    #[arg(long, env = "FERRY_MIRROR_DESTINATION")]
    destination: String,
    /// The source cluster's name, recorded as `ferry.origin.cluster`.
    #[arg(long)]
    source_cluster: String,
    /// The destination cluster's name: messages that came from it are not
    /// copied back (two clusters may mirror each other).
    #[arg(long)]
    destination_cluster: String,
    /// The topic to copy.
    #[arg(long)]
    topic: String,
    /// The destination topic (default: the same name). It must exist, with
    /// as many partitions as the source topic.
    #[arg(long)]
    destination_topic: Option<String>,
    /// The route's subscription on the source (default:
    /// `ferry-mirror.<destination cluster>.<topic>`). Created on first use,
    /// at the oldest message the source holds; this mirror must be its only
    /// consumer.
    #[arg(long)]
    subscription: Option<String>,
    /// Messages per destination batch, at most.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    batch_messages: u64,
    /// How batches travel to the destination: none, zstd or lz4.
    #[arg(long, default_value = "zstd")]
    compression: ferry_client::Compression,
    /// Message bytes (data and attributes, before compression) sent per
    /// second at most; unset: as fast as the destination takes them.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max_bytes_per_second: Option<u64>,
}

fn main() -> std::process::ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let args = Args::parse();
    let route = Route {
        subscription: args
            .subscription
            .unwrap_or_else(|| format!("ferry-mirror.{}.{}", args.destination_cluster, args.topic)),
        destination_topic: args.destination_topic.unwrap_or_else(|| args.topic.clone()),
        source: args.source,
        destination: args.destination,
        source_cluster: args.source_cluster,
        destination_cluster: args.destination_cluster,
        topic: args.topic,
        batch_messages: args.batch_messages as usize,
        compression: args.compression,
        max_bytes_per_second: args.max_bytes_per_second,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ferry-mirror: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            let _ = stop.send(true);
        });
        ferry_mirror::run_until_stopped(route, stopped).await;
    });
    std::process::ExitCode::SUCCESS
}
