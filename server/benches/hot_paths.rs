//! The server's hot paths, one 1,000-message batch of 128 B at a time (what
//! `ferry bench publish --batch 1000` sends): encoding a publish into a Raft
//! log entry and back, applying it to the replicated state, the message key
//! codec, writing and reading stored batches in a real RocksDB (a temp
//! directory) the way applying and delivering do, and a leader's lease
//! bookkeeping for a consumer that leases and acks a batch at a time.
//!
//!     cargo bench -p ferry-server --bench hot_paths

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ferry_server::delivery::subscription::{read_all, Lessee, MessageSource, SubscriptionDelivery};
use ferry_server::delivery::{AckId, DeliveryPolicy, Route};
use ferry_server::domain::{
    apply, AckedRange, AckedTotal, Catalog, Command, MessageBody, MessageExtent, PublishBatch, Response, StateRead,
    StoredMessage, TopicConfig,
};
use ferry_server::raft::codec::{entry_from_record, entry_to_record};
use ferry_server::raft::TypeConfig;
use ferry_server::storage::db::DbResources;
use ferry_server::storage::state_db::StateDb;
use ferry_server::storage::{codec, keys};
use openraft::{CommittedLeaderId, EntryPayload, LogId};

const MESSAGES: usize = 1_000;
const SIZE: usize = 128;

type Entry = openraft::Entry<TypeConfig>;

fn batch(topic_id: u64) -> PublishBatch {
    let messages = (0..MESSAGES)
        .map(|i| MessageBody { data: Bytes::from(vec![(i % 251) as u8; SIZE]), ..Default::default() })
        .collect();
    PublishBatch { topic_id, partition: 0, publish_time_us: 1_795_000_000_000_000, messages, producer: None }
}

fn entry() -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(3, 1), 42),
        payload: EntryPayload::Normal(Command::Publish(batch(1))),
    }
}

/// Nothing stored: a publish reads no acks or extents.
struct Empty;

impl StateRead for Empty {
    type Error = Infallible;
    fn stored_acks(&self, _: u64, _: u32, _: u64, _: u64, _: u64) -> Result<Vec<AckedRange>, Infallible> {
        Ok(Vec::new())
    }
    fn stored_acks_total(&self, _: u64, _: u32, _: u64, _: u64) -> Result<AckedTotal, Infallible> {
        Ok(AckedTotal::default())
    }
    fn message_extent(&self, _: u64, _: u32, _: u64) -> Result<Option<MessageExtent>, Infallible> {
        Ok(None)
    }
    fn message_sizes(&self, _: u64, _: u32, offsets: &[u64]) -> Result<Vec<u64>, Infallible> {
        Ok(vec![0; offsets.len()])
    }
}

fn encoding(c: &mut Criterion) {
    let mut group = c.benchmark_group("log_entry");
    group.throughput(Throughput::Elements(MESSAGES as u64));
    let entry = entry();
    group.bench_function("encode_publish_1000x128B", |b| b.iter(|| codec::encode(&entry_to_record(&entry))));
    let stored = Bytes::from(codec::encode(&entry_to_record(&entry)));
    group.bench_function("decode_publish_1000x128B", |b| {
        b.iter(|| {
            let record = codec::decode("log entry", stored.clone()).expect("decodes");
            entry_from_record(record).expect("an entry")
        })
    });
    group.finish();
}

fn state_machine(c: &mut Criterion) {
    let mut catalog = Catalog::default();
    let config = TopicConfig {
        partitions: 1,
        max_message_bytes: 1 << 20,
        retention_seconds: 3600,
        retention_bytes: 0,
        labels: Default::default(),
    };
    let Ok(created) = apply(
        &mut catalog,
        Command::CreateTopic { name: "t".into(), config, create_time_us: 1, groups: Vec::new() },
        &Empty,
    );
    let Response::TopicCreated(topic) = created.response else { panic!("topic not created") };
    let mut group = c.benchmark_group("apply");
    group.throughput(Throughput::Elements(MESSAGES as u64));
    group.bench_function("publish_1000x128B", |b| {
        b.iter_batched(
            || Command::Publish(batch(topic.id)),
            |command| {
                let Ok(applied) = apply(&mut catalog, command, &Empty);
                applied.writes.len()
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn key_codecs(c: &mut Criterion) {
    let mut group = c.benchmark_group("keys");
    group.throughput(Throughput::Elements(MESSAGES as u64));
    group.bench_function("message_key_encode_split_1000", |b| {
        b.iter(|| {
            (0..MESSAGES as u64)
                .map(|offset| keys::offset::split(&keys::offset::key(7, 3, offset)).map_or(0, |(_, _, o)| o))
                .sum::<u64>()
        })
    });
    // What a drain does with each message's ack id: encoded into the
    // delivery, routed by the stream's fan-in, decoded by the group.
    group.bench_function("ack_id_encode_route_decode_1000", |b| {
        b.iter(|| {
            (0..MESSAGES as u64)
                .map(|offset| {
                    let text = AckId { subscription_id: 7, partition: 3, offset, delivery_id: offset + 1 }.encode();
                    let partition = Route::parse(&text).map_or(0, |route| route.partition);
                    AckId::decode(&text).map_or(0, |id| id.offset) + u64::from(partition)
                })
                .sum::<u64>()
        })
    });
    group.finish();
}

fn stored_batches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = StateDb::open(dir.path(), &DbResources::default()).expect("open the state database");
    let mut catalog = Catalog::default();
    let config = TopicConfig {
        partitions: 1,
        max_message_bytes: 1 << 20,
        retention_seconds: 3600,
        retention_bytes: 0,
        labels: Default::default(),
    };
    let Ok(created) = apply(
        &mut catalog,
        Command::CreateTopic { name: "t".into(), config, create_time_us: 1, groups: Vec::new() },
        &Empty,
    );
    let Response::TopicCreated(topic) = created.response else { panic!("topic not created") };
    let mut index = 0;
    let mut publish = |db: &StateDb| {
        let Ok(applied) = apply(&mut catalog, Command::Publish(batch(topic.id)), &Empty);
        index += 1;
        let applied_id = ferry_proto::internal::LogId { term: 1, leader_node_id: 1, index };
        db.write(applied.writes, &applied_id, None).expect("write");
    };
    for _ in 0..100 {
        publish(&db);
    }
    let mut group = c.benchmark_group("stored_batches");
    group.throughput(Throughput::Elements(MESSAGES as u64));
    group.bench_function("write_publish_1000x128B", |b| b.iter(|| publish(&db)));
    // Half-way into a batch, as a consumer resuming from its floor reads.
    group.bench_function("read_1000x128B", |b| {
        b.iter(|| db.read_messages(topic.id, 0, 50_500, MESSAGES, usize::MAX).expect("read").len())
    });
    group.finish();
}

/// A partition that never ends, read from memory: what is measured is the
/// bookkeeping (and making the messages), not RocksDB.
struct Endless;

impl MessageSource for Endless {
    type Error = Infallible;
    fn read(&self, partition: u32, from: u64, count_max: usize, _: usize) -> Result<Vec<StoredMessage>, Infallible> {
        let data = Bytes::from_static(&[7; SIZE]);
        let message = |offset| StoredMessage {
            partition,
            offset,
            publish_time_us: 0,
            body: MessageBody { data: data.clone(), ..Default::default() },
        };
        Ok((from..from + count_max as u64).map(message).collect())
    }
    fn read_one(&self, _: u32, _: u64) -> Result<Option<StoredMessage>, Infallible> {
        Ok(None)
    }
    fn acked(&self, _: u32, _: u64, _: u64) -> Result<Vec<u64>, Infallible> {
        Ok(Vec::new())
    }
    fn end(&self, _: u32) -> u64 {
        u64::MAX
    }
}

fn delivery(c: &mut Criterion) {
    let policy = DeliveryPolicy {
        ack_deadline: Duration::from_secs(600),
        retry_min_backoff: Duration::from_secs(10),
        retry_max_backoff: Duration::from_secs(600),
        max_delivery_attempts: None,
    };
    // 9,000 leases stay out, as a consumer's window keeps them, while the
    // measured batch is leased and acked, each call a microsecond after the
    // last (its own deadline). Nothing expires and the floor stays put: the
    // acks settle their leases themselves, as a leader's own acks do.
    let mut leases = SubscriptionDelivery::new(1, 1, policy, 10_000);
    let mut now = tokio::time::Instant::now();
    let mut next_id = 0;
    let mut lease = |leases: &mut SubscriptionDelivery, now, count_max: usize| {
        let lessee = Lessee { consumer: 1, count_max, bytes_max: usize::MAX };
        let mut id = || {
            next_id += 1;
            next_id
        };
        let Ok((mut leased, reads)) = leases.start_lease(&Endless, &[0], now, lessee, &mut id);
        let Ok(done) = read_all(&Endless, reads);
        leases.finish_lease(&mut leased, done, now, lessee, &mut id);
        leased.deliveries.into_iter().map(|delivery| delivery.ack_id).collect::<Vec<AckId>>()
    };
    lease(&mut leases, now, 9_000);
    let mut group = c.benchmark_group("delivery");
    group.throughput(Throughput::Elements(MESSAGES as u64));
    group.bench_function("lease_and_ack_1000", |b| {
        b.iter(|| {
            now += Duration::from_micros(1);
            let ids = lease(&mut leases, now, MESSAGES);
            let plan = leases.begin_ack(&ids);
            leases.finish_ack(&plan.commit, true, now);
            plan.commit.len()
        })
    });
    group.finish();
}

criterion_group!(benches, encoding, state_machine, key_codecs, stored_batches, delivery);
criterion_main!(benches);
