//! `Client`: a typed async client for the `ferry.v1` API.

use std::time::Duration;

use ferry_proto::v1 as api;
use ferry_proto::v1::publisher_client::PublisherClient;
use ferry_proto::v1::subscriber_client::SubscriberClient;
use tonic::transport::{Channel, Endpoint};

use crate::error::{Error, Result};
use crate::types::*;

/// Largest gRPC message the client sends or accepts: the server's largest
/// publish batch plus framing.
const GRPC_MESSAGE_BYTES_MAX: usize = 20 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to a Ferry server. Cheap to clone; clones share the connection.
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
    publisher: PublisherClient<Channel>,
    subscriber: SubscriberClient<Channel>,
}

impl Client {
    /// Connects to `addr` (`host:port`, or a `http://` URL).
    pub async fn connect(addr: &str) -> Result<Self> {
        let url = if addr.contains("://") { addr.to_owned() } else { format!("http://{addr}") };
        let endpoint = Endpoint::from_shared(url)
            .map_err(|e| Error::InvalidAddress { addr: addr.to_owned(), reason: e.to_string() })?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        let channel = endpoint.connect().await.map_err(|source| Error::Connect { addr: addr.to_owned(), source })?;
        Ok(Self {
            publisher: PublisherClient::new(channel.clone())
                .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
                .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX),
            subscriber: SubscriberClient::new(channel)
                .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
                .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX),
        })
    }

    pub async fn create_topic(&self, name: &str, settings: TopicSettings) -> Result<Topic> {
        let request = api::CreateTopicRequest {
            name: name.to_owned(),
            settings: Some(api::TopicSettings {
                partitions: settings.partitions,
                max_message_bytes: settings.max_message_bytes,
            }),
        };
        let topic = self.publisher.clone().create_topic(request).await?.into_inner();
        Ok(topic_from_api(topic))
    }

    pub async fn get_topic(&self, name: &str) -> Result<Topic> {
        let request = api::GetTopicRequest { name: name.to_owned() };
        Ok(topic_from_api(self.publisher.clone().get_topic(request).await?.into_inner()))
    }

    /// Every topic, in name order.
    pub async fn list_topics(&self) -> Result<Vec<Topic>> {
        let mut topics = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = api::ListTopicsRequest { page_size: 0, page_token };
            let page = self.publisher.clone().list_topics(request).await?.into_inner();
            topics.extend(page.topics.into_iter().map(topic_from_api));
            if page.next_page_token.is_empty() {
                return Ok(topics);
            }
            page_token = page.next_page_token;
        }
    }

    /// Deletes a topic, its messages and its subscriptions.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        self.publisher.clone().delete_topic(api::DeleteTopicRequest { name: name.to_owned() }).await?;
        Ok(())
    }

    /// Publishes a batch; returns each message's position once the batch is
    /// committed and durable.
    pub async fn publish(&self, topic: &str, messages: Vec<Message>) -> Result<Vec<Position>> {
        let count = messages.len();
        let request = api::PublishRequest {
            topic: topic.to_owned(),
            messages: messages.into_iter().map(message_to_api).collect(),
        };
        let response = self.publisher.clone().publish(request).await?.into_inner();
        if response.positions.len() != count {
            return Err(Error::Protocol(format!("{} positions for {count} messages", response.positions.len())));
        }
        Ok(response.positions.into_iter().map(|p| Position { partition: p.partition, offset: p.offset }).collect())
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
            settings: Some(api::SubscriptionSettings {
                ack_deadline_seconds: u32::try_from(settings.ack_deadline.as_secs()).unwrap_or(u32::MAX),
            }),
        };
        let subscription = self.subscriber.clone().create_subscription(request).await?.into_inner();
        Ok(subscription_from_api(subscription))
    }

    pub async fn get_subscription(&self, name: &str) -> Result<Subscription> {
        let request = api::GetSubscriptionRequest { name: name.to_owned() };
        Ok(subscription_from_api(self.subscriber.clone().get_subscription(request).await?.into_inner()))
    }

    /// Every subscription (of `topic`, when given), in name order.
    pub async fn list_subscriptions(&self, topic: Option<&str>) -> Result<Vec<Subscription>> {
        let mut subscriptions = Vec::new();
        let mut page_token = String::new();
        loop {
            let request =
                api::ListSubscriptionsRequest { topic: topic.unwrap_or_default().to_owned(), page_size: 0, page_token };
            let page = self.subscriber.clone().list_subscriptions(request).await?.into_inner();
            subscriptions.extend(page.subscriptions.into_iter().map(subscription_from_api));
            if page.next_page_token.is_empty() {
                return Ok(subscriptions);
            }
            page_token = page.next_page_token;
        }
    }

    pub async fn delete_subscription(&self, name: &str) -> Result<()> {
        let request = api::DeleteSubscriptionRequest { name: name.to_owned() };
        self.subscriber.clone().delete_subscription(request).await?;
        Ok(())
    }

    /// Leases up to `max_messages` (1..=1000), waiting up to `wait` for the
    /// first one. Ack each before its deadline or it is delivered again.
    pub async fn pull(&self, subscription: &str, max_messages: u32, wait: Duration) -> Result<Vec<ReceivedMessage>> {
        let request = api::PullRequest {
            subscription: subscription.to_owned(),
            max_messages,
            wait_millis: u32::try_from(wait.as_millis()).unwrap_or(u32::MAX),
        };
        let response = self.subscriber.clone().pull(request).await?.into_inner();
        response.messages.into_iter().map(received_from_api).collect()
    }

    /// Acknowledges deliveries; returns once the acks are committed.
    pub async fn acknowledge(&self, subscription: &str, ack_ids: &[String]) -> Result<AckOutcome> {
        let request = api::AcknowledgeRequest { subscription: subscription.to_owned(), ack_ids: ack_ids.to_vec() };
        let response = self.subscriber.clone().acknowledge(request).await?.into_inner();
        Ok(AckOutcome { acknowledged: response.acknowledged, stale: response.stale })
    }

    /// Sets the remaining lease of deliveries to `seconds` (0 = nack: deliver
    /// again now). Returns how many leases were changed.
    pub async fn modify_ack_deadline(&self, subscription: &str, ack_ids: &[String], seconds: u32) -> Result<u32> {
        let request = api::ModifyAckDeadlineRequest {
            subscription: subscription.to_owned(),
            ack_ids: ack_ids.to_vec(),
            ack_deadline_seconds: seconds,
        };
        Ok(self.subscriber.clone().modify_ack_deadline(request).await?.into_inner().modified)
    }
}
