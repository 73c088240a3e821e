//! Bad input gets a clear status naming the field and the limit, and changes
//! nothing. Every case runs against a real `ferryd`.

use std::time::Duration;

use ferry_client::{Client, Code, Error, Message, SubscriptionSettings, TopicSettings};
use ferry_proto::v1 as api;
use ferry_tests::{Ferryd, TempDir};

fn expect_error<T: std::fmt::Debug>(result: Result<T, Error>, code: Code, mentions: &[&str]) {
    let error = result.expect_err("the call must fail");
    assert_eq!(error.code(), Some(code), "{error}");
    let text = error.to_string();
    for word in mentions {
        assert!(text.contains(word), "{text:?} should mention {word:?}");
    }
}

struct Fixture {
    _dir: TempDir,
    _server: Ferryd,
    client: Client,
    addr: String,
}

async fn fixture() -> Fixture {
    let dir = TempDir::new().expect("temp dir");
    let server = Ferryd::start(&dir.path().join("node"));
    let addr = server.addr().to_owned();
    let client = Client::connect(&addr).await.expect("connect");
    let settings = TopicSettings { partitions: 1, max_message_bytes: 1000, ..Default::default() };
    client.create_topic("small", settings).await.expect("create topic");
    client.create_subscription("reader", "small", SubscriptionSettings::default()).await.expect("create sub");
    Fixture { _dir: dir, _server: server, client, addr }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_topic_and_subscription_admin_is_refused_and_changes_nothing() {
    let f = fixture().await;
    let c = &f.client;
    let long = "x".repeat(250);
    expect_error(c.create_topic("", TopicSettings::default()).await, Code::InvalidArgument, &["name", "empty"]);
    expect_error(c.create_topic("a b", TopicSettings::default()).await, Code::InvalidArgument, &["name", "' '"]);
    expect_error(c.create_topic(&long, TopicSettings::default()).await, Code::InvalidArgument, &["name", "249"]);
    let too_many = TopicSettings { partitions: 5000, ..Default::default() };
    expect_error(c.create_topic("p", too_many).await, Code::InvalidArgument, &["settings.partitions", "1024"]);
    let too_big = TopicSettings { max_message_bytes: 20 << 20, ..Default::default() };
    expect_error(
        c.create_topic("m", too_big).await,
        Code::InvalidArgument,
        &["settings.max_message_bytes", "10485760"],
    );
    let again = TopicSettings { partitions: 3, max_message_bytes: 5, ..Default::default() };
    expect_error(c.create_topic("small", again).await, Code::AlreadyExists, &["small"]);
    expect_error(c.get_topic("nope").await, Code::NotFound, &["nope"]);
    expect_error(c.delete_topic("nope").await, Code::NotFound, &["nope"]);

    let short = SubscriptionSettings { ack_deadline: Duration::from_secs(5), ..Default::default() };
    expect_error(
        c.create_subscription("s", "small", short).await,
        Code::InvalidArgument,
        &["ack_deadline_seconds", "10..=600"],
    );
    let long_deadline = SubscriptionSettings { ack_deadline: Duration::from_secs(601), ..Default::default() };
    expect_error(
        c.create_subscription("s", "small", long_deadline).await,
        Code::InvalidArgument,
        &["ack_deadline_seconds"],
    );
    expect_error(c.create_subscription("s", "nope", SubscriptionSettings::default()).await, Code::NotFound, &["nope"]);
    expect_error(
        c.create_subscription("reader", "small", SubscriptionSettings::default()).await,
        Code::AlreadyExists,
        &["reader"],
    );
    expect_error(
        c.create_subscription("bad/name", "small", SubscriptionSettings::default()).await,
        Code::InvalidArgument,
        &["name"],
    );
    expect_error(c.get_subscription("nope").await, Code::NotFound, &["nope"]);
    expect_error(c.delete_subscription("nope").await, Code::NotFound, &["nope"]);

    let mut raw = api::publisher_client::PublisherClient::connect(format!("http://{}", f.addr)).await.expect("raw");
    let status = raw.list_topics(api::ListTopicsRequest { page_size: 1001, page_token: String::new() }).await;
    let status = status.expect_err("page size over the limit");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("page_size") && status.message().contains("1000"), "{}", status.message());

    // Nothing changed.
    let topics: Vec<String> = c.list_topics().await.expect("list").into_iter().map(|t| t.name).collect();
    assert_eq!(topics, vec!["small"]);
    let topic = c.get_topic("small").await.expect("get");
    assert_eq!((topic.settings.partitions, topic.settings.max_message_bytes), (1, 1000));
    let subscriptions: Vec<String> =
        c.list_subscriptions(None).await.expect("list").into_iter().map(|s| s.name).collect();
    assert_eq!(subscriptions, vec!["reader"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_publishes_are_refused_whole_and_store_nothing() {
    let f = fixture().await;
    let c = &f.client;
    let ok = || Message::new("fine");
    expect_error(c.publish("nope", vec![ok()]).await, Code::NotFound, &["nope"]);
    expect_error(c.publish("bad name", vec![ok()]).await, Code::InvalidArgument, &["topic"]);
    expect_error(c.publish("small", vec![]).await, Code::InvalidArgument, &["messages", "at least one"]);
    expect_error(c.publish("small", vec![ok(); 10_001]).await, Code::InvalidArgument, &["messages", "10000"]);
    let oversize = Message::new(vec![b'x'; 1001]);
    expect_error(
        c.publish("small", vec![ok(), oversize]).await,
        Code::InvalidArgument,
        &["messages[1]", "1001", "1000"],
    );
    expect_error(c.publish("small", vec![Message::new("")]).await, Code::InvalidArgument, &["messages[0]", "data"]);
    let bad_key = ok().attribute("", "v");
    expect_error(
        c.publish("small", vec![ok(), ok(), bad_key]).await,
        Code::InvalidArgument,
        &["messages[2].attributes"],
    );
    // The attribute value limit, on a topic whose message limit is not in the way.
    c.create_topic("roomy", TopicSettings::default()).await.expect("create topic");
    let long_value = ok().attribute("k", "v".repeat(1025));
    expect_error(
        c.publish("roomy", vec![long_value]).await,
        Code::InvalidArgument,
        &["messages[0].attributes", "1024"],
    );

    for topic in ["small", "roomy"] {
        let topic = c.get_topic(topic).await.expect("get");
        assert_eq!(topic.partitions[0].end_offset, 0, "no bad batch stored anything in {}", topic.name);
    }
    assert!(c.pull("reader", 10, Duration::ZERO).await.expect("pull").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pulls_and_ack_ids_are_refused_and_ack_nothing() {
    let f = fixture().await;
    let c = &f.client;
    c.create_topic("other", TopicSettings::default()).await.expect("create topic");
    c.create_subscription("elsewhere", "other", SubscriptionSettings::default()).await.expect("create sub");
    c.publish("small", vec![Message::new("one")]).await.expect("publish");
    c.publish("other", vec![Message::new("two")]).await.expect("publish");

    expect_error(c.pull("nope", 1, Duration::ZERO).await, Code::NotFound, &["nope"]);
    expect_error(c.pull("reader", 0, Duration::ZERO).await, Code::InvalidArgument, &["max_messages", "1..=1000"]);
    expect_error(c.pull("reader", 1001, Duration::ZERO).await, Code::InvalidArgument, &["max_messages"]);
    expect_error(c.pull("reader", 1, Duration::from_secs(31)).await, Code::InvalidArgument, &["wait_millis", "30000"]);

    let mine = c.pull("reader", 1, Duration::from_secs(1)).await.expect("pull").remove(0);
    let foreign = c.pull("elsewhere", 1, Duration::from_secs(1)).await.expect("pull").remove(0);
    expect_error(c.acknowledge("reader", &[]).await, Code::InvalidArgument, &["ack_ids", "at least one"]);
    expect_error(c.acknowledge("reader", &["garbage".into()]).await, Code::InvalidArgument, &["ack_ids[0]"]);
    let mangled = format!("{}A", mine.ack_id);
    expect_error(
        c.acknowledge("reader", &[mine.ack_id.clone(), mangled]).await,
        Code::InvalidArgument,
        &["ack_ids[1]"],
    );
    expect_error(
        c.acknowledge("reader", &[mine.ack_id.clone(), foreign.ack_id.clone()]).await,
        Code::InvalidArgument,
        &["ack_ids[1]", "another subscription"],
    );
    expect_error(c.acknowledge("nope", std::slice::from_ref(&mine.ack_id)).await, Code::NotFound, &["nope"]);
    expect_error(
        c.modify_ack_deadline("reader", std::slice::from_ref(&mine.ack_id), 601).await,
        Code::InvalidArgument,
        &["ack_deadline_seconds", "600"],
    );

    // None of those acked anything: a nack still finds the lease, and the
    // message comes back.
    assert_eq!(c.modify_ack_deadline("reader", std::slice::from_ref(&mine.ack_id), 0).await.expect("nack"), 1);
    let again = c.pull("reader", 1, Duration::from_secs(1)).await.expect("pull");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].message.data.as_ref(), b"one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_compressed_publishes_are_refused_and_store_nothing() {
    use ferry_proto::compression;
    use prost::Message as _;

    let f = fixture().await;
    let mut raw = api::publisher_client::PublisherClient::connect(format!("http://{}", f.addr)).await.expect("raw");
    let compressed = |codec: api::Compression, bytes: Vec<u8>| api::PublishRequest {
        topic: "small".into(),
        compression: codec as i32,
        compressed_messages: bytes.into(),
        ..Default::default()
    };
    let refused = |result: Result<tonic::Response<api::PublishResponse>, tonic::Status>, mentions: &[&str]| {
        let status = result.expect_err("refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        for word in mentions {
            assert!(status.message().contains(word), "{:?} should mention {word:?}", status.message());
        }
    };
    refused(
        raw.publish(compressed(api::Compression::Zstd, b"garbage".to_vec())).await,
        &["compressed_messages", "zstd"],
    );
    refused(
        raw.publish(compressed(api::Compression::Lz4, vec![0x40, 0, 0, 0, 0xff, 0xff, 0xff, 0xff])).await,
        &["compressed_messages", "lz4"],
    );
    // A small frame that would expand past every bound is refused before it is expanded.
    let bomb = compression::compress(api::Compression::Zstd, &vec![0u8; 64 << 20]).expect("compress");
    assert!(bomb.len() < 1 << 20);
    refused(raw.publish(compressed(api::Compression::Zstd, bomb)).await, &["compressed_messages", "limit"]);
    let mut both = compressed(api::Compression::Lz4, vec![1]);
    both.messages = vec![api::Message { data: "x".into(), ..Default::default() }];
    refused(raw.publish(both).await, &["messages", "compression"]);
    refused(raw.publish(compressed(api::Compression::None, vec![1])).await, &["compressed_messages"]);
    let mut unknown = compressed(api::Compression::Zstd, vec![1]);
    unknown.compression = 7;
    refused(raw.publish(unknown).await, &["compression", "7"]);
    // A valid frame is still validated message by message.
    let list =
        api::MessageList { messages: vec![api::Message { data: vec![b'x'; 1001].into(), ..Default::default() }] };
    let packed = compression::compress(api::Compression::Lz4, &list.encode_to_vec()).expect("compress");
    refused(raw.publish(compressed(api::Compression::Lz4, packed)).await, &["messages[0]", "1000"]);

    assert_eq!(f.client.get_topic("small").await.expect("get").partitions[0].end_offset, 0);
    // And a good one is accepted.
    let list = api::MessageList { messages: vec![api::Message { data: "fine".into(), ..Default::default() }] };
    let packed = compression::compress(api::Compression::Zstd, &list.encode_to_vec()).expect("compress");
    raw.publish(compressed(api::Compression::Zstd, packed)).await.expect("a good compressed batch");
    assert_eq!(f.client.get_topic("small").await.expect("get").partitions[0].end_offset, 1);
}
