//! One run: cluster up, workload and nemesis for the time limit, heal,
//! drain, read every replica's log, check, write the report.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ferry_client::{Client, Code, Error, SubscriptionSettings, TopicSettings};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::checker::{self, CheckOptions, Report};
use crate::cluster::{Cluster, Mode, Setup};
use crate::history::{self, Fault, FaultStatus, Op, Phase, PhaseName, ReplicaLog, Run, SubscriptionInfo, TopicInfo};
use crate::recorder::Recorder;
use crate::workload::{reader, writer, ReaderConfig, ReaderControl, Tracker, WriterConfig};
use crate::{nemesis, report};

const TOPIC: &str = "jepsen";
const PARTITIONS: u32 = 2;
const SUBSCRIPTIONS: &[&str] = &["jepsen-a", "jepsen-b"];
/// A subscription no one reads: messages acked by every subscription are
/// reclaimed early, and this one keeps them all on every replica for the
/// final comparison.
const KEEPER: &str = "jepsen-keep";
const WRITERS: usize = 4;
const READERS_PER_SUBSCRIPTION: usize = 2;

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub network: Mode,
    pub ferryd: PathBuf,
    /// Extra `ferryd` arguments (the negative controls' unsafe flags).
    pub ferryd_args: Vec<String>,
    pub nodes: u32,
    pub nemeses: Vec<String>,
    pub time_limit: Duration,
    /// How long the final drain may go without progress (and ten times
    /// that in all).
    pub drain_limit: Duration,
    pub seed: u64,
    /// The report folder; created.
    pub dir: PathBuf,
}

/// Runs the test and returns the checker's report (also written to `dir`).
pub async fn run(options: &RunOptions) -> anyhow::Result<Report> {
    std::fs::create_dir_all(&options.dir)?;
    let history_path = options.dir.join("history.jsonl");
    let recorder = Arc::new(Recorder::create(&history_path)?);
    let mut rng = StdRng::seed_from_u64(options.seed);
    recorder.note(Op::Run(Run {
        nodes: options.nodes,
        network: options.network.as_str().into(),
        nemeses: options.nemeses.clone(),
        seed: options.seed,
        topics: vec![TopicInfo { name: TOPIC.into(), partitions: PARTITIONS }],
        subscriptions: SUBSCRIPTIONS
            .iter()
            .map(|s| SubscriptionInfo { name: (*s).into(), topic: TOPIC.into() })
            .collect(),
    }));

    let tag = (std::process::id() % 250) as u8;
    let setup = Setup {
        network: options.network,
        ferryd_args: options.ferryd_args.clone(),
        powerfs: nemesis::needs_powerfs(&options.nemeses),
        clock_skew: options.nemeses.iter().any(|n| n == "skew"),
    };
    let mut cluster = Cluster::start(&options.ferryd, &setup, &options.dir, options.nodes, tag)?;
    cluster.await_leader(Duration::from_secs(30)).await.context("the cluster elected no leader")?;
    let client = Client::connect(&cluster.addrs()).await?;
    prepare(&client).await?;

    let workload = Workload::start(&client, &recorder, &mut rng);
    faults(&mut cluster, &recorder, &mut rng, options).await;
    let complete = heal_and_drain(&mut cluster, &client, &recorder, &workload, options.drain_limit).await?;
    workload.stop().await;
    recorder.note(Op::Phase(Phase { name: PhaseName::Drained, complete: Some(complete) }));

    read_replicas(&cluster, &client, &recorder).await;
    cluster.stop();
    drop(recorder);

    let events = history::read(std::io::BufReader::new(std::fs::File::open(&history_path)?))?;
    let report = checker::check(&events, &CheckOptions::default());
    report::write(&options.dir, &events, &report)?;
    Ok(report)
}

/// The writers and readers, running.
struct Workload {
    tracker: Arc<Tracker>,
    writers_stop: Arc<AtomicBool>,
    readers: Arc<ReaderControl>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Workload {
    fn start(client: &Client, recorder: &Arc<Recorder>, rng: &mut StdRng) -> Self {
        let subscriptions: Vec<String> = SUBSCRIPTIONS.iter().map(|s| (*s).to_owned()).collect();
        let tracker = Arc::new(Tracker::new(&subscriptions));
        let writers_stop = Arc::new(AtomicBool::new(false));
        let readers = Arc::new(ReaderControl::default());
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let config = WriterConfig {
                topic: TOPIC.into(),
                batch: 1 + w % 3,
                idempotent: w % 2 == 0,
                ordering_key: (w % 4 == 3).then(|| format!("key-{w}")),
                pause: Duration::from_millis(20),
            };
            let (client, recorder, tracker, stop) =
                (client.clone(), recorder.clone(), tracker.clone(), writers_stop.clone());
            tasks.push(tokio::spawn(writer::run(client, recorder, tracker, config, stop)));
        }
        for subscription in &subscriptions {
            for _ in 0..READERS_PER_SUBSCRIPTION {
                let config = ReaderConfig { subscription: subscription.clone(), seed: rng.gen() };
                let (client, recorder, tracker, control) =
                    (client.clone(), recorder.clone(), tracker.clone(), readers.clone());
                tasks.push(tokio::spawn(reader::run(client, recorder, tracker, config, control)));
            }
        }
        Self { tracker, writers_stop, readers, tasks }
    }

    /// Stops the readers and waits for every task (each within one operation).
    async fn stop(self) {
        self.writers_stop.store(true, Ordering::Relaxed);
        self.readers.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
    }
}

/// Faults until the time limit, every requested kind in turn (shuffled per
/// round), so a short run still fires each of them.
async fn faults(cluster: &mut Cluster, recorder: &Recorder, rng: &mut StdRng, options: &RunOptions) {
    let until = Instant::now() + options.time_limit;
    let mut round: Vec<String> = Vec::new();
    let budget = options.time_limit / options.nemeses.len().max(1) as u32;
    while !options.nemeses.is_empty() && Instant::now() < until {
        let (hold, rest) = nemesis::durations(rng, budget);
        sleep_until_or(until, rest).await;
        if Instant::now() >= until {
            break;
        }
        if round.is_empty() {
            round = options.nemeses.clone();
            round.shuffle(rng);
        }
        let name = round.pop().expect("a round holds every requested nemesis");
        let active = nemesis::install(cluster, recorder, rng, &name, TOPIC).await;
        sleep_until_or(until, hold).await;
        record_crashes(cluster, recorder);
        nemesis::heal(cluster, recorder, active).await;
    }
    tokio::time::sleep_until(until).await;
}

/// A drain that keeps making progress may take this many drain limits.
const DRAIN_CAP_FACTOR: u32 = 10;

/// Stops the writers, heals everything, and lets the readers (now acking
/// all) drain. True when every acknowledged value was delivered everywhere,
/// or the cluster has nothing left to deliver (then what is missing is lost).
async fn heal_and_drain(
    cluster: &mut Cluster,
    client: &Client,
    recorder: &Recorder,
    workload: &Workload,
    drain_limit: Duration,
) -> anyhow::Result<bool> {
    workload.writers_stop.store(true, Ordering::Relaxed);
    recorder.note(Op::Phase(Phase { name: PhaseName::Heal, complete: None }));
    record_crashes(cluster, recorder);
    cluster.heal()?;
    let healed = cluster.await_leader(Duration::from_secs(30)).await.is_some();
    recorder.note(Op::Phase(Phase { name: PhaseName::Healed, complete: Some(healed) }));
    workload.readers.settle_all.store(true, Ordering::Relaxed);
    // A backlog of ordering-key messages drains one message per key per
    // round trip, so a long one takes a while: the drain goes on as long as
    // it makes progress, up to a hard cap.
    let give_up = Instant::now() + drain_limit * DRAIN_CAP_FACTOR;
    let mut stalled_since = Instant::now();
    let mut least_unseen = usize::MAX;
    // Writers finish their last operation first.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut empty_checks = 0;
    loop {
        let unseen = workload.tracker.unseen();
        if unseen == 0 {
            return Ok(true);
        }
        if unseen < least_unseen {
            (least_unseen, stalled_since) = (unseen, Instant::now());
        }
        empty_checks = if backlogs_empty(client).await { empty_checks + 1 } else { 0 };
        if empty_checks >= 3 {
            return Ok(true);
        }
        if stalled_since.elapsed() >= drain_limit || Instant::now() >= give_up {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Records nodes that died on their own as `crashed` events (no nemesis of
/// that name exists, so they inform the report without deciding the verdict).
fn record_crashes(cluster: &mut Cluster, recorder: &Recorder) {
    for (node, status) in cluster.reap() {
        eprintln!("ferry-jepsen: node {node} ended by itself ({status}); see its log");
        recorder.note(Op::Fault(Fault {
            name: "crashed".into(),
            nodes: vec![u64::from(node)],
            status: FaultStatus::Unknown,
            detail: format!("the process ended by itself: {status}"),
        }));
    }
}

/// Whether every subscription under test has nothing unacked left — or is
/// gone altogether (a cluster that lost it has nothing left to deliver).
async fn backlogs_empty(client: &Client) -> bool {
    for subscription in SUBSCRIPTIONS {
        match client.get_subscription(subscription).await {
            Ok(found) if found.backlog.as_ref().is_some_and(|b| b.unacked_messages == 0) => {}
            Err(Error::Status { code: Code::NotFound, .. }) => {}
            _ => return false,
        }
    }
    true
}

async fn sleep_until_or(until: Instant, duration: Duration) {
    tokio::time::sleep_until(until.min(Instant::now() + duration)).await;
}

/// Creates the topic and subscriptions, tolerating a retry of a create that
/// had in fact happened.
async fn prepare(client: &Client) -> anyhow::Result<()> {
    let settings = TopicSettings { partitions: PARTITIONS, ..TopicSettings::default() };
    exists_ok(client.create_topic(TOPIC, settings).await.map(drop))?;
    for subscription in SUBSCRIPTIONS.iter().chain([&KEEPER]) {
        let settings =
            SubscriptionSettings { ack_deadline: Duration::from_secs(10), ..SubscriptionSettings::default() };
        exists_ok(client.create_subscription(subscription, TOPIC, settings).await.map(drop))?;
    }
    Ok(())
}

fn exists_ok(result: ferry_client::Result<()>) -> anyhow::Result<()> {
    match result {
        Err(Error::Status { code: Code::AlreadyExists, .. }) | Ok(()) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Reads every node's committed log of every partition, once the nodes agree
/// on where each partition ends (or after a while, as they are).
async fn read_replicas(cluster: &Cluster, client: &Client, recorder: &Recorder) {
    let give_up = Instant::now() + Duration::from_secs(30);
    // Only members must hold the log: a node whose removal's outcome was
    // unknown may have been left outside the cluster.
    let members: Vec<u32> = match client.cluster_status().await {
        Ok(status) => status.members.iter().filter_map(|m| u32::try_from(m.node_id).ok()).collect(),
        Err(_) => cluster.ids(),
    };
    let nodes: Vec<_> = cluster.nodes().iter().filter(|n| members.contains(&n.id)).collect();
    loop {
        let mut logs = Vec::new();
        for node in &nodes {
            for partition in 0..PARTITIONS {
                match read_log(&node.addr, partition).await {
                    Ok((start_offset, entries)) => logs.push(ReplicaLog {
                        node: u64::from(node.id),
                        topic: TOPIC.into(),
                        partition,
                        start_offset,
                        entries,
                    }),
                    Err(error) => eprintln!("ferry-jepsen: reading node {}'s log: {error:#}", node.id),
                }
            }
        }
        let ends = |p: u32| {
            logs.iter()
                .filter(|l| l.partition == p)
                .map(|l| l.entries.last().map(|e| e.0))
                .collect::<std::collections::BTreeSet<_>>()
        };
        let agreed =
            logs.len() == cluster.nodes().len() * PARTITIONS as usize && (0..PARTITIONS).all(|p| ends(p).len() == 1);
        if agreed || Instant::now() >= give_up {
            for log in logs {
                recorder.note(Op::ReplicaLog(log));
            }
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One node's whole log of a partition: its first offset and `(offset, value)` pairs.
async fn read_log(addr: &str, partition: u32) -> anyhow::Result<(u64, Vec<(u64, String)>)> {
    let client = Client::connect_with(addr, Duration::from_secs(5)).await?;
    let mut entries = Vec::new();
    let mut from = 0;
    let mut start = None;
    loop {
        let (records, end) = match client.read_log(TOPIC, partition, from, 1000).await {
            Ok(page) => page,
            // A node that lost the topic altogether holds none of its
            // messages: an empty log from offset 0, for the checker to judge.
            Err(Error::Status { code: Code::NotFound, .. }) if from == 0 => return Ok((0, Vec::new())),
            Err(error) => return Err(error.into()),
        };
        let Some(last) = records.last() else {
            // Nothing (left) to read: the log starts where it ends.
            start.get_or_insert(end);
            break;
        };
        from = last.offset + 1;
        start.get_or_insert(records[0].offset);
        entries.extend(records.into_iter().map(|r| (r.offset, String::from_utf8_lossy(&r.message.data).into_owned())));
        if from >= end {
            break;
        }
    }
    Ok((start.unwrap_or(from), entries))
}

/// The run's report folder under `root`: `<root>/<unix time>-<seed>`.
pub fn report_dir(root: &Path, seed: u64) -> PathBuf {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    root.join(format!("{now}-{seed}"))
}
