//! Retention against a real `ferryd` on a manual clock: expired data is
//! deleted and its disk space reclaimed, byte limits hold, and what every
//! subscription acked goes early.

use std::time::Duration;

use bytes::Bytes;
use ferry_client::{Client, Message, SubscriptionSettings, TopicSettings};
use ferry_tests::{advance_clock, disk_report, disk_usage, eventually, noise, Ferryd, TempDir};

/// Past the retention pass interval (10 s on the node's clock).
const RETENTION_PASS: Duration = Duration::from_secs(11);

fn start() -> (TempDir, Ferryd) {
    let dir = TempDir::new().expect("temp dir");
    // Frequent snapshots: old snapshots hold on to deleted files until replaced.
    let server =
        Ferryd::start_with(&dir.path().join("node"), &["--unsafe-manual-clock", "--snapshot-every-entries", "8"]);
    (dir, server)
}

async fn start_offset(client: &Client, topic: &str) -> (u64, u64, u64) {
    let topic = client.get_topic(topic).await.expect("get topic");
    let p = &topic.partitions[0];
    (p.start_offset, p.end_offset, p.stored_bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_messages_are_deleted_and_their_disk_space_reclaimed() {
    let (dir, server) = start();
    let client = Client::connect(server.addr()).await.expect("connect");
    let settings = TopicSettings { retention: Duration::from_secs(3600), ..Default::default() };
    client.create_topic("logs", settings).await.expect("create topic");
    client.create_subscription("never-reads", "logs", SubscriptionSettings::default()).await.expect("sub");

    // 64 MiB of incompressible data: enough to leave the memtables for SST files.
    for batch in 0..64u64 {
        let messages = (0..4).map(|i| Message::new(Bytes::from(noise(256 * 1024, batch * 4 + i + 1)))).collect();
        client.publish("logs", messages).await.expect("publish");
    }
    let full = eventually(Duration::from_secs(30), "data on disk", || async {
        let size = disk_usage(dir.path());
        (size > 48 << 20).then_some(size)
    })
    .await;

    // Within retention nothing goes, however many passes run.
    advance_clock(server.addr(), Duration::from_secs(1800)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(start_offset(&client, "logs").await.0, 0, "nothing expires before its time");

    advance_clock(server.addr(), Duration::from_secs(1800) + RETENTION_PASS).await;
    eventually(Duration::from_secs(30), "expired messages deleted", || async {
        let (start, end, stored) = start_offset(&client, "logs").await;
        (start == end && stored == 0).then_some(())
    })
    .await;
    assert!(client.pull("never-reads", 10, Duration::ZERO).await.expect("pull").is_empty());
    let backlog = client.get_subscription("never-reads").await.expect("get").backlog.expect("backlog");
    assert_eq!(backlog.unacked_messages, 0, "expired messages leave the backlog");

    // A few more entries cycle the snapshot that still linked the old files.
    for i in 0..16 {
        client.publish("logs", vec![Message::new(format!("after {i}"))]).await.expect("publish");
    }
    let reclaimed = eventually(Duration::from_secs(60), "disk space reclaimed", || async {
        let size = disk_usage(dir.path());
        if size >= full / 4 {
            eprintln!("{size} of {full} bytes left:\n{}", disk_report(dir.path()));
        }
        (size < full / 4).then_some(size)
    })
    .await;
    eprintln!("on disk: {full} bytes with 64 MiB stored, {reclaimed} after it expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byte_limit_keeps_only_the_newest_bytes() {
    let (_dir, server) = start();
    let client = Client::connect(server.addr()).await.expect("connect");
    let settings = TopicSettings { retention_bytes: 10_000, ..Default::default() };
    client.create_topic("capped", settings).await.expect("create topic");
    for i in 0..50u8 {
        client.publish("capped", vec![Message::new(vec![i; 1000])]).await.expect("publish");
    }
    advance_clock(server.addr(), RETENTION_PASS).await;
    let (start, end, stored) = eventually(Duration::from_secs(30), "trimmed to the byte limit", || async {
        let offsets = start_offset(&client, "capped").await;
        (offsets.0 > 0).then_some(offsets)
    })
    .await;
    assert_eq!((start, end, stored), (40, 50, 10_000), "the newest 10 messages of 1000 bytes remain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_acked_by_every_subscription_go_before_retention_ends() {
    let (_dir, server) = start();
    let client = Client::connect(server.addr()).await.expect("connect");
    client.create_topic("events", TopicSettings::default()).await.expect("create topic");
    for name in ["a", "b"] {
        client.create_subscription(name, "events", SubscriptionSettings::default()).await.expect("sub");
    }
    let messages = (0..20).map(|i| Message::new(format!("e{i}"))).collect();
    client.publish("events", messages).await.expect("publish");
    let ack_all = |name: &'static str, max: u32| {
        let client = client.clone();
        async move {
            let got = client.pull(name, max, Duration::from_secs(1)).await.expect("pull");
            let ids: Vec<String> = got.into_iter().map(|m| m.ack_id).collect();
            client.acknowledge(name, &ids).await.expect("ack");
        }
    };
    ack_all("a", 20).await;
    ack_all("b", 12).await;
    advance_clock(server.addr(), RETENTION_PASS).await;
    let (start, ..) = eventually(Duration::from_secs(30), "acked messages reclaimed", || async {
        let offsets = start_offset(&client, "events").await;
        (offsets.0 == 12).then_some(offsets)
    })
    .await;
    assert_eq!(start, 12, "only what both acked: b still needs 12..20");
    assert_eq!(client.pull("b", 20, Duration::from_secs(1)).await.expect("pull").len(), 8);
    // The 20 were stored as one batch, kept whole past the new start; what
    // lies below the start is not read back all the same.
    let (records, _) = client.read_log("events", 0, 0, 100).await.expect("read log");
    assert_eq!(records.iter().map(|r| r.offset).collect::<Vec<_>>(), (12..20).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_data_group_deletes_the_expired_messages_of_its_partitions() {
    let dir = TempDir::new().expect("temp dir");
    let args = ["--unsafe-manual-clock", "--data-groups", "4"];
    let server = Ferryd::start_with(&dir.path().join("node"), &args);
    let client = Client::connect(server.addr()).await.expect("connect");
    let settings = TopicSettings { partitions: 4, retention: Duration::from_secs(3600), ..Default::default() };
    client.create_topic("placed", settings).await.expect("create topic");
    client.create_subscription("never-reads", "placed", SubscriptionSettings::default()).await.expect("sub");
    // One request per partition (keyless requests take the partitions in
    // turn), each partition in a data group of its own.
    for i in 0..4 {
        client.publish("placed", vec![Message::new(format!("m{i}")); 10]).await.expect("publish");
    }
    let ends = |topic: ferry_client::Topic| topic.partitions.iter().map(|p| (p.start_offset, p.end_offset)).collect();
    let before: Vec<(u64, u64)> = ends(client.get_topic("placed").await.expect("get topic"));
    assert_eq!(before, vec![(0, 10); 4], "ten messages in every partition");

    advance_clock(server.addr(), Duration::from_secs(3600) + RETENTION_PASS).await;
    eventually(Duration::from_secs(30), "every partition's messages expired", || async {
        let after: Vec<(u64, u64)> = ends(client.get_topic("placed").await.ok()?);
        (after == vec![(10, 10); 4]).then_some(())
    })
    .await;
    let backlog = client.get_subscription("never-reads").await.expect("get").backlog.expect("backlog");
    assert_eq!(backlog.unacked_messages, 0, "expired messages leave the backlog of every group");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bookmark_keeps_the_acked_messages_it_may_replay_until_it_is_deleted() {
    let (_dir, server) = start();
    let client = Client::connect(server.addr()).await.expect("connect");
    client.create_topic("events", TopicSettings::default()).await.expect("create topic");
    client.create_subscription("a", "events", SubscriptionSettings::default()).await.expect("sub");
    let messages = (0..20).map(|i| Message::new(format!("e{i}"))).collect();
    client.publish("events", messages).await.expect("publish");
    let ack = |max: u32| {
        let client = client.clone();
        async move {
            let got = client.pull("a", max, Duration::from_secs(1)).await.expect("pull");
            let ids: Vec<String> = got.iter().map(|m| m.ack_id.clone()).collect();
            client.acknowledge("a", &ids).await.expect("ack");
            got.len()
        }
    };
    assert_eq!(ack(8).await, 8);
    let bookmark = client.create_bookmark("mark", "a", Default::default()).await.expect("bookmark");
    assert_eq!(bookmark.floors, [8]);
    assert_eq!(ack(20).await, 12);

    // Everything is acked, but the bookmark may replay 8..20: only 0..8 go.
    advance_clock(server.addr(), RETENTION_PASS).await;
    eventually(Duration::from_secs(30), "what the bookmark does not need reclaimed", || async {
        (start_offset(&client, "events").await.0 == 8).then_some(())
    })
    .await;
    client.seek_to_bookmark("a", "mark").await.expect("seek");
    assert_eq!(ack(20).await, 12, "the bookmark replays all it kept");

    // Without it, the next pass takes the rest.
    client.delete_bookmark("mark").await.expect("delete");
    advance_clock(server.addr(), RETENTION_PASS).await;
    eventually(Duration::from_secs(30), "everything acked reclaimed", || async {
        (start_offset(&client, "events").await.0 == 20).then_some(())
    })
    .await;
}
