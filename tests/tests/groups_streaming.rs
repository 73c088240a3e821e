//! StreamingPull of a topic placed in data groups (a cluster formed with
//! `--data-groups 4`): the node the client streams from keeps one sub-stream
//! per group, on each group's leader, and merges them; acks reach the group
//! of their partition, and an ack id that is not one is rejected by name; a
//! data group's leader killed mid-stream costs only redeliveries of that
//! group's leased messages, and nothing is lost; the client's flow-control
//! window follows where its messages are, so a busy partition fills it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ferry_client::{Client, Message, SubscriberSettings, SubscriptionSettings, TopicSettings};
use ferry_proto::v1 as api;
use ferry_tests::{ack_until_backlog_empty, eventually, receive_all_across_a_kill, Cluster, RawStream};

const PARTITIONS: u32 = 4;
const MESSAGES: usize = 2_000;

/// Group → leader as node `id` sees it; `None` until every group leads.
async fn group_leaders(cluster: &Cluster, id: u64) -> Option<BTreeMap<u32, u64>> {
    let leaders = cluster.group_leaders(id).await?;
    (leaders.len() == 5 && leaders.values().all(|leader| *leader != 0)).then_some(leaders)
}

/// Three nodes with four data groups, once every node sees each group led.
async fn three_nodes_every_group_led() -> Cluster {
    let cluster = Cluster::start(3, &["--data-groups", "4"]);
    for id in 1..=3 {
        eventually(Duration::from_secs(30), "every group leads", || group_leaders(&cluster, id)).await;
    }
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_from_any_node_gets_every_group_and_outlives_a_data_group_leader_kill() {
    let mut cluster = three_nodes_every_group_led().await;
    let admin = Client::connect(&cluster.addrs()).await.expect("connect");
    admin.create_topic("t", TopicSettings { partitions: PARTITIONS, ..Default::default() }).await.expect("topic");
    let settings = SubscriptionSettings { ack_deadline: Duration::from_secs(10), ..Default::default() };
    admin.create_subscription("s", "t", settings).await.expect("subscription");

    // Keyless requests through each node's client in turn fill every partition.
    let mut published = BTreeSet::new();
    let mut partitions = BTreeSet::new();
    let nodes = cluster.clients().await;
    for request in 0..MESSAGES / 50 {
        let node = &nodes[request % 3];
        let values: Vec<String> = (0..50).map(|i| format!("m{request}-{i}")).collect();
        let positions = node.publish("t", values.iter().cloned().map(Message::new).collect()).await.expect("publish");
        partitions.extend(positions.iter().map(|p| p.partition));
        published.extend(values);
    }
    assert_eq!(partitions.len(), PARTITIONS as usize);

    // Stream from the node that leads group 0 (it stays up), and kill the
    // leader of a data group on another node once a quarter has been acked.
    let streamed_from = cluster.leader(Duration::from_secs(10)).await;
    let leaders = group_leaders(&cluster, streamed_from).await.expect("leaders");
    let victim = leaders.iter().find(|(group, leader)| **group > 0 && **leader != streamed_from).map(|(_, l)| *l);
    let victim = victim.expect("leaders start spread: another node leads a data group");
    let client = Client::connect(cluster.addr(streamed_from)).await.expect("connect");
    let settings = SubscriberSettings { max_outstanding_messages: 200, ..Default::default() };
    let mut subscriber = client.subscribe("s", settings).await.expect("subscribe");
    receive_all_across_a_kill(&mut subscriber, &published, &mut cluster, victim).await;

    // What the group's leader took with it comes again; acking it empties
    // the backlog.
    ack_until_backlog_empty(&admin, &mut subscriber, "s", &published).await;
    subscriber.close().await;
}

/// The alphabet of ack ids (URL-safe base64).
const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// `id` with the bits `flip` of its character `at` flipped.
fn flipped(id: &str, at: usize, flip: usize) -> String {
    let mut bytes = id.as_bytes().to_vec();
    let value = BASE64.iter().position(|c| *c == bytes[at]).expect("a base64 character");
    bytes[at] = BASE64[value ^ flip];
    String::from_utf8(bytes).expect("ASCII")
}

/// The fan-in routes an ack by the first 20 characters of its id only (the
/// subscription and partition); the group it reaches decodes it whole. So a
/// mangled id is rejected by name in that group's confirmation and acks
/// nothing, whether it names its own partition or another; one too short to
/// name any is rejected at once. A deadline change past the limit ends the
/// stream with INVALID_ARGUMENT, as it does for a subscription not placed.
/// (One node: its groups' sub-streams are all local.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placed_stream_rejects_mangled_ack_ids_by_name_and_acks_the_rest() {
    let cluster = Cluster::start_with_groups(1, 4).await;
    let client = Client::connect(cluster.addr(1)).await.expect("connect");
    client.create_topic("t", TopicSettings { partitions: PARTITIONS, ..Default::default() }).await.expect("topic");
    let settings = SubscriptionSettings { ack_deadline: Duration::from_secs(60), ..Default::default() };
    client.create_subscription("s", "t", settings).await.expect("subscription");
    // A keyless request's messages go to one partition, each request to the
    // next: every group gets some.
    let mut partitions = BTreeSet::new();
    for request in 0..PARTITIONS {
        let messages = (0..10).map(|i| Message::new(format!("m{request}-{i}"))).collect();
        let positions = client.publish("t", messages).await.expect("publish");
        partitions.extend(positions.iter().map(|p| p.partition));
    }
    assert_eq!(partitions.len(), PARTITIONS as usize);

    let first = api::StreamingPullRequest {
        subscription: "s".into(),
        max_outstanding_messages: 100,
        confirm_ack_ids: true,
        ..Default::default()
    };
    let mut stream = RawStream::open(cluster.addr(1), first).await;
    let mut delivered = Vec::new();
    stream.receive_until(&mut delivered, 10 * PARTITIONS as usize).await;

    // Two mangled copies of the last id: one with the CRC's lowest bit
    // flipped (value bit 0 of the last character), routed to its own
    // partition's group; one with the partition's lowest bit flipped (value
    // bit 4 of character 17, which holds byte 12's low two bits), routed to
    // another group.
    let kept = delivered.pop().expect("a delivery");
    let mangled = [flipped(&kept, kept.len() - 1, 1), flipped(&kept, 17, 0b01_0000)];
    let mut ack_ids = delivered.clone();
    ack_ids.extend(mangled.iter().cloned().chain(["not-an-ack-id".to_owned()]));
    stream.send(api::StreamingPullRequest { ack_ids: ack_ids.clone(), ..Default::default() }).await;

    let (mut listed, mut rejected) = (Vec::new(), Vec::new());
    while listed.len() + rejected.len() < ack_ids.len() {
        let Some(confirmation) = stream.next().await.ack_confirmation else { continue };
        listed.extend(confirmation.ack_ids);
        rejected.extend(confirmation.rejected_ack_ids);
    }
    rejected.sort();
    let mut expected: Vec<String> = mangled.into_iter().chain(["not-an-ack-id".to_owned()]).collect();
    expected.sort();
    assert_eq!(rejected, expected, "each bad id rejected by name");
    listed.sort();
    delivered.sort();
    assert_eq!(listed, delivered, "every good ack committed");
    let backlog = client.get_subscription("s").await.expect("get").backlog.expect("backlog");
    assert_eq!(backlog.unacked_messages, 1, "the mangled ids acked nothing: {backlog:?}");

    let change = api::DeadlineChange { ack_ids: vec![kept], seconds: 100_000 };
    stream.send(api::StreamingPullRequest { deadline_changes: vec![change], ..Default::default() }).await;
    let status = stream.error().await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("ack_deadline_seconds"), "names the field: {status:?}");
}

/// Topic `t` (four partitions) and subscription `s`, with `count` messages
/// all in one partition (a keyless request's messages go to one).
async fn busy_partition(client: &Client, count: usize) {
    client.create_topic("t", TopicSettings { partitions: PARTITIONS, ..Default::default() }).await.expect("topic");
    let settings = SubscriptionSettings { ack_deadline: Duration::from_secs(60), ..Default::default() };
    client.create_subscription("s", "t", settings).await.expect("subscription");
    let messages = (0..count).map(|i| Message::new(format!("m{i}"))).collect();
    let positions = client.publish("t", messages).await.expect("publish");
    assert_eq!(positions.iter().map(|p| p.partition).collect::<BTreeSet<_>>().len(), 1);
}

/// A raw StreamingPull of `s` from `addr` with a limit of 100: the busy
/// partition's messages fill the whole window, not the even split's
/// quarter of it, and (`capped`) never more; acking 50 (on the stream, or
/// through `unary` Acknowledge calls, which only the group sees) frees room
/// for 50 more, `rounds` times over. Not `capped` where a group's leader may
/// move during the test (a cluster on a busy machine): its new leader
/// delivers again what the old one leased, which counts twice here.
async fn fills_its_window(addr: &str, unary: Option<&Client>, rounds: usize, capped: bool) {
    let first =
        api::StreamingPullRequest { subscription: "s".into(), max_outstanding_messages: 100, ..Default::default() };
    let mut stream = RawStream::open(addr, first).await;
    let mut out = Vec::new();
    // The even split held this to 25. Then quiet for a moment: whatever
    // more would come has come.
    stream.receive_until(&mut out, 90).await;
    stream.receive_quiet(&mut out).await;
    assert!(!capped || out.len() <= 100, "{} out for a limit of 100", out.len());
    for _ in 0..rounds {
        let acked: Vec<String> = out.drain(..50).collect();
        match unary {
            Some(client) => assert_eq!(client.acknowledge("s", &acked).await.expect("ack").acknowledged, 50),
            None => stream.send(api::StreamingPullRequest { ack_ids: acked, ..Default::default() }).await,
        }
        let held = out.len();
        stream.receive_until(&mut out, held + 40).await;
        stream.receive_quiet(&mut out).await;
        assert!(out.len() <= 100, "{} out for a limit of 100", out.len());
    }
}

/// (One node: its groups' sub-streams are all local.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_partition_gets_the_whole_window_of_a_placed_stream() {
    let cluster = Cluster::start_with_groups(1, 4).await;
    let client = Client::connect(cluster.addr(1)).await.expect("connect");
    busy_partition(&client, 300).await;
    fills_its_window(cluster.addr(1), None, 3, true).await;
}

/// Acks through unary calls (as Pub/Sub's clients make them) never pass
/// through the stream, yet free its room, and the window stays the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placed_stream_acked_through_unary_calls_keeps_to_its_window() {
    let cluster = Cluster::start_with_groups(1, 4).await;
    let client = Client::connect(cluster.addr(1)).await.expect("connect");
    busy_partition(&client, 300).await;
    fills_its_window(cluster.addr(1), Some(&client), 3, true).await;
}

/// From every node of a cluster in turn, so the busy group's sub-stream runs
/// on another node's leader at least twice (`Groups.StreamingPull`, whose
/// responses report what the consumer holds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_partition_gets_the_whole_window_from_any_node_of_a_cluster() {
    let cluster = three_nodes_every_group_led().await;
    let client = Client::connect(&cluster.addrs()).await.expect("connect");
    busy_partition(&client, 300).await;
    for id in 1..=3 {
        // The stream before it ended; what it held is delivered again.
        fills_its_window(cluster.addr(id), None, 0, false).await;
    }
}

/// A consumer that acks everything and closes at once (`Subscriber::close`
/// sends its last acks, then ends its side) has every ack committed: the
/// node's sub-streams end only after their groups have taken the requests
/// queued for them. They used to be dropped with the client's side, taking
/// the last acks with them, so a clean close left hundreds of acked
/// messages to come again (1 node, 4 groups: 5 runs of 6 of `ferry bench
/// consume`). `client` streams from one node; `admin` reads the backlog.
async fn acks_sent_as_it_closes_are_committed(client: &Client, admin: &Client) {
    const ROUNDS: usize = 3;
    admin.create_topic("t", TopicSettings { partitions: PARTITIONS, ..Default::default() }).await.expect("topic");
    // Nothing is redelivered within the test: an ack lost stays unacked.
    let settings = SubscriptionSettings { ack_deadline: Duration::from_secs(600), ..Default::default() };
    admin.create_subscription("s", "t", settings).await.expect("subscription");
    for round in 0..ROUNDS {
        for request in 0..MESSAGES / 100 {
            let messages = (0..100).map(|i| Message::new(format!("m{round}-{request}-{i}"))).collect();
            admin.publish("t", messages).await.expect("publish");
        }
        let settings = SubscriberSettings { max_outstanding_messages: MESSAGES as u32, ..Default::default() };
        let mut subscriber = client.subscribe("s", settings).await.expect("subscribe");
        // Until every message of the round came (one delivered again after
        // a leadership change counts once), each acked.
        let mut received = BTreeSet::new();
        while received.len() < MESSAGES {
            let next = tokio::time::timeout(Duration::from_secs(30), subscriber.next()).await;
            let delivered = next.expect("a message within 30 s").expect("the stream stays up").expect("no error");
            received.insert(delivered.message.message.data.clone());
            delivered.ack();
        }
        subscriber.close().await;
        eventually(
            Duration::from_secs(5),
            &format!("round {round}: every ack sent before the close commits"),
            || async {
                let backlog = admin.get_subscription("s").await.expect("get").backlog.expect("backlog");
                (backlog.unacked_messages == 0).then_some(())
            },
        )
        .await;
    }
}

/// (One node: every sub-stream is local.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_sent_as_a_placed_stream_closes_are_committed() {
    let cluster = Cluster::start_with_groups(1, 4).await;
    let client = Client::connect(cluster.addr(1)).await.expect("connect");
    acks_sent_as_it_closes_are_committed(&client, &client).await;
}

/// Streaming from a node that does not lead every group: those sub-streams
/// are `Groups.StreamingPull` calls to their leaders, ended by closing the
/// call's request side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_sent_as_a_placed_stream_closes_are_committed_by_every_groups_leader() {
    let cluster = three_nodes_every_group_led().await;
    let admin = Client::connect(&cluster.addrs()).await.expect("connect");
    let leaders = group_leaders(&cluster, 1).await.expect("leaders");
    let streamed_from = (1..=3).find(|id| leaders.iter().any(|(group, leader)| *group > 0 && leader != id));
    let streamed_from = streamed_from.expect("a node that does not lead every data group");
    let client = Client::connect(cluster.addr(streamed_from)).await.expect("connect");
    acks_sent_as_it_closes_are_committed(&client, &admin).await;
}
