//! The gRPC health service (`grpc.health.v1.Health`): a node is SERVING
//! while it knows a leader (as the leader, while a quorum acks it),
//! NOT_SERVING once it has lost its quorum, and
//! SERVING again when the quorum returns — what a load balancer or a rolling
//! restart waits on. A stopping node turns NOT_SERVING, and does not wait
//! for the Watch streams load balancers keep open past its drain timeout.

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

/// A stopping node gives the calls in flight `DRAIN_TIMEOUT` (5 s) to end,
/// and no longer: a call that never ends by itself (a health Watch, as a
/// load balancer keeps open) must not keep it from stopping, and the stop
/// still closes its databases cleanly (what it acknowledged is there after
/// a restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_node_does_not_wait_past_its_drain_timeout_for_calls_that_never_end() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut node = ferry_tests::Ferryd::start(dir.path());
    let addr = node.addr().to_owned();
    wait_for(&addr, ServingStatus::Serving, "the node serving").await;
    ferry_tests::ferry_ok(&addr, &["topic", "create", "t"], b"");
    ferry_tests::ferry_ok(&addr, &["sub", "create", "--topic", "t", "s"], b"");
    ferry_tests::ferry_ok(&addr, &["publish", "t"], b"one\ntwo\nthree\n");

    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).expect("an address");
    let mut watcher = HealthClient::new(endpoint.connect().await.expect("connect"));
    let mut watch = watcher.watch(HealthCheckRequest { service: String::new() }).await.expect("watch").into_inner();
    let first = watch.message().await.expect("a first status").expect("a first status");
    assert_eq!(first.status(), ServingStatus::Serving);

    let started = std::time::Instant::now();
    let stopped = tokio::task::spawn_blocking(move || {
        node.stop();
        node
    });
    // The watch sees the node stop serving, and stays open.
    let next = watch.message().await.expect("the status while stopping").expect("the status while stopping");
    assert_eq!(next.status(), ServingStatus::NotServing);
    // One node hands nothing over: the drain's 5 s, then closing.
    let stopped = tokio::time::timeout(Duration::from_secs(15), stopped).await;
    let mut node = stopped.expect("the node stopped within 15 s, a call still open").expect("stop");
    assert!(started.elapsed() >= Duration::from_secs(4), "it gave the call its drain time");
    let log = node.log_text();
    assert!(log.contains("calls still in flight; stopping without them"), "the drain timed out:\n{log}");
    assert!(log.contains("ferry node stopped"), "the node closed its databases:\n{log}");

    node.restart();
    let pulled = ferry_tests::ferry_ok(&addr, &["pull", "s", "--max", "10", "--wait", "10s"], b"");
    assert_eq!(pulled.lines().collect::<Vec<_>>(), ["one", "two", "three"], "after the restart");
}
