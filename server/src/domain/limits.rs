//! Every bound the API enforces, in one place, so error messages and docs quote
//! the same numbers. Names carry their unit last.

/// Longest topic or subscription name, in bytes (Kafka's limit).
pub const NAME_BYTES_MAX: usize = 249;

/// Most partitions a topic may have.
pub const PARTITIONS_MAX: u32 = 1024;
/// Partitions of a topic created without a setting.
pub const PARTITIONS_DEFAULT: u32 = 1;
/// Data groups a cluster may form (`--data-groups`), besides group 0.
pub const DATA_GROUPS_MAX: u32 = 256;
/// Data groups of a cluster formed without a setting: 10 leaders per node
/// of three, 6 of five, so topics' partitions spread over every node's
/// disk and cores, at the costs ARCHITECTURE.md tables (idle heartbeats, a
/// state database per group).
pub const DATA_GROUPS_DEFAULT: u32 = 30;

/// Largest message: data plus attribute keys and values, in bytes.
pub const MESSAGE_BYTES_MAX: u32 = 10 * 1024 * 1024;
/// Largest message of a topic created without a setting.
pub const MESSAGE_BYTES_DEFAULT: u32 = MESSAGE_BYTES_MAX;

/// Retention of a topic created without a setting: 7 days.
pub const RETENTION_SECONDS_DEFAULT: u64 = 7 * 24 * 3600;
/// Longest retention: 31 days.
pub const RETENTION_SECONDS_MAX: u64 = 31 * 24 * 3600;

/// Attributes on one message.
pub const ATTRIBUTES_MAX: usize = 100;
/// Longest attribute key, in bytes.
pub const ATTRIBUTE_KEY_BYTES_MAX: usize = 256;
/// Longest attribute value, in bytes.
pub const ATTRIBUTE_VALUE_BYTES_MAX: usize = 1024;
/// Longest ordering key or event id, in bytes.
pub const KEY_BYTES_MAX: usize = 1024;

/// Messages in one Publish call.
pub const BATCH_MESSAGES_MAX: usize = 10_000;
/// Total size of one Publish call's messages, in bytes. A batch is one Raft
/// entry, so this also bounds the size of a log entry.
pub const BATCH_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Producers the replicated state remembers for deduplication, across all
/// partitions; past it the least recently used is forgotten.
pub const PRODUCER_STATES_MAX: usize = 100_000;
/// A producer that published nothing for this long is forgotten: 7 days.
pub const PRODUCER_IDLE_US: i64 = 7 * 24 * 3600 * 1_000_000;
/// Batches remembered per producer and partition: a retry of any of them is
/// recognised. A client keeps at most this many batches in flight per partition.
pub const PRODUCER_BATCHES_REMEMBERED: usize = 8;
/// Runs of stored sequences a producer's record keeps (a new run starts at
/// each skip); older ones are folded into a count.
pub const PRODUCER_STORED_RUNS_MAX: usize = 256;

/// Ack deadline bounds, in seconds.
pub const ACK_DEADLINE_SECONDS_MIN: u32 = 10;
pub const ACK_DEADLINE_SECONDS_MAX: u32 = 600;
pub const ACK_DEADLINE_SECONDS_DEFAULT: u32 = 10;

/// Retry backoff bounds after a nack or an expired lease, in seconds.
pub const RETRY_BACKOFF_SECONDS_MAX: u32 = 600;
/// Delivery attempts before a message is dead-lettered.
pub const DELIVERY_ATTEMPTS_MIN: u32 = 5;
pub const DELIVERY_ATTEMPTS_MAX: u32 = 100;
pub const DELIVERY_ATTEMPTS_DEFAULT: u32 = 5;

/// Messages one Pull may return.
pub const PULL_MESSAGES_MAX: u32 = 1000;
/// Bytes one Pull returns at most (at least one message is always returned,
/// whatever its size).
pub const PULL_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Longest a Pull waits for a first message, in milliseconds.
pub const PULL_WAIT_MILLIS_MAX: u32 = 30_000;

/// Ack ids in one Acknowledge or ModifyAckDeadline call.
pub const ACK_IDS_MAX: usize = 10_000;

/// Items in one page of a List call.
pub const PAGE_SIZE_MAX: u32 = 1000;
pub const PAGE_SIZE_DEFAULT: u32 = 100;

/// Largest gRPC message a node accepts or sends: the largest batch plus framing.
pub const GRPC_MESSAGE_BYTES_MAX: usize = BATCH_BYTES_MAX + 4 * 1024 * 1024;

/// How often the server pings an idle HTTP/2 connection, and how long it
/// waits for the answer before closing it (with its streams).
pub const HTTP2_KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
pub const HTTP2_KEEPALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// HTTP/2 flow-control windows for what this node receives (publishes,
/// acks, replicated entries, forwarded calls). At hyper's defaults (1 MiB
/// each) a connection carried one 1 MiB batch at a time: publishers and
/// replication to a follower waited a round trip per batch. These keep a few
/// batches of every stream in flight. They are also what a connection may
/// hold received and not yet read, so they count in the memory bound
/// (ARCHITECTURE.md, `storage/`): 16 MiB per connection.
pub const HTTP2_STREAM_WINDOW_BYTES: u32 = 4 * 1024 * 1024;
pub const HTTP2_CONNECTION_WINDOW_BYTES: u32 = 16 * 1024 * 1024;

/// Locks the cluster keeps at most; expired ones make room for new names.
pub const LOCKS_MAX: usize = 10_000;
pub const LOCK_HOLDER_BYTES_MAX: usize = 255;
pub const LOCK_TTL_SECONDS_MAX: u32 = 300;
pub const LOCK_TTL_SECONDS_DEFAULT: u32 = 10;

/// Unexpired bookmarks the cluster keeps, at most.
pub const BOOKMARKS_MAX: usize = 10_000;
/// Labels on a topic or subscription, at most (Pub/Sub's limit).
pub const LABELS_MAX: usize = 64;
/// Characters of a label's key or value, at most.
pub const LABEL_CHARS_MAX: usize = 63;
