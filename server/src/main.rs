//! `ferryd`: the Ferry server daemon, a thin `main` over [`ferry_server::NodeBuilder`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, FromArgMatches, Parser};
use ferry_server::clock::ManualClock;
use ferry_server::config_file::{file_args, toml_line, Setting};
use ferry_server::domain::limits::{DATA_GROUPS_DEFAULT, DATA_GROUPS_MAX};
use ferry_server::node::Formation;
use ferry_server::raft::SyncMode;
use ferry_server::security::{Security, SecurityFiles};
use ferry_server::NodeBuilder;
use tokio::signal::unix::{signal, SignalKind};

// mimalloc rather than glibc's malloc: in a one-node drain (128 B, 4 groups)
// glibc's malloc and free were 13.4% of this process's CPU, mimalloc 6.9%, and
// ferryd's CPU per message fell about 6%. It serves Rust's allocations only:
// RocksDB's C++ still calls glibc's malloc (about 1% of the profile).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Ferry server: a Raft-replicated event queue node.
#[derive(Debug, Parser)]
#[command(name = "ferryd", version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("FERRY_GIT_COMMIT"), ")"), args_override_self = true)]
struct Args {
    /// A TOML file of settings, keyed by these flags' names with underscores
    /// (`outstanding_max = 5000`). A flag or its FERRY_* variable beats the
    /// file; unknown keys and bad values are errors.
    #[arg(long, env = "FERRY_CONFIG")]
    config: Option<PathBuf>,
    /// Print the settings in force (flags, environment, file and defaults
    /// merged) as TOML, and exit.
    #[arg(long)]
    print_config: bool,
    /// Where this node keeps its Raft log, state and snapshots.
    #[arg(long, env = "FERRY_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// HOST:PORT to serve gRPC on; port 0 picks a free port.
    #[arg(long, env = "FERRY_LISTEN", default_value = "127.0.0.1:7070")]
    listen: String,
    /// HOST:PORT others reach this node at, when it differs from --listen.
    #[arg(long, env = "FERRY_ADVERTISE")]
    advertise: Option<String>,
    /// Local IP that connections to peers leave from, on a host with several
    /// (default: the OS picks by route).
    #[arg(long, env = "FERRY_SOURCE_IP")]
    source_ip: Option<std::net::IpAddr>,
    /// This node's id in the cluster.
    #[arg(long, env = "FERRY_NODE_ID", default_value_t = 1)]
    node_id: u64,
    /// Every voter of a new cluster, this node included: `1=HOST:PORT,2=HOST:PORT,3=HOST:PORT`.
    /// A node whose data directory already belongs to a cluster rejoins it.
    #[arg(long, env = "FERRY_PEERS", value_parser = parse_peers, conflicts_with = "join")]
    peers: Option<BTreeMap<u64, String>>,
    /// HOST:PORT of a running cluster's node: this new node asks to be added
    /// (as a learner that catches up, then as a voter).
    #[arg(long, env = "FERRY_JOIN")]
    join: Option<String>,
    /// Start as a new one-node cluster from this backup (made by `ferry
    /// cluster backup`), into a new --data-dir; other new nodes then --join
    /// it. Remove the setting once restored: a later start refuses it.
    #[arg(long, env = "FERRY_RESTORE_FROM", conflicts_with_all = ["peers", "join"])]
    restore_from: Option<PathBuf>,
    /// Raft entries between snapshots; each snapshot lets the log before it be purged. A snapshot is also taken every 16 MiB of log, whatever the count.
    #[arg(long, env = "FERRY_SNAPSHOT_EVERY_ENTRIES", default_value_t = ferry_server::node::SNAPSHOT_EVERY_ENTRIES_DEFAULT)]
    snapshot_every_entries: u64,
    /// Messages leased (delivered and not yet acked) per subscription on
    /// each leader of a group holding its topic's partitions, at most; the
    /// rest of the backlog waits on disk.
    #[arg(long, env = "FERRY_OUTSTANDING_MAX", default_value_t = ferry_server::delivery::OUTSTANDING_MAX_DEFAULT as u64,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    outstanding_max: u64,
    /// Raft groups, besides group 0 (metadata), that hold the partitions of
    /// a cluster this node forms; fixed when the cluster forms (later values
    /// are ignored). Each group is a Raft instance on every node with a leader
    /// of its own. 0: group 0 holds everything, as clusters formed before
    /// data groups do.
    #[arg(long, env = "FERRY_DATA_GROUPS", default_value_t = DATA_GROUPS_DEFAULT,
          value_parser = clap::value_parser!(u32).range(0..=i64::from(DATA_GROUPS_MAX)))]
    data_groups: u32,
    /// How logs are written to stderr: `text` for people, `json` (one object
    /// a line) for log collectors. FERRY_LOG sets what is logged.
    #[arg(long, env = "FERRY_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Free bytes to keep on the data directory's filesystem: below them
    /// publishes and new topics and subscriptions fail RESOURCE_EXHAUSTED,
    /// while reads and acks go on, until space returns. At least 295 MB
    /// (two raft-log WAL files: RocksDB allocates each whole).
    #[arg(long, env = "FERRY_DISK_RESERVE_BYTES", default_value_t = ferry_server::storage::disk_space::DISK_RESERVE_BYTES_DEFAULT)]
    disk_reserve_bytes: u64,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 0.0.0.0:9470):
    /// Raft groups, partitions, subscription backlogs, storage, process,
    /// RPC latencies; and a status page of the cluster at http://ADDR/.
    #[arg(long, env = "FERRY_METRICS_LISTEN")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Serve TLS with this certificate (PEM, with its chain). It must name
    /// the host or IP this node advertises: peers check it.
    /// Needs --tls-key and --tls-ca.
    #[arg(long, env = "FERRY_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The TLS certificate's private key (PEM).
    #[arg(long, env = "FERRY_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// The CA (PEM) the nodes' certificates chain to: this node checks its
    /// peers against it when it calls them.
    #[arg(long, env = "FERRY_TLS_CA")]
    tls_ca: Option<PathBuf>,
    /// Client tokens and what each may do (TOML; see README): calls without
    /// a known token are refused. Needs --peer-token-file.
    #[arg(long, env = "FERRY_AUTH_FILE")]
    auth_file: Option<PathBuf>,
    /// A file holding the secret every node of the cluster presents to the
    /// others (and only they may call Raft and forwarded calls).
    #[arg(long, env = "FERRY_PEER_TOKEN_FILE")]
    peer_token_file: Option<PathBuf>,
    /// Listen in plaintext on an address that is not loopback (a private
    /// network); without it, such an address needs --tls-cert. Takes
    /// `true`/`false` (alone: true), as the config file's key does.
    #[arg(long, env = "FERRY_INSECURE_PLAINTEXT", num_args = 0..=1, default_missing_value = "true",
          value_parser = clap::value_parser!(bool), default_value_t = false)]
    insecure_plaintext: bool,
    /// TESTING ONLY: report log appends durable without fsync. Loses
    /// acknowledged data on power loss; exists to prove the fault harness sees it.
    #[arg(long, hide = true)]
    unsafe_skip_fsync: bool,
    /// TESTING ONLY: answer publishes as soon as they are handed to Raft,
    /// before a quorum has them. Loses acknowledged data when a leader dies;
    /// exists to prove the fault harness sees it.
    #[arg(long, hide = true)]
    unsafe_ack_before_commit: bool,
    /// TESTING ONLY: run on a clock that moves only through the Testing
    /// service's AdvanceClock, so tests can skip days of retention in a second.
    #[arg(long, hide = true)]
    unsafe_manual_clock: bool,
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferryd: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => logs.init(),
        // One JSON object a line, with the span it happened in (`span`) and
        // every span around it (`spans`, outermost first): a handler's own
        // span sits inside its call's `rpc` span, which names the method
        // and the peer.
        LogFormat::Json => logs.json().with_current_span(true).with_span_list(true).init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ferryd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferryd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    tracing::info!(version = ferry_server::VERSION, commit = ferry_server::GIT_COMMIT, "ferryd starting");
    let formation = match (args.peers, args.join) {
        (Some(peers), _) => Formation::Peers(peers),
        (None, Some(seed)) => Formation::Join(seed),
        (None, None) => Formation::Alone,
    };
    let mut builder = NodeBuilder::new(&args.data_dir)
        .listen(&args.listen)
        .node_id(args.node_id)
        .formation(formation)
        .snapshot_every_entries(args.snapshot_every_entries)
        .outstanding_max(args.outstanding_max as usize)
        .data_groups(args.data_groups)
        .disk_reserve_bytes(args.disk_reserve_bytes);
    let security = Security::load(&SecurityFiles {
        tls_cert: args.tls_cert.as_deref(),
        tls_key: args.tls_key.as_deref(),
        tls_ca: args.tls_ca.as_deref(),
        auth_file: args.auth_file.as_deref(),
        peer_token_file: args.peer_token_file.as_deref(),
        insecure_plaintext: args.insecure_plaintext,
    })
    .map_err(anyhow::Error::msg)?;
    builder = builder.security(security);
    if let Some(backup) = &args.restore_from {
        builder = builder.restore_from(backup);
    }
    if let Some(advertise) = &args.advertise {
        builder = builder.advertise(advertise);
    }
    if let Some(addr) = args.metrics_listen {
        builder = builder.metrics_listen(addr);
    }
    if let Some(ip) = args.source_ip {
        builder = builder.source_ip(ip);
    }
    if args.unsafe_manual_clock {
        tracing::warn!("--unsafe-manual-clock: time moves only when a test says so");
        builder = builder.manual_clock(Arc::new(ManualClock::default()));
    }
    if args.unsafe_skip_fsync {
        tracing::warn!("--unsafe-skip-fsync: acknowledged writes can be lost on power failure");
        builder = builder.sync_mode(SyncMode::Skip);
    }
    if args.unsafe_ack_before_commit {
        tracing::warn!("--unsafe-ack-before-commit: acknowledged publishes can be lost when a leader dies");
        builder = builder.ack_before_commit(true);
    }
    let node = builder.start().await?;
    // One machine-readable line, so scripts and tests can find a port-0 address.
    println!("ferryd listening on {}", node.local_addr());

    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let failure = tokio::select! {
        _ = terminate.recv() => None,
        _ = interrupt.recv() => None,
        reason = node.failed() => Some(reason),
    };
    match failure {
        None => {
            tracing::info!("shutting down");
            tokio::select! {
                stopped = node.shutdown() => stopped?,
                // A second signal: stop now, as a crash would (nothing
                // acknowledged is lost; the log is replayed on start).
                _ = terminate.recv() => anyhow::bail!("stopped at once by a second signal"),
                _ = interrupt.recv() => anyhow::bail!("stopped at once by a second signal"),
            }
            Ok(())
        }
        Some(reason) => {
            let _ = node.shutdown().await;
            anyhow::bail!("node failed: {reason}")
        }
    }
}

/// The command line merged with the `--config` file's settings, each
/// checked by its flag's parser; `None` once `--print-config` has printed
/// them. `--help`, `--version` and command-line errors exit here, as clap
/// does.
fn parse_args() -> Result<Option<Args>, String> {
    let command = Args::command();
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let matches = command.clone().try_get_matches_from(&argv).unwrap_or_else(|e| e.exit());
    let settings: Vec<Setting> = command
        .get_arguments()
        .filter(|arg| {
            !arg.is_hide_set() && !["config", "print_config", "help", "version"].contains(&arg.get_id().as_str())
        })
        .filter_map(|arg| {
            let flag = arg.get_long()?.to_owned();
            let env = arg.get_env().map(|env| env.to_string_lossy().into_owned());
            Some(Setting { key: arg.get_id().as_str().to_owned(), flag, env })
        })
        .collect();
    let mut merged = vec![argv[0].clone()];
    if let Some(path) = matches.get_one::<PathBuf>("config") {
        for (key, words) in file_args(path, &settings).map_err(|e| e.to_string())? {
            // A key whose setting conflicts with one given on the command
            // line or in the environment (`peers` against `--join`) gives way.
            let overridden = command.get_arguments().find(|a| a.get_id().as_str() == key).is_some_and(|arg| {
                command.get_arg_conflicts_with(arg).iter().any(|other| {
                    use clap::parser::ValueSource::{CommandLine, EnvVariable};
                    matches!(matches.value_source(other.get_id().as_str()), Some(CommandLine | EnvVariable))
                })
            });
            if overridden {
                continue;
            }
            // Checked alone, so the error names the key rather than a flag.
            let alone = [argv[0].clone(), words[0].clone().into(), words[1].clone().into()];
            if let Err(e) = command.clone().try_get_matches_from(alone) {
                let problem = e.to_string();
                let problem = problem.lines().next().unwrap_or_default().trim_start_matches("error: ");
                return Err(format!("config file {}: key {key:?}: {problem}", path.display()));
            }
            merged.extend(words.map(Into::into));
        }
    }
    // The command line last: a flag given there beats the file's.
    merged.extend(argv[1..].iter().cloned());
    let matches = command.clone().try_get_matches_from(&merged).unwrap_or_else(|e| e.exit());
    let args = Args::from_arg_matches(&matches).map_err(|e| e.to_string())?;
    if args.print_config {
        for setting in &settings {
            match matches.get_raw(&setting.key).and_then(|mut values| values.next()) {
                Some(value) => println!("{}", toml_line(&setting.key, &value.to_string_lossy())),
                None => println!("# {} is not set", setting.key),
            }
        }
        return Ok(None);
    }
    Ok(Some(args))
}

/// Parses `1=host:port,2=host:port`.
fn parse_peers(text: &str) -> Result<BTreeMap<u64, String>, String> {
    let mut peers = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, addr) = entry.split_once('=').ok_or_else(|| format!("{entry:?} is not ID=HOST:PORT"))?;
        let id: u64 = id.trim().parse().map_err(|_| format!("{id:?} in {entry:?} is not a node id"))?;
        if id == 0 {
            return Err(format!("{entry:?}: node ids start at 1"));
        }
        if !addr.contains(':') {
            return Err(format!("{addr:?} in {entry:?} is not HOST:PORT"));
        }
        if peers.insert(id, addr.trim().to_owned()).is_some() {
            return Err(format!("node {id} is listed twice"));
        }
    }
    if peers.is_empty() {
        return Err("no peers given".into());
    }
    Ok(peers)
}
