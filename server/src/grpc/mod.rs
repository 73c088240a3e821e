//! The gRPC services: the public API (one service per file), the peers' Raft
//! service, and the one place errors become statuses.

pub mod acks;
pub mod bookmarks;
pub mod cluster;
pub mod convert;
pub mod dead_letter;
pub mod early_ack;
pub mod fan_in;
pub mod group_delivery;
pub mod groups_service;
pub mod handoff;
pub mod keyless;
pub mod locks;
pub mod membership;
pub mod partition_reads;
pub mod proposer;
pub mod publish_input;
pub mod publish_loads;
pub mod publisher;
pub mod pubsub;
pub mod raft_service;
pub mod routing;
pub mod sequencer;
pub mod status;
pub mod stopping;
pub mod stream_fan_in;
pub mod stream_shares;
pub mod streaming_pull;
pub mod sub_stream;
pub mod subscriber;
pub mod testing;

pub use cluster::ClusterService;
pub use groups_service::GroupsService;
pub use locks::LocksService;
pub use proposer::Proposer;
pub use publisher::PublisherService;
pub use raft_service::RaftService;
pub use routing::GroupRoutes;
pub use status::{ApiError, LEADER_METADATA};
pub use stopping::Stopping;
pub use subscriber::SubscriberService;
