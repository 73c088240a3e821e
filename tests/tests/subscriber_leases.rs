//! The Subscriber keeps the leases of messages it holds alive, but only up to
//! its configured maximum: a consumer stuck on a message does not hide it
//! from the others forever.

use std::time::Duration;

use ferry_client::{Client, Message, SubscriberSettings, SubscriptionSettings, TopicSettings};
use ferry_tests::{Ferryd, TempDir};
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_message_is_extended_past_its_deadline_until_the_maximum_then_redelivered() {
    let dir = TempDir::new().expect("temp dir");
    let server = Ferryd::start(&dir.path().join("node"));
    let client = Client::connect(server.addr()).await.expect("connect");
    client.create_topic("work", TopicSettings::default()).await.expect("create topic");
    // The shortest deadline there is, so the test spans a few of them.
    let settings = SubscriptionSettings { ack_deadline: Duration::from_secs(10), ..Default::default() };
    client.create_subscription("pool", "work", settings).await.expect("sub");
    client.publish("work", vec![Message::new("slow job")]).await.expect("publish");

    let settings = SubscriberSettings { max_lease_extension: Duration::from_secs(12), ..Default::default() };
    let mut subscriber = client.subscribe("pool", settings).await.expect("subscribe");
    let held = subscriber.next().await.expect("a message").expect("no error");
    let held_since = Instant::now();
    assert_eq!(held.message.delivery_attempt, 1);

    // Past the 10 s deadline the lease still holds: the subscriber extended it.
    tokio::time::sleep_until(held_since + Duration::from_secs(12)).await;
    let meanwhile = client.pull("pool", 10, Duration::from_millis(500)).await.expect("pull");
    assert!(meanwhile.is_empty(), "redelivered while its holder was extending the lease: {meanwhile:?}");

    // Extension stops at 12 s of holding, so the lease runs out within one
    // more deadline and the message goes out again — to whichever consumer
    // asks first: the pulling one, or the subscriber's own stream (which
    // holds no lease on it any more).
    let give_up = held_since + Duration::from_secs(40);
    let redelivered = loop {
        tokio::select! {
            streamed = subscriber.next() => break streamed.expect("a message").expect("no error").message.clone(),
            pulled = client.pull("pool", 10, Duration::from_secs(1)) => {
                if let Some(message) = pulled.expect("pull").into_iter().next() {
                    break message;
                }
            }
        }
        assert!(Instant::now() < give_up, "the lease was extended past its maximum");
    };
    assert_eq!(redelivered.message.data.as_ref(), b"slow job");
    assert_eq!(redelivered.delivery_attempt, 2);
    assert!(held_since.elapsed() < Duration::from_secs(12 + 10 + 5), "redelivered late: {:?}", held_since.elapsed());
    drop(held);
    subscriber.close().await;
}
