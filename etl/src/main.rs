//! `ferry-etl`: run a topic's hourly-bucket worker, or look at its output.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ferry_client::Client;
use ferry_etl::avro::Codec;
use ferry_etl::config::Config;
use ferry_etl::format::Format;
use ferry_etl::hour::Hour;
use ferry_etl::metrics::Metrics;
use ferry_etl::naming::{in_hour, STAGING_DIR};
use ferry_etl::progress::Progress;
use ferry_etl::store::Output;
use ferry_etl::{closer, verify, worker};
use tokio::signal::unix::{signal, SignalKind};

#[derive(Debug, Parser)]
#[command(name = "ferry-etl", version, about = "Ferry's hourly-bucket ETL")]
struct Cli {
    /// Ferry server(s), comma-separated.
    #[arg(long, env = "FERRY_SERVER", default_value = "127.0.0.1:7070", global = true)]
    server: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Consume a subscription into hourly buckets until SIGTERM or SIGINT.
    Run {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        subscription: String,
        /// `file:///dir`, `s3://bucket/prefix` or `gs://bucket/prefix`.
        #[arg(long)]
        output: String,
        /// What closed hours' parts are: avro, or jsonl (JSON Lines).
        #[arg(long, default_value = "avro", value_parser = parse_format)]
        format: Format,
        /// null, deflate or zstandard (for jsonl: none, gzip or zstd over the whole file).
        #[arg(long, default_value = "zstandard", value_parser = parse_codec)]
        codec: Codec,
        /// Longest a staging file stays open.
        #[arg(long, default_value = "10s")]
        file_age: humantime::Duration,
        /// How far past an hour's end the watermark must be before it closes.
        #[arg(long, default_value = "5m")]
        grace: humantime::Duration,
        /// How long an hour's staging files must have been quiet before it closes.
        #[arg(long, default_value = "30s")]
        quiet: humantime::Duration,
        /// Events later than this behind the oldest open hour are dead-lettered.
        #[arg(long, default_value = "1day")]
        late_limit: humantime::Duration,
        /// Where too-late events go (default `<topic>.etl-late`).
        #[arg(long)]
        dead_letter_topic: Option<String>,
        /// How often the closer checks the watermark.
        #[arg(long, default_value = "5s")]
        close_check: humantime::Duration,
        /// Memory (MiB) a close sorts an hour in; the rest spills to --scratch-dir.
        #[arg(long, default_value_t = 256)]
        close_memory_mib: usize,
        /// Where a close spills what its memory does not hold (default: the temp dir).
        #[arg(long)]
        scratch_dir: Option<std::path::PathBuf>,
        /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 0.0.0.0:9471).
        #[arg(long)]
        metrics_listen: Option<std::net::SocketAddr>,
    },
    /// Where a topic's hours stand: start, last closed, open hours.
    Status {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        output: String,
        /// Also show the subscription's watermark.
        #[arg(long)]
        subscription: Option<String>,
    },
    /// Recount a closed hour's files against its manifest (exit 1 if they differ).
    Verify {
        /// `YYYY-MM-DDTHH` or `dt=YYYY-MM-DD/hr=HH` (UTC).
        hour: Hour,
        #[arg(long)]
        topic: String,
        #[arg(long)]
        output: String,
    },
}

fn parse_format(name: &str) -> Result<Format, String> {
    Format::from_name(name).ok_or_else(|| format!("{name:?} is not a format: avro or jsonl"))
}

fn parse_codec(name: &str) -> Result<Codec, String> {
    Codec::from_name(name).ok_or_else(|| format!("{name:?} is not a codec: null, deflate or zstandard"))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ferry-etl: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("ferry-etl: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run {
            topic,
            subscription,
            output,
            format,
            codec,
            file_age,
            grace,
            quiet,
            late_limit,
            dead_letter_topic,
            close_check,
            close_memory_mib,
            scratch_dir,
            metrics_listen,
        } => {
            let mut config = Config::new(&topic, &subscription);
            config.format = format;
            config.codec = codec;
            config.file_age_max = file_age.into();
            config.grace = grace.into();
            config.quiet = quiet.into();
            config.late_limit = late_limit.into();
            config.close_check_every = close_check.into();
            config.close_memory_max = close_memory_mib.saturating_mul(1 << 20);
            if let Some(scratch_dir) = scratch_dir {
                config.scratch_dir = scratch_dir;
            }
            if let Some(dead_letter_topic) = dead_letter_topic {
                config.dead_letter_topic = dead_letter_topic;
            }
            let output = Output::open(&output, &[])?;
            let client = Client::connect(&cli.server).await?;
            let metrics = Arc::new(Metrics::default());
            if let Some(addr) = metrics_listen {
                let render = {
                    let (metrics, topic) = (metrics.clone(), topic.clone());
                    Arc::new(move || metrics.prometheus(&topic))
                };
                let bound = ferry_metrics::serve(addr, "ferry-etl", render)
                    .await
                    .with_context(|| format!("--metrics-listen {addr}"))?;
                tracing::info!(metrics = %format!("http://{bound}/metrics"), "serving metrics");
            }
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let mut terminate = signal(SignalKind::terminate())?;
            let mut interrupt = signal(SignalKind::interrupt())?;
            tokio::spawn(async move {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = interrupt.recv() => {}
                }
                tracing::info!("stopping: writing open files and acking them");
                let _ = stop.send(true);
            });
            tracing::info!(%topic, %subscription, output = output.url(), "ferry-etl running");
            let result = worker::run(client, output, config, metrics.clone(), stopped).await;
            eprint!("{}", metrics.prometheus(&topic));
            result?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { topic, output, subscription } => {
            let output = Output::open(&output, &[])?;
            let now = Hour::of(std::time::SystemTime::now());
            let progress = Progress::load(&output, &topic, now).await?;
            let show = |hour: Option<Hour>| hour.map_or("none".to_owned(), |h| h.to_string());
            println!("topic {topic}");
            println!("start hour: {}", show(progress.start()));
            println!("closed through: {}", show(progress.closed_through()));
            if let Some(open) = progress.oldest_open() {
                let mut hour = open;
                while hour <= now {
                    let staged = output.list(&in_hour(&topic, hour, STAGING_DIR)).await?;
                    if !staged.is_empty() {
                        let bytes: u64 = staged.iter().map(|f| f.size).sum();
                        println!("open {hour}: {} staging files, {bytes} bytes", staged.len());
                    }
                    hour = hour.next();
                }
            }
            if let Some(subscription) = subscription {
                let client = Client::connect(&cli.server).await?;
                let watermark = closer::watermark(&client, &subscription).await?;
                println!("watermark: {} ({subscription})", Hour::of_micros(watermark));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { hour, topic, output } => {
            let output = Output::open(&output, &[])?;
            let problems = verify::verify_hour(&output, &topic, hour).await?;
            if problems.is_empty() {
                let manifest = closer::read_manifest(&output, &topic, hour).await?.expect("verified, so present");
                println!(
                    "{topic} {hour}: ok, {} records in {} files ({} duplicates dropped, {} skewed)",
                    manifest.records,
                    manifest.files.len(),
                    manifest.duplicates_dropped,
                    manifest.skewed
                );
                return Ok(ExitCode::SUCCESS);
            }
            for problem in &problems {
                println!("{problem}");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}
