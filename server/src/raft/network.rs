//! The Raft network: openraft's RPCs to peers over the internal
//! `ferry.internal.v1.Raft` gRPC service.
//!
//! One lazily connected channel per peer address, reused by every RPC to it
//! (tonic reconnects it after failures). Every RPC carries openraft's deadline;
//! an unreachable peer is retried after an exponential backoff. Snapshots are
//! streamed file by file in bounded chunks, never held in memory whole.
//!
//! Every group a process hosts shares the channels; each group's factory
//! ([`Network::for_group`]) stamps its group id into every request.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ferry_proto::internal as pb;
use ferry_proto::internal::raft_client::RaftClient;
use openraft::error::{
    Fatal, NetworkError, PayloadTooLarge, RPCError, RaftError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::BasicNode;
use parking_lot::Mutex;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::Code;

use super::codec::{stored_membership_to_record, vote_from_record, vote_to_record};
use super::groups::{GroupId, META_GROUP};
use super::rpc_codec::*;
use super::snapshot_dir::SnapshotDir;
use super::type_config::{NodeId, Snapshot, TypeConfig, Vote};
use crate::domain::limits::GRPC_MESSAGE_BYTES_MAX;
use crate::security::{cluster_id, ClusterIdentity, AUTHORIZATION};

/// Bytes of a snapshot file per streamed chunk.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;
/// Chunks read ahead of the network while streaming a snapshot.
const SNAPSHOT_CHUNKS_IN_FLIGHT: usize = 4;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A channel to a peer: every call on it carries the peer token and the
/// cluster's id.
pub type PeerChannel = InterceptedService<Channel, PeerStamp>;

/// Puts the cluster's peer token (if it has one) and id (once known) on
/// each call to a peer.
#[derive(Debug, Clone, Default)]
pub struct PeerStamp {
    token: Option<MetadataValue<Ascii>>,
    cluster: ClusterIdentity,
}

impl Interceptor for PeerStamp {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let metadata = request.metadata_mut();
        if let Some(value) = &self.token {
            metadata.insert(AUTHORIZATION, value.clone());
        }
        self.cluster.stamp(metadata);
        Ok(request)
    }
}

/// Creates peer clients, sharing one channel per peer address.
#[derive(Debug, Clone, Default)]
pub struct Network {
    /// One connection per peer address; calls on it add what they carry.
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    /// The local address connections to peers leave from; the OS picks when `None`.
    source_ip: Option<IpAddr>,
    /// The group whose RPCs this factory's clients send.
    group: GroupId,
    /// How peers' certificates are checked; plaintext when `None`.
    tls: Option<ClientTlsConfig>,
    stamp: PeerStamp,
}

impl Network {
    /// Connections to peers leave from `source_ip` (a multi-homed host's
    /// cluster interface), or from where the OS routes them when `None`.
    pub fn new(source_ip: Option<IpAddr>) -> Self {
        Self { source_ip, group: META_GROUP, ..Self::default() }
    }

    /// Calls peers over TLS checked by `tls`, presenting `peer_token`.
    pub fn secured(mut self, tls: Option<ClientTlsConfig>, peer_token: Option<&str>) -> Result<Self, String> {
        let token = peer_token
            .map(|token| MetadataValue::try_from(format!("Bearer {token}")))
            .transpose()
            .map_err(|_| "the peer token must be printable ASCII".to_owned())?;
        self.tls = tls;
        self.stamp.token = token;
        Ok(self)
    }

    /// Calls peers as a node of `cluster` (once its id is known).
    pub fn cluster(mut self, cluster: ClusterIdentity) -> Self {
        self.stamp.cluster = cluster;
        self
    }

    /// The cluster this node's calls to peers name.
    pub fn cluster_identity(&self) -> &ClusterIdentity {
        &self.stamp.cluster
    }

    /// The factory for `group`'s Raft, on the same channels.
    pub fn for_group(&self, group: GroupId) -> Network {
        Network { group, ..self.clone() }
    }

    /// The channel to the node at `addr`, shared by every group's Raft and
    /// by calls forwarded to a group's leader.
    pub fn channel(&self, addr: &str) -> Result<PeerChannel, tonic::transport::Error> {
        Ok(InterceptedService::new(self.connection(addr)?, self.stamp.clone()))
    }

    /// The same connection to `addr` without the peer token: for a client's
    /// call made again on another node, which carries the client's own
    /// token so that node judges the client, not this one (and this node's
    /// cluster id, which `Forwarder::copy` puts on it).
    pub fn caller_channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        self.connection(addr)
    }

    fn connection(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        let mut channels = self.channels.lock();
        if let Some(channel) = channels.get(addr) {
            return Ok(channel.clone());
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .local_address(self.source_ip)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5));
        if let Some(tls) = &self.tls {
            endpoint = endpoint.tls_config(tls.clone())?;
        }
        let channel = endpoint.connect_lazy();
        channels.insert(addr.to_owned(), channel.clone());
        Ok(channel)
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        let client = self.channel(&node.addr).map(|channel| {
            RaftClient::new(channel)
                .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
                .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX)
        });
        PeerClient { target, addr: node.addr.clone(), group: self.group, client: client.map_err(|e| e.to_string()) }
    }
}

/// openraft's handle on one peer.
#[derive(Debug)]
pub struct PeerClient {
    target: NodeId,
    addr: String,
    group: GroupId,
    client: Result<RaftClient<PeerChannel>, String>,
}

#[derive(Debug, thiserror::Error)]
#[error("node {target} at {addr}: {message}")]
struct PeerError {
    target: NodeId,
    addr: String,
    message: String,
}

/// How a failed RPC is reported to openraft.
enum Failure {
    Timeout,
    Unreachable(Unreachable),
    Network(NetworkError),
}

impl PeerClient {
    fn client(&self) -> Result<RaftClient<PeerChannel>, Failure> {
        self.client.clone().map_err(|message| Failure::Unreachable(Unreachable::new(&self.error(message))))
    }

    fn error(&self, message: impl Into<String>) -> PeerError {
        PeerError { target: self.target, addr: self.addr.clone(), message: message.into() }
    }

    fn classify(&self, status: &tonic::Status) -> Failure {
        let error = self.error(format!("{:?}: {}", status.code(), status.message()));
        match status.code() {
            // A node of another cluster has the peer's address now, or one
            // still learning its id: it refuses every call, so calling it as
            // often as a live peer would only fill its log.
            _ if cluster_id::is_refusal(status) => Failure::Unreachable(Unreachable::new(&error)),
            Code::DeadlineExceeded | Code::Cancelled => Failure::Timeout,
            // Connection refused or reset, or the peer is shutting down.
            Code::Unavailable | Code::Unknown => Failure::Unreachable(Unreachable::new(&error)),
            // The peer does not host the group (yet: a node that joined is
            // still creating it). Only `Unreachable` makes openraft back off.
            Code::NotFound => Failure::Unreachable(Unreachable::new(&error)),
            _ => Failure::Network(NetworkError::new(&error)),
        }
    }

    fn rpc_error<E: std::error::Error>(
        &self,
        failure: Failure,
        action: RPCTypes,
        ttl: Duration,
    ) -> RPCError<NodeId, BasicNode, E> {
        match failure {
            Failure::Timeout => RPCError::Timeout(Timeout { action, id: 0, target: self.target, timeout: ttl }),
            Failure::Unreachable(e) => RPCError::Unreachable(e),
            Failure::Network(e) => RPCError::Network(e),
        }
    }

    fn request<T>(message: T, ttl: Duration) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(ttl);
        request
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let ttl = option.hard_ttl();
        let record = append_request_to_record(self.group, &rpc);
        if prost::Message::encoded_len(&record) > GRPC_MESSAGE_BYTES_MAX && rpc.entries.len() > 1 {
            // Let openraft send fewer entries per request.
            let hint = (rpc.entries.len() / 2) as u64;
            return Err(RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(hint)));
        }
        let mut client = self.client().map_err(|f| self.rpc_error(f, RPCTypes::AppendEntries, ttl))?;
        let response = client
            .append_entries(Self::request(record, ttl))
            .await
            .map_err(|status| self.rpc_error(self.classify(&status), RPCTypes::AppendEntries, ttl))?;
        append_response_from_record(response.into_inner())
            .map_err(|e| RPCError::Network(NetworkError::new(&self.error(e.to_string()))))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let ttl = option.hard_ttl();
        let mut client = self.client().map_err(|f| self.rpc_error(f, RPCTypes::Vote, ttl))?;
        let response = client
            .vote(Self::request(vote_request_to_record(self.group, &rpc), ttl))
            .await
            .map_err(|status| self.rpc_error(self.classify(&status), RPCTypes::Vote, ttl))?;
        vote_response_from_record(response.into_inner())
            .map_err(|e| RPCError::Network(NetworkError::new(&self.error(e.to_string()))))
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<TypeConfig, Fatal<NodeId>>> {
        let mut client = self.client().map_err(|f| snapshot_error(self, f, option.hard_ttl()))?;
        let (chunks, outgoing) = mpsc::channel(SNAPSHOT_CHUNKS_IN_FLIGHT);
        let header = pb::SnapshotChunk {
            part: Some(pb::snapshot_chunk::Part::Header(pb::SnapshotHeader {
                vote: Some(vote_to_record(&vote)),
                meta: Some(pb::SnapshotMeta {
                    last_log_id: snapshot.meta.last_log_id.as_ref().map(super::codec::log_id_to_record),
                    last_membership: Some(stored_membership_to_record(&snapshot.meta.last_membership)),
                    snapshot_id: snapshot.meta.snapshot_id.clone(),
                }),
                group_id: self.group,
                ends_with_marker: true,
            })),
        };
        let dir = *snapshot.snapshot;
        let reader = tokio::spawn(async move {
            if chunks.send(header).await.is_err() {
                return Ok(());
            }
            stream_files(&dir, &chunks).await
        });
        let sent = tokio::select! {
            closed = cancel => {
                reader.abort();
                return Err(StreamingError::Closed(closed));
            }
            sent = client.install_snapshot(tokio_stream::wrappers::ReceiverStream::new(outgoing)) => sent,
        };
        match reader.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(StreamingError::Network(NetworkError::new(&self.error(e.to_string())))),
            Err(e) => return Err(StreamingError::Network(NetworkError::new(&self.error(e.to_string())))),
        }
        let reply = sent.map_err(|status| snapshot_error(self, self.classify(&status), option.hard_ttl()))?;
        let vote =
            reply.into_inner().vote.as_ref().map(vote_from_record).ok_or_else(|| {
                StreamingError::Network(NetworkError::new(&self.error("snapshot reply without a vote")))
            })?;
        Ok(SnapshotResponse { vote })
    }

    fn backoff(&self) -> Backoff {
        // 50 ms, doubling up to 2 s: a restarted peer is found quickly, a dead
        // one is not hammered.
        Backoff::new(
            (0..).map(|attempt: u32| Duration::from_millis(50u64.saturating_mul(1 << attempt.min(6)).min(2000))),
        )
    }
}

fn snapshot_error(peer: &PeerClient, failure: Failure, ttl: Duration) -> StreamingError<TypeConfig, Fatal<NodeId>> {
    match failure {
        Failure::Timeout => StreamingError::Timeout(Timeout {
            action: RPCTypes::InstallSnapshot,
            id: 0,
            target: peer.target,
            timeout: ttl,
        }),
        Failure::Unreachable(e) => StreamingError::Unreachable(e),
        Failure::Network(e) => StreamingError::Network(e),
    }
}

/// Sends every file of a snapshot directory, in name order, in chunks.
async fn stream_files(dir: &SnapshotDir, chunks: &mpsc::Sender<pb::SnapshotChunk>) -> std::io::Result<()> {
    let mut names = Vec::new();
    let mut entries = tokio::fs::read_dir(&dir.path).await?;
    while let Some(entry) = entries.next_entry().await? {
        if entry.file_type().await?.is_file() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    let (files, mut bytes) = (names.len() as u32, 0u64);
    for name in names {
        let mut file = tokio::fs::File::open(dir.path.join(&name)).await?;
        let mut offset = 0u64;
        loop {
            let mut data = vec![0u8; SNAPSHOT_CHUNK_BYTES];
            let read = file.read(&mut data).await?;
            // An empty file is still sent once, so the receiver creates it.
            if read == 0 && offset > 0 {
                break;
            }
            data.truncate(read);
            let chunk = pb::FileChunk { name: name.clone(), offset, data: data.into() };
            if chunks.send(pb::SnapshotChunk { part: Some(pb::snapshot_chunk::Part::File(chunk)) }).await.is_err() {
                return Ok(());
            }
            if read == 0 {
                break;
            }
            offset += read as u64;
            bytes += read as u64;
        }
    }
    // A newer snapshot removes this one's directory, maybe while it was
    // listed above: then some files were never sent, and the counts below
    // would vouch for the rest. Ended without the marker, the stream is
    // refused, and the next try sends the newer snapshot.
    if !tokio::fs::try_exists(&dir.path).await? {
        return Err(std::io::Error::other("the snapshot was replaced while it was sent"));
    }
    // Only now is the snapshot whole: the receiver installs nothing without this.
    let end = pb::SnapshotEnd { files, bytes };
    let _ = chunks.send(pb::SnapshotChunk { part: Some(pb::snapshot_chunk::Part::End(end)) }).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use ferry_proto::internal::raft_server::{Raft as RaftRpc, RaftServer};
    use openraft::{CommittedLeaderId, LogId};
    use tonic::{Request, Response, Status, Streaming};

    use super::*;

    /// A peer that hosts no group: it records the group each request names
    /// and answers as a node without it does.
    #[derive(Default)]
    struct HostsNothing {
        asked: Arc<Mutex<Vec<GroupId>>>,
    }

    #[tonic::async_trait]
    impl RaftRpc for HostsNothing {
        async fn append_entries(
            &self,
            request: Request<pb::AppendEntriesRequest>,
        ) -> Result<Response<pb::AppendEntriesResponse>, Status> {
            self.asked.lock().push(request.into_inner().group_id);
            Err(Status::not_found("raft group is not hosted on this node"))
        }

        async fn vote(&self, request: Request<pb::VoteRequest>) -> Result<Response<pb::VoteResponse>, Status> {
            self.asked.lock().push(request.into_inner().group_id);
            Err(Status::not_found("raft group is not hosted on this node"))
        }

        async fn install_snapshot(
            &self,
            _: Request<Streaming<pb::SnapshotChunk>>,
        ) -> Result<Response<pb::SnapshotReply>, Status> {
            Err(Status::unimplemented("not in this test"))
        }
    }

    #[tokio::test]
    async fn requests_name_their_group_and_a_peer_without_it_is_unreachable_so_openraft_backs_off() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let peer = HostsNothing::default();
        let asked = Arc::clone(&peer.asked);
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        tokio::spawn(
            tonic::transport::Server::builder().add_service(RaftServer::new(peer)).serve_with_incoming(incoming),
        );

        let node = BasicNode { addr };
        let option = RPCOption::new(Duration::from_secs(5));
        let mut group_5 = Network::new(None).for_group(5).new_client(2, &node).await;
        let vote = Vote::new(1, 1);
        let voted = group_5.vote(VoteRequest { vote, last_log_id: None }, option.clone()).await;
        assert!(matches!(voted, Err(RPCError::Unreachable(_))), "{voted:?}");
        let append = AppendEntriesRequest {
            vote,
            prev_log_id: Some(LogId::new(CommittedLeaderId::new(1, 1), 3)),
            entries: Vec::new(),
            leader_commit: None,
        };
        let appended = group_5.append_entries(append, option).await;
        assert!(matches!(appended, Err(RPCError::Unreachable(_))), "{appended:?}");

        let mut meta = Network::new(None).new_client(2, &node).await;
        let _ = meta.vote(VoteRequest { vote, last_log_id: None }, RPCOption::new(Duration::from_secs(5))).await;
        assert_eq!(*asked.lock(), vec![5, 5, META_GROUP]);
    }

    #[test]
    fn a_peer_of_another_cluster_is_unreachable_so_openraft_backs_off() {
        let peer = PeerClient { target: 2, addr: "127.0.0.1:1".into(), group: 0, client: Err("unused".into()) };
        let other = ClusterIdentity::default();
        other.set(&"b".repeat(32)).expect("set");
        let refused = other.check(Some("a".repeat(32).as_bytes()), true).expect_err("another cluster's call");
        assert!(matches!(peer.classify(&refused), Failure::Unreachable(_)));
        assert!(matches!(peer.classify(&Status::failed_precondition("not a refusal")), Failure::Network(_)));
        assert!(matches!(peer.classify(&Status::internal("a bug")), Failure::Network(_)));
    }
}
