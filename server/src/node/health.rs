//! The standard gRPC health service (`grpc.health.v1.Health`), for load
//! balancers, Kubernetes probes and rolling restarts: a node is SERVING
//! while it knows group 0's leader, which is when it can answer requests
//! (serving them or pointing to the leader) — as leader, while a quorum
//! acknowledged it within 3 s — and NOT_SERVING otherwise (no quorum, an
//! election under way, not yet joined). The overall status ("")
//! and each public service's name say the same.

use ferry_proto::v1::{cluster_server, locks_server, publisher_server, subscriber_server};
use tonic::server::NamedService;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::raft::Raft;

/// The names a client may ask about.
pub fn names() -> [&'static str; 5] {
    [
        "",
        <publisher_server::PublisherServer<()> as NamedService>::NAME,
        <subscriber_server::SubscriberServer<()> as NamedService>::NAME,
        <cluster_server::ClusterServer<()> as NamedService>::NAME,
        <locks_server::LocksServer<()> as NamedService>::NAME,
    ]
}

/// How long a leader may go without hearing from a quorum and still say it
/// serves: a leader cut off from its followers keeps calling itself leader.
const QUORUM_SILENCE_MAX_MS: u64 = 3_000;
/// How often the status is looked at again when nothing changes (a cut-off
/// leader's metrics do not change).
const RECHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Keeps `reporter` in step with group 0's leadership until the group stops.
pub async fn run(reporter: HealthReporter, raft: Raft) {
    let mut metrics = raft.metrics();
    let mut reported = None;
    // When the metrics last changed: their quorum silence has grown since.
    let mut observed_at = tokio::time::Instant::now();
    loop {
        let serving = {
            let now = metrics.borrow_and_update();
            let leading = now.current_leader == Some(now.id);
            let since_observed = observed_at.elapsed().as_millis() as u64;
            let heard = now.millis_since_quorum_ack.is_some_and(|ms| ms + since_observed <= QUORUM_SILENCE_MAX_MS);
            now.current_leader.is_some() && (!leading || heard)
        };
        if reported != Some(serving) {
            let status = if serving { ServingStatus::Serving } else { ServingStatus::NotServing };
            for name in names() {
                reporter.set_service_status(name, status).await;
            }
            tracing::info!(serving, "health");
            reported = Some(serving);
        }
        tokio::select! {
            changed = metrics.changed() => {
                if changed.is_err() {
                    return;
                }
                observed_at = tokio::time::Instant::now();
            }
            () = tokio::time::sleep(RECHECK_EVERY) => {}
        }
    }
}
