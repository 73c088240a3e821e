//! `ApiError` and the one place it becomes a `tonic::Status`.
//!
//! Codes follow SPEC.md: INVALID_ARGUMENT names the field and the limit,
//! NOT_FOUND / ALREADY_EXISTS name the object, UNAVAILABLE carries a leader
//! hint in the `ferry-leader` metadata (`<id>=<addr>`) when one is known.

use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

use crate::delivery::DeliveryError;
use crate::domain::{InvalidArgument, Rejection};
use crate::storage::disk_space::DiskLow;
use crate::storage::StorageError;

/// Metadata key of the leader hint on UNAVAILABLE answers.
pub const LEADER_METADATA: &str = "ferry-leader";
/// Metadata key of a machine-readable reason, where the code alone does not
/// tell a client what to do (idempotent publishing's sequence checks).
pub const REASON_METADATA: &str = "ferry-reason";
/// Metadata key of the producer's next expected sequence on `sequence-gap`
/// and `sequence-committed` answers: what a producer that skips sequences (a
/// mirror) needs to resume exactly where the partition is.
pub const NEXT_SEQUENCE_METADATA: &str = "ferry-next-sequence";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Invalid(#[from] InvalidArgument),
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// This node cannot serve the request; `leader` is who can, if known.
    #[error("{reason}")]
    NotLeader { reason: String, leader: Option<(u64, String)> },
    #[error("{0}")]
    Unavailable(String),
    #[error("storage failure: {0}")]
    Storage(#[from] StorageError),
    /// Too little disk for a write that adds data.
    #[error(transparent)]
    DiskLow(#[from] DiskLow),
    #[error("{0}")]
    Internal(String),
    /// What the node a call was forwarded to answered.
    #[error("{}", .0.message())]
    Remote(Status),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        ApiError::Invalid(InvalidArgument::new(field, problem))
    }
}

impl From<DeliveryError> for ApiError {
    fn from(e: DeliveryError) -> Self {
        match e {
            DeliveryError::SubscriptionNotFound(name) => ApiError::Rejected(Rejection::SubscriptionNotFound { name }),
            DeliveryError::Storage(e) => ApiError::Storage(e),
        }
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        let message = e.to_string();
        match e {
            ApiError::Invalid(_) => Status::invalid_argument(message),
            ApiError::Rejected(rejection) => {
                let mut status = Status::new(rejection_code(&rejection), message);
                if let Some(reason) = rejection_reason(&rejection) {
                    status.metadata_mut().insert(REASON_METADATA, MetadataValue::from_static(reason));
                }
                if let Some(next) = next_sequence(&rejection) {
                    status.metadata_mut().insert(NEXT_SEQUENCE_METADATA, MetadataValue::from(next));
                }
                status
            }
            ApiError::NotLeader { leader, .. } => {
                let mut status = Status::unavailable(message);
                if let Some((id, addr)) = leader {
                    if let Ok(value) = MetadataValue::try_from(format!("{id}={addr}")) {
                        status.metadata_mut().insert(LEADER_METADATA, value);
                    }
                }
                status
            }
            ApiError::Unavailable(_) => Status::unavailable(message),
            ApiError::Storage(ref source) => {
                tracing::error!(error = %source, "storage failure while serving a request");
                Status::internal(message)
            }
            ApiError::Internal(_) => Status::internal(message),
            ApiError::DiskLow(_) => Status::resource_exhausted(message),
            ApiError::Remote(remote) => {
                // Keep the code and the reason a client acts on; a leader
                // hint names a data group's leader, which is no better a
                // node to send the whole request to than this one.
                let mut status = Status::new(remote.code(), message);
                for key in [REASON_METADATA, NEXT_SEQUENCE_METADATA] {
                    if let Some(value) = remote.metadata().get(key) {
                        status.metadata_mut().insert(key, value.clone());
                    }
                }
                status
            }
        }
    }
}

fn rejection_code(rejection: &Rejection) -> Code {
    match rejection {
        Rejection::TopicNotFound { .. } | Rejection::SubscriptionNotFound { .. } => Code::NotFound,
        Rejection::TopicExists { .. } | Rejection::SubscriptionExists { .. } => Code::AlreadyExists,
        Rejection::PartitionOutOfRange { .. } => Code::InvalidArgument,
        Rejection::SequenceGap { .. } | Rejection::UnknownProducer { .. } => Code::FailedPrecondition,
        Rejection::SequenceCommitted { .. } => Code::AlreadyExists,
        Rejection::LayoutFixed { .. } | Rejection::DeadLetterLoop { .. } => Code::FailedPrecondition,
        Rejection::TooManyLocks { .. } | Rejection::TooManyBookmarks { .. } => Code::ResourceExhausted,
        Rejection::BookmarkExists { .. } => Code::AlreadyExists,
        Rejection::BookmarkNotFound { .. } => Code::NotFound,
        // Routed by a stale view of where partitions or leaders are: retry.
        Rejection::PartitionNotInGroup { .. } | Rejection::StaleSync { .. } => Code::Unavailable,
    }
}

fn next_sequence(rejection: &Rejection) -> Option<u64> {
    match rejection {
        Rejection::SequenceGap { expected, .. } => Some(*expected),
        Rejection::SequenceCommitted { next, .. } => Some(*next),
        _ => None,
    }
}

fn rejection_reason(rejection: &Rejection) -> Option<&'static str> {
    match rejection {
        Rejection::SequenceGap { .. } => Some("sequence-gap"),
        Rejection::UnknownProducer { .. } => Some("unknown-producer"),
        Rejection::SequenceCommitted { .. } => Some("sequence-committed"),
        _ => None,
    }
}
