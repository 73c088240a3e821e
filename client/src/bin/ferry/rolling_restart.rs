//! `ferry cluster rolling-restart`: restarts a cluster's nodes one at a
//! time with a command the operator gives (`systemctl restart ferryd@{id}`,
//! `kubectl delete pod ferry-{id}`), so an upgrade or a config change never
//! takes more than one node away.
//!
//! Before each node, every member must answer, serve (the gRPC health
//! service) and have applied every group to near its leader's index: a
//! member that is down or behind would turn one restart into a lost quorum.
//! After the command, the node must have restarted (its start time
//! changed), serve again and catch up before the next one goes.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use ferry_client::{Client, ClusterStatus, Member};
use tokio::time::Instant;

/// Entries a node may be behind its group's leader and count as caught up
/// (the server's balancer uses the same margin).
const CAUGHT_UP_ENTRIES: u64 = 1_000;
/// How often the cluster is looked at while waiting.
const POLL_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, clap::Args)]
pub struct RollingRestartArgs {
    /// The command that restarts one node, run with `sh -c`; `{id}` and
    /// `{addr}` become the node's id and address. It should return once the
    /// node was told to stop (or has restarted).
    #[arg(long)]
    exec: String,
    /// How long the cluster may take to be healthy before a node, and a
    /// node to come back, serve and catch up after it.
    #[arg(long, default_value = "5m")]
    timeout: humantime::Duration,
    /// Restart only these nodes (comma-separated ids); default: every member.
    #[arg(long, value_delimiter = ',')]
    nodes: Vec<u64>,
}

pub async fn run(client: &Client, args: RollingRestartArgs) -> anyhow::Result<()> {
    let status = client.cluster_status().await.context("cluster status")?;
    let mut order: Vec<Member> = status.members.clone();
    if let Some(unknown) = args.nodes.iter().find(|id| !order.iter().any(|m| m.node_id == **id)) {
        bail!("node {unknown} is not a member of the cluster");
    }
    if !args.nodes.is_empty() {
        order.retain(|m| args.nodes.contains(&m.node_id));
    }
    // Group 0's leader last: its handoff is the one every write waits on.
    order.sort_by_key(|m| (Some(m.node_id) == status.leader_id, m.node_id));
    let timeout: Duration = args.timeout.into();
    for member in &order {
        let began = Instant::now();
        wait_for(client, timeout, "every member to serve and be caught up", |status| {
            status.members.iter().try_for_each(|m| healthy(status, m))
        })
        .await
        .with_context(|| format!("before restarting node {}", member.node_id))?;
        let started_before = client
            .node_status_at(&member.addr)
            .await
            .with_context(|| format!("node {} at {}", member.node_id, member.addr))?
            .started;
        let command = args.exec.replace("{id}", &member.node_id.to_string()).replace("{addr}", &member.addr);
        println!("node {}: {command}", member.node_id);
        let running =
            tokio::process::Command::new("sh").args(["-c", &command]).stdin(Stdio::null()).kill_on_drop(true).status();
        let ran = tokio::time::timeout(timeout, running)
            .await
            .map_err(|_| anyhow::anyhow!("{command:?} did not finish within {timeout:?}; it was killed"))?
            .with_context(|| format!("running {command:?}"))?;
        if !ran.success() {
            bail!("{command:?} failed ({ran}); node {} may be down, the rest were not touched", member.node_id);
        }
        let restarted = restarted_and_caught_up(member, started_before);
        wait_for(client, timeout, "the node to restart, serve and catch up", restarted)
            .await
            .with_context(|| format!("after restarting node {}", member.node_id))?;
        println!("node {}: back, serving and caught up after {:.1}s", member.node_id, began.elapsed().as_secs_f64());
    }
    println!("restarted {} node(s)", order.len());
    Ok(())
}

/// Waits until `ready` holds of a cluster status read through `client`,
/// also asking each member's health service; fails with the last reason
/// once `timeout` passed.
async fn wait_for<F>(client: &Client, timeout: Duration, what: &str, ready: F) -> anyhow::Result<()>
where
    F: Fn(&ClusterStatus) -> Result<(), String>,
{
    let give_up = Instant::now() + timeout;
    loop {
        let look = async {
            match client.cluster_status().await {
                Ok(status) => match ready(&status) {
                    Ok(()) => not_serving(client, &status).await,
                    Err(reason) => Some(reason),
                },
                Err(e) => Some(format!("no cluster status: {e}")),
            }
        };
        let reason = match tokio::time::timeout_at(give_up, look).await {
            Ok(None) => return Ok(()),
            Ok(Some(reason)) => reason,
            Err(_) => "no answer in time".to_owned(),
        };
        if Instant::now() >= give_up {
            bail!("gave up after {timeout:?} waiting for {what}: {reason}");
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// The first member whose health service does not say SERVING, if any.
async fn not_serving(client: &Client, status: &ClusterStatus) -> Option<String> {
    for member in &status.members {
        match client.serving_at(&member.addr).await {
            Ok(true) => {}
            Ok(false) => return Some(format!("node {} is not serving", member.node_id)),
            Err(e) => return Some(format!("node {} health: {e}", member.node_id)),
        }
    }
    None
}

/// A member answers, is not stopping, and has applied each group to within
/// `CAUGHT_UP_ENTRIES` of the most any member applied of it.
fn healthy(status: &ClusterStatus, member: &Member) -> Result<(), String> {
    let id = member.node_id;
    let node = member.status.as_ref().map_err(|e| format!("node {id} does not answer: {e}"))?;
    if node.stopping {
        return Err(format!("node {id} is shutting down"));
    }
    let mut most: BTreeMap<u32, u64> = BTreeMap::new();
    for other in status.members.iter().filter_map(|m| m.status.as_ref().ok()) {
        for group in &other.groups {
            let applied = most.entry(group.group).or_default();
            *applied = (*applied).max(group.applied_index);
        }
    }
    for (group, most) in most {
        let applied = node.groups.iter().find(|g| g.group == group).map_or(0, |g| g.applied_index);
        if applied + CAUGHT_UP_ENTRIES < most {
            return Err(format!("node {id} has applied group {group} to {applied}, others to {most}"));
        }
        if node.groups.iter().any(|g| g.group == group && g.leader_id.is_none()) {
            return Err(format!("node {id} knows no leader of group {group}"));
        }
    }
    Ok(())
}

/// The check that `member` came back: a new start time, then healthy.
fn restarted_and_caught_up(
    member: &Member,
    started_before: SystemTime,
) -> impl Fn(&ClusterStatus) -> Result<(), String> {
    let id = member.node_id;
    move |status| {
        let now = status.members.iter().find(|m| m.node_id == id).ok_or(format!("node {id} is no longer a member"))?;
        match &now.status {
            Ok(node) if node.started == started_before => Err(format!("node {id} has not restarted yet")),
            _ => healthy(status, now),
        }
    }
}
