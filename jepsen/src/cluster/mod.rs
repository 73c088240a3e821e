//! The cluster under test: `ferryd` processes, each on its own address of
//! the [`net`]work with its own data dir and log, started, killed, paused and
//! resumed by the PIDs this harness got when it started them. For power-loss
//! and disk-full runs each data dir is a [`powerfs`] mount, so a node can
//! lose every write it did not fsync, or run out of space.

pub mod corrupt;
pub mod net;

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use ferry_client::Client;
use rand::rngs::StdRng;
use rand::Rng;

pub use net::{Mode, Network};

use crate::powerfs::{self, LossReport, Mounted};

#[derive(Debug)]
pub struct Node {
    pub id: u32,
    pub addr: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    paused: bool,
}

impl Node {
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }
}

#[derive(Debug)]
pub struct Cluster {
    ferryd: PathBuf,
    ferryd_args: Vec<String>,
    net: Network,
    nodes: Vec<Node>,
    /// Per node (in id order), its powerfs disk, when the run has them.
    disks: Vec<Mounted>,
    /// Per node, the file its clock offset is read from, when the run skews clocks.
    clocks: Vec<PathBuf>,
}

/// libfaketime, which shifts a process's wall clock by what a file says,
/// leaving its monotonic clock alone (timeouts and elections keep working).
const FAKETIME_LIBRARY: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// How a cluster is started.
#[derive(Debug, Clone)]
pub struct Setup {
    pub network: Mode,
    pub ferryd_args: Vec<String>,
    /// Data dirs on [`powerfs`] mounts (power loss, full disks).
    pub powerfs: bool,
    /// Wall clocks that can be skewed per node.
    pub clock_skew: bool,
}

impl Cluster {
    /// Builds the network and starts `count` nodes with data and logs under `dir`.
    pub fn start(ferryd: &Path, setup: &Setup, dir: &Path, count: u32, tag: u8) -> anyhow::Result<Self> {
        let net = Network::create(setup.network, tag, count)?;
        let nodes = (1..=count)
            .map(|id| Node {
                id,
                addr: net.node_addr(id),
                data_dir: dir.join(format!("n{id}")),
                log: dir.join(format!("n{id}.log")),
                child: None,
                paused: false,
            })
            .collect();
        let mut cluster = Self {
            ferryd: ferryd.to_owned(),
            ferryd_args: setup.ferryd_args.clone(),
            net,
            nodes,
            disks: Vec::new(),
            clocks: Vec::new(),
        };
        if setup.clock_skew {
            anyhow::ensure!(
                Path::new(FAKETIME_LIBRARY).is_file(),
                "clock skew needs libfaketime ({FAKETIME_LIBRARY}; apt-get install faketime)"
            );
            for node in &cluster.nodes {
                let file = dir.join(format!("n{}.clock", node.id));
                std::fs::write(&file, "+0")?;
                cluster.clocks.push(file);
            }
        }
        if setup.powerfs {
            powerfs::fuse_available()
                .map_err(|reason| anyhow::anyhow!("power-loss and disk-full need FUSE: {reason}"))?;
            for node in &cluster.nodes {
                let backing = dir.join(format!("n{}-disk", node.id));
                std::fs::create_dir_all(&backing)?;
                std::fs::create_dir_all(&node.data_dir)?;
                cluster.disks.push(powerfs::mount(&backing, &node.data_dir)?);
            }
        }
        for id in 1..=count {
            cluster.start_node(id)?;
        }
        Ok(cluster)
    }

    pub fn net(&self) -> &Network {
        &self.net
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn ids(&self) -> Vec<u32> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// Every node's client address, comma-separated, for `Client::connect`.
    pub fn addrs(&self) -> String {
        self.nodes.iter().map(|n| n.addr.as_str()).collect::<Vec<_>>().join(",")
    }

    fn node_mut(&mut self, id: u32) -> &mut Node {
        self.nodes.iter_mut().find(|n| n.id == id).expect("a node of this cluster")
    }

    /// Starts (or restarts) a node on its data dir; its output is appended to its log.
    pub fn start_node(&mut self, id: u32) -> anyhow::Result<()> {
        let peers: Vec<String> = self.nodes.iter().map(|n| format!("{}={}", n.id, n.addr)).collect();
        self.spawn(id, &["--peers".to_owned(), peers.join(",")])
    }

    /// Starts a node with an empty data dir that asks the node at `seed` to
    /// add it to the cluster.
    pub fn start_joining(&mut self, id: u32, seed: &str) -> anyhow::Result<()> {
        self.spawn(id, &["--join".to_owned(), seed.to_owned()])
    }

    fn spawn(&mut self, id: u32, formation: &[String]) -> anyhow::Result<()> {
        let mut program: Vec<OsString> = self.net.exec_prefix(id).into_iter().map(OsString::from).collect();
        program.push(self.ferryd.clone().into_os_string());
        let placement = self.net.ferryd_args(id);
        let extra = self.ferryd_args.clone();
        let clock = self.clocks.get((id - 1) as usize).cloned();
        let node = self.node_mut(id);
        if node.child.is_some() {
            return Ok(());
        }
        std::fs::create_dir_all(&node.data_dir)?;
        let log = append(&node.log)?;
        let mut command = Command::new(&program[0]);
        command
            .args(&program[1..])
            .args(["--node-id", &id.to_string()])
            .args(&placement)
            .args(formation)
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(&extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if let Some(clock) = clock {
            command
                .env("LD_PRELOAD", FAKETIME_LIBRARY)
                .env("FAKETIME_TIMESTAMP_FILE", clock)
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
                .env("FAKETIME_CACHE_DURATION", "1");
        }
        let child = command.spawn().with_context(|| format!("starting node {id}"))?;
        node.child = Some(child);
        node.paused = false;
        Ok(())
    }

    /// Shifts a node's wall clock by `seconds` (0 puts it right); `false` if
    /// the run does not skew clocks.
    pub fn skew_clock(&self, id: u32, seconds: i64) -> anyhow::Result<bool> {
        let Some(file) = self.clocks.get((id - 1) as usize) else { return Ok(false) };
        // Written whole and renamed, so libfaketime never reads half a value.
        let partial = file.with_extension("clock.partial");
        std::fs::write(&partial, format!("{seconds:+}"))?;
        std::fs::rename(&partial, file)?;
        Ok(true)
    }

    /// Flips bytes in one data file of a stopped node (see [`corrupt`]).
    pub fn corrupt(&mut self, id: u32, rng: &mut rand::rngs::StdRng) -> anyhow::Result<String> {
        let node = self.node_mut(id);
        anyhow::ensure!(node.child.is_none(), "node {id} is running");
        corrupt::flip_bytes(&node.data_dir, rng)
    }

    /// Empties a stopped node's data dir (it was removed from the cluster and
    /// will join again as a new member).
    pub fn wipe(&mut self, id: u32) -> anyhow::Result<()> {
        let node = self.node_mut(id);
        anyhow::ensure!(node.child.is_none(), "node {id} is running");
        // The dir itself may be a mount point, so empty it rather than remove it.
        for entry in std::fs::read_dir(&node.data_dir)? {
            let path = entry?.path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path)?;
            } else {
                std::fs::remove_file(&path)?;
            }
        }
        Ok(())
    }

    /// SIGKILLs a node (resuming it first if paused, so it dies at once).
    pub fn kill(&mut self, id: u32) -> anyhow::Result<()> {
        let node = self.node_mut(id);
        if let Some(mut child) = node.child.take() {
            child.kill().with_context(|| format!("killing node {id}"))?;
            child.wait()?;
        }
        node.paused = false;
        Ok(())
    }

    /// SIGSTOPs a running node.
    pub fn pause(&mut self, id: u32) -> anyhow::Result<bool> {
        let node = self.node_mut(id);
        let Some(child) = &node.child else { return Ok(false) };
        signal(child.id(), "STOP")?;
        node.paused = true;
        Ok(true)
    }

    pub fn resume(&mut self, id: u32) -> anyhow::Result<()> {
        let node = self.node_mut(id);
        if let (Some(child), true) = (&node.child, node.paused) {
            signal(child.id(), "CONT")?;
        }
        node.paused = false;
        Ok(())
    }

    /// Nodes whose process ended without the harness stopping it (a crash,
    /// or a refusal to start), with how it ended; they count as stopped.
    pub fn reap(&mut self) -> Vec<(u32, String)> {
        self.ids().into_iter().filter_map(|id| self.reap_node(id).map(|status| (id, status))).collect()
    }

    /// How the node's process ended, if it ended by itself (it then counts as stopped).
    pub fn reap_node(&mut self, id: u32) -> Option<String> {
        let node = self.node_mut(id);
        let status = node.child.as_mut().and_then(|child| child.try_wait().ok().flatten())?;
        node.child = None;
        node.paused = false;
        Some(status.to_string())
    }

    /// Cuts the power of `ids`: each is SIGKILLed, then loses every write it
    /// did not fsync. `None` if the run has no power-loss filesystems.
    /// The nodes stay down until started again.
    pub fn power_loss(&mut self, ids: &[u32]) -> anyhow::Result<Option<LossReport>> {
        if self.disks.is_empty() {
            return Ok(None);
        }
        for &id in ids {
            self.kill(id)?;
        }
        let mut lost = LossReport::default();
        for &id in ids {
            let report = self.disks[(id - 1) as usize].lose_unsynced();
            lost.files += report.files;
            lost.bytes += report.bytes;
            lost.paths.extend(report.paths);
        }
        Ok(Some(lost))
    }

    /// Fills a node's disk (`full`) or frees it; `false` if the run has no
    /// powerfs disks.
    pub fn fill_disk(&self, id: u32, full: bool) -> anyhow::Result<bool> {
        let Some(disk) = self.disks.get((id - 1) as usize) else { return Ok(false) };
        disk.set_disk_full(full);
        Ok(true)
    }

    /// Undoes every fault: network healed, disks freed, clocks put right, paused nodes
    /// resumed, stopped nodes started.
    pub fn heal(&mut self) -> anyhow::Result<()> {
        self.net.heal()?;
        for id in self.ids() {
            self.skew_clock(id, 0)?;
            self.fill_disk(id, false)?;
            self.resume(id)?;
            self.start_node(id)?;
        }
        Ok(())
    }

    /// Stops every node, unmounts their filesystems and removes the network.
    pub fn stop(&mut self) {
        for id in self.ids() {
            let _ = self.kill(id);
        }
        for disk in self.disks.drain(..) {
            if let Err(error) = disk.unmount() {
                eprintln!("ferry-jepsen: unmounting a node's filesystem: {error:#}");
            }
        }
        self.net.destroy();
    }

    /// Group 0's leader as some node reports it, asking each in turn.
    pub async fn leader(&self) -> Option<u32> {
        let leader = self.ask_any(|client| async move { client.cluster_status().await.ok()?.leader_id }).await?;
        u32::try_from(leader).ok()
    }

    /// The leader of one of `topic`'s partitions, picked at random, as some
    /// node reports it: what a fault aimed at "the leader" means for the
    /// data, whose partitions data groups spread over the nodes. Group 0's
    /// leader for a topic kept in group 0 (a cluster without data groups).
    pub async fn partition_leader(&self, topic: &str, rng: &mut StdRng) -> Option<u32> {
        // Drawn whatever the answer, so a seed's sequence does not depend on
        // whether a leader was known.
        let draw: usize = rng.gen();
        // A node that knows no partition's leader passes to the next.
        let leaders = self
            .ask_any(|client| async move {
                let leaders = client.partition_leaders(topic).await.ok()?;
                (leaders.is_empty() || leaders.iter().any(Option::is_some)).then_some(leaders)
            })
            .await?;
        if leaders.is_empty() {
            return self.leader().await;
        }
        let known: Vec<u32> = leaders.into_iter().flatten().filter_map(|id| u32::try_from(id).ok()).collect();
        known.get(draw % known.len().max(1)).copied()
    }

    /// The first answer `ask` gets from a running node, asking each in
    /// turn (a second to connect, a second to answer).
    async fn ask_any<T, F, Fut>(&self, ask: F) -> Option<T>
    where
        F: Fn(Client) -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        for node in &self.nodes {
            if !node.is_running() || node.is_paused() {
                continue;
            }
            let Ok(Ok(client)) =
                tokio::time::timeout(Duration::from_secs(1), Client::connect_with(&node.addr, Duration::ZERO)).await
            else {
                continue;
            };
            if let Ok(Some(answer)) = tokio::time::timeout(Duration::from_secs(1), ask(client)).await {
                return Some(answer);
            }
        }
        None
    }

    /// Waits until some node names a leader, up to `limit`.
    pub async fn await_leader(&self, limit: Duration) -> Option<u32> {
        let give_up = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < give_up {
            if let Some(leader) = self.leader().await {
                return Some(leader);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        None
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

fn append(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new().create(true).append(true).open(path).with_context(|| format!("opening {}", path.display()))
}

/// Sends a signal to a process this harness started, by its PID.
fn signal(pid: u32, name: &str) -> anyhow::Result<()> {
    let status = Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status()?;
    anyhow::ensure!(status.success(), "kill -{name} {pid} failed");
    Ok(())
}
