//! `ferryd --metrics-listen`: what a node serves to Prometheus reflects what
//! it holds — publishes, backlogs as consumers ack, Raft leadership, its
//! process — in the text format with units in the names.

use std::time::Duration;

use ferry_client::{Client, Message, SubscriptionSettings, TopicSettings};
use ferry_tests::{binary, eventually, ferry_ok, free_addr, http_get, Ferryd, TempDir};

/// The commit `ferryd --version` names: `ferryd 0.1.0 (<commit>)`, the
/// commit a 12-digit hash (`-dirty` with uncommitted changes) or "unknown".
/// (Not compared with this checkout's HEAD: cargo shares a build script's
/// output between checkouts of the workspace, so a build may carry the
/// commit of another checkout.)
fn built_commit() -> String {
    let output = std::process::Command::new(binary("ferryd")).arg("--version").output().expect("ferryd --version");
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let commit = version
        .strip_prefix(&format!("ferryd {} (", env!("CARGO_PKG_VERSION")))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{version:?} is not `ferryd VERSION (COMMIT)`"))
        .to_owned();
    let hash = commit.strip_suffix("-dirty").unwrap_or(&commit);
    let is_hash = hash.len() == 12 && hash.chars().all(|c| c.is_ascii_hexdigit());
    assert!(is_hash || commit == "unknown", "{commit:?} is not a commit");
    commit
}

/// A node says which build it runs: in `ferry cluster status` (table and
/// JSON), as well as in its metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_reports_its_version_and_git_commit() {
    let dir = TempDir::new().expect("temp dir");
    let node = Ferryd::start(dir.path());
    let client = Client::connect(node.addr()).await.expect("connect");
    let groups = 1 + ferry_tests::DATA_GROUPS as usize;
    let status = eventually(Duration::from_secs(10), "the node is a member and hosts every group", || async {
        client.cluster_status().await.ok().filter(|s| !s.members.is_empty() && s.groups.len() == groups)
    })
    .await;
    let member = status.members[0].status.as_ref().expect("the node answers");
    assert_eq!(member.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(member.commit, built_commit(), "the status names the build's commit");
    let table = ferry_ok(node.addr(), &["cluster", "status"], b"");
    assert!(table.contains(&format!("{} ({})", member.version, member.commit)), "{table}");
    // With data groups, a table of the groups and each one's log.
    let rows = table.lines().skip_while(|l| !l.trim_start().starts_with("GROUP")).collect::<Vec<_>>();
    let columns = ["LEADER", "TERM", "VOTERS", "LAST_LOG", "APPLIED", "SNAPSHOT", "PURGED"];
    assert!(rows.first().is_some_and(|h| columns.iter().all(|c| h.contains(c))), "{table}");
    assert_eq!(rows.len(), 1 + groups, "a row per group:\n{table}");
    let json: serde_json::Value =
        serde_json::from_str(&ferry_ok(node.addr(), &["cluster", "status", "--json"], b"")).expect("json");
    assert_eq!(json["members"][0]["status"]["commit"], member.commit.as_str(), "{json}");
}

/// The value of the sample `line` (name and labels, exactly) in `scrape`.
fn sample(scrape: &str, line: &str) -> f64 {
    let found = scrape.lines().find_map(|l| l.strip_prefix(line).and_then(|rest| rest.strip_prefix(' ')));
    found.unwrap_or_else(|| panic!("no {line} in:\n{scrape}")).parse().expect("a number")
}

/// The sum over every group of the samples whose name and labels start with
/// `start` (up to the group label) and end with `end`: each group's leader
/// reports its own share.
fn over_groups(scrape: &str, start: &str, end: &str) -> f64 {
    let values = scrape.lines().filter_map(|l| {
        let (series, value) = l.split_once(' ')?;
        let group = series.strip_prefix(start)?.strip_prefix("group=\"")?;
        group.ends_with(end).then(|| value.parse::<f64>().expect("a number"))
    });
    values.sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nodes_metrics_show_its_partitions_backlogs_leadership_and_process() {
    let dir = TempDir::new().expect("temp dir");
    let metrics = free_addr();
    let node = Ferryd::start_with(dir.path(), &["--metrics-listen", &metrics]);
    let client = Client::connect(node.addr()).await.expect("connect");
    client.create_topic("clicks", TopicSettings { partitions: 2, ..Default::default() }).await.expect("topic");
    client.create_subscription("etl", "clicks", SubscriptionSettings::default()).await.expect("subscription");
    let messages: Vec<Message> = (0..100).map(|i| Message::new(format!("m{i:03}"))).collect();
    client.publish("clicks", messages).await.expect("publish");
    let pulled = client.pull("etl", 30, Duration::from_secs(5)).await.expect("pull");
    let acked: Vec<String> = pulled.iter().take(10).map(|m| m.ack_id.clone()).collect();
    client.acknowledge("etl", &acked).await.expect("ack");

    let response = http_get(&metrics, "/metrics").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let scrape = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    let published: f64 = (0..2)
        .map(|p| {
            sample(scrape, &format!("ferry_partition_published_messages_total{{topic=\"clicks\",partition=\"{p}\"}}"))
        })
        .sum();
    assert_eq!(published, 100.0);
    let bytes = sample(scrape, "ferry_partition_published_bytes_total{topic=\"clicks\",partition=\"0\"}");
    assert!(bytes >= 4.0 * 40.0, "{bytes} bytes for the partition's share of 100 four-byte messages");
    let unacked = over_groups(scrape, "ferry_subscription_unacked_messages{subscription=\"etl\",", "\"}");
    assert_eq!(unacked, 90.0, "100 published, 10 acked");
    let leased = over_groups(scrape, "ferry_subscription_leased_messages{subscription=\"etl\",", "\"}");
    assert_eq!(leased, pulled.len() as f64 - 10.0, "pulled and not acked");
    assert_eq!(sample(scrape, "ferry_raft_is_leader{group=\"0\"}"), 1.0);
    assert!(sample(scrape, "ferry_raft_applied_index{group=\"0\"}") > 0.0);
    assert!(sample(scrape, "process_resident_memory_bytes") > 1e6);
    // Every write above waited for a raft-log fsync; group commit may have
    // made several durable with one.
    let fsyncs = sample(scrape, "ferry_raft_log_fsync_seconds_count");
    let under_5s = sample(scrape, "ferry_raft_log_fsync_seconds_bucket{le=\"5\"}");
    assert!(fsyncs >= 3.0 && under_5s == fsyncs, "{fsyncs} fsyncs, {under_5s} under 5 s");
    let appends = sample(scrape, "ferry_raft_log_fsync_appends_sum");
    assert!(appends >= fsyncs, "{appends} appends made durable by {fsyncs} fsyncs");
    // Each fsync counts in both; one made during the scrape may show in one only.
    let counted = sample(scrape, "ferry_raft_log_fsync_appends_count");
    assert!((counted - fsyncs).abs() <= 1.0, "{counted} fsyncs counted by appends, {fsyncs} by duration");
    // Rendered; this short test writes a few kB of WAL, so whatever the
    // archive holds is small.
    assert!(sample(scrape, "ferry_raft_log_archive_bytes") < 64e6, "no large WAL file written here");
    // And each was applied here, an entry at a time.
    let applies = over_groups(scrape, "ferry_raft_apply_seconds_count{", "\"}");
    let under_5s = over_groups(scrape, "ferry_raft_apply_seconds_bucket{", "\",le=\"5\"}");
    assert!(applies >= 3.0 && under_5s == applies, "{applies} entries applied, {under_5s} in under 5 s");
    // The topic, the subscription, the publish and the ack were proposed
    // here and waited for; the leader's own entries (its blank, the
    // membership) were not.
    let proposals = over_groups(scrape, "ferry_raft_proposal_seconds_count{", "\"}");
    let under_5s = over_groups(scrape, "ferry_raft_proposal_seconds_bucket{", "\",le=\"5\"}");
    assert!(
        proposals >= 4.0 && proposals < applies && under_5s == proposals,
        "{proposals} proposals, {under_5s} in 5 s"
    );
    assert!(scrape.contains("# TYPE ferry_partition_published_messages_total counter"), "{scrape}");
    let commit = built_commit();
    let build = format!("ferry_build_info{{version=\"{}\",commit=\"{commit}", env!("CARGO_PKG_VERSION"));
    assert!(scrape.contains(&build), "no {build} in:\n{scrape}");
    assert!(http_get(&metrics, "/other").await.starts_with("HTTP/1.1 404"));
}
