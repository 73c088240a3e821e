//! The status page `ferryd --metrics-listen` serves at `/`: rendered by a
//! real headless browser (Debian's `chromium`, which
//! `scripts/ensure-build-deps` installs) from `/status.json`, on a follower
//! as on the leader.

use std::time::Duration;

use ferry_client::{Client, Message, SubscriptionSettings, TopicSettings};
use ferry_tests::{eventually, http_get, Cluster, Ferryd, TempDir};

/// Where a node serves its metrics and status page: it was started with
/// `--metrics-listen 127.0.0.1:0` and logs the address it bound, last on
/// the line (`... status=http://127.0.0.1:PORT/`).
fn status_addr(node: &Ferryd) -> String {
    let log = node.log_text();
    let line = log.lines().find(|line| line.contains("serving metrics and the status page"));
    let addr = line.and_then(|line| line.rsplit_once("http://")).and_then(|(_, url)| url.split('/').next());
    addr.unwrap_or_else(|| panic!("no status page address in the log:\n{log}")).to_owned()
}

async fn status_json(addr: &str) -> serde_json::Value {
    let response = http_get(addr, "/status.json").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("content-type: application/json"), "{response}");
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{body:?} is not JSON: {e}"))
}

/// The page at `http://addr/` as the browser left its DOM once its script
/// had run (`--virtual-time-budget` lets timers and fetches complete).
async fn rendered_page(addr: &str) -> String {
    let profile = TempDir::new().expect("a browser profile dir");
    let run = tokio::process::Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--virtual-time-budget=4000"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--dump-dom", &format!("http://{addr}/")])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("chromium did not finish within 60 s")
        .unwrap_or_else(|e| panic!("cannot run chromium ({e}); scripts/ensure-build-deps installs it"));
    assert!(output.status.success(), "chromium: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("a UTF-8 DOM")
}

/// The `<tr>` whose attributes include `attribute`, up to its end.
fn row<'a>(dom: &'a str, attribute: &str) -> &'a str {
    let start = dom.find(&format!("<tr {attribute}>")).unwrap_or_else(|| panic!("no row {attribute} in:\n{dom}"));
    let end = dom[start..].find("</tr>").map_or(dom.len(), |end| start + end);
    &dom[start..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_shows_the_cluster_topics_and_backlogs_in_a_browser() {
    let cluster = Cluster::start(3, &["--data-groups", "2", "--metrics-listen", "127.0.0.1:0"]);
    eventually(Duration::from_secs(30), "every node hosts 3 groups with a leader", || async {
        for id in 1..=3 {
            let leaders = cluster.group_leaders(id).await?;
            if leaders.len() != 3 || leaders.values().any(|leader| *leader == 0) {
                return None;
            }
        }
        Some(())
    })
    .await;
    let leader = cluster.leader(Duration::from_secs(30)).await;
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");

    let client = Client::connect(&cluster.addrs()).await.expect("connect");
    client.create_topic("clicks", TopicSettings { partitions: 4, ..Default::default() }).await.expect("topic");
    client.create_topic("orders", TopicSettings::default()).await.expect("topic");
    client.create_subscription("etl", "clicks", SubscriptionSettings::default()).await.expect("subscription");
    let messages: Vec<Message> = (0..37).map(|i| Message::new(format!("m{i}")).ordering_key(format!("k{i}"))).collect();
    client.publish("clicks", messages).await.expect("publish");
    let pulled = client.pull("etl", 5, Duration::from_secs(5)).await.expect("pull");
    let acked: Vec<String> = pulled.iter().map(|m| m.ack_id.clone()).collect();
    client.acknowledge("etl", &acked).await.expect("ack");
    let backlog = 37 - acked.len() as u64;

    // Every node answers with the same topics and backlogs, each as itself.
    let page_of = |id: u64| status_addr(&cluster.nodes[&id]);
    let cluster_id = std::fs::read_to_string(cluster.data_dir(1).join("cluster-id")).expect("the cluster's id");
    let cluster_id = cluster_id.trim();
    let document = eventually(Duration::from_secs(10), "the follower's document shows the backlog", || async {
        let document = status_json(&page_of(follower)).await;
        let unacked = document["subscriptions"]["items"][0]["unacked_messages"].as_u64();
        (unacked == Some(backlog)).then_some(document)
    })
    .await;
    assert_eq!(document["node_id"], follower);
    assert_eq!(document["cluster"]["leader_id"], leader, "{document}");
    assert_eq!(document["topics"]["items"][0]["stored_messages"], 37, "{document}");
    for id in 1..=3 {
        let other = status_json(&page_of(id)).await;
        assert_eq!(other["node_id"], id);
        assert_eq!(other["topics"], document["topics"], "node {id} and node {follower} list the same topics");
        let backlog_of = |d: &serde_json::Value| d["subscriptions"]["items"][0]["unacked_messages"].clone();
        assert_eq!(backlog_of(&other), backlog_of(&document), "node {id}");
        let members = other["cluster"]["members"].as_array().expect("members");
        assert_eq!(members.len(), 3, "{other}");
        assert!(members.iter().all(|m| m["error"] == "" && m["version"] == env!("CARGO_PKG_VERSION")), "{other}");
        assert!(members.iter().all(|m| m["cluster_id"] == cluster_id), "{other}");
    }

    let dom = rendered_page(&page_of(follower)).await;
    assert!(dom.contains(&format!("As seen by node {follower} at ")), "{dom}");
    let leader_addr = cluster.addr(leader);
    let shown = format!("<span id=\"leader\" class=\"leader\">node {leader} ({leader_addr})</span>");
    assert!(dom.contains(&shown), "no {shown} in:\n{dom}");
    assert!(dom.contains(&format!("Cluster id: {cluster_id}.")), "{dom}");
    assert!(row(dom.as_str(), "data-topic=\"clicks\"").contains("<td class=\"num\">37</td>"), "{dom}");
    let _ = row(&dom, "data-topic=\"orders\"");
    let etl = row(&dom, "data-subscription=\"etl\"");
    assert!(etl.contains(&format!("<td class=\"num backlog\">{backlog}</td>")), "backlog {backlog}: {etl}");
    for id in 1..=3 {
        let member = row(&dom, &format!("data-node=\"{id}\""));
        assert!(member.contains(cluster.addr(id)), "{member}");
    }
    for group in 1..=2 {
        let group = row(&dom, &format!("data-group=\"{group}\""));
        assert!(group.contains("<td>node "), "a data group's leader is shown: {group}");
    }
    assert!(dom.contains("id=\"failure\" hidden"), "no failure shown: {dom}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_lists_at_most_100_topics_and_says_there_are_more() {
    let dir = TempDir::new().expect("temp dir");
    let node = Ferryd::start_with(dir.path(), &["--metrics-listen", "127.0.0.1:0"]);
    let client = Client::connect(node.addr()).await.expect("connect");
    for i in 0..101 {
        client.create_topic(&format!("t{i:03}"), TopicSettings::default()).await.expect("topic");
    }
    let addr = status_addr(&node);
    let document = status_json(&addr).await;
    assert_eq!(document["topics"]["truncated"], true, "{document}");
    assert_eq!(document["topics"]["items"].as_array().map(Vec::len), Some(100));
    assert_eq!(document["topics"]["items"][99]["name"], "t099", "the first 100 by name");
    assert_eq!(document["subscriptions"]["truncated"], false);

    let dom = rendered_page(&addr).await;
    assert!(dom.contains("Showing the first 100 topics by name; there are more."), "{dom}");
    assert!(!dom.contains("data-topic=\"t100\""), "{dom}");
}
