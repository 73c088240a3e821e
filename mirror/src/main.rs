//! `ferry-mirror`: runs one route until interrupted.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use ferry_mirror::progress::Progress;
use ferry_mirror::{LockSettings, Route};
use tokio::signal::unix::{signal, SignalKind};

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
    /// This instance's id among the route's instances (default: host name
    /// and process id). Only the holder of the route's lock copies; the
    /// others stand by and take over when it stops.
    #[arg(long)]
    instance: Option<String>,
    /// How long the route's lock lasts unless renewed: how soon a standby
    /// takes over from an instance that died.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(3..=300))]
    lock_seconds: u64,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 0.0.0.0:9472):
    /// messages and seconds behind, the last store, failures, whether this
    /// instance is the active one.
    #[arg(long)]
    metrics_listen: Option<std::net::SocketAddr>,
}

fn main() -> std::process::ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let args = Args::parse();
    let metrics_listen = args.metrics_listen;
    let destination_topic = args.destination_topic.clone().unwrap_or_else(|| args.topic.clone());
    let lock = LockSettings {
        name: format!("ferry-mirror.{}.{}.{}", args.source_cluster, args.topic, destination_topic),
        holder: args.instance.unwrap_or_else(instance_id),
        ttl: Duration::from_secs(args.lock_seconds),
    };
    let route = Route {
        subscription: args
            .subscription
            .unwrap_or_else(|| format!("ferry-mirror.{}.{}", args.destination_cluster, args.topic)),
        destination_topic,
        source: args.source,
        destination: args.destination,
        source_cluster: args.source_cluster,
        destination_cluster: args.destination_cluster,
        topic: args.topic,
        batch_messages: args.batch_messages as usize,
        compression: args.compression,
        max_bytes_per_second: args.max_bytes_per_second,
        lock,
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
        // SIGTERM (systemd, Kubernetes) or SIGINT: stop copying, give back
        // what is held and release the route's lock for a standby.
        let (mut terminate, mut interrupt) = match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(terminate), Ok(interrupt)) => (terminate, interrupt),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("ferry-mirror: cannot handle signals: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        tokio::spawn(async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
            let _ = stop.send(true);
        });
        let progress = Arc::new(Progress::default());
        if let Some(addr) = metrics_listen {
            let labels = [
                ("source_cluster".to_owned(), route.source_cluster.clone()),
                ("topic".to_owned(), route.topic.clone()),
                ("destination_topic".to_owned(), route.destination_topic.clone()),
            ];
            let render = {
                let progress = Arc::clone(&progress);
                Arc::new(move || {
                    let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    progress.prometheus(&labels)
                })
            };
            match ferry_metrics::serve(addr, "ferry-mirror", render).await {
                Ok(bound) => tracing::info!(metrics = %format!("http://{bound}/metrics"), "serving metrics"),
                Err(e) => {
                    eprintln!("ferry-mirror: --metrics-listen {addr}: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            }
        }
        ferry_mirror::run_until_stopped(route, progress, stopped).await;
        std::process::ExitCode::SUCCESS
    })
}

/// `<host name>-<process id>`: unique among the instances of a route.
fn instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    format!("{}-{}", if host.is_empty() { "mirror" } else { host }, std::process::id())
}
