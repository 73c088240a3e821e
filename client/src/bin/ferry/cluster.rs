//! `ferry cluster`: status as a table or JSON, membership changes and
//! moving a data group's leader.

use anyhow::Context;
use ferry_client::{Client, ClusterStatus};
use serde_json::json;

use crate::args::ClusterCommand;
use crate::output;

pub async fn run(client: &Client, command: ClusterCommand) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Status { json } => {
            let status = client.cluster_status().await.context("cluster status")?;
            if json {
                output::print_json(&status_json(&status))
            } else {
                print_table(&status);
                Ok(())
            }
        }
        ClusterCommand::AddNode { id, addr } => {
            let status = client.add_node(id, &addr).await.with_context(|| format!("add node {id} at {addr}"))?;
            print_table(&status);
            Ok(())
        }
        ClusterCommand::TransferLeader { group, to } => {
            let leader =
                client.transfer_leader(group, to).await.with_context(|| format!("move group {group} to {to}"))?;
            println!("group {group} is led by node {leader}");
            Ok(())
        }
        ClusterCommand::Backup { dir } => {
            let made = client.backup(&dir).await.with_context(|| format!("back up into {dir}"))?;
            let groups: Vec<_> = made
                .groups
                .iter()
                .map(|g| {
                    json!({"group": g.group, "applied_term": g.applied_term, "applied_index": g.applied_index, "bytes": g.bytes})
                })
                .collect();
            let created = made.created.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_micros() as u64;
            output::print_json(&json!({
                "dir": made.dir,
                "node_id": made.node_id,
                "created_unix_micros": created,
                "groups": groups,
            }))
        }
        ClusterCommand::RollingRestart(args) => crate::rolling_restart::run(client, args).await,
        ClusterCommand::RemoveNode { id } => {
            let status = client.remove_node(id).await.with_context(|| format!("remove node {id}"))?;
            print_table(&status);
            Ok(())
        }
    }
}

fn print_table(status: &ClusterStatus) {
    let leader = status.leader_id.map_or("none".to_owned(), |id| id.to_string());
    // A member whose address a node of another cluster now serves shows
    // as unreachable, with that node's refusal naming both clusters.
    let cluster = match status.leader_status() {
        Some(leader) => leader.cluster_id.as_deref().unwrap_or("none (a cluster from before cluster ids)"),
        None => "unknown (no leader answered)",
    };
    println!("leader {leader}, term {}, cluster {cluster}", status.term);
    println!(
        "{:>5}  {:<22} {:<9} {:<5} {:>5} {:>10} {:>10} {:>10} {:>8}  VERSION",
        "NODE", "ADDR", "ROLE", "VOTER", "TERM", "LAST_LOG", "COMMITTED", "APPLIED", "LAG"
    );
    for member in &status.members {
        let voter = if member.voter { "yes" } else { "no" };
        match &member.status {
            Ok(s) => println!(
                "{:>5}  {:<22} {:<9} {:<5} {:>5} {:>10} {:>10} {:>10} {:>8}  {} ({})",
                member.node_id,
                member.addr,
                s.role,
                voter,
                s.term,
                s.last_log_index,
                s.committed_index,
                s.applied_index,
                member.lag_entries,
                s.version,
                s.commit
            ),
            Err(e) => println!("{:>5}  {:<22} {:<9} {:<5} unreachable: {e}", member.node_id, member.addr, "?", voter),
        }
    }
    if status.groups.len() > 1 {
        println!();
        // Each group's log as the answering node holds it.
        println!(
            "{:>5}  {:>6} {:>5} {:<16} {:>10} {:>10} {:>10} {:>10}",
            "GROUP", "LEADER", "TERM", "VOTERS", "LAST_LOG", "APPLIED", "SNAPSHOT", "PURGED"
        );
        for g in &status.groups {
            let leader = g.leader_id.map_or("none".to_owned(), |id| id.to_string());
            let voters = g.voters.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
            println!(
                "{:>5}  {:>6} {:>5} {:<16} {:>10} {:>10} {:>10} {:>10}",
                g.group, leader, g.term, voters, g.last_log_index, g.applied_index, g.snapshot_index, g.purged_index
            );
        }
    }
}

fn status_json(status: &ClusterStatus) -> serde_json::Value {
    json!({
        "leader_id": status.leader_id,
        "term": status.term,
        "members": status.members.iter().map(|m| {
            let mut member = json!({
                "node_id": m.node_id,
                "addr": m.addr,
                "voter": m.voter,
                "lag_entries": m.lag_entries,
            });
            match &m.status {
                Ok(s) => member["status"] = json!({
                    "role": s.role,
                    "term": s.term,
                    "leader_id": s.leader_id,
                    "last_log_index": s.last_log_index,
                    "committed_index": s.committed_index,
                    "applied_index": s.applied_index,
                    "snapshot_index": s.snapshot_index,
                    "purged_index": s.purged_index,
                    "version": s.version,
                    "commit": s.commit,
                    "cluster_id": s.cluster_id,
                }),
                Err(e) => member["error"] = json!(e),
            }
            member
        }).collect::<Vec<_>>(),
        "groups": status.groups.iter().map(|g| json!({
            "group": g.group,
            "role": g.role,
            "term": g.term,
            "leader_id": g.leader_id,
            "voters": g.voters,
            "applied_index": g.applied_index,
            "last_log_index": g.last_log_index,
            "snapshot_index": g.snapshot_index,
            "purged_index": g.purged_index,
        })).collect::<Vec<_>>(),
    })
}
