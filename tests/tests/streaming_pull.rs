//! StreamingPull against a real `ferryd`: many consumers share one
//! subscription, flow control bounds what each holds, acks are confirmed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ferry_client::{Client, Delivered, Message, Subscriber, SubscriberSettings, SubscriptionSettings, TopicSettings};
use ferry_tests::{eventually, Ferryd, RawStream, TempDir};
use tokio::sync::Barrier;

const CONSUMERS: usize = 50;
const MESSAGES: usize = 1000;

/// A node with topic `work` and subscription `pool` (10-minute leases, so
/// nothing is redelivered during a test).
async fn pool() -> (TempDir, Ferryd, Client) {
    let dir = TempDir::new().expect("temp dir");
    let server = Ferryd::start(&dir.path().join("node"));
    let client = Client::connect(server.addr()).await.expect("connect");
    client.create_topic("work", TopicSettings::default()).await.expect("create topic");
    let settings = SubscriptionSettings { ack_deadline: Duration::from_secs(600), ..Default::default() };
    client.create_subscription("pool", "work", settings).await.expect("sub");
    (dir, server, client)
}

/// A subscriber of `subscription` that may hold five messages (otherwise
/// with `settings`), and the five it holds.
async fn hold_five(client: &Client, subscription: &str, settings: SubscriberSettings) -> (Subscriber, Vec<Delivered>) {
    let settings = SubscriberSettings { max_outstanding_messages: 5, ..settings };
    let mut subscriber = client.subscribe(subscription, settings).await.expect("subscribe");
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(subscriber.next().await.expect("message").expect("no error"));
    }
    (subscriber, held)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_consumers_share_one_subscription_each_message_once() {
    let (_dir, _server, client) = pool().await;
    for chunk in 0..MESSAGES / 100 {
        let messages = (0..100).map(|i| Message::new(format!("job-{}", chunk * 100 + i))).collect();
        client.publish("work", messages).await.expect("publish");
    }

    // Each consumer may hold one message. All fifty hold one at the same time
    // before anyone acks: the server spreads the work, it does not queue it
    // behind one consumer.
    let everyone_holds_one = Arc::new(Barrier::new(CONSUMERS));
    // Consumers stop once the pool as a whole has received every message
    // (not after some idle time, which a busy machine can exceed).
    let received = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut consumers = Vec::new();
    for _ in 0..CONSUMERS {
        let (client, barrier, received) = (client.clone(), Arc::clone(&everyone_holds_one), Arc::clone(&received));
        consumers.push(tokio::spawn(async move {
            let settings = SubscriberSettings { max_outstanding_messages: 1, ..Default::default() };
            let mut subscriber = client.subscribe("pool", settings).await.expect("subscribe");
            let mut seen = Vec::new();
            let first = subscriber.next().await.expect("a message").expect("no error");
            barrier.wait().await;
            seen.push(String::from_utf8_lossy(&first.message.message.data).into_owned());
            received.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            first.ack();
            while received.load(std::sync::atomic::Ordering::Relaxed) < MESSAGES {
                let Ok(next) = tokio::time::timeout(Duration::from_millis(200), subscriber.next()).await else {
                    continue;
                };
                let delivered = next.expect("stream open").expect("no error");
                seen.push(String::from_utf8_lossy(&delivered.message.message.data).into_owned());
                received.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                delivered.ack();
            }
            // An ack frees room before its commit, so a consumer may be
            // several commits behind when the pool is done: each is confirmed
            // on the stream once committed.
            let acked = seen.len() as u64;
            let wait = "every ack of this consumer confirmed";
            let stats = eventually(Duration::from_secs(30), wait, || {
                let stats = subscriber.stats();
                std::future::ready((stats.acks_confirmed >= acked).then_some(stats))
            })
            .await;
            subscriber.close().await;
            (seen, stats)
        }));
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut confirmed = 0;
    for consumer in consumers {
        let (seen, stats) =
            tokio::time::timeout(Duration::from_secs(120), consumer).await.expect("consumer done").expect("join");
        assert!(!seen.is_empty(), "every consumer got work");
        confirmed += stats.acks_confirmed;
        for value in seen {
            *counts.entry(value).or_default() += 1;
        }
    }
    assert_eq!(counts.len(), MESSAGES, "every message delivered");
    let duplicates: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicates.is_empty(), "no message delivered twice within its lease: {duplicates:?}");
    assert_eq!(confirmed, MESSAGES as u64, "every ack is confirmed on the stream");
    // Confirmed acks are committed: the backlog shows none unacked.
    let give_up = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let backlog = client.get_subscription("pool").await.expect("get").backlog.expect("backlog");
        if backlog.unacked_messages == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < give_up, "acks not committed: {backlog:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_control_stops_delivery_until_messages_are_acked_and_close_hands_back_the_rest() {
    let (_dir, _server, client) = pool().await;
    client.publish("work", (0..20).map(|i| Message::new(format!("job-{i}"))).collect()).await.expect("publish");

    let (mut subscriber, mut held) = hold_five(&client, "pool", SubscriberSettings::default()).await;
    let more = tokio::time::timeout(Duration::from_millis(500), subscriber.next()).await;
    assert!(more.is_err(), "a sixth message came while five were held");
    assert_eq!(client.get_subscription("pool").await.expect("get").backlog.expect("backlog").leased_messages, 5);

    held.remove(0).ack();
    let sixth = tokio::time::timeout(Duration::from_secs(5), subscriber.next()).await.expect("room for one more");
    held.push(sixth.expect("message").expect("no error"));

    // Closing nacks the held messages: a unary pull gets them at once.
    drop(held);
    subscriber.close().await;
    let returned = client.pull("pool", 20, Duration::from_secs(2)).await.expect("pull");
    assert!(returned.len() >= 5, "the messages held at close came back ({})", returned.len());
}

/// The bound on messages the application holds survives a reconnect: the
/// restarted server forgets the stream's leases and offers them again, but
/// the subscriber hands over no more until the application settles some.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_control_holds_across_a_reconnect() {
    let (_dir, mut server, client) = pool().await;
    client.publish("work", (0..20).map(|i| Message::new(format!("job-{i}"))).collect()).await.expect("publish");
    let (mut subscriber, mut held) = hold_five(&client, "pool", SubscriberSettings::default()).await;

    server.kill9();
    server.restart();
    eventually(Duration::from_secs(20), "the subscriber reconnects", || async {
        (subscriber.stats().reconnects > 0).then_some(())
    })
    .await;
    eventually(Duration::from_secs(20), "the new stream gets deliveries", || async {
        (subscriber.stats().received > 5).then_some(())
    })
    .await;
    let more = tokio::time::timeout(Duration::from_millis(500), subscriber.next()).await;
    assert!(more.is_err(), "a sixth message came while five were held, after a reconnect");

    held.remove(0).ack();
    let sixth = tokio::time::timeout(Duration::from_secs(5), subscriber.next()).await.expect("room for one more");
    held.push(sixth.expect("message").expect("no error"));
    let seventh = tokio::time::timeout(Duration::from_millis(500), subscriber.next()).await;
    assert!(seventh.is_err(), "only one more, for the one settled");
    drop(held);
    subscriber.close().await;
}

/// Messages waiting in the subscriber for room keep their leases: another
/// consumer does not get them while the application works through what it
/// holds, however long that takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_waiting_for_room_keep_their_leases() {
    let (_dir, _server, client) = pool().await;
    // Without a backoff, a message is delivered again as its lease ends.
    let lease = Duration::from_secs(10);
    let settings =
        SubscriptionSettings { ack_deadline: lease, retry_min_backoff: Duration::ZERO, ..Default::default() };
    client.create_subscription("brief", "work", settings).await.expect("subscription");
    client.publish("work", (0..10).map(|i| Message::new(format!("old-{i}"))).collect()).await.expect("publish");
    let between = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    client.publish("work", (0..10).map(|i| Message::new(format!("new-{i}"))).collect()).await.expect("publish");
    let (mut subscriber, held) = hold_five(&client, "brief", SubscriberSettings::default()).await;
    // A seek past what the application holds gives the subscription fresh
    // leases: the stream is offered five new messages, which wait while the
    // application holds five.
    client.seek("brief", between).await.expect("seek");
    eventually(Duration::from_secs(10), "the stream gets the sought messages", || async {
        (subscriber.stats().received >= 10).then_some(())
    })
    .await;

    // Had their leases run out meanwhile, the server would deliver them
    // again (to this stream, which then holds none it knows of).
    tokio::time::sleep(lease + lease / 2).await;
    held.into_iter().for_each(Delivered::ack);
    let mut delivered = Vec::new();
    while let Ok(next) = tokio::time::timeout(Duration::from_secs(2), subscriber.next()).await {
        let next = next.expect("open").expect("no error");
        delivered
            .push((String::from_utf8_lossy(&next.message.message.data).into_owned(), next.message.delivery_attempt));
        next.ack();
    }
    delivered.sort();
    let expected: Vec<_> = (0..10).map(|i| (format!("new-{i}"), 1)).collect();
    assert_eq!(delivered, expected, "each sought message once, on its first lease");
    subscriber.close().await;
}

/// Messages that wait for room longer than `max_lease_extension` go back to
/// the server (a nack) rather than keep leases the application may not get
/// to for long: the server delivers them again at once, and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_waiting_past_max_lease_extension_go_back_to_the_server() {
    let (_dir, _server, client) = pool().await;
    // Minute-long leases and no backoff: within the test a message comes
    // again only if it was given back.
    let settings = SubscriptionSettings {
        ack_deadline: Duration::from_secs(60),
        retry_min_backoff: Duration::ZERO,
        ..Default::default()
    };
    client.create_subscription("patient", "work", settings).await.expect("subscription");
    client.publish("work", (0..10).map(|i| Message::new(format!("old-{i}"))).collect()).await.expect("publish");
    let between = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    client.publish("work", (0..10).map(|i| Message::new(format!("new-{i}"))).collect()).await.expect("publish");
    let settings = SubscriberSettings { max_lease_extension: Duration::from_secs(2), ..Default::default() };
    let (mut subscriber, held) = hold_five(&client, "patient", settings).await;
    // The seek makes the server offer five sought messages, which wait
    // while the application holds five; 2 s on, they go back and come again.
    client.seek("patient", between).await.expect("seek");
    eventually(Duration::from_secs(20), "waiting messages given back and delivered again", || async {
        (subscriber.stats().received >= 15).then_some(())
    })
    .await;

    held.into_iter().for_each(Delivered::ack);
    let (mut sought, mut attempts) = (BTreeSet::new(), Vec::new());
    while sought.len() < 10 {
        let next = tokio::time::timeout(Duration::from_secs(20), subscriber.next()).await;
        let next = next.expect("every sought message within 20 s").expect("open").expect("no error");
        sought.insert(String::from_utf8_lossy(&next.message.message.data).into_owned());
        attempts.push(next.message.delivery_attempt);
        next.ack();
    }
    assert_eq!(sought, (0..10).map(|i| format!("new-{i}")).collect(), "every sought message, none lost");
    assert!(attempts.iter().any(|attempt| *attempt >= 2), "some came again after waiting: {attempts:?}");
    subscriber.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_acking_one_message_per_request_drain_a_large_backlog_without_stalling() {
    const BACKLOG: usize = 20_000;
    const CONSUMERS: usize = 4;
    let (_dir, _server, client) = pool().await;
    for chunk in 0..BACKLOG / 1000 {
        let messages = (0..1000).map(|i| Message::new(format!("job-{}", chunk * 1000 + i))).collect();
        client.publish("work", messages).await.expect("publish");
    }

    // Every ack is its own request, so the stream commits and confirms acks
    // far more often than it delivers: confirmations must never wedge it.
    let received = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut consumers = Vec::new();
    for _ in 0..CONSUMERS {
        let (client, received) = (client.clone(), Arc::clone(&received));
        consumers.push(tokio::spawn(async move {
            let settings = SubscriberSettings {
                max_outstanding_messages: 2000,
                ack_batch_max: 1,
                ack_linger: Duration::ZERO,
                ..Default::default()
            };
            let mut subscriber = client.subscribe("pool", settings).await.expect("subscribe");
            while received.load(std::sync::atomic::Ordering::Relaxed) < BACKLOG {
                let Ok(next) = tokio::time::timeout(Duration::from_millis(200), subscriber.next()).await else {
                    continue;
                };
                next.expect("stream open").expect("no error").ack();
                received.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            subscriber.close().await;
        }));
    }
    let all_done = async {
        for consumer in consumers {
            consumer.await.expect("consumer");
        }
    };
    let drained = tokio::time::timeout(Duration::from_secs(180), all_done).await;
    let backlog = client.get_subscription("pool").await.expect("get").backlog.expect("backlog");
    assert!(
        drained.is_ok(),
        "consumers stalled with {} received; backlog {backlog:?}",
        received.load(std::sync::atomic::Ordering::Relaxed)
    );
}

/// Found by the ETL's replay test: a seek replays acked messages, and a
/// stream waiting for new ones must get them without waiting for a publish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_stream_gets_the_messages_a_seek_replays() {
    let (_dir, _server, client) = pool().await;
    // A second subscription keeps acked messages on disk for the replay.
    client.create_subscription("keeper", "work", SubscriptionSettings::default()).await.expect("keeper");
    client.publish("work", (0..5).map(|i| Message::new(format!("job-{i}"))).collect()).await.expect("publish");
    let mut subscriber = client.subscribe("pool", SubscriberSettings::default()).await.expect("subscribe");
    for _ in 0..5 {
        subscriber.next().await.expect("message").expect("no error").ack();
    }
    eventually(Duration::from_secs(10), "the acks commit", || async {
        let backlog = client.get_subscription("pool").await.expect("get").backlog.expect("backlog");
        (backlog.unacked_messages == 0).then_some(())
    })
    .await;

    client.seek("pool", SystemTime::UNIX_EPOCH).await.expect("seek to the start");
    for _ in 0..5 {
        let replayed = tokio::time::timeout(Duration::from_secs(5), subscriber.next()).await;
        replayed.expect("the replay reaches the waiting stream").expect("message").expect("no error").ack();
    }
    subscriber.close().await;
}

/// With the subscription's leases at the server's bound, a consumer that got
/// nothing waits; the acks of another consumer make room, and it must be told
/// (not wait for a publish or a deadline ten minutes away).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_starved_by_the_lease_bound_is_woken_when_another_consumers_acks_commit() {
    let dir = TempDir::new().expect("temp dir");
    let server = Ferryd::start_with(&dir.path().join("node"), &["--outstanding-max", "10"]);
    let client = Client::connect(server.addr()).await.expect("connect");
    client.create_topic("work", TopicSettings::default()).await.expect("create topic");
    let settings = SubscriptionSettings { ack_deadline: Duration::from_secs(600), ..Default::default() };
    client.create_subscription("pool", "work", settings).await.expect("sub");
    client.publish("work", (0..20).map(|i| Message::new(format!("job-{i}"))).collect()).await.expect("publish");

    let mut first = client.subscribe("pool", SubscriberSettings::default()).await.expect("subscribe");
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(first.next().await.expect("message").expect("no error"));
    }
    let mut second = client.subscribe("pool", SubscriberSettings::default()).await.expect("subscribe");
    let nothing = tokio::time::timeout(Duration::from_millis(500), second.next()).await;
    assert!(nothing.is_err(), "a lease beyond the bound of 10 went out");

    for delivered in held {
        delivered.ack();
    }
    // The first consumer goes away with its acks sent: only the second can
    // take the rest.
    first.close().await;
    for _ in 0..10 {
        let next = tokio::time::timeout(Duration::from_secs(10), second.next()).await;
        next.expect("the waiting consumer is woken by the commits").expect("message").expect("no error").ack();
    }
    second.close().await;
}

/// On the wire: a stream that asks for `confirm_ack_ids` gets each committed
/// ack id back; one that does not gets only their count. Either way an id
/// that is not this subscription's is rejected by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmations_list_committed_ack_ids_only_when_asked_and_always_count_them() {
    use ferry_proto::v1 as api;

    let (_dir, server, client) = pool().await;
    for confirm_ack_ids in [true, false] {
        let messages = (0..10).map(|i| Message::new(format!("job-{i}"))).collect();
        client.publish("work", messages).await.expect("publish");
        let first = api::StreamingPullRequest {
            subscription: "pool".into(),
            max_outstanding_messages: 10,
            confirm_ack_ids,
            ..Default::default()
        };
        let mut stream = RawStream::open(server.addr(), first).await;

        let mut delivered = Vec::new();
        stream.receive_until(&mut delivered, 10).await;
        let mut ack_ids = delivered.clone();
        ack_ids.push("not-an-ack-id".into());
        stream.send(api::StreamingPullRequest { ack_ids, ..Default::default() }).await;

        let (mut listed, mut rejected, mut counted) = (Vec::new(), Vec::new(), 0);
        while counted < 10 {
            let Some(confirmation) = stream.next().await.ack_confirmation else { continue };
            listed.extend(confirmation.ack_ids);
            rejected.extend(confirmation.rejected_ack_ids);
            counted += confirmation.acked_count;
        }
        assert_eq!(counted, 10, "every ack counted (confirm_ack_ids: {confirm_ack_ids})");
        assert_eq!(rejected, vec!["not-an-ack-id".to_owned()]);
        if confirm_ack_ids {
            listed.sort();
            delivered.sort();
            assert_eq!(listed, delivered, "each committed ack id listed");
        } else {
            assert!(listed.is_empty(), "ids listed without being asked for: {listed:?}");
        }
    }
    let backlog = client.get_subscription("pool").await.expect("get").backlog.expect("backlog");
    assert_eq!(backlog.unacked_messages, 0, "all acked: {backlog:?}");
}

/// Ferry's own API (Pub/Sub's refuses it): a later request naming limits
/// changes them for the rest of the stream. Raised, the server sends up to
/// the new limit with nothing acked; lowered, nothing more until the
/// consumer holds fewer; past the bound, the stream ends with
/// INVALID_ARGUMENT naming the field. (A stream on a placed topic tells its
/// groups' sub-streams their shares this way.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_request_changes_the_streams_limits() {
    use ferry_proto::v1 as api;

    let (_dir, server, client) = pool().await;
    let messages = (0..20).map(|i| Message::new(format!("job-{i}"))).collect();
    client.publish("work", messages).await.expect("publish");
    let first =
        api::StreamingPullRequest { subscription: "pool".into(), max_outstanding_messages: 5, ..Default::default() };
    let mut stream = RawStream::open(server.addr(), first).await;

    let mut delivered = Vec::new();
    stream.receive_until(&mut delivered, 5).await;
    assert_eq!(stream.receive_quiet(&mut delivered).await, 0, "held to 5");
    stream.send(api::StreamingPullRequest { max_outstanding_messages: 12, ..Default::default() }).await;
    stream.receive_until(&mut delivered, 12).await;
    assert_eq!(stream.receive_quiet(&mut delivered).await, 0, "held to 12");
    assert_eq!(delivered.len(), 12);

    // Lowered to 8 while holding 12: acking 3 leaves 9, still too many;
    // acking 2 more leaves 7, room for exactly one.
    stream.send(api::StreamingPullRequest { max_outstanding_messages: 8, ..Default::default() }).await;
    stream.send(api::StreamingPullRequest { ack_ids: delivered[..3].to_vec(), ..Default::default() }).await;
    assert_eq!(stream.receive_quiet(&mut delivered).await, 0, "9 held, over the lowered limit");
    stream.send(api::StreamingPullRequest { ack_ids: delivered[3..5].to_vec(), ..Default::default() }).await;
    stream.receive_until(&mut delivered, 13).await;
    assert_eq!(stream.receive_quiet(&mut delivered).await, 0, "held to 8");
    assert_eq!(delivered.len(), 13);

    stream.send(api::StreamingPullRequest { max_outstanding_messages: 10_001, ..Default::default() }).await;
    let status = stream.error().await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("max_outstanding_messages"), "names the field: {status:?}");
}
