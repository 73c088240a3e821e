//! One node holds a thousand topics with a subscription each, all usable.

use std::time::Duration;

use ferry_client::{Client, Message, SubscriptionSettings, TopicSettings};
use ferry_tests::{Ferryd, TempDir};

const TOPICS: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_topics_with_a_subscription_each_are_created_and_used() {
    let dir = TempDir::new().expect("temp dir");
    let server = Ferryd::start(&dir.path().join("node"));
    let client = Client::connect(server.addr()).await.expect("connect");
    for i in 0..TOPICS {
        client.create_topic(&format!("event-type-{i:04}"), TopicSettings::default()).await.expect("create topic");
        let topic = format!("event-type-{i:04}");
        client.create_subscription(&format!("etl-{i:04}"), &topic, SubscriptionSettings::default()).await.expect("sub");
    }
    for i in 0..TOPICS {
        client.publish(&format!("event-type-{i:04}"), vec![Message::new(format!("hello {i}"))]).await.expect("publish");
    }
    for i in (0..TOPICS).step_by(7) {
        let got = client.pull(&format!("etl-{i:04}"), 10, Duration::from_secs(1)).await.expect("pull");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].message.data.as_ref(), format!("hello {i}").as_bytes(), "each topic holds its own messages");
    }
    assert_eq!(client.list_topics().await.expect("list").len(), TOPICS);
    assert_eq!(client.list_subscriptions(None).await.expect("list").len(), TOPICS);
}
