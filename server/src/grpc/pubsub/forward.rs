//! Pub/Sub clients know one address and retry there: they never follow
//! Ferry's `ferry-leader` hint. So a call this node cannot serve because
//! another node leads group 0 is made again, as the same Pub/Sub call, on
//! that node. One hop: a forwarded call is marked and never forwarded again
//! (a leader that moved meanwhile answers UNAVAILABLE, which Pub/Sub
//! clients retry). It carries the caller's own `authorization`, not the
//! peer token, so the node that serves it judges the caller's permissions.

use std::future::Future;
use std::time::Duration;

use ferry_proto::pubsub::publisher_client::PublisherClient;
use ferry_proto::pubsub::subscriber_client::SubscriberClient;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};

use crate::domain::limits::GRPC_MESSAGE_BYTES_MAX;
use crate::grpc::status::LEADER_METADATA;
use crate::raft::network::Network;
use crate::security::AUTHORIZATION;

/// Metadata on a call one node made again on another (its value: the
/// forwarding node's address, for logs).
pub const FORWARDED_METADATA: &str = "ferry-forwarded-by";

/// Makes calls again on group 0's leader.
#[derive(Debug, Clone)]
pub struct Forwarder {
    network: Network,
    /// This node's address, put on what it forwards.
    me: AsciiMetadataValue,
}

/// What a call's copy on another node needs from the original call.
pub struct Caller {
    authorization: Option<AsciiMetadataValue>,
    forwarded: bool,
    /// What is left of the caller's deadline, so the copy gives up with it.
    timeout: Option<Duration>,
}

impl Caller {
    pub fn of<M>(request: &Request<M>) -> Self {
        let metadata = request.metadata();
        Self {
            authorization: metadata.get(AUTHORIZATION).cloned(),
            forwarded: metadata.contains_key(FORWARDED_METADATA),
            timeout: metadata.get("grpc-timeout").and_then(|v| v.to_str().ok()).and_then(grpc_timeout),
        }
    }
}

/// A `grpc-timeout` header's duration: up to 8 digits and a unit.
fn grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

impl Forwarder {
    pub fn new(network: Network, my_addr: &str) -> Self {
        let me = MetadataValue::try_from(my_addr).unwrap_or_else(|_| MetadataValue::from_static("unknown"));
        Self { network, me }
    }

    /// `here`, this node's answer, unless it names another node as group
    /// 0's leader: then what `there` answers, given a channel to that node
    /// and the caller's message.
    pub async fn or_leader<M, R, There, ThereF>(
        &self,
        here: Result<Response<R>, Status>,
        request: Request<M>,
        there: There,
    ) -> Result<Response<R>, Status>
    where
        There: FnOnce(Channel, Request<M>) -> ThereF,
        ThereF: Future<Output = Result<Response<R>, Status>>,
    {
        let caller = Caller::of(&request);
        match here {
            Err(status) => match self.leader(&status, &caller)? {
                Some(channel) => there(channel, self.copy(&caller, request.into_inner())).await,
                None => Err(status),
            },
            answered => answered,
        }
    }

    /// A channel to the leader `status` names, when the call should go
    /// there: it was refused for want of leadership, and is not itself a
    /// forwarded call.
    pub fn leader(&self, status: &Status, caller: &Caller) -> Result<Option<Channel>, Status> {
        if status.code() != Code::Unavailable || caller.forwarded {
            return Ok(None);
        }
        let Some(addr) = leader_hint(status) else {
            return Ok(None);
        };
        let channel = self
            .network
            .caller_channel(&addr)
            .map_err(|e| Status::unavailable(format!("group 0's leader at {addr} cannot be reached: {e}")))?;
        Ok(Some(channel))
    }

    /// `message` as the caller's call made again by this node.
    pub fn copy<M>(&self, caller: &Caller, message: M) -> Request<M> {
        let mut request = Request::new(message);
        let metadata = request.metadata_mut();
        if let Some(authorization) = &caller.authorization {
            metadata.insert(AUTHORIZATION, authorization.clone());
        }
        metadata.insert(FORWARDED_METADATA, self.me.clone());
        // So a node of another cluster that has the leader's address now
        // refuses it rather than running it.
        self.network.cluster_identity().stamp(metadata);
        if let Some(timeout) = caller.timeout {
            request.set_timeout(timeout);
        }
        request
    }
}

/// The address in a `ferry-leader` hint (`<id>=<addr>`).
fn leader_hint(status: &Status) -> Option<String> {
    let hint = status.metadata().get(LEADER_METADATA)?.to_str().ok()?;
    let (_, addr) = hint.split_once('=')?;
    (!addr.is_empty()).then(|| addr.to_owned())
}

pub fn publisher(channel: Channel) -> PublisherClient<Channel> {
    PublisherClient::new(channel)
        .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX)
}

pub fn subscriber(channel: Channel) -> SubscriberClient<Channel> {
    SubscriberClient::new(channel)
        .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::{ClusterIdentity, CLUSTER_ID_HEADER};

    #[test]
    fn a_hint_names_the_leaders_address() {
        let mut status = Status::unavailable("not the leader");
        status.metadata_mut().insert(LEADER_METADATA, MetadataValue::from_static("2=10.0.0.2:7000"));
        assert_eq!(leader_hint(&status).as_deref(), Some("10.0.0.2:7000"));
        assert_eq!(leader_hint(&Status::unavailable("no hint")), None);
    }

    #[tokio::test]
    async fn forwarded_calls_and_other_errors_stay_here() {
        let forwarder = Forwarder::new(Network::new(None), "127.0.0.1:1");
        let mut hinted = Status::unavailable("not the leader");
        hinted.metadata_mut().insert(LEADER_METADATA, MetadataValue::from_static("2=127.0.0.1:2"));
        let plain = Caller { authorization: None, forwarded: false, timeout: None };
        let forwarded = Caller { authorization: None, forwarded: true, timeout: None };
        assert!(forwarder.leader(&hinted, &plain).expect("a channel").is_some());
        assert!(forwarder.leader(&hinted, &forwarded).expect("a channel").is_none());
        assert!(forwarder.leader(&Status::not_found("no such topic"), &plain).expect("a channel").is_none());
    }

    #[test]
    fn a_copy_carries_the_callers_token_deadline_the_mark_and_this_nodes_cluster() {
        let cluster = ClusterIdentity::default();
        cluster.set("c0ffeec0ffeec0ffeec0ffeec0ffeec0").expect("set the cluster id");
        let forwarder = Forwarder::new(Network::new(None).cluster(cluster), "127.0.0.1:1");
        let mut original = Request::new(());
        original.metadata_mut().insert(AUTHORIZATION, MetadataValue::from_static("Bearer secret"));
        original.metadata_mut().insert("grpc-timeout", MetadataValue::from_static("1500m"));
        let copy = forwarder.copy(&Caller::of(&original), ());
        assert_eq!(copy.metadata().get(AUTHORIZATION).expect("a token"), "Bearer secret");
        assert_eq!(copy.metadata().get("grpc-timeout").expect("a deadline"), "1500000u");
        assert!(Caller::of(&copy).forwarded);
        assert_eq!(copy.metadata().get(CLUSTER_ID_HEADER).expect("the cluster id"), "c0ffeec0ffeec0ffeec0ffeec0ffeec0");
    }

    #[test]
    fn grpc_timeouts_read_in_every_unit() {
        assert_eq!(grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(grpc_timeout("60S"), Some(Duration::from_secs(60)));
        assert_eq!(grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(grpc_timeout("7n"), Some(Duration::from_nanos(7)));
        assert_eq!(grpc_timeout("9x"), None);
        assert_eq!(grpc_timeout(""), None);
    }
}
