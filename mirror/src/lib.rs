//! Ferry's cross-datacenter mirror (`ferry-mirror`): copies topics from a
//! source cluster into a destination cluster so that every acknowledged
//! source event is stored in the destination once, in per-partition order.
//!
//! - `route.rs`: one route's loop: a subscription on the source, idempotent
//!   publishes to the destination numbered by source offset, source acks
//!   only after the destination stored.
//! - `lane.rs`: one source partition's rules: what may be sent next, what may
//!   be skipped (proven done), what a refusal means.
//! - `origin.rs`: origin attributes, the loop check, producer ids.
//! - `lock.rs`: the route's lock in the destination: one active instance,
//!   standbys taking over.
//! - `rate.rs`: the link's rate limit.
//! - `topics.rs`: which source topics to copy (names, patterns), a route
//!   for each, found again as topics appear.
//! - `gap.rs`: the hourly gap check, source and destination counts compared.
//! - `progress.rs`: what a route has done and how far behind it is, logged
//!   every 30 s.
//!
//! The design is in `docs/design/mirroring.md`.

pub mod gap;
pub mod lane;
pub mod lock;
pub mod origin;
pub mod progress;
pub mod rate;
pub mod route;
pub mod topics;

pub use lock::LockSettings;
pub use route::{run, run_until_stopped, Route};

/// Resolves once `stop` turns true (or its sender is gone). Unlike
/// `wait_for`, it keeps no borrow of the value, so a task selecting on it
/// stays `Send`.
pub(crate) async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}
