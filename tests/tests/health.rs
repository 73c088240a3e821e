//! The gRPC health service (`grpc.health.v1.Health`): a node is SERVING
//! while it knows a leader (as the leader, while a quorum acks it),
//! NOT_SERVING once it has lost its quorum, and
//! SERVING again when the quorum returns — what a load balancer or a rolling
//! restart waits on.

use std::time::Duration;

use ferry_tests::{eventually, Cluster};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// Node `addr`'s status for `service` ("" = the whole server), or the code
/// of the call's failure.
async fn health(addr: &str, service: &str) -> Result<ServingStatus, tonic::Code> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).expect("an address");
    let channel = endpoint.connect().await.map_err(|_| tonic::Code::Unavailable)?;
    let mut client = HealthClient::new(channel);
    let request = HealthCheckRequest { service: service.to_owned() };
    let response = client.check(request).await.map_err(|status| status.code())?;
    Ok(response.into_inner().status())
}

async fn wait_for(addr: &str, want: ServingStatus, what: &str) {
    eventually(Duration::from_secs(20), what, || async {
        (health(addr, "").await == Ok(want) && health(addr, "ferry.v1.Publisher").await == Ok(want)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_serves_while_it_knows_a_leader_and_not_once_its_quorum_is_gone() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.leader(Duration::from_secs(10)).await;
    for id in 1..=3 {
        wait_for(cluster.addr(id), ServingStatus::Serving, "every node serving").await;
    }
    assert_eq!(health(cluster.addr(1), "no.such.Service").await, Err(tonic::Code::NotFound));
    // An idle leader with its quorum keeps serving (its acks keep coming).
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(health(cluster.addr(leader), "").await, Ok(ServingStatus::Serving));

    // The leader survives, cut off from its followers: it still names itself
    // leader, but without a quorum's acks it must stop saying it serves.
    let survivor = leader;
    for id in (1..=3).filter(|&id| id != survivor) {
        cluster.kill9(id);
    }
    wait_for(cluster.addr(survivor), ServingStatus::NotServing, "alone, the survivor stops serving").await;

    for id in (1..=3).filter(|&id| id != survivor) {
        cluster.restart(id);
    }
    wait_for(cluster.addr(survivor), ServingStatus::Serving, "with its quorum back, it serves again").await;
}
