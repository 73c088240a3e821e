//! `ferry-mirror`: runs a route per matching source topic until interrupted.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use ferry_client::ClientOptions;
use ferry_mirror::topics::{self, RouteProgress, RouteTemplate, TopicFilter};
use tokio::signal::unix::{signal, SignalKind};

/// Copies topics from a source Ferry cluster into a destination cluster:
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
    /// A file holding the token to present to the source cluster (it needs
    /// subscribe and admin on the topics, to make the route's subscription).
    #[arg(long, env = "FERRY_MIRROR_SOURCE_TOKEN_FILE")]
    source_token_file: Option<PathBuf>,
    /// Speak TLS to the source, checking it against this CA (PEM).
    #[arg(long, env = "FERRY_MIRROR_SOURCE_TLS_CA")]
    source_tls_ca: Option<PathBuf>,
    /// A file holding the token to present to the destination (publish on
    /// the topics; admin too with --create-destination-topics).
    #[arg(long, env = "FERRY_MIRROR_DESTINATION_TOKEN_FILE")]
    destination_token_file: Option<PathBuf>,
    /// Speak TLS to the destination, checking it against this CA (PEM).
    #[arg(long, env = "FERRY_MIRROR_DESTINATION_TLS_CA")]
    destination_tls_ca: Option<PathBuf>,
    /// The source cluster's name, recorded as `ferry.origin.cluster`.
    #[arg(long)]
    source_cluster: String,
    /// The destination cluster's name: messages that came from it are not
    /// copied back (two clusters may mirror each other).
    #[arg(long)]
    destination_cluster: String,
    /// A topic to copy, or a pattern of them (`*` any run of characters, `?`
    /// one: `events.*`); repeat for more. Topics created later that match
    /// are picked up at the next listing. Each topic is a route of its own.
    #[arg(long = "topic", required = true)]
    topics: Vec<String>,
    /// How often the active instance compares, for each closed hour of each
    /// source partition, the source's message count with what the
    /// destination stored (mismatches are logged and in the metrics).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    gap_check_seconds: u64,
    /// How often the source's topics are listed for new matches.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    topics_refresh_seconds: u64,
    /// The destination topic, for a single `--topic` name (default: the
    /// same name). It must exist with as many partitions as the source
    /// topic, unless `--create-destination-topics`.
    #[arg(long)]
    destination_topic: Option<String>,
    /// Create a missing destination topic with the source topic's settings.
    #[arg(long)]
    create_destination_topics: bool,
    /// The route's subscription on the source, for a single `--topic` name
    /// (default: `ferry-mirror.<destination cluster>.<topic>`). Created on
    /// first use, at the oldest message the source holds; the route's
    /// instances must be its only consumers.
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

/// How the mirror reaches one side: its token (read from a file, so it is
/// not on the command line) and TLS CA.
fn client_options(token_file: Option<&Path>, tls_ca: Option<&Path>, side: &str) -> Result<ClientOptions, String> {
    let token = match token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("--{side}-token-file {}: {e}", path.display()))?
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    ClientOptions { token, ..ClientOptions::default() }.tls_ca_file(tls_ca).map_err(|e| format!("--{side}-tls-ca: {e}"))
}

fn main() -> std::process::ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let args = Args::parse();
    for (flag, name) in
        [("--source-cluster", &args.source_cluster), ("--destination-cluster", &args.destination_cluster)]
    {
        if let Err(problem) = check_cluster_name(flag, name) {
            eprintln!("ferry-mirror: {problem}");
            return std::process::ExitCode::from(2);
        }
    }
    let filter = TopicFilter::new(args.topics);
    if filter.single_name().is_none() && (args.destination_topic.is_some() || args.subscription.is_some()) {
        eprintln!("ferry-mirror: --destination-topic and --subscription need a single --topic name, not a pattern");
        return std::process::ExitCode::from(2);
    }
    let (metrics_listen, topics_refresh_seconds) = (args.metrics_listen, args.topics_refresh_seconds);
    let sides =
        client_options(args.source_token_file.as_deref(), args.source_tls_ca.as_deref(), "source").and_then(|source| {
            let destination = client_options(
                args.destination_token_file.as_deref(),
                args.destination_tls_ca.as_deref(),
                "destination",
            )?;
            Ok((source, destination))
        });
    let (source_options, destination_options) = match sides {
        Ok(sides) => sides,
        Err(problem) => {
            eprintln!("ferry-mirror: {problem}");
            return std::process::ExitCode::from(2);
        }
    };
    let template = RouteTemplate {
        source: args.source,
        destination: args.destination,
        source_options,
        destination_options,
        source_cluster: args.source_cluster,
        destination_cluster: args.destination_cluster,
        destination_topic: args.destination_topic,
        subscription: args.subscription,
        batch_messages: args.batch_messages as usize,
        compression: args.compression,
        max_bytes_per_second: args.max_bytes_per_second,
        create_destination_topics: args.create_destination_topics,
        holder: args.instance.unwrap_or_else(instance_id),
        lock_ttl: Duration::from_secs(args.lock_seconds),
        gap_check_every: Duration::from_secs(args.gap_check_seconds),
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
        let running = RouteProgress::default();
        if let Some(addr) = metrics_listen {
            let render = {
                let running = Arc::clone(&running);
                Arc::new(move || topics::prometheus(&running))
            };
            match ferry_metrics::serve(addr, "ferry-mirror", render).await {
                Ok(bound) => tracing::info!(metrics = %format!("http://{bound}/metrics"), "serving metrics"),
                Err(e) => {
                    eprintln!("ferry-mirror: --metrics-listen {addr}: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            }
        }
        let refresh = Duration::from_secs(topics_refresh_seconds);
        topics::run_routes(template, filter, refresh, running, stopped).await;
        std::process::ExitCode::SUCCESS
    })
}

/// `<host name>-<process id>-<random>`: unique among the instances of a
/// route, even in containers that share a host name and run as PID 1.
fn instance_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    // A randomly keyed hasher's output: random enough for an id.
    let random = std::collections::hash_map::RandomState::new().build_hasher().finish() as u32;
    format!("{}-{}-{random:08x}", if host.is_empty() { "mirror" } else { host }, std::process::id())
}

/// Cluster names travel in attributes and lock names: `[A-Za-z0-9._-]`.
fn check_cluster_name(flag: &str, name: &str) -> Result<(), String> {
    let bad = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')));
    match (name.is_empty(), bad) {
        (true, _) => Err(format!("{flag} must not be empty")),
        (_, Some(c)) => Err(format!("{flag} {name:?}: character {c:?} is not allowed; use [A-Za-z0-9._-]")),
        _ => Ok(()),
    }
}
