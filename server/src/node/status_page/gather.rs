//! `Gatherer`: the status page's [`Document`], asked of the public API as a
//! client would: the cluster of this node's Cluster service (any node
//! answers it, asking each member for its own report), and the topics,
//! subscriptions and backlogs of group 0's leader, which answers them for
//! the whole cluster, whichever data groups hold the partitions. So the
//! page is the same on every node, and no figure is computed twice.
//!
//! Bounded: at most [`TOPICS_SHOWN_MAX`] topics and
//! [`SUBSCRIPTIONS_SHOWN_MAX`] subscriptions (the first by name), each call
//! within [`CALL_TIMEOUT`] and the whole within [`GATHER_TIMEOUT`]; what
//! does not answer in time is reported as such.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ferry_proto::v1 as api;
use ferry_proto::v1::cluster_server::Cluster as _;
use ferry_proto::v1::publisher_client::PublisherClient;
use ferry_proto::v1::subscriber_client::SubscriberClient;
use futures::StreamExt;
use tokio::time::Instant;

use super::document::{Cluster, Document, Listing, Subscription, Topic};
use crate::clock::Clock;
use crate::domain::limits::GRPC_MESSAGE_BYTES_MAX;
use crate::grpc::ClusterService;
use crate::node::rpc_metrics::code_name;
use crate::raft::network::{Network, PeerChannel};
use crate::raft::NodeId;

/// Topics listed, at most.
pub const TOPICS_SHOWN_MAX: u32 = 100;
/// Subscriptions listed (each with its backlog), at most.
pub const SUBSCRIPTIONS_SHOWN_MAX: u32 = 100;
/// How long one call to group 0's leader may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the whole gathering may take.
pub const GATHER_TIMEOUT: Duration = Duration::from_secs(5);
/// Backlogs asked for at once.
const BACKLOGS_IN_FLIGHT: usize = 8;

pub struct Gatherer {
    pub node_id: NodeId,
    /// This node's Cluster service (the one clients call).
    pub cluster: ClusterService,
    /// Channels to other nodes, shared with the node's other clients.
    pub network: Network,
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Gatherer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gatherer").field("node_id", &self.node_id).finish()
    }
}

impl Gatherer {
    pub async fn document(&self) -> Document {
        let started = Instant::now();
        let deadline = started + GATHER_TIMEOUT;
        let taken_at_unix_millis = self.clock.wall_us() / 1000;
        let request = tonic::Request::new(api::ClusterStatusRequest {});
        let status = self.cluster.status(request).await.map(tonic::Response::into_inner).unwrap_or_default();
        let cluster = Cluster::from_api(status);
        let (topics, subscriptions) = match self.leader_channel(&cluster) {
            Ok(leader) => futures::join!(topics(leader.clone(), deadline), subscriptions(leader, deadline)),
            Err(error) => {
                (Listing::failed(TOPICS_SHOWN_MAX, error.clone()), Listing::failed(SUBSCRIPTIONS_SHOWN_MAX, error))
            }
        };
        Document {
            taken_at_unix_millis,
            gathered_in_millis: started.elapsed().as_millis() as u64,
            node_id: self.node_id,
            cluster,
            topics,
            subscriptions,
        }
    }

    /// A channel to group 0's leader (this node, possibly), as this node knows it.
    fn leader_channel(&self, cluster: &Cluster) -> Result<PeerChannel, String> {
        if cluster.leader_id == 0 || cluster.leader_addr.is_empty() {
            return Err("group 0 knows no leader (an election may be under way)".into());
        }
        self.network
            .channel(&cluster.leader_addr)
            .map_err(|e| format!("group 0's leader at {}: {e}", cluster.leader_addr))
    }
}

async fn topics(leader: PeerChannel, deadline: Instant) -> Listing<Topic> {
    let mut client = PublisherClient::new(leader).max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX);
    let request = api::ListTopicsRequest { page_size: TOPICS_SHOWN_MAX, page_token: String::new() };
    match bounded(deadline, client.list_topics(request)).await {
        Ok(page) => Listing {
            shown_max: TOPICS_SHOWN_MAX,
            truncated: !page.next_page_token.is_empty(),
            error: String::new(),
            items: page.topics.into_iter().map(Topic::from_api).collect(),
        },
        Err(error) => Listing::failed(TOPICS_SHOWN_MAX, format!("listing topics: {error}")),
    }
}

/// The subscriptions, each with its backlog (`GetSubscription`).
async fn subscriptions(leader: PeerChannel, deadline: Instant) -> Listing<Subscription> {
    let client = SubscriberClient::new(leader).max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX);
    let request = api::ListSubscriptionsRequest { page_size: SUBSCRIPTIONS_SHOWN_MAX, ..Default::default() };
    let page = match bounded(deadline, client.clone().list_subscriptions(request)).await {
        Ok(page) => page,
        Err(error) => return Listing::failed(SUBSCRIPTIONS_SHOWN_MAX, format!("listing subscriptions: {error}")),
    };
    let items = futures::stream::iter(page.subscriptions)
        .map(|subscription| {
            let mut client = client.clone();
            async move {
                let request = api::GetSubscriptionRequest { name: subscription.name.clone() };
                let backlog = bounded(deadline, client.get_subscription(request))
                    .await
                    .and_then(|s| s.backlog.ok_or_else(|| "the answer has no backlog".to_owned()));
                Subscription::from_api(subscription, backlog)
            }
        })
        .buffered(BACKLOGS_IN_FLIGHT)
        .collect()
        .await;
    Listing {
        shown_max: SUBSCRIPTIONS_SHOWN_MAX,
        truncated: !page.next_page_token.is_empty(),
        error: String::new(),
        items,
    }
}

/// A call's answer, or why there is none, within [`CALL_TIMEOUT`] and the
/// gathering's `deadline`.
async fn bounded<T>(
    deadline: Instant,
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, String> {
    let until = deadline.min(Instant::now() + CALL_TIMEOUT);
    match tokio::time::timeout_at(until, call).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(format!("{} {}", code_name(status.code()), status.message())),
        Err(_) => Err("group 0's leader did not answer in time".to_owned()),
    }
}
