//! `ferry-jepsen`: run a fault-injection test against real `ferryd`
//! processes, or re-check a recorded history. Exits 0 (valid), 1 (invalid)
//! or 2 (unknown, including a run that could not be carried out).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};
use ferry_jepsen::checker::{self, CheckOptions, Report, Verdict};
use ferry_jepsen::cluster::net::{namespaces_available, Mode};
use ferry_jepsen::run::{report_dir, run, RunOptions};
use ferry_jepsen::{history, nemesis, report};

#[derive(Debug, Parser)]
#[command(name = "ferry-jepsen", version, about = "Break a Ferry cluster on purpose and check the history")]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Debug, Subcommand)]
enum Commands {
    /// Start a cluster, run the workload under faults, check, report.
    Run {
        /// Nodes in the cluster (3 or 5).
        #[arg(long, default_value_t = 3)]
        nodes: u32,
        /// `namespaces` (root: a network namespace per node, iptables),
        /// `loopback` (anyone: 127.231.x.y addresses, a fault-injecting proxy
        /// per node), or `auto`: namespaces when root has `ip` and `iptables`.
        #[arg(long, default_value = "auto", value_parser = ["auto", "namespaces", "loopback"])]
        network: String,
        /// Comma-separated nemesis names (see FAULTS.md), e.g. kill,partition.
        #[arg(long, default_value = "kill,partition")]
        nemesis: String,
        /// How long faults go on, e.g. 120s.
        #[arg(long, default_value = "60s")]
        time_limit: humantime::Duration,
        /// How long the final drain may go without progress (at most ten times this in all).
        #[arg(long, default_value = "60s")]
        drain_limit: humantime::Duration,
        /// Seed of every random choice (default: random).
        #[arg(long)]
        seed: Option<u64>,
        /// Where report folders go.
        #[arg(long, default_value = "jepsen-reports")]
        reports: PathBuf,
        /// The ferryd binary (default: next to this one, else built with cargo).
        #[arg(long)]
        ferryd: Option<PathBuf>,
        /// An extra ferryd argument (repeatable), e.g. the negative controls'
        /// `--unsafe-ack-before-commit`.
        #[arg(long = "ferryd-arg", allow_hyphen_values = true)]
        ferryd_args: Vec<String>,
    },
    /// Check a recorded history and write the report next to it.
    Check { history: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli) {
        Ok(report) => {
            println!("{}", report.verdict.as_str());
            ExitCode::from(report.verdict.exit_code() as u8)
        }
        Err(error) => {
            eprintln!("ferry-jepsen: {error:#}");
            println!("unknown");
            ExitCode::from(Verdict::Unknown.exit_code() as u8)
        }
    }
}

fn execute(cli: Cli) -> anyhow::Result<Report> {
    match cli.command {
        Commands::Run { nodes, network, nemesis, time_limit, drain_limit, seed, reports, ferryd, ferryd_args } => {
            anyhow::ensure!((1..=250).contains(&nodes), "--nodes must be 1 to 250, not {nodes}");
            let network = match network.as_str() {
                "namespaces" => {
                    anyhow::ensure!(
                        namespaces_available(),
                        "network namespaces need root with `ip` and `iptables` (apt-get install iptables iproute2)"
                    );
                    Mode::Namespaces
                }
                "loopback" => Mode::Loopback,
                _ if namespaces_available() => Mode::Namespaces,
                _ => Mode::Loopback,
            };
            let nemeses = nemesis::parse(&nemesis)?;
            let seed = seed.unwrap_or_else(rand::random);
            let ferryd = match ferryd {
                Some(path) => path,
                None => find_or_build_ferryd()?,
            };
            let options = RunOptions {
                network,
                ferryd,
                ferryd_args,
                nodes,
                nemeses,
                time_limit: time_limit.into(),
                drain_limit: drain_limit.into(),
                seed,
                dir: report_dir(&reports, seed),
            };
            eprintln!("ferry-jepsen: seed {seed}, report in {}", options.dir.display());
            let runtime = tokio::runtime::Runtime::new()?;
            let report = runtime.block_on(run(&options))?;
            print_summary(&report);
            Ok(report)
        }
        Commands::Check { history: path } => {
            let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
            let events = history::read(std::io::BufReader::new(file))?;
            let report = checker::check(&events, &CheckOptions::default());
            let dir = path.parent().unwrap_or(Path::new("."));
            report::write(dir, &events, &report)?;
            print_summary(&report);
            Ok(report)
        }
    }
}

fn print_summary(report: &Report) {
    let stats = &report.stats;
    eprintln!(
        "publishes ok {} / info {} / fail {}; values acknowledged {}; deliveries {}",
        stats.publishes.ok, stats.publishes.info, stats.publishes.fail, stats.values_acknowledged, stats.deliveries
    );
    for (kind, count) in report.anomaly_counts() {
        eprintln!("anomaly {kind}: {count}");
    }
    for reason in &report.unknown_reasons {
        eprintln!("unknown because: {reason}");
    }
}

/// `ferryd` next to this executable (cargo puts the workspace's binaries
/// together), else built with cargo from this workspace.
fn find_or_build_ferryd() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let beside = exe.with_file_name("ferryd");
    if beside.is_file() {
        return Ok(beside);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("the workspace directory")?;
    eprintln!("ferry-jepsen: building ferryd (release)");
    let status =
        Command::new("cargo").args(["build", "--release", "--bin", "ferryd"]).current_dir(workspace).status()?;
    anyhow::ensure!(status.success(), "building ferryd failed");
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace.join("target"), PathBuf::from);
    Ok(target.join("release").join("ferryd"))
}
