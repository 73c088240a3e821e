//! Idempotent publishing (SPEC contract 5): a batch retried after its answer
//! was lost is stored once — on one node, and across a leader change.

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_client::{
    Client, Code, Compression, Error, Message, ProducerSequence, Publisher, PublisherSettings, SequencedPublish,
    TopicSettings,
};
use ferry_proto::v1 as api;
use ferry_proto::v1::publisher_client::PublisherClient;
use ferry_tests::{Cluster, Ferryd, TempDir};

fn batch(topic: &str, producer_id: u64, sequence: u64, values: &[&str]) -> api::PublishRequest {
    api::PublishRequest {
        topic: topic.to_owned(),
        messages: values.iter().map(|v| api::Message { data: v.to_string().into(), ..Default::default() }).collect(),
        producer_id,
        sequence,
        partition: Some(0),
        ..Default::default()
    }
}

async fn stub(addr: &str) -> PublisherClient<tonic::transport::Channel> {
    PublisherClient::connect(format!("http://{addr}")).await.expect("connect")
}

fn offsets(response: &api::PublishResponse) -> Vec<u64> {
    response.positions.iter().map(|p| p.offset).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_sent_twice_is_stored_once_and_answered_with_the_same_offsets() {
    let dir = TempDir::new().expect("temp dir");
    let mut server = Ferryd::start(&dir.path().join("node"));
    let client = Client::connect(server.addr()).await.expect("connect");
    client.create_topic("t", TopicSettings::default()).await.expect("create topic");
    let mut publisher = stub(server.addr()).await;

    let first = publisher.publish(batch("t", 42, 0, &["a", "b"])).await.expect("publish").into_inner();
    client.publish("t", vec![Message::new("other")]).await.expect("plain publish");
    // The answer to the first try was "lost": the producer sends the batch again.
    let retry = publisher.publish(batch("t", 42, 0, &["a", "b"])).await.expect("retry").into_inner();
    assert_eq!((offsets(&retry), retry.duplicate), (vec![0, 1], true));
    assert!(!first.duplicate);

    // A crash and restart keeps what deduplication remembers: it is replicated state.
    server.kill9();
    server.restart();
    let mut publisher = stub(server.addr()).await;
    let after_restart = publisher.publish(batch("t", 42, 0, &["a", "b"])).await.expect("retry").into_inner();
    assert_eq!((offsets(&after_restart), after_restart.duplicate), (vec![0, 1], true));
    let next = publisher.publish(batch("t", 42, 2, &["c"])).await.expect("next batch").into_inner();
    assert_eq!((offsets(&next), next.duplicate), (vec![3], false));

    let client = Client::connect(server.addr()).await.expect("reconnect");
    let end = client.get_topic("t").await.expect("get topic").partitions[0].end_offset;
    assert_eq!(end, 4, "a, b, other, c: each once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_sequence_and_malformed_idempotent_batches_are_refused() {
    let dir = TempDir::new().expect("temp dir");
    let server = Ferryd::start(&dir.path().join("node"));
    let client = Client::connect(server.addr()).await.expect("connect");
    client.create_topic("t", TopicSettings { partitions: 2, ..Default::default() }).await.expect("create topic");
    let mut publisher = stub(server.addr()).await;
    publisher.publish(batch("t", 7, 0, &["a", "b"])).await.expect("publish");

    let gap = publisher.publish(batch("t", 7, 5, &["x"])).await.expect_err("a gap");
    assert_eq!(gap.code(), Code::FailedPrecondition, "{gap:?}");
    assert!(gap.message().contains("expected sequence 2, got 5"), "{}", gap.message());
    let overlap = publisher.publish(batch("t", 7, 1, &["x"])).await.expect_err("an overlap");
    assert_eq!(overlap.code(), Code::AlreadyExists, "{overlap:?}");

    let mut no_partition = batch("t", 7, 2, &["x"]);
    no_partition.partition = None;
    let refused = publisher.publish(no_partition).await.expect_err("no partition");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("partition"), "{}", refused.message());

    let mut out_of_range = batch("t", 7, 2, &["x"]);
    out_of_range.partition = Some(2);
    let refused = publisher.publish(out_of_range).await.expect_err("partition out of range");
    assert!(refused.message().contains("partition") && refused.message().contains("2 partitions"), "{refused:?}");

    // An ordering key belongs to one partition; a request naming another is refused.
    let mut misplaced = batch("t", 0, 0, &[]);
    misplaced.producer_id = 0;
    misplaced.messages = (0..20)
        .map(|i| api::Message { data: "x".into(), ordering_key: format!("key-{i}"), ..Default::default() })
        .collect();
    let refused = publisher.publish(misplaced).await.expect_err("keys of both partitions");
    assert!(refused.message().contains("ordering_key"), "{}", refused.message());

    assert_eq!(client.get_topic("t").await.expect("get").partitions[0].end_offset, 2, "nothing refused was stored");
}

/// What a mirror relies on: its batches are numbered by source offset, it
/// starts wherever its source stands, skips what it filters out, and is
/// stored once across retries and restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_that_skips_sequences_on_purpose_is_stored_once_and_an_overtaking_skip_waits() {
    let dir = TempDir::new().expect("temp dir");
    let mut server = Ferryd::start(&dir.path().join("node"));
    let client = Client::connect(server.addr()).await.expect("connect");
    client.create_topic("t", TopicSettings::default()).await.expect("create topic");
    let at = |first_sequence, skip_from| ProducerSequence { partition: 0, producer_id: 9, first_sequence, skip_from };
    let messages = |values: &[&str]| values.iter().map(|v| Message::new(v.to_string())).collect::<Vec<_>>();
    let offsets = |published: &SequencedPublish| published.positions.iter().map(|p| p.offset).collect::<Vec<_>>();

    let refused = client
        .publish_sequenced("t", at(100, None), messages(&["a"]), Compression::None)
        .await
        .expect_err("not from 0");
    assert_eq!(refused.reason(), Some("unknown-producer"), "{refused:?}");
    let started = client
        .publish_sequenced("t", at(100, Some(0)), messages(&["a", "b"]), Compression::None)
        .await
        .expect("start at 100");
    assert_eq!((offsets(&started), started.duplicate), (vec![0, 1], false));
    // 102..110 filtered out: the next batch says so.
    let skipped =
        client.publish_sequenced("t", at(110, Some(102)), messages(&["c"]), Compression::None).await.expect("skip");
    assert_eq!((offsets(&skipped), skipped.duplicate), (vec![2], false));

    // A skip from 120 overtook a batch 111..120 on its way: it is refused, and
    // told where the partition stands.
    let overtaking = client
        .publish_sequenced("t", at(130, Some(120)), messages(&["x"]), Compression::None)
        .await
        .expect_err("a gap");
    assert_eq!((overtaking.reason(), overtaking.next_sequence()), (Some("sequence-gap"), Some(111)), "{overtaking:?}");
    // A batch reaching below what is stored, not a retry of a remembered one.
    let straddling = client
        .publish_sequenced("t", at(105, None), messages(&["x", "y"]), Compression::None)
        .await
        .expect_err("stored");
    assert_eq!((straddling.reason(), straddling.next_sequence()), (Some("sequence-committed"), Some(111)));

    // The producer's state is replicated: after a crash the retried skip is
    // recognised and the next batch follows on.
    server.kill9();
    server.restart();
    let client = Client::connect(server.addr()).await.expect("reconnect");
    let retried =
        client.publish_sequenced("t", at(110, Some(102)), messages(&["c"]), Compression::None).await.expect("retry");
    assert_eq!((offsets(&retried), retried.duplicate), (vec![2], true));
    let next = client.publish_sequenced("t", at(111, None), messages(&["d"]), Compression::None).await.expect("next");
    assert_eq!(offsets(&next), vec![3]);
    assert_eq!(client.get_topic("t").await.expect("get").partitions[0].end_offset, 4, "a, b, c, d: each once");

    // A skip needs a producer, and ends where its batch starts.
    let mut plain = batch("t", 0, 0, &["x"]);
    plain.skip_from = Some(1);
    let mut publisher = stub(server.addr()).await;
    let refused = publisher.publish(plain).await.expect_err("skip without producer");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("skip_from"), "{}", refused.message());
    let mut backwards = batch("t", 9, 120, &["x"]);
    backwards.skip_from = Some(125);
    let refused = publisher.publish(backwards).await.expect_err("skip past the batch");
    assert!(refused.message().contains("skip_from") && refused.message().contains("125"), "{}", refused.message());
}

/// Sends `request` to the node that leads its partition, asking again while
/// an election makes it answer UNAVAILABLE. Returns the node that answered,
/// and the answer.
async fn publish_to_leader(cluster: &Cluster, request: &api::PublishRequest) -> (u64, api::PublishResponse) {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let leader =
            cluster.partition_leader(&request.topic, request.partition.unwrap_or(0), Duration::from_secs(20)).await;
        match stub(cluster.addr(leader)).await.publish(request.clone()).await {
            Ok(response) => return (leader, response.into_inner()),
            Err(status) if status.code() == Code::Unavailable && tokio::time::Instant::now() < give_up => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => panic!("publish to node {leader}: {status:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_committed_by_a_leader_that_died_is_not_stored_again_by_the_next() {
    let mut cluster = Cluster::start(3, &[]);
    let client = Client::connect(&cluster.addrs()).await.expect("connect");
    client.create_topic("t", TopicSettings::default()).await.expect("create topic");
    let request = batch("t", 99, 0, &["only", "once"]);
    let (leader, committed) = publish_to_leader(&cluster, &request).await;
    assert_eq!(offsets(&committed), vec![0, 1]);

    // The leader dies before the producer hears back; it retries elsewhere.
    cluster.kill9(leader);
    let (_, retry) = publish_to_leader(&cluster, &request).await;
    assert_eq!((offsets(&retry), retry.duplicate), (vec![0, 1], true));

    cluster.restart(leader);
    cluster.wait_replicated("t", 0, 2, Duration::from_secs(30)).await;
    for id in 1..=3 {
        let values: Vec<_> = cluster.read_log(id, "t", 0).await.into_iter().map(|r| r.message.data).collect();
        assert_eq!(values, vec!["only", "once"], "node {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_mid_stream_rides_out_a_leader_kill_without_loss_or_duplicates() {
    let mut cluster = Cluster::start(3, &[]);
    let client = Client::connect(&cluster.addrs()).await.expect("connect");
    client.create_topic("events", TopicSettings { partitions: 2, ..Default::default() }).await.expect("create topic");
    let settings = PublisherSettings { batch_max_messages: 100, ..Default::default() };
    let publisher = Publisher::new(&client, "events", settings).await.expect("publisher");

    let total = 20_000;
    let mut handles = Vec::with_capacity(total);
    let mut killed = None;
    for i in 0..total {
        let message = Message::new(format!("v{i}")).ordering_key(format!("k{}", i % 7));
        handles.push(publisher.publish(message).await.expect("queue"));
        if i == total / 3 {
            // Thousands of messages are queued or in flight when a
            // partition's leader dies.
            let leader = cluster.partition_leader("events", 0, Duration::from_secs(10)).await;
            cluster.kill9(leader);
            killed = Some(leader);
        }
    }
    let mut confirmed = BTreeMap::new();
    for (i, handle) in handles.into_iter().enumerate() {
        let position = handle.await.unwrap_or_else(|e| panic!("message {i} was not published: {e}"));
        confirmed.insert(format!("v{i}"), position);
    }
    publisher.close().await;
    cluster.restart(killed.expect("a leader was killed"));

    for partition in 0..2 {
        let end = confirmed.values().filter(|p| p.partition == partition).map(|p| p.offset + 1).max().unwrap_or(0);
        cluster.wait_replicated("events", partition, end, Duration::from_secs(60)).await;
    }
    for id in 1..=3 {
        let mut seen = BTreeMap::new();
        for partition in 0..2 {
            for record in cluster.read_log(id, "events", partition).await {
                let value = String::from_utf8_lossy(&record.message.data).into_owned();
                let position = ferry_client::Position { partition, offset: record.offset };
                assert!(seen.insert(value.clone(), position).is_none(), "node {id} stores {value} twice");
            }
        }
        assert_eq!(seen, confirmed, "node {id} holds exactly the confirmed messages, where they were confirmed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_waits_out_a_restart_of_its_only_server() {
    let dir = TempDir::new().expect("temp dir");
    let mut server = Ferryd::start(&dir.path().join("node"));
    let client = Client::connect(server.addr()).await.expect("connect");
    client.create_topic("t", TopicSettings::default()).await.expect("create topic");
    let publisher = Publisher::new(&client, "t", PublisherSettings::default()).await.expect("publisher");

    let before = publisher.publish(Message::new("before")).await.expect("queue").await.expect("publish before");
    server.kill9();
    let during = publisher.publish(Message::new("during")).await.expect("queue");
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.restart();
    let during = during.await.expect("published once the server is back");
    let after = publisher.publish(Message::new("after")).await.expect("queue").await.expect("publish after");
    assert_eq!((before.offset, during.offset, after.offset), (0, 1, 2));
    publisher.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_fails_fast_when_told_not_to_wait() {
    let dir = TempDir::new().expect("temp dir");
    let server = Ferryd::start(&dir.path().join("node"));
    let client = Client::connect(server.addr()).await.expect("connect");
    client.create_topic("t", TopicSettings::default()).await.expect("create topic");
    let settings = PublisherSettings {
        max_pending_messages: 10,
        block_when_full: false,
        // The first messages wait in their batch for a second: the queue fills.
        linger: Duration::from_secs(1),
        ..Default::default()
    };
    let publisher = Publisher::new(&client, "t", settings).await.expect("publisher");
    let mut handles = Vec::new();
    for i in 0..10 {
        handles.push(publisher.publish(Message::new(format!("m{i}"))).await.expect("room for ten"));
    }
    let full = publisher.publish(Message::new("one too many")).await.expect_err("the queue is full");
    assert!(matches!(full, Error::QueueFull { messages: 10, .. }), "{full}");
    for handle in handles {
        handle.await.expect("the queued ten are published");
    }
    // Room came back with the answers.
    publisher.publish(Message::new("now it fits")).await.expect("room again").await.expect("published");
    publisher.close().await;
}
