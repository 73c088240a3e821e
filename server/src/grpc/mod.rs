//! The public gRPC API: one service per file, errors mapped in one place.

pub mod convert;
pub mod proposer;
pub mod publisher;
pub mod status;
pub mod subscriber;

pub use proposer::Proposer;
pub use publisher::PublisherService;
pub use status::{ApiError, LEADER_METADATA};
pub use subscriber::SubscriberService;
