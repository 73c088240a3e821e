//! A cluster of real `ferryd` processes on loopback, formed from a static
//! peer list, for tests that kill, restart and replace nodes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ferry_client::{Client, LogRecord, Position};
use ferry_proto::v1 as api;
use ferry_proto::v1::cluster_client::ClusterClient;
use tempfile::TempDir;

use crate::Ferryd;

pub struct Cluster {
    dir: TempDir,
    /// Node id → process; ids start at 1.
    pub nodes: BTreeMap<u64, Ferryd>,
    addrs: BTreeMap<u64, String>,
    extra_args: Vec<String>,
}

/// A free loopback address for a node whose port must be known before it
/// starts (its peers are configured with it).
///
/// The port comes from below the kernel's ephemeral range (32768–60999 on
/// Linux): a port bound to 0 and let go can be handed straight back to any
/// outgoing connection on the machine — another node's client socket took one
/// between the check and `ferryd`'s bind, and the node failed with "address in
/// use". Below the range only an explicit bind takes a port, so a port checked
/// free stays free; a process-wide counter, started at an offset from the PID,
/// keeps concurrent tests and test binaries from choosing the same one.
pub fn free_addr() -> String {
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(613) % COUNT,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..COUNT {
        let port = FIRST + NEXT.fetch_add(1, Ordering::SeqCst) % COUNT;
        let addr = format!("127.0.0.1:{port}");
        if TcpListener::bind(&addr).is_ok() {
            return addr;
        }
    }
    panic!("no free loopback port in {FIRST}..{}", FIRST + COUNT);
}

impl Cluster {
    /// Starts `size` nodes that form one cluster.
    pub fn start(size: u64, extra_args: &[&str]) -> Cluster {
        let dir = TempDir::new().expect("temp dir");
        let addrs: BTreeMap<u64, String> = (1..=size).map(|id| (id, free_addr())).collect();
        let peers = addrs.iter().map(|(id, addr)| format!("{id}={addr}")).collect::<Vec<_>>().join(",");
        let mut cluster = Cluster {
            dir,
            nodes: BTreeMap::new(),
            addrs,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        };
        for id in 1..=size {
            let args = cluster.node_args(id, &["--peers", &peers]);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let node = Ferryd::start_at(&cluster.data_dir(id), &cluster.addrs[&id], &args);
            cluster.nodes.insert(id, node);
        }
        cluster
    }

    fn node_args(&self, id: u64, formation: &[&str]) -> Vec<String> {
        let mut args = vec!["--node-id".to_owned(), id.to_string()];
        args.extend(formation.iter().map(|s| s.to_string()));
        args.extend(self.extra_args.iter().cloned());
        args
    }

    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("node{id}"))
    }

    pub fn addr(&self, id: u64) -> &str {
        &self.addrs[&id]
    }

    /// Every node's address, comma-separated, for a client that follows the leader.
    pub fn addrs(&self) -> String {
        self.addrs.values().cloned().collect::<Vec<_>>().join(",")
    }

    /// Starts a brand-new node that asks the cluster to add it.
    pub fn join(&mut self, id: u64) {
        let addr = free_addr();
        let seed = self
            .nodes
            .iter()
            .filter(|(_, n)| n.is_running())
            .map(|(id, _)| self.addrs[id].clone())
            .collect::<Vec<_>>()
            .join(",");
        let args = self.node_args(id, &["--join", &seed]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let node = Ferryd::start_at(&self.data_dir(id), &addr, &args);
        self.addrs.insert(id, addr);
        self.nodes.insert(id, node);
    }

    pub fn kill9(&mut self, id: u64) {
        self.nodes.get_mut(&id).expect("node").kill9();
    }

    pub fn restart(&mut self, id: u64) {
        self.nodes.get_mut(&id).expect("node").restart();
    }

    /// Forgets a node: kills it and drops it from the address list.
    pub fn forget(&mut self, id: u64) {
        if let Some(mut node) = self.nodes.remove(&id) {
            node.kill9();
        }
        self.addrs.remove(&id);
    }

    /// The leader as the running nodes see it, waiting up to `within`.
    pub async fn leader(&self, within: Duration) -> u64 {
        let give_up = tokio::time::Instant::now() + within;
        loop {
            for (id, node) in &self.nodes {
                if !node.is_running() {
                    continue;
                }
                let Ok(client) = Client::connect_with(self.addr(*id), Duration::ZERO).await else { continue };
                if let Ok(status) = client.cluster_status().await {
                    let leader = status.leader_id.filter(|l| self.nodes.get(l).is_some_and(Ferryd::is_running));
                    if let Some(leader) = leader {
                        return leader;
                    }
                }
            }
            assert!(tokio::time::Instant::now() < give_up, "no leader within {within:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The node leading the group that holds `topic`'s `partition` (group
    /// 0's leader for a topic in group 0), as the running nodes see it,
    /// waiting up to `within`: the node to kill to take a partition's
    /// leader away.
    pub async fn partition_leader(&self, topic: &str, partition: u32, within: Duration) -> u64 {
        let give_up = tokio::time::Instant::now() + within;
        loop {
            let route = self.route(topic, partition).await;
            if route.as_ref().is_some_and(|route| route.group == 0) {
                return self.leader(give_up.saturating_duration_since(tokio::time::Instant::now())).await;
            }
            let leader = route.map(|route| route.leader_id);
            if let Some(leader) = leader.filter(|l| self.nodes.get(l).is_some_and(Ferryd::is_running)) {
                return leader;
            }
            assert!(tokio::time::Instant::now() < give_up, "no leader of {topic}/{partition} within {within:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The group holding `topic`'s `partition` (0: the topic is in group 0).
    pub async fn partition_group(&self, topic: &str, partition: u32) -> u32 {
        self.route(topic, partition).await.expect("a running node routes the partition").group
    }

    /// `topic`'s `partition` as the first running node that answers routes
    /// it (group 0, leader 0, for a topic in group 0).
    async fn route(&self, topic: &str, partition: u32) -> Option<api::PartitionRoute> {
        for (id, node) in &self.nodes {
            if !node.is_running() {
                continue;
            }
            let Ok(mut client) = ClusterClient::connect(format!("http://{}", self.addr(*id))).await else { continue };
            let request = api::RoutesRequest { topic: topic.to_owned() };
            let Ok(routes) = client.routes(request).await.map(tonic::Response::into_inner) else { continue };
            if routes.partitions.is_empty() {
                return Some(api::PartitionRoute { partition, ..Default::default() });
            }
            return routes.partitions.into_iter().find(|route| route.partition == partition);
        }
        None
    }

    /// A partition's full log as node `id` applied it.
    pub async fn read_log(&self, id: u64, topic: &str, partition: u32) -> Vec<LogRecord> {
        let client = Client::connect_with(self.addr(id), Duration::ZERO).await.expect("connect to node");
        let mut records = Vec::new();
        loop {
            let from = records.last().map_or(0, |r: &LogRecord| r.offset + 1);
            let (page, end) = client.read_log(topic, partition, from, 10_000).await.expect("read log");
            records.extend(page);
            if records.last().map_or(0, |r| r.offset + 1) >= end {
                return records;
            }
        }
    }

    /// Waits until every running node has applied `end_offset` messages of the partition.
    pub async fn wait_replicated(&self, topic: &str, partition: u32, end_offset: u64, within: Duration) {
        let give_up = tokio::time::Instant::now() + within;
        for (id, node) in &self.nodes {
            if !node.is_running() {
                continue;
            }
            loop {
                // A node just restarted may refuse connections for a moment:
                // that is "not yet", like a read error.
                let end = match Client::connect_with(self.addr(*id), Duration::ZERO).await {
                    Ok(client) => {
                        client.read_log(topic, partition, 0, 1).await.map(|(_, end)| end).map_err(|e| e.to_string())
                    }
                    Err(e) => Err(e.to_string()),
                };
                if end.as_ref().is_ok_and(|end| *end >= end_offset) {
                    break;
                }
                if tokio::time::Instant::now() >= give_up {
                    let tail = node.log_tail(4_000);
                    panic!("node {id} has {end:?} of {end_offset} messages; the tail of its log:\n{tail}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Checks that every running node holds the same log for partition 0 of
    /// `topic`, and that each confirmed publish sits at the position the
    /// server confirmed. Returns the common log.
    pub async fn assert_replicas_hold(&self, topic: &str, confirmed: &[(String, Position)]) -> Vec<LogRecord> {
        self.assert_partition_holds(topic, 0, confirmed).await
    }

    /// Checks that every running node holds the same log for `partition` of
    /// `topic`, with contiguous offsets, and that each publish confirmed in
    /// that partition sits at the position the server confirmed (confirmed
    /// publishes of other partitions are skipped). Returns the common log.
    pub async fn assert_partition_holds(
        &self,
        topic: &str,
        partition: u32,
        confirmed: &[(String, Position)],
    ) -> Vec<LogRecord> {
        let confirmed: Vec<&(String, Position)> = confirmed.iter().filter(|(_, p)| p.partition == partition).collect();
        let end = confirmed.iter().map(|(_, p)| p.offset + 1).max().unwrap_or(0);
        self.wait_replicated(topic, partition, end, Duration::from_secs(60)).await;
        let mut logs = Vec::new();
        for (id, node) in &self.nodes {
            if node.is_running() {
                logs.push((*id, self.read_log(*id, topic, partition).await));
            }
        }
        let (first_id, first) = &logs[0];
        for (id, log) in &logs[1..] {
            assert_eq!(
                log.len(),
                first.len(),
                "partition {partition}: node {id} and node {first_id} hold logs of different lengths"
            );
            if let Some(i) = (0..log.len()).find(|&i| log[i] != first[i]) {
                panic!(
                    "partition {partition}: node {id} and node {first_id} differ at offset {}: {:?} vs {:?}",
                    log[i].offset, log[i], first[i]
                );
            }
        }
        for (i, record) in first.iter().enumerate() {
            assert_eq!(record.offset, i as u64, "partition {partition}: offsets are contiguous");
        }
        for (value, position) in confirmed {
            let stored = first.get(position.offset as usize).map(|r| String::from_utf8_lossy(&r.message.data));
            assert_eq!(
                stored.as_deref(),
                Some(value.as_str()),
                "partition {partition}: confirmed publish missing at offset {}",
                position.offset
            );
        }
        first.clone()
    }

    /// `size` nodes formed with `data_groups` data groups, once every node
    /// hosts every group and knows its leader (so a topic can be created).
    pub async fn start_with_groups(size: u64, data_groups: u32) -> Cluster {
        let cluster = Cluster::start(size, &["--data-groups", &data_groups.to_string()]);
        let what = format!("every node hosts {} groups with a leader", data_groups + 1);
        crate::eventually(Duration::from_secs(30), &what, || async {
            for id in 1..=size {
                let leaders = cluster.group_leaders(id).await?;
                if leaders.len() != data_groups as usize + 1 || leaders.values().any(|leader| *leader == 0) {
                    return None;
                }
            }
            Some(())
        })
        .await;
        cluster
    }

    /// Group → leader as node `id` sees its groups (0: none known); `None`
    /// if it does not answer.
    pub async fn group_leaders(&self, id: u64) -> Option<BTreeMap<u32, u64>> {
        let mut client = ClusterClient::connect(format!("http://{}", self.addr(id))).await.ok()?;
        let status = client.node_status(api::NodeStatusRequest {}).await.ok()?.into_inner();
        Some(status.groups.into_iter().map(|g| (g.group, g.leader_id)).collect())
    }

    /// Partition batches the nodes forwarded to another node's group leader
    /// since they started; panics if one does not answer.
    pub async fn forwarded_publishes(&self) -> u64 {
        let mut forwarded = 0;
        for addr in self.addrs.values() {
            let mut client = ClusterClient::connect(format!("http://{addr}")).await.expect("connect to a node");
            let status = client.node_status(api::NodeStatusRequest {}).await.expect("node status").into_inner();
            forwarded += status.forwarded_publish_batches;
        }
        forwarded
    }

    /// A client of each node, in node order, that sends there first.
    pub async fn clients(&self) -> Vec<Client> {
        let mut clients = Vec::new();
        for addr in self.addrs.values() {
            clients.push(Client::connect(addr).await.expect("connect to a node"));
        }
        clients
    }

    /// Checks every partition on every running node (see
    /// [`Cluster::assert_partition_holds`]) and that the topic holds the
    /// confirmed messages and nothing else, each once if `stored` says so.
    /// Returns each partition's log as values.
    pub async fn assert_topic_holds(
        &self,
        topic: &str,
        partitions: u32,
        confirmed: &[(String, Position)],
        stored: Stored,
    ) -> Vec<Vec<String>> {
        let mut logs = Vec::new();
        for partition in 0..partitions {
            let log = self.assert_partition_holds(topic, partition, confirmed).await;
            logs.push(log.iter().map(|r| String::from_utf8_lossy(&r.message.data).into_owned()).collect::<Vec<_>>());
        }
        let all: Vec<&String> = logs.iter().flatten().collect();
        let distinct: BTreeSet<&String> = all.iter().copied().collect();
        if stored == Stored::ExactlyOnce {
            assert_eq!(all.len(), distinct.len(), "no message is stored twice");
        }
        let expected: BTreeSet<&String> = confirmed.iter().map(|(v, _)| v).collect();
        assert_eq!(distinct, expected, "the topic holds the confirmed messages and nothing else");
        logs
    }
}

/// What a topic may hold besides each confirmed message at its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Nothing else: no retry happened, or the producer was idempotent.
    ExactlyOnce,
    /// Copies of published messages too: a plain publish retried after a
    /// failure may have been stored by the failed try as well.
    AtLeastOnce,
}
