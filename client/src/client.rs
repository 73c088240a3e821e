//! `Client`: a typed async client for the `ferry.v1` API.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ferry_proto::v1 as api;
use ferry_proto::v1::cluster_client::ClusterClient;
use ferry_proto::v1::publisher_client::PublisherClient;
use ferry_proto::v1::subscriber_client::SubscriberClient;

use crate::error::{Error, Result};
use crate::options::{ClientOptions, Conn};
use crate::publisher::{Compression, Payload};
use crate::router::Router;
use crate::routes::RouteBook;
use crate::subscriber::{Subscriber, SubscriberSettings};
use crate::types::*;

/// Largest gRPC message the client sends or accepts: the server's largest
/// publish batch plus framing.
const GRPC_MESSAGE_BYTES_MAX: usize = 20 * 1024 * 1024;
/// How long a call keeps retrying through leader changes and restarts.
pub const RETRY_BUDGET_DEFAULT: Duration = Duration::from_secs(30);

/// A retryable call: clones the request for each attempt.
macro_rules! rpc {
    ($stub:ident, $method:ident, $request:expr) => {
        |channel| {
            let request = $request.clone();
            async move { $stub(channel).$method(request).await }
        }
    };
}
pub(crate) use rpc;

pub(crate) fn publisher(channel: Conn) -> PublisherClient<Conn> {
    PublisherClient::new(channel)
        .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX)
}

pub(crate) fn subscriber(channel: Conn) -> SubscriberClient<Conn> {
    SubscriberClient::new(channel)
        .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX)
}

pub(crate) fn cluster(channel: Conn) -> ClusterClient<Conn> {
    ClusterClient::new(channel).max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
}

/// A connection to a Ferry cluster. Cheap to clone; clones share connections.
///
/// Requests go to the leader: the client follows leader hints and moves past
/// nodes that are down, retrying for up to 30 s (see [`Client::connect_with`]),
/// so it carries on through elections and restarts without being recreated.
/// A publish retried after an unknown outcome may be stored twice
/// (at-least-once).
///
/// ```no_run
/// # async fn demo() -> ferry_client::Result<()> {
/// use ferry_client::{Client, Message, TopicSettings, SubscriptionSettings};
/// let client = Client::connect("127.0.0.1:7070").await?;
/// client.create_topic("clicks", TopicSettings::default()).await?;
/// client.create_subscription("etl", "clicks", SubscriptionSettings::default()).await?;
/// client.publish("clicks", vec![Message::new("hello")]).await?;
/// for received in client.pull("etl", 10, std::time::Duration::ZERO).await? {
///     println!("{:?}", received.message.data);
///     client.acknowledge("etl", &[received.ack_id]).await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    router: Arc<Router>,
    /// Where the partitions of the topics published to are led.
    routes: Arc<RouteBook>,
}

impl Client {
    /// Connects to a cluster given as `host:port`, or several separated by
    /// commas (`a:7070,b:7070,c:7070`); fails if none of them answers. The
    /// token and TLS CA come from `FERRY_TOKEN` and `FERRY_TLS_CA`
    /// ([`ClientOptions::from_env`]).
    pub async fn connect(addrs: &str) -> Result<Self> {
        Self::connect_with_options(addrs, ClientOptions::from_env()?).await
    }

    /// Like [`connect`](Self::connect), retrying each call through leader
    /// changes for at most `retry_budget`.
    pub async fn connect_with(addrs: &str, retry_budget: Duration) -> Result<Self> {
        Self::connect_with_options(addrs, ClientOptions { retry_budget, ..ClientOptions::from_env()? }).await
    }

    /// Connects with `options`: a token, TLS, the retry budget.
    pub async fn connect_with_options(addrs: &str, options: ClientOptions) -> Result<Self> {
        let seeds: Vec<String> = addrs.split(',').map(str::trim).filter(|a| !a.is_empty()).map(str::to_owned).collect();
        Ok(Self { router: Arc::new(Router::connect(&seeds, options).await?), routes: Arc::default() })
    }

    pub(crate) fn router(&self) -> Arc<Router> {
        self.router.clone()
    }

    pub async fn create_topic(&self, name: &str, settings: TopicSettings) -> Result<Topic> {
        let request =
            api::CreateTopicRequest { name: name.to_owned(), settings: Some(topic_settings_to_api(&settings)) };
        let topic = self.router.call(rpc!(publisher, create_topic, request)).await?;
        Ok(topic_from_api(topic))
    }

    /// Changes the settings named in `update_mask` (`max_message_bytes`,
    /// `retention_seconds`, `retention_bytes`, `labels`) to their values in
    /// `settings`; the others keep theirs. Zero values take the defaults.
    pub async fn update_topic(&self, name: &str, settings: TopicSettings, update_mask: &[&str]) -> Result<Topic> {
        let request = api::UpdateTopicRequest {
            name: name.to_owned(),
            settings: Some(topic_settings_to_api(&settings)),
            update_mask: update_mask.iter().map(|s| (*s).to_owned()).collect(),
        };
        Ok(topic_from_api(self.router.call(rpc!(publisher, update_topic, request)).await?))
    }

    pub async fn get_topic(&self, name: &str) -> Result<Topic> {
        let request = api::GetTopicRequest { name: name.to_owned(), ..Default::default() };
        Ok(topic_from_api(self.router.call(rpc!(publisher, get_topic, request)).await?))
    }

    /// Every topic, in name order.
    pub async fn list_topics(&self) -> Result<Vec<Topic>> {
        let mut topics = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = api::ListTopicsRequest { page_size: 0, page_token };
            let page = self.router.call(rpc!(publisher, list_topics, request)).await?;
            topics.extend(page.topics.into_iter().map(topic_from_api));
            if page.next_page_token.is_empty() {
                return Ok(topics);
            }
            page_token = page.next_page_token;
        }
    }

    /// Deletes a topic, its messages and its subscriptions.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        let request = api::DeleteTopicRequest { name: name.to_owned() };
        self.router.call(rpc!(publisher, delete_topic, request)).await?;
        Ok(())
    }

    /// Publishes a batch; returns each message's position once the batch is
    /// committed and durable.
    ///
    /// A batch without ordering keys goes to the node leading the topic's
    /// next partition in turn, which puts it in a partition it leads (no
    /// hop), so a client's batches fill every partition. A batch with keys
    /// goes to any node, which sends each message where its key says. A
    /// batch sent again after an unknown outcome may be stored twice, the
    /// second time maybe in another partition.
    pub async fn publish(&self, topic: &str, messages: Vec<Message>) -> Result<Vec<Position>> {
        let count = messages.len();
        let request = api::PublishRequest {
            topic: topic.to_owned(),
            messages: messages.into_iter().map(message_to_api).collect(),
            ..Default::default()
        };
        let mut leader = None;
        if !request.messages.is_empty() && request.messages.iter().all(|m| m.ordering_key.is_empty()) {
            leader = self.routes.keyless_leader(&self.router, topic).await;
        }
        let routed = self.router.call_routed(leader.as_deref(), rpc!(publisher, publish, request)).await;
        // A failure after the named leader was tried may be a miss too.
        if leader.is_some() && routed.as_ref().map_or(true, |routed| routed.missed) {
            self.routes.missed(topic);
        }
        let response = routed?.answer;
        if response.positions.len() != count {
            return Err(Error::Protocol(format!("{} positions for {count} messages", response.positions.len())));
        }
        Ok(response.positions.into_iter().map(|p| Position { partition: p.partition, offset: p.offset }).collect())
    }

    /// Publishes a batch as one step of an idempotent producer's sequence,
    /// numbered by the caller. The server stores it once however often it is
    /// sent, and refuses a batch out of sequence: `sequence-gap` (an earlier
    /// batch is missing), `sequence-committed` (below what is stored, not a
    /// retry of a remembered batch), `unknown-producer`. The first two carry
    /// the producer's next expected sequence ([`Error::next_sequence`]).
    /// The batch travels compressed with `compression`.
    pub async fn publish_sequenced(
        &self,
        topic: &str,
        sequence: ProducerSequence,
        messages: Vec<Message>,
        compression: Compression,
    ) -> Result<SequencedPublish> {
        let count = messages.len();
        let mut request = api::PublishRequest {
            topic: topic.to_owned(),
            producer_id: sequence.producer_id,
            sequence: sequence.first_sequence,
            partition: Some(sequence.partition),
            skip_from: sequence.skip_from,
            ..Default::default()
        };
        Payload::new(compression, messages.into_iter().map(message_to_api).collect()).fill(&mut request);
        let response = self.router.call(rpc!(publisher, publish, request)).await?;
        if response.positions.len() != count {
            return Err(Error::Protocol(format!("{} positions for {count} messages", response.positions.len())));
        }
        let positions = response.positions.into_iter().map(|p| Position { partition: p.partition, offset: p.offset });
        Ok(SequencedPublish { positions: positions.collect(), duplicate: response.duplicate })
    }

    pub async fn create_subscription(
        &self,
        name: &str,
        topic: &str,
        settings: SubscriptionSettings,
    ) -> Result<Subscription> {
        let request = api::CreateSubscriptionRequest {
            name: name.to_owned(),
            topic: topic.to_owned(),
            settings: Some(subscription_settings_to_api(&settings)),
        };
        let subscription = self.router.call(rpc!(subscriber, create_subscription, request)).await?;
        Ok(subscription_from_api(subscription))
    }

    /// Changes the settings named in `update_mask` (`ack_deadline_seconds`,
    /// `retry_policy`, `dead_letter_policy`, `labels`) to their values in
    /// `settings`; the others keep theirs.
    pub async fn update_subscription(
        &self,
        name: &str,
        settings: SubscriptionSettings,
        update_mask: &[&str],
    ) -> Result<Subscription> {
        let request = api::UpdateSubscriptionRequest {
            name: name.to_owned(),
            settings: Some(subscription_settings_to_api(&settings)),
            update_mask: update_mask.iter().map(|s| (*s).to_owned()).collect(),
        };
        Ok(subscription_from_api(self.router.call(rpc!(subscriber, update_subscription, request)).await?))
    }

    pub async fn get_subscription(&self, name: &str) -> Result<Subscription> {
        let request = api::GetSubscriptionRequest { name: name.to_owned() };
        Ok(subscription_from_api(self.router.call(rpc!(subscriber, get_subscription, request)).await?))
    }

    /// Every subscription (of `topic`, when given), in name order.
    pub async fn list_subscriptions(&self, topic: Option<&str>) -> Result<Vec<Subscription>> {
        let mut subscriptions = Vec::new();
        let mut page_token = String::new();
        loop {
            let request =
                api::ListSubscriptionsRequest { topic: topic.unwrap_or_default().to_owned(), page_size: 0, page_token };
            let page = self.router.call(rpc!(subscriber, list_subscriptions, request)).await?;
            subscriptions.extend(page.subscriptions.into_iter().map(subscription_from_api));
            if page.next_page_token.is_empty() {
                return Ok(subscriptions);
            }
            page_token = page.next_page_token;
        }
    }

    pub async fn delete_subscription(&self, name: &str) -> Result<()> {
        let request = api::DeleteSubscriptionRequest { name: name.to_owned() };
        self.router.call(rpc!(subscriber, delete_subscription, request)).await?;
        Ok(())
    }

    /// Leases up to `max_messages` (1..=1000), waiting up to `wait` for the
    /// first one. Ack each before its deadline or it is delivered again. A
    /// response holding a message without its body (a broken server) fails
    /// the call, and what it leased comes again once the leases run out.
    pub async fn pull(&self, subscription: &str, max_messages: u32, wait: Duration) -> Result<Vec<ReceivedMessage>> {
        let request = api::PullRequest {
            subscription: subscription.to_owned(),
            max_messages,
            wait_millis: u32::try_from(wait.as_millis()).unwrap_or(u32::MAX),
        };
        let response = self.router.call(rpc!(subscriber, pull, request)).await?;
        response.messages.into_iter().map(|received| received_from_api(received).map_err(Error::from)).collect()
    }

    /// Acknowledges deliveries; returns once the acks are committed.
    pub async fn acknowledge(&self, subscription: &str, ack_ids: &[String]) -> Result<AckOutcome> {
        let request = api::AcknowledgeRequest { subscription: subscription.to_owned(), ack_ids: ack_ids.to_vec() };
        let response = self.router.call(rpc!(subscriber, acknowledge, request)).await?;
        Ok(AckOutcome { acknowledged: response.acknowledged, stale: response.stale })
    }

    /// A streaming consumer of `subscription` (see [`Subscriber`]).
    pub async fn subscribe(&self, subscription: &str, settings: SubscriberSettings) -> Result<Subscriber> {
        let ack_deadline = self.get_subscription(subscription).await?.settings.ack_deadline;
        Subscriber::start(Arc::clone(&self.router), subscription, ack_deadline, settings).await
    }

    /// Moves the subscription to `time`: messages published before it count
    /// as acked, those from it on are delivered (again).
    pub async fn seek(&self, subscription: &str, time: SystemTime) -> Result<()> {
        let request = api::SeekRequest {
            subscription: subscription.to_owned(),
            time_unix_micros: micros_of(time),
            ..Default::default()
        };
        self.router.call(rpc!(subscriber, seek, request)).await?;
        Ok(())
    }

    /// Sets the remaining lease of deliveries to `seconds` (0 = nack: deliver
    /// again now). Returns how many leases were changed.
    pub async fn modify_ack_deadline(&self, subscription: &str, ack_ids: &[String], seconds: u32) -> Result<u32> {
        let request = api::ModifyAckDeadlineRequest {
            subscription: subscription.to_owned(),
            ack_ids: ack_ids.to_vec(),
            ack_deadline_seconds: seconds,
        };
        Ok(self.router.call(rpc!(subscriber, modify_ack_deadline, request)).await?.modified)
    }

    /// The node leading each partition of `topic`, in partition order, as
    /// the answering node knows it (`None`: no leader known). Empty for a
    /// topic kept in group 0 (a cluster formed without data groups), whose
    /// partitions are all led by group 0's leader ([`ClusterStatus::leader_id`]).
    pub async fn partition_leaders(&self, topic: &str) -> Result<Vec<Option<u64>>> {
        let request = api::RoutesRequest { topic: topic.to_owned() };
        let routes = self.router.call(rpc!(cluster, routes, request)).await?;
        Ok(routes.partitions.into_iter().map(|route| Some(route.leader_id).filter(|id| *id != 0)).collect())
    }

    /// Members, leader, term and each member's log positions.
    pub async fn cluster_status(&self) -> Result<ClusterStatus> {
        let status = self.router.call(rpc!(cluster, status, api::ClusterStatusRequest {})).await?;
        Ok(cluster_status_from_api(status))
    }

    /// The status of the node at `addr` itself (one call, no redirect or
    /// retry; it need not be a node this client knew).
    pub async fn node_status_at(&self, addr: &str) -> Result<NodeStatus> {
        let status =
            self.router.call_at(addr, |c| async move { cluster(c).node_status(api::NodeStatusRequest {}).await });
        Ok(node_status_from_api(status.await?))
    }

    /// Whether the node at `addr` reports SERVING on the standard gRPC
    /// health service (one call, no retry): it knows its cluster's leader
    /// and is not shutting down.
    pub async fn serving_at(&self, addr: &str) -> Result<bool> {
        use tonic_health::pb::health_check_response::ServingStatus;
        use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
        let request = HealthCheckRequest { service: String::new() };
        let reply = self.router.call_at(addr, |c| async move { HealthClient::new(c).check(request).await });
        Ok(reply.await?.status == ServingStatus::Serving as i32)
    }

    /// Has the node this client talks to (the first of its addresses that
    /// answered) copy its state into `dir`, a new directory on that node's
    /// filesystem: a backup for `ferryd --restore-from`. No retry or
    /// redirect: the backup is of that node.
    pub async fn backup(&self, dir: &str) -> Result<Backup> {
        let request = api::BackupRequest { dir: dir.to_owned() };
        let made = self.router.call_here(|c| async move { cluster(c).backup(request).await }).await?;
        Ok(backup_from_api(made))
    }

    /// Adds node `node_id` serving at `addr`: it catches up as a learner, then
    /// becomes a voter. Returns when it is a voter.
    pub async fn add_node(&self, node_id: u64, addr: &str) -> Result<ClusterStatus> {
        let request = api::AddNodeRequest { node_id, addr: addr.to_owned() };
        Ok(cluster_status_from_api(self.router.call(rpc!(cluster, add_node, request)).await?))
    }

    pub async fn remove_node(&self, node_id: u64) -> Result<ClusterStatus> {
        let request = api::RemoveNodeRequest { node_id };
        Ok(cluster_status_from_api(self.router.call(rpc!(cluster, remove_node, request)).await?))
    }

    /// Hands data group `group`'s leadership to node `node_id`; returns who
    /// leads it afterwards. The group takes no writes for about two seconds.
    pub async fn transfer_leader(&self, group: u32, node_id: u64) -> Result<u64> {
        let request = api::TransferLeaderRequest { group, node_id };
        Ok(self.router.call(rpc!(cluster, transfer_leader, request)).await?.leader_id)
    }

    /// Debug: up to `max_messages` of a partition as the node this client is
    /// connected to has applied them (no leader redirect), with the
    /// partition's end offset there.
    pub async fn read_log(
        &self,
        topic: &str,
        partition: u32,
        from_offset: u64,
        max_messages: u32,
    ) -> Result<(Vec<LogRecord>, u64)> {
        let request = api::ReadLogRequest { topic: topic.to_owned(), partition, from_offset, max_messages };
        let response = self.router.call_here(|c| async move { cluster(c).read_log(request).await }).await?;
        let records = response.records.into_iter().map(log_record_from_api).collect::<Result<_>>()?;
        Ok((records, response.end_offset))
    }
}
