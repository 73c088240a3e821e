//! The client's error type.

pub use tonic::Code;

/// What went wrong with a call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid server address {addr:?}: {reason}")]
    InvalidAddress { addr: String, reason: String },
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
    },
    #[error("the server sent an incomplete answer: {0}")]
    Protocol(String),
}

impl Error {
    /// The gRPC code, for errors the server answered.
    pub fn code(&self) -> Option<Code> {
        match self {
            Error::Status { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        let leader_hint = status.metadata().get("ferry-leader").and_then(|v| v.to_str().ok()).map(str::to_owned);
        Error::Status { code: status.code(), message: status.message().to_owned(), leader_hint }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
