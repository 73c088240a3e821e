//! A running Ferry node: storage, Raft and the gRPC server, started with a
//! [`NodeBuilder`] and stopped with [`Node::shutdown`].
//!
//! This is the embeddable server: `ferryd` is a thin `main` over it, and tests
//! can run nodes in-process.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ferry_metrics::Routes;
use ferry_proto::internal::groups_server::GroupsServer;
use ferry_proto::internal::raft_server::RaftServer;
use ferry_proto::internal::testing_server::TestingServer;
use ferry_proto::pubsub::publisher_server::PublisherServer as PubsubPublisherServer;
use ferry_proto::pubsub::subscriber_server::SubscriberServer as PubsubSubscriberServer;
use ferry_proto::v1::cluster_server::ClusterServer;
use ferry_proto::v1::locks_server::LocksServer;
use ferry_proto::v1::publisher_server::PublisherServer;
use ferry_proto::v1::subscriber_server::SubscriberServer;
use futures::StreamExt;
use openraft::{Config, SnapshotPolicy};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::server::HealthReporter;

use crate::clock::{Clock, ManualClock, SystemClock};
use crate::delivery::OUTSTANDING_MAX_DEFAULT;
use crate::domain::limits::{
    DATA_GROUPS_DEFAULT, GRPC_MESSAGE_BYTES_MAX, HTTP2_CONNECTION_WINDOW_BYTES, HTTP2_KEEPALIVE_INTERVAL,
    HTTP2_KEEPALIVE_TIMEOUT, HTTP2_STREAM_WINDOW_BYTES,
};
use crate::grpc::pubsub::{Forwarder, PubsubPublisher, PubsubSubscriber};
use crate::grpc::testing::TestingService;
use crate::grpc::{
    ClusterService, GroupRoutes, GroupsService, LocksService, Proposer, PublisherService, RaftService,
    SubscriberService,
};
use crate::raft::backup::{self, BackupError};
use crate::raft::network::Network;
use crate::raft::{AppliedState, Groups, LogDb, NodeId, Raft, SyncMode, META_GROUP};
use crate::security::{check_plaintext_allowed, Security};
use crate::storage::db::DbResources;
use crate::storage::disk_space::{self, DiskSpace, DISK_RESERVE_BYTES_DEFAULT};
use crate::storage::StorageError;

mod balancer;
mod catalog_sync;
mod data_groups;
mod formation;
mod health;
#[cfg(test)]
pub(crate) mod in_process;
pub mod log_purge;
mod membership;
pub mod metrics;
pub mod retention;
mod rpc_metrics;
mod rpc_observe;
mod shutdown;
mod status_page;

use data_groups::{DataGroups, GroupOpener, Opened};
pub use formation::Formation;
use metrics::NodeMetrics;
use rpc_metrics::RpcMetrics;
use rpc_observe::ObserveLayer;

/// Raft entries between snapshots; a snapshot lets the log before it be purged.
pub const SNAPSHOT_EVERY_ENTRIES_DEFAULT: u64 = 10_000;
/// Entries kept after a snapshot, so a briefly lagging follower catches up from
/// the log rather than a snapshot.
const ENTRIES_KEPT_AFTER_SNAPSHOT: u64 = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("raft: {0}")]
    Raft(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("grpc server: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error("restore: {0}")]
    Restore(#[from] BackupError),
}

/// The gRPC server's task: it ends when the server stops.
type Serving = JoinHandle<Result<(), tonic::transport::Error>>;

/// Settings of a node; see each setter.
#[derive(Debug, Clone)]
pub struct NodeBuilder {
    data_dir: PathBuf,
    listen: String,
    advertise: Option<String>,
    source_ip: Option<IpAddr>,
    node_id: NodeId,
    formation: Formation,
    clock: Arc<dyn Clock>,
    /// Set with a manual clock: also serve the Testing service that moves it.
    manual_clock: Option<Arc<ManualClock>>,
    sync_mode: SyncMode,
    /// TESTING ONLY: answer publishes before they commit.
    ack_before_commit: bool,
    commit_timeout: Duration,
    outstanding_max: usize,
    data_groups: u32,
    snapshot_every_entries: u64,
    metrics_listen: Option<SocketAddr>,
    disk_reserve_bytes: u64,
    restore_from: Option<PathBuf>,
    security: Security,
}

impl NodeBuilder {
    /// A single node with its data under `data_dir`, listening on
    /// `127.0.0.1:7070`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            listen: "127.0.0.1:7070".into(),
            advertise: None,
            source_ip: None,
            node_id: 1,
            formation: Formation::Alone,
            clock: Arc::new(SystemClock),
            manual_clock: None,
            sync_mode: SyncMode::Fsync,
            ack_before_commit: false,
            commit_timeout: Duration::from_secs(5),
            outstanding_max: OUTSTANDING_MAX_DEFAULT,
            data_groups: DATA_GROUPS_DEFAULT,
            snapshot_every_entries: SNAPSHOT_EVERY_ENTRIES_DEFAULT,
            metrics_listen: None,
            disk_reserve_bytes: DISK_RESERVE_BYTES_DEFAULT,
            restore_from: None,
            security: Security::default(),
        }
    }

    /// `HOST:PORT` to listen on; port 0 picks a free port (see [`Node::local_addr`]).
    pub fn listen(mut self, addr: impl Into<String>) -> Self {
        self.listen = addr.into();
        self
    }

    /// The address other nodes and clients reach this node at, if not the
    /// listen address (for example when listening on `0.0.0.0`).
    pub fn advertise(mut self, addr: impl Into<String>) -> Self {
        self.advertise = Some(addr.into());
        self
    }

    /// The local IP connections to peers leave from, on a host with several
    /// (by default the OS picks by route).
    pub fn source_ip(mut self, ip: IpAddr) -> Self {
        self.source_ip = Some(ip);
        self
    }

    pub fn node_id(mut self, id: NodeId) -> Self {
        self.node_id = id;
        self
    }

    /// How a new data directory joins a cluster: alone (the default), with a
    /// static peer list, or by asking a running cluster.
    pub fn formation(mut self, formation: Formation) -> Self {
        self.formation = formation;
        self
    }

    /// Raft entries between snapshots (each lets the log before it be purged).
    pub fn snapshot_every_entries(mut self, entries: u64) -> Self {
        self.snapshot_every_entries = entries.max(1);
        self
    }

    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// TESTING ONLY: run on a clock that moves only when told to, through the
    /// `ferry.internal.v1.Testing` service this also serves.
    pub fn manual_clock(mut self, clock: Arc<ManualClock>) -> Self {
        self.clock = Arc::clone(&clock) as Arc<dyn Clock>;
        self.manual_clock = Some(clock);
        self
    }

    /// UNSAFE unless `Fsync`: for proving that the fault harness detects lost writes.
    pub fn sync_mode(mut self, mode: SyncMode) -> Self {
        self.sync_mode = mode;
        self
    }

    /// UNSAFE: answers publishes once handed to Raft, before a quorum has
    /// them; for proving that the fault harness detects lost writes.
    pub fn ack_before_commit(mut self, yes: bool) -> Self {
        self.ack_before_commit = yes;
        self
    }

    /// How long a write may wait to be committed before it fails UNAVAILABLE.
    pub fn commit_timeout(mut self, timeout: Duration) -> Self {
        self.commit_timeout = timeout;
        self
    }

    /// Leased messages per subscription, at most.
    pub fn outstanding_max(mut self, max: usize) -> Self {
        self.outstanding_max = max;
        self
    }

    /// Data groups of a cluster this node forms (default
    /// [`DATA_GROUPS_DEFAULT`]; 0: group 0 holds everything). Fixed when the
    /// cluster forms; later starts with another number change nothing.
    pub fn data_groups(mut self, data_groups: u32) -> Self {
        self.data_groups = data_groups;
        self
    }

    /// Free space the node keeps on its data directory's filesystem: below
    /// it, publishes and new topics and subscriptions are refused with
    /// RESOURCE_EXHAUSTED (reads and acks go on).
    pub fn disk_reserve_bytes(mut self, bytes: u64) -> Self {
        self.disk_reserve_bytes = bytes;
        self
    }

    /// TLS, client tokens and the peer token (`security/`); by default
    /// none, which a node allows only on a loopback address.
    pub fn security(mut self, security: Security) -> Self {
        self.security = security;
        self
    }

    /// Start from the backup at `dir` (`ferry cluster backup`) as a new
    /// one-node cluster; the data directory must be new. Others join it.
    pub fn restore_from(mut self, dir: impl Into<PathBuf>) -> Self {
        self.restore_from = Some(dir.into());
        self.formation = Formation::Alone;
        self
    }

    /// Also serve Prometheus metrics at `http://addr/metrics`, and the
    /// status page at `http://addr/` (`status_page/`).
    pub fn metrics_listen(mut self, addr: SocketAddr) -> Self {
        self.metrics_listen = Some(addr);
        self
    }

    /// Opens storage, starts Raft, serves gRPC, and joins or forms the cluster
    /// (a one-node cluster on a new data directory waits until it leads).
    pub async fn start(self) -> Result<Node, NodeError> {
        data_groups::check_count(self.data_groups)?;
        disk_space::check_reserve(self.disk_reserve_bytes).map_err(NodeError::Config)?;
        let data_dir = self.data_dir.clone();
        std::fs::create_dir_all(&data_dir).map_err(|source| NodeError::DataDir { path: data_dir.clone(), source })?;
        let listener = TcpListener::bind(&self.listen)
            .await
            .map_err(|source| NodeError::Listen { addr: self.listen.clone(), source })?;
        let local_addr =
            listener.local_addr().map_err(|source| NodeError::Listen { addr: self.listen.clone(), source })?;
        let advertise = self.advertise_addr(local_addr)?;
        let security = &self.security;
        check_plaintext_allowed(local_addr, security.server_tls.is_some(), security.insecure_plaintext)
            .map_err(NodeError::Config)?;
        // Before anything opens a database here: the directory must be new.
        let restored = match &self.restore_from {
            Some(backup) => Some(backup::restore_state(backup, &data_dir, self.node_id, &advertise)?),
            None => None,
        };
        let resources = DbResources::default();
        let disk = DiskSpace::new(&data_dir, self.disk_reserve_bytes)
            .map_err(|source| NodeError::DataDir { path: data_dir.clone(), source })?;
        let log_db = LogDb::open(&data_dir.join("raft-log"), self.sync_mode, &resources)?;
        if let (Some(manifest), Some(backup)) = (&restored, &self.restore_from) {
            backup::restore_log(&log_db, manifest, self.node_id).await?;
            tracing::info!(backup = %backup.display(), from_node = manifest.node_id, groups = manifest.groups.len(), "restored a backup as a new one-node cluster");
        }

        let cluster_id = formation::kept_cluster_id(&data_dir)?;
        let network = Network::new(self.source_ip)
            .secured(self.security.peer_tls(), self.security.peer_token.as_deref())
            .map_err(NodeError::Config)?
            .cluster(cluster_id.clone());
        let opener = GroupOpener {
            node_id: self.node_id,
            data_dir: data_dir.clone(),
            config: self.raft_config()?,
            network: network.clone(),
            log_db: Arc::clone(&log_db),
            resources,
            disk: Arc::clone(&disk),
        };
        let Opened { hosted: meta, sizes: log_sizes, .. } = opener.open(META_GROUP, None).await?;
        let (raft, state) = (meta.raft.clone(), Arc::clone(&meta.state));
        let initialised = raft.is_initialized().await.map_err(|e| NodeError::Raft(e.to_string()))?;
        formation::settle_cluster_id(&cluster_id, &data_dir, &self.formation, initialised)?;
        // A formed node writes group 0's first membership (and campaigns)
        // before it serves: having granted a peer's vote first, it could not
        // (openraft), and had that peer died before replicating, group 0
        // would have no membership here and never elect. A joining node only
        // receives. Peers reach this node once it serves, a moment later.
        formation::initialise(&raft, &self.formation, self.node_id, &advertise).await?;

        let proposer = Proposer::new(&meta, self.node_id, self.commit_timeout);
        let groups = Arc::new(Groups::default());
        groups.host(META_GROUP, meta.clone());
        let mut routes = GroupRoutes::new(
            Arc::clone(&groups),
            network.clone(),
            self.node_id,
            self.commit_timeout,
            Arc::clone(&self.clock),
        )
        .outstanding_max(self.outstanding_max);
        if self.ack_before_commit {
            routes = routes.acking_before_commit();
        }
        let routes = routes.shared();
        let rpc = Arc::new(RpcMetrics::for_node());
        if let Some(addr) = self.metrics_listen {
            let metrics = NodeMetrics {
                node_id: self.node_id,
                groups: Arc::clone(&groups),
                routes: Arc::clone(&routes),
                rpc: Arc::clone(&rpc),
                log_db: Arc::clone(&log_db),
            };
            let status = status_page::Gatherer {
                node_id: self.node_id,
                cluster: ClusterService::new(proposer.clone(), Arc::clone(&groups), Arc::clone(&routes)),
                network: network.clone(),
                clock: Arc::clone(&self.clock),
            };
            let pages =
                status_page::add_routes(Routes::new("ferryd").metrics(Arc::new(move || metrics.render())), status);
            let bound = ferry_metrics::serve_routes(addr, pages)
                .await
                .map_err(|source| NodeError::Listen { addr: addr.to_string(), source })?;
            tracing::info!(metrics = %format!("http://{bound}/metrics"), status = %format!("http://{bound}/"), "serving metrics and the status page");
        }
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        let health = tokio::spawn(health::run(health_reporter.clone(), raft.clone()));
        let (stop, server) = self.serve(listener, &proposer, &groups, Arc::clone(&routes), health_service, rpc)?;
        let layout = tokio::spawn(data_groups::set_layout(proposer.clone(), self.data_groups));
        let data_groups = DataGroups { formation: self.formation.clone(), opener, groups: Arc::clone(&groups) };
        let data_groups = tokio::spawn(data_groups.run(meta));
        let balancer = tokio::spawn(balancer::run(Arc::clone(&routes), Arc::clone(&groups), network, self.node_id));
        let retention = tokio::spawn(retention::run(Arc::clone(&routes), Arc::clone(&self.clock)));
        let log_purge = tokio::spawn(log_purge::run(raft.clone(), log_sizes));
        let disk_watch = tokio::spawn(Arc::clone(&disk).watch());
        tracing::info!(node_id = self.node_id, %local_addr, %advertise, data_dir = %data_dir.display(), "ferry node serving");
        let mut joining = None;
        if let (false, Formation::Join(seed)) = (initialised, &self.formation) {
            let options = self.security.peer_client_options();
            let joining_as = formation::Joining { identity: cluster_id, data_dir: data_dir.clone() };
            joining =
                Some(tokio::spawn(formation::join(seed.clone(), self.node_id, advertise.clone(), options, joining_as)));
        }
        if formation::is_single_voter(&raft, self.node_id) {
            // Alone, this node elects itself at once; answer no request before
            // it leads and has applied its log, so a fresh start is ready to use.
            formation::wait_until_leading(&raft, self.node_id).await?;
        }
        let background = joining
            .into_iter()
            .chain([retention, log_purge, layout, data_groups, balancer, health, disk_watch])
            .collect();
        Ok(Node {
            id: self.node_id,
            local_addr,
            raft,
            state,
            groups,
            routes,
            health: health_reporter,
            stop: Some(stop),
            server,
            background,
        })
    }

    /// The address peers and clients reach this node at: `--advertise`, else
    /// this node's entry in the peer list, else the bound address.
    fn advertise_addr(&self, local_addr: SocketAddr) -> Result<String, NodeError> {
        if let Some(advertise) = &self.advertise {
            return Ok(advertise.clone());
        }
        match &self.formation {
            Formation::Peers(peers) => peers.get(&self.node_id).cloned().ok_or_else(|| {
                NodeError::Config(format!("--peers has no address for this node's id {}", self.node_id))
            }),
            _ => Ok(local_addr.to_string()),
        }
    }

    fn raft_config(&self) -> Result<Arc<Config>, NodeError> {
        let config = Config {
            cluster_name: "ferry".into(),
            heartbeat_interval: 250,
            election_timeout_min: 1000,
            election_timeout_max: 2000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_every_entries),
            max_in_snapshot_log_to_keep: ENTRIES_KEPT_AFTER_SNAPSHOT.min(self.snapshot_every_entries),
            ..Default::default()
        };
        Ok(Arc::new(config.validate().map_err(|e| NodeError::Raft(e.to_string()))?))
    }

    /// Starts the gRPC server: the public services and the peers' Raft service.
    fn serve(
        &self,
        listener: TcpListener,
        proposer: &Proposer,
        groups: &Arc<Groups>,
        routes: Arc<GroupRoutes>,
        health: HealthServer<impl Health>,
        rpc: Arc<RpcMetrics>,
    ) -> Result<(oneshot::Sender<()>, Serving), NodeError> {
        let proposer = proposer.clone();
        let local_addr =
            listener.local_addr().map_err(|source| NodeError::Listen { addr: self.listen.clone(), source })?;
        let forwarder = Forwarder::new(routes.network().clone(), &self.advertise_addr(local_addr)?);
        let cluster_id = routes.network().cluster_identity().clone();
        let publisher = PublisherService::new(proposer.clone(), Arc::clone(&routes), Arc::clone(&self.clock));
        let subscriber = SubscriberService::new(proposer.clone(), Arc::clone(&routes), Arc::clone(&self.clock));
        let locks = LocksService::new(proposer.clone(), Arc::clone(&self.clock));
        let pubsub_publisher = PubsubPublisher::new(
            PublisherService::new(proposer.clone(), Arc::clone(&routes), Arc::clone(&self.clock)),
            SubscriberService::new(proposer.clone(), Arc::clone(&routes), Arc::clone(&self.clock)),
            // Pub/Sub topics have no partitions: the server's default.
            0,
            forwarder.clone(),
        );
        let pubsub_subscriber = PubsubSubscriber::new(
            SubscriberService::new(proposer.clone(), Arc::clone(&routes), Arc::clone(&self.clock)),
            forwarder,
        );
        let cluster = ClusterService::new(proposer, Arc::clone(groups), Arc::clone(&routes));
        let peers = RaftService::new(Arc::clone(groups));
        let forwarded = GroupsService::new(routes);

        let (stop, stopped) = oneshot::channel::<()>();
        let incoming = TcpListenerStream::new(listener).map(|stream| {
            stream.inspect(|s| {
                // Small publishes and acks should not wait for Nagle.
                let _ = s.set_nodelay(true);
            })
        });
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = &self.security.server_tls {
            builder = builder.tls_config(tls.clone())?;
        }
        let server = builder
            // A client cut off without a word (a link dropped, not closed)
            // must not keep its streams: a subscription stream's leased
            // messages would wait for it until TCP gave up, and the consumer
            // that reconnects could not have them meanwhile.
            .http2_keepalive_interval(Some(HTTP2_KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(HTTP2_KEEPALIVE_TIMEOUT))
            .initial_stream_window_size(HTTP2_STREAM_WINDOW_BYTES)
            .initial_connection_window_size(HTTP2_CONNECTION_WINDOW_BYTES)
            // A span and latency metrics per call.
            .layer(ObserveLayer::new(rpc))
            // Who calls, before any service (refusals are observed too).
            .layer(self.security.authenticate(cluster_id))
            .add_service(
                PublisherServer::new(publisher)
                    .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
                    .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX),
            )
            .add_service(
                SubscriberServer::new(subscriber)
                    .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
                    .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX),
            )
            .add_service(
                PubsubPublisherServer::new(pubsub_publisher)
                    .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
                    .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX),
            )
            .add_service(
                PubsubSubscriberServer::new(pubsub_subscriber)
                    .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
                    .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX),
            )
            .add_service(ClusterServer::new(cluster).max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX))
            .add_service(LocksServer::new(locks).max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX))
            .add_service(health)
            .add_service(
                RaftServer::new(peers)
                    .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
                    .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX),
            )
            .add_service(
                GroupsServer::new(forwarded)
                    .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
                    .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX),
            )
            .add_optional_service(self.manual_clock.clone().map(|clock| TestingServer::new(TestingService::new(clock))))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            });
        Ok((stop, tokio::spawn(server)))
    }
}

/// A running node. Dropping it without [`shutdown`](Node::shutdown) leaves
/// its tasks running until the runtime ends.
pub struct Node {
    id: NodeId,
    local_addr: SocketAddr,
    raft: Raft,
    state: Arc<AppliedState>,
    /// Every group this node hosts, group 0 (`raft`, `state`) among them.
    groups: Arc<Groups>,
    routes: Arc<GroupRoutes>,
    health: HealthReporter,
    stop: Option<oneshot::Sender<()>>,
    server: Serving,
    /// Tasks that run as long as the node: retention, purging the log,
    /// the data groups and their leaders' balance, the health status, and
    /// joining the cluster when started with `Formation::Join`.
    background: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("id", &self.id).field("local_addr", &self.local_addr).finish()
    }
}

impl Node {
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The address the gRPC server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Resolves when the node can no longer serve: the gRPC server ended or
    /// the Raft of any group it hosts stopped on a fatal error (such as a
    /// full or failing disk). A data group's too: a node left running with
    /// one of its groups stopped would never catch that group up, and only
    /// a restart (a supervisor's, after this ends `ferryd`) starts it again.
    pub async fn failed(&self) -> String {
        let mut metrics = self.raft.metrics();
        loop {
            if let Err(fatal) = &metrics.borrow_and_update().running_state {
                return format!("raft stopped: {fatal}");
            }
            for (group, hosted) in self.groups.data() {
                if let Err(fatal) = &hosted.raft.metrics().borrow().running_state {
                    return format!("raft of data group {group} stopped: {fatal}");
                }
            }
            if self.server.is_finished() {
                return "the grpc server stopped".into();
            }
            tokio::select! {
                changed = metrics.changed() => {
                    if changed.is_err() {
                        return "raft stopped".into();
                    }
                }
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Stops gracefully (see `shutdown.rs`): hands the groups it leads to
    /// other voters, ends its streams, stops taking calls and lets those in
    /// flight finish; then stops Raft and flushes the state databases, so
    /// the next start does not need to re-apply the log.
    pub async fn shutdown(mut self) -> Result<(), NodeError> {
        self.routes.stopping().begin();
        for task in self.background.drain(..) {
            task.abort();
        }
        for name in health::names() {
            self.health.set_service_status(name, tonic_health::ServingStatus::NotServing).await;
        }
        shutdown::hand_over(&self.routes, &self.groups, self.id).await;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let served = match tokio::time::timeout(shutdown::DRAIN_TIMEOUT, &mut self.server).await {
            Ok(served) => served,
            Err(_) => {
                // Calls still running (a health Watch stream, say) are left
                // to end with the process.
                tracing::warn!(timeout = ?shutdown::DRAIN_TIMEOUT, "calls still in flight; stopping without them");
                self.server.abort();
                Ok(Ok(()))
            }
        };
        for (group, hosted) in self.groups.all() {
            if group == META_GROUP {
                continue;
            }
            if let Err(e) = hosted.raft.shutdown().await {
                tracing::warn!(group, error = %e, "a data group's raft did not stop cleanly");
            }
            hosted.state.db().flush()?;
        }
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft did not stop cleanly");
        }
        self.state.db().flush()?;
        tracing::info!(node_id = self.id, "ferry node stopped");
        match served {
            Ok(result) => result.map_err(NodeError::from),
            Err(e) => Err(NodeError::Raft(format!("server task failed: {e}"))),
        }
    }
}
