//! `google.pubsub.v1`, served beside `ferry.v1` so Pub/Sub's own client
//! libraries work unchanged (`PUBSUB_EMULATOR_HOST=host:port`). Each call
//! becomes the Ferry call it means; see `docs/pubsub-compat.md` for the
//! mapping and README for where behaviour differs.
//!
//! - `names.rs`: `projects/P/topics/T` is the Ferry topic `P.T`.
//! - `convert.rs`: messages, message ids, times, durations.
//! - `publisher.rs`: the Publisher service.
//! - `forward.rs`: calls only group 0's leader can serve, made again there
//!   (Pub/Sub clients do not follow Ferry's leader hints).
//! - `subscriber.rs`: the Subscriber service; `streaming.rs`: its
//!   StreamingPull frames; `snapshots.rs`: snapshots as Ferry's bookmarks.
//! - `paging.rs`: a project's listings over Ferry's name-ordered pages.

mod convert;
mod forward;
mod names;
mod paging;
mod publisher;
mod snapshots;
mod streaming;
mod subscriber;

pub use forward::Forwarder;
pub use publisher::PubsubPublisher;
pub use subscriber::PubsubSubscriber;

use crate::security::Principal;

/// The Ferry request for a Pub/Sub call: `message`, made by the same caller.
fn ferry_request<P, F>(from: &tonic::Request<P>, message: F) -> tonic::Request<F> {
    with_principal(from.extensions().get::<Principal>(), message)
}

/// A Ferry request made by `principal` (for calls whose Pub/Sub request was
/// consumed already, so only its caller is left).
fn with_principal<T>(principal: Option<&Principal>, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(principal) = principal {
        request.extensions_mut().insert(principal.clone());
    }
    request
}
