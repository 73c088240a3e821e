//! The client's error type.

pub use tonic::Code;

/// What went wrong with a call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid server address {addr:?}: {reason}")]
    InvalidAddress { addr: String, reason: String },
    /// A connection setting (the token, the TLS CA) cannot be used.
    #[error("{setting}: {reason}")]
    Config { setting: &'static str, reason: String },
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: tonic::transport::Error,
    },
    /// The server answered with an error status.
    #[error("{code:?}: {message}")]
    Status {
        code: Code,
        message: String,
        /// On UNAVAILABLE: the leader to try, as `<id>=<addr>`, if the server knew it.
        leader_hint: Option<String>,
        /// A machine-readable reason the server added (`ferry-reason`), e.g.
        /// `sequence-gap` or `unknown-producer` for idempotent publishing.
        reason: Option<String>,
        /// On `sequence-gap` and `sequence-committed`: the producer's next
        /// expected sequence in that partition (`ferry-next-sequence`).
        next_sequence: Option<u64>,
    },
    #[error("the server sent an incomplete answer: {0}")]
    Protocol(String),
    /// A publisher's queue is full and it was told not to wait for room.
    #[error("the publish queue is full ({messages} messages or {bytes} bytes pending)")]
    QueueFull { messages: usize, bytes: usize },
    #[error("the publisher is closed")]
    Closed,
}

impl Error {
    /// The server's `ferry-reason`, for errors it answered with one.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Error::Status { reason, .. } => reason.as_deref(),
            _ => None,
        }
    }

    /// The producer's next expected sequence, on a sequence check's refusal.
    pub fn next_sequence(&self) -> Option<u64> {
        match self {
            Error::Status { next_sequence, .. } => *next_sequence,
            _ => None,
        }
    }

    /// The gRPC code, for errors the server answered.
    pub fn code(&self) -> Option<Code> {
        match self {
            Error::Status { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl Error {
    /// A copy for each of the many handles one failure resolves.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::Status { code, message, leader_hint, reason, next_sequence } => Error::Status {
                code: *code,
                message: message.clone(),
                leader_hint: leader_hint.clone(),
                reason: reason.clone(),
                next_sequence: *next_sequence,
            },
            Error::QueueFull { messages, bytes } => Error::QueueFull { messages: *messages, bytes: *bytes },
            Error::Closed => Error::Closed,
            Error::Protocol(message) => Error::Protocol(message.clone()),
            other => Error::Status {
                code: Code::Unavailable,
                message: other.to_string(),
                leader_hint: None,
                reason: None,
                next_sequence: None,
            },
        }
    }
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        let metadata = |key: &str| status.metadata().get(key).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let (leader_hint, reason) = (metadata("ferry-leader"), metadata("ferry-reason"));
        let next_sequence = metadata("ferry-next-sequence").and_then(|n| n.parse().ok());
        Error::Status { code: status.code(), message: status.message().to_owned(), leader_hint, reason, next_sequence }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
