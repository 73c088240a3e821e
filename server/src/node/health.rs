//! The standard gRPC health service (`grpc.health.v1.Health`), for load
//! balancers, Kubernetes probes and rolling restarts: a node is SERVING
//! while it knows group 0's leader, which is when it can answer requests
//! (serving them or pointing to the leader), and NOT_SERVING otherwise (no
//! quorum, an election under way, not yet joined). The overall status ("")
//! and each public service's name say the same.

use ferry_proto::v1::{cluster_server, locks_server, publisher_server, subscriber_server};
use tonic::server::NamedService;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::raft::Raft;

/// The names a client may ask about.
fn names() -> [&'static str; 5] {
    [
        "",
        <publisher_server::PublisherServer<()> as NamedService>::NAME,
        <subscriber_server::SubscriberServer<()> as NamedService>::NAME,
        <cluster_server::ClusterServer<()> as NamedService>::NAME,
        <locks_server::LocksServer<()> as NamedService>::NAME,
    ]
}

/// Keeps `reporter` in step with group 0's leadership until the group stops.
pub async fn run(reporter: HealthReporter, raft: Raft) {
    let mut metrics = raft.metrics();
    let mut reported = None;
    loop {
        let serving = metrics.borrow_and_update().current_leader.is_some();
        if reported != Some(serving) {
            let status = if serving { ServingStatus::Serving } else { ServingStatus::NotServing };
            for name in names() {
                reporter.set_service_status(name, status).await;
            }
            tracing::info!(serving, "health");
            reported = Some(serving);
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}
