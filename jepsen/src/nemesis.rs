//! The nemesis: breaks the cluster on a schedule, one fault at a time, and
//! records each fault with whether it really fired.
//!
//! Names are those of FAULTS.md. `partition` picks one of the partition
//! topologies at random; the `partition-*` names ask for one.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::bail;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

use crate::cluster::Cluster;
use crate::history::{Fault, FaultStatus, Op};
use crate::recorder::Recorder;

/// Every nemesis this harness knows, besides the [`TOPOLOGIES`].
pub const NAMES: &[&str] = &[
    "kill",
    "pause",
    "partition",
    "loss",
    "delay",
    "power-loss",
    "power-loss-all",
    "skew",
    "membership",
    "corrupt",
    "disk-full",
    "transfer-leader",
];

/// Whether a nemesis needs the nodes' data on [`crate::powerfs`] disks.
pub fn needs_powerfs(names: &[String]) -> bool {
    names.iter().any(|n| n.starts_with("power-loss") || n == "disk-full")
}

const TOPOLOGIES: &[&str] = &[
    "partition-one",
    "partition-leader",
    "partition-leader-minority",
    "partition-leader-majority",
    "partition-halves",
    "partition-bridge",
    "partition-ring",
];

/// Checks the requested names against [`NAMES`] and [`TOPOLOGIES`].
pub fn parse(list: &str) -> anyhow::Result<Vec<String>> {
    let names: Vec<String> = list.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned).collect();
    for name in &names {
        if !NAMES.contains(&name.as_str()) && !TOPOLOGIES.contains(&name.as_str()) {
            bail!("unknown nemesis {name:?}; known: {}, {}", NAMES.join(", "), TOPOLOGIES.join(", "));
        }
    }
    Ok(names)
}

/// A fault in place, to be undone.
#[derive(Debug)]
pub struct Active {
    fault: Fault,
    undo: Undo,
}

#[derive(Debug)]
enum Undo {
    Restart(u32),
    RestartAll(Vec<u32>),
    /// Put these nodes' clocks right.
    Unskew(Vec<u32>),
    /// Start the removed node afresh, joining through `seed`.
    Rejoin {
        node: u32,
        seed: String,
    },
    Resume(u32),
    /// Start the node on its damaged data; if it refuses (as it should when
    /// its Raft log is damaged), replace it the way the runbook says.
    RestartOrReplace(u32),
    /// Free the node's disk, and start the node again if it stopped.
    FreeDisk(u32),
    HealNetwork,
    Nothing,
}

/// Puts one fault of kind `name` in place and records it. Faults aimed at
/// "the leader" aim at the leader of one of `topic`'s partitions.
pub async fn install(cluster: &mut Cluster, recorder: &Recorder, rng: &mut StdRng, name: &str, topic: &str) -> Active {
    let ids = cluster.ids();
    let leader = cluster.partition_leader(topic, rng).await;
    let kind = if name == "partition" { TOPOLOGIES.choose(rng).copied().unwrap_or("partition-one") } else { name };
    let attempt = match kind {
        "kill" => {
            let node = leader.filter(|_| rng.gen_bool(0.5)).unwrap_or_else(|| pick(rng, &ids));
            cluster.kill(node).map(|()| (vec![node], format!("SIGKILL node {node}"), Undo::Restart(node)))
        }
        "pause" => {
            let node = leader.filter(|_| rng.gen_bool(0.5)).unwrap_or_else(|| pick(rng, &ids));
            cluster.pause(node).map(|_| (vec![node], format!("SIGSTOP node {node}"), Undo::Resume(node)))
        }
        "power-loss" | "power-loss-all" => {
            let nodes = if kind == "power-loss-all" {
                ids.clone()
            } else {
                vec![leader.filter(|_| rng.gen_bool(0.5)).unwrap_or_else(|| pick(rng, &ids))]
            };
            match cluster.power_loss(&nodes) {
                Ok(Some(lost)) => {
                    let detail = format!(
                        "power loss at nodes {nodes:?}: {} unsynced bytes in {} files dropped",
                        lost.bytes, lost.files
                    );
                    Ok((nodes.clone(), detail, Undo::RestartAll(nodes)))
                }
                Ok(None) => Err(anyhow::anyhow!("the nodes are not on power-loss filesystems")),
                Err(error) => Err(error),
            }
        }
        "skew" => {
            // One node or a minority, each off by up to a minute either way.
            let mut nodes = ids.clone();
            nodes.shuffle(rng);
            nodes.truncate(rng.gen_range(1..=ids.len().div_ceil(2)));
            let mut detail = Vec::new();
            let skewed = nodes.iter().try_for_each(|&node| {
                let seconds = rng.gen_range(5..=60) * if rng.gen_bool(0.5) { 1 } else { -1 };
                detail.push(format!("node {node} {seconds:+}s"));
                cluster
                    .skew_clock(node, seconds)?
                    .then_some(())
                    .ok_or_else(|| anyhow::anyhow!("clocks are not skewable"))
            });
            skewed.map(|()| (nodes.clone(), format!("wall clock {}", detail.join(", ")), Undo::Unskew(nodes)))
        }
        "membership" => remove_node(cluster, rng, &ids).await,
        "transfer-leader" => transfer_leader(cluster, rng).await,
        "corrupt" => {
            // A minority of one, never the leader aimed at: the fault is a
            // bad disk under a follower of that partition, which the rest
            // must outvote (with data groups it may lead other groups).
            let followers: Vec<u32> = ids.iter().copied().filter(|&n| Some(n) != leader).collect();
            let node = pick(rng, if followers.is_empty() { &ids } else { &followers });
            cluster.kill(node).and_then(|()| {
                let detail = cluster.corrupt(node, rng)?;
                Ok((vec![node], format!("node {node} stopped; {detail}"), Undo::RestartOrReplace(node)))
            })
        }
        "disk-full" => {
            // One node, the leader half the time: the rest must carry on
            // while it cannot write.
            let node = leader.filter(|_| rng.gen_bool(0.5)).unwrap_or_else(|| pick(rng, &ids));
            match cluster.fill_disk(node, true) {
                Ok(true) => Ok((vec![node], format!("node {node}'s disk full"), Undo::FreeDisk(node))),
                Ok(false) => Err(anyhow::anyhow!("the nodes are not on powerfs disks")),
                Err(error) => Err(error),
            }
        }
        "loss" => {
            let node = pick(rng, &ids);
            let percent = rng.gen_range(10..=40);
            cluster
                .net()
                .lossy(node, percent)
                .map(|()| (vec![node], format!("{percent}% packet loss at node {node}"), Undo::HealNetwork))
        }
        "delay" => {
            // Up to well past half an election timeout each way, so some
            // delays cost the leader its lease and some do not.
            let node = leader.filter(|_| rng.gen_bool(0.5)).unwrap_or_else(|| pick(rng, &ids));
            let delay = Duration::from_millis(rng.gen_range(50..=800));
            cluster.net().delay(node, delay);
            Ok((vec![node], format!("{} ms delay each way at node {node}", delay.as_millis()), Undo::HealNetwork))
        }
        topology => match partition(topology, &ids, leader, rng) {
            Some(cuts) => {
                let nodes: BTreeSet<u32> = cuts.iter().flat_map(|&(a, b)| [a, b]).collect();
                let detail = format!("{kind}: cut {}", describe(&cuts));
                cuts.iter()
                    .try_for_each(|&(a, b)| cluster.net().cut(a, b))
                    .map(|()| (nodes.into_iter().collect(), detail, Undo::HealNetwork))
            }
            None => {
                let fault = fault(name, Vec::new(), FaultStatus::Skipped, format!("{kind}: no leader to place"));
                recorder.note(Op::Fault(fault.clone()));
                return Active { fault, undo: Undo::Nothing };
            }
        },
    };
    let (fault, undo) = match attempt {
        Ok((nodes, detail, undo)) => (fault(name, nodes, FaultStatus::Installed, detail), undo),
        Err(error) => (fault(name, Vec::new(), FaultStatus::Unknown, format!("{kind}: {error:#}")), Undo::HealNetwork),
    };
    recorder.note(Op::Fault(fault.clone()));
    Active { fault, undo }
}

/// Undoes a fault and records that it was healed.
pub async fn heal(cluster: &mut Cluster, recorder: &Recorder, active: Active) {
    let mut fault = active.fault;
    let result = match active.undo {
        Undo::RestartOrReplace(node) => match restart_or_replace(cluster, node).await {
            Ok(Some(replaced)) => {
                fault.detail = format!("{}; {replaced}", fault.detail);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(error) => Err(error),
        },
        Undo::Restart(node) => cluster.start_node(node),
        Undo::RestartAll(nodes) => nodes.into_iter().try_for_each(|node| cluster.start_node(node)),
        Undo::Unskew(nodes) => nodes.into_iter().try_for_each(|node| cluster.skew_clock(node, 0).map(drop)),
        Undo::Rejoin { node, seed } => cluster.start_joining(node, &seed),
        Undo::Resume(node) => cluster.resume(node),
        Undo::FreeDisk(node) => cluster.fill_disk(node, false).and_then(|_| cluster.start_node(node)),
        Undo::HealNetwork => cluster.net().heal(),
        Undo::Nothing => return,
    };
    fault.status = FaultStatus::Healed;
    if let Err(error) = result {
        fault.detail = format!("healing failed: {error:#}");
        fault.status = FaultStatus::Unknown;
    }
    recorder.note(Op::Fault(fault));
}

/// Starts a node whose data was damaged. A node that refuses to start on it
/// (a damaged Raft log stops the node, by design) is replaced as an operator
/// would: removed from the membership, wiped, and joined again as new.
/// Returns what was done beyond the restart.
async fn restart_or_replace(cluster: &mut Cluster, node: u32) -> anyhow::Result<Option<String>> {
    cluster.start_node(node)?;
    // A refusal comes at start-up, before the node serves.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let Some(status) = cluster.reap_node(node) else { return Ok(None) };
    let others: Vec<String> = cluster.nodes().iter().filter(|n| n.id != node).map(|n| n.addr.clone()).collect();
    let client = ferry_client::Client::connect_with(&others.join(","), Duration::from_secs(10)).await?;
    tokio::time::timeout(Duration::from_secs(20), client.remove_node(u64::from(node)))
        .await
        .map_err(|_| anyhow::anyhow!("removing node {node} did not finish within 20 s"))??;
    cluster.wipe(node)?;
    cluster.start_joining(node, &others[0])?;
    Ok(Some(format!("it refused its damaged data ({status}); replaced: removed, wiped, joined again")))
}

/// How many times `transfer-leader` tries (a group and a target each time)
/// before it counts as not installed: a handoff is refused while the target
/// catches up (just restarted by the last fault, say) or the group changes
/// its voters, and the balancer retries such a move later too.
const TRANSFER_TRIES: usize = 3;

/// Hands a random data group's leadership to another of its voters, as the
/// balancer does (the balancer may move it back later: nothing to undo).
async fn transfer_leader(cluster: &Cluster, rng: &mut StdRng) -> anyhow::Result<(Vec<u32>, String, Undo)> {
    let client = ferry_client::Client::connect_with(&cluster.addrs(), Duration::from_secs(10)).await?;
    let mut refusals = Vec::new();
    for _ in 0..TRANSFER_TRIES {
        match transfer_once(&client, rng).await {
            Ok(done) => return Ok(done),
            Err(error) => refusals.push(format!("{error:#}")),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    anyhow::bail!("{} tries refused: {}", TRANSFER_TRIES, refusals.join("; "))
}

async fn transfer_once(client: &ferry_client::Client, rng: &mut StdRng) -> anyhow::Result<(Vec<u32>, String, Undo)> {
    let status = tokio::time::timeout(Duration::from_secs(5), client.cluster_status())
        .await
        .map_err(|_| anyhow::anyhow!("no cluster status within 5 s"))??;
    let led: Vec<(u32, u64, Vec<u64>)> = status
        .groups
        .into_iter()
        .filter(|g| g.group != 0)
        .filter_map(|g| Some((g.group, g.leader_id?, g.voters)))
        .collect();
    let (group, from, voters) = led
        .choose(rng)
        .ok_or_else(|| anyhow::anyhow!("no data group with a known leader (formed with --data-groups?)"))?;
    let others: Vec<u64> = voters.iter().copied().filter(|v| v != from).collect();
    let to = *others.choose(rng).ok_or_else(|| anyhow::anyhow!("group {group} has no other voter"))?;
    let moved = tokio::time::timeout(Duration::from_secs(10), client.transfer_leader(*group, to))
        .await
        .map_err(|_| anyhow::anyhow!("moving group {group} to node {to} did not finish within 10 s"))??;
    let nodes = [*from, to].iter().filter_map(|n| u32::try_from(*n).ok()).collect();
    Ok((nodes, format!("group {group}: leader node {from} handed it to node {to}; node {moved} leads"), Undo::Nothing))
}

/// Removes a random node from the membership through the cluster, stops it
/// and empties its data dir; healing adds it back as a new member.
async fn remove_node(cluster: &mut Cluster, rng: &mut StdRng, ids: &[u32]) -> anyhow::Result<(Vec<u32>, String, Undo)> {
    let node = pick(rng, ids);
    let others: Vec<&str> = cluster.nodes().iter().filter(|n| n.id != node).map(|n| n.addr.as_str()).collect();
    anyhow::ensure!(!others.is_empty(), "a one-node cluster has no one to remove a node");
    let seed = others[0].to_owned();
    let client = ferry_client::Client::connect_with(&others.join(","), Duration::from_secs(10)).await?;
    tokio::time::timeout(Duration::from_secs(20), client.remove_node(u64::from(node)))
        .await
        .map_err(|_| anyhow::anyhow!("removing node {node} did not finish within 20 s"))??;
    cluster.kill(node)?;
    cluster.wipe(node)?;
    Ok((
        vec![node],
        format!("removed node {node}, wiped its data; it rejoins through {seed}"),
        Undo::Rejoin { node, seed },
    ))
}

fn fault(name: &str, nodes: Vec<u32>, status: FaultStatus, detail: String) -> Fault {
    Fault { name: name.to_owned(), nodes: nodes.into_iter().map(u64::from).collect(), status, detail }
}

fn pick(rng: &mut StdRng, ids: &[u32]) -> u32 {
    *ids.choose(rng).expect("a cluster has nodes")
}

/// The node pairs to cut for a topology; `None` if it needs a leader and
/// none is known.
fn partition(topology: &str, ids: &[u32], leader: Option<u32>, rng: &mut StdRng) -> Option<Vec<(u32, u32)>> {
    let mut shuffled = ids.to_vec();
    shuffled.shuffle(rng);
    let majority = ids.len() / 2 + 1;
    let groups: Vec<Vec<u32>> = match topology {
        "partition-one" => {
            let (one, rest) = shuffled.split_at(1);
            vec![one.to_vec(), rest.to_vec()]
        }
        "partition-leader" => {
            let leader = leader?;
            vec![vec![leader], ids.iter().copied().filter(|&n| n != leader).collect()]
        }
        "partition-leader-minority" | "partition-leader-majority" => {
            let leader = leader?;
            let others: Vec<u32> = shuffled.into_iter().filter(|&n| n != leader).collect();
            let with_leader = if topology.ends_with("minority") { (ids.len() - majority).max(1) } else { majority };
            let (joined, rest) = others.split_at(with_leader - 1);
            let mut side = vec![leader];
            side.extend_from_slice(joined);
            vec![side, rest.to_vec()]
        }
        "partition-halves" => {
            let (a, b) = shuffled.split_at(ids.len() / 2);
            vec![a.to_vec(), b.to_vec()]
        }
        // Two halves that only a middle node can talk across.
        "partition-bridge" => {
            // The first node belongs to neither half, so it reaches both.
            let rest = &shuffled[1..];
            let (a, b) = rest.split_at(rest.len() / 2);
            vec![a.to_vec(), b.to_vec()]
        }
        // Each node sees its two ring neighbours only: every node is in a
        // majority, and no two majorities are the same.
        "partition-ring" => {
            let n = shuffled.len();
            let neighbours = |i: usize, j: usize| (i + 1) % n == j || (j + 1) % n == i;
            let mut cuts = Vec::new();
            for i in 0..n {
                for j in i + 1..n {
                    if !neighbours(i, j) {
                        cuts.push((shuffled[i], shuffled[j]));
                    }
                }
            }
            return Some(cuts);
        }
        _ => return None,
    };
    let mut cuts = Vec::new();
    for (i, a) in groups.iter().enumerate() {
        for b in &groups[i + 1..] {
            cuts.extend(a.iter().flat_map(|&x| b.iter().map(move |&y| (x, y))));
        }
    }
    Some(cuts)
}

fn describe(cuts: &[(u32, u32)]) -> String {
    if cuts.is_empty() {
        return "nothing (too few nodes)".into();
    }
    cuts.iter().map(|(a, b)| format!("{a}-{b}")).collect::<Vec<_>>().join(" ")
}

/// A run's time per requested nemesis at which faults hold and rest for
/// their full ranges.
const FULL_BUDGET: Duration = Duration::from_secs(20);

/// How long a fault stays (3–10 s) and how long the cluster rests before it
/// (2–6 s). Both shrink in proportion when the run's time per requested
/// nemesis (`budget`) is under 20 s, so a short run still fires every one
/// (a 30 s run of three, on a slow disk, once never got to its third).
/// The random draws are the same either way, so a seed keeps its sequence.
pub fn durations(rng: &mut StdRng, budget: Duration) -> (Duration, Duration) {
    let scale = (budget.as_secs_f64() / FULL_BUDGET.as_secs_f64()).min(1.0);
    let hold = rng.gen_range(3_000..10_000) as f64 * scale;
    let rest = rng.gen_range(2_000..6_000) as f64 * scale;
    (Duration::from_millis(hold.max(500.0) as u64), Duration::from_millis(rest.max(250.0) as u64))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn cuts(topology: &str, nodes: u32) -> Vec<(u32, u32)> {
        let ids: Vec<u32> = (1..=nodes).collect();
        partition(topology, &ids, Some(1), &mut StdRng::seed_from_u64(7)).expect("a topology")
    }

    #[test]
    fn a_short_run_shortens_holds_and_rests_so_one_round_of_its_nemeses_fits() {
        for seed in 0..50 {
            let (hold, rest) = durations(&mut StdRng::seed_from_u64(seed), Duration::from_secs(10));
            assert!(hold + rest <= Duration::from_secs(8), "seed {seed}: {hold:?} + {rest:?} in a 10 s budget");
            let long = durations(&mut StdRng::seed_from_u64(seed), Duration::from_secs(60));
            let full = (Duration::from_millis(3_000)..Duration::from_millis(10_000)).contains(&long.0)
                && (Duration::from_millis(2_000)..Duration::from_millis(6_000)).contains(&long.1);
            assert!(full, "seed {seed}: a long run keeps the full ranges, got {long:?}");
        }
    }

    fn reachable(cuts: &[(u32, u32)], a: u32, b: u32) -> bool {
        !cuts.contains(&(a, b)) && !cuts.contains(&(b, a))
    }

    #[test]
    fn isolating_the_leader_cuts_it_from_everyone_else() {
        let cuts = cuts("partition-leader", 5);
        assert!((2..=5).all(|n| !reachable(&cuts, 1, n)));
        assert!((2..=5).all(|a| (2..=5).all(|b| reachable(&cuts, a, b))));
    }

    #[test]
    fn the_leader_in_the_minority_has_fewer_than_half_with_it() {
        let cuts = cuts("partition-leader-minority", 5);
        let with_leader = (1..=5).filter(|&n| n == 1 || reachable(&cuts, 1, n)).count();
        assert_eq!(with_leader, 2);
        let cuts = super::tests::cuts("partition-leader-majority", 5);
        let with_leader = (1..=5).filter(|&n| n == 1 || reachable(&cuts, 1, n)).count();
        assert_eq!(with_leader, 3);
    }

    #[test]
    fn in_a_ring_every_node_reaches_exactly_two_others() {
        let cuts = cuts("partition-ring", 5);
        for a in 1..=5 {
            assert_eq!((1..=5).filter(|&b| b != a && reachable(&cuts, a, b)).count(), 2, "node {a}");
        }
    }

    #[test]
    fn a_bridge_node_reaches_everyone_and_the_halves_do_not_reach_each_other() {
        let cuts = cuts("partition-bridge", 5);
        let bridge = (1..=5).find(|&a| (1..=5).all(|b| reachable(&cuts, a, b))).expect("a bridge node");
        let others: Vec<u32> = (1..=5).filter(|&n| n != bridge).collect();
        let cut_pairs = others
            .iter()
            .flat_map(|&a| others.iter().map(move |&b| (a, b)))
            .filter(|&(a, b)| a < b && !reachable(&cuts, a, b))
            .count();
        assert_eq!(cut_pairs, 4, "two pairs of two, fully cut across");
    }

    #[test]
    fn unknown_names_are_refused_with_the_known_ones() {
        let error = parse("kill,flood").expect_err("flood is not a nemesis");
        assert!(error.to_string().contains("partition-ring"));
        assert_eq!(parse("kill, partition").expect("known"), ["kill", "partition"]);
    }
}
