//! How a node becomes part of a cluster: initialise a new one (alone, or with
//! a static peer list), rejoin the one its data directory already belongs
//! to, or join a running cluster through one of its nodes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_client::{Client, ClientOptions};
use openraft::error::{InitializeError, RaftError};
use openraft::BasicNode;

use super::NodeError;
use crate::raft::{NodeId, Raft};
use crate::security::cluster_id::{self, ClusterIdentity};

/// How long a single-voter node may take to lead after starting.
const LEADERSHIP_WAIT: Duration = Duration::from_secs(30);
/// Pause between attempts to join a cluster.
const JOIN_RETRY: Duration = Duration::from_secs(1);

/// What a node does on start-up when its data directory is new.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Formation {
    /// Become a one-node cluster.
    Alone,
    /// Form a cluster of these voters (this node among them), or rejoin it.
    Peers(BTreeMap<NodeId, String>),
    /// Ask the cluster reachable at this address to add this node.
    Join(String),
}

/// This node's cluster id as its data directory keeps it, if it does: read
/// before Raft opens, so its first calls carry it.
pub fn kept_cluster_id(data_dir: &Path) -> Result<ClusterIdentity, NodeError> {
    let identity = ClusterIdentity::default();
    if let Some(kept) = cluster_id::read(data_dir)? {
        identity.set(&kept)?;
        tracing::info!(cluster_id = kept, "this node's cluster");
    }
    Ok(identity)
}

/// Settles this node's cluster id (see `security::cluster_id`) when its
/// data directory keeps none ([`kept_cluster_id`]), before it forms or joins
/// anything: on a new data directory, a new one for a cluster formed alone,
/// the peer list's for one formed from a list (every listed node derives
/// the same without talking; nodes given lists written differently refuse
/// each other); a node joining learns its cluster's from the seeds before
/// it asks to be added ([`join`]). A restored backup keeps an id of its own,
/// written by the restore. An initialised node without one gets none (its
/// data predates cluster ids, or it joined a cluster that has none):
/// deriving one from today's `--peers` could differ between nodes whose
/// lists changed since they formed, and they would refuse each other.
pub fn settle_cluster_id(
    identity: &ClusterIdentity,
    data_dir: &Path,
    formation: &Formation,
    initialised: bool,
) -> Result<(), NodeError> {
    if identity.get().is_some() {
        return Ok(());
    }
    let (id, how) = match formation {
        _ if initialised => {
            tracing::warn!(
                "this node has no cluster id (its data predates them, or it joined a cluster without one): \
                 calls from other clusters' nodes are not refused"
            );
            return Ok(());
        }
        Formation::Alone => (cluster_id::make(), "made for a new cluster"),
        Formation::Peers(peers) => {
            let list = peers.iter().map(|(id, addr)| (*id, addr.as_str()));
            (cluster_id::derive(list), "derived from --peers")
        }
        Formation::Join(_) => {
            identity.learning();
            return Ok(());
        }
    };
    cluster_id::keep(data_dir, &id)?;
    identity.set(&id)?;
    tracing::info!(cluster_id = id, how, "this node's cluster");
    Ok(())
}

/// Initialises Raft on a new data directory; a node that already holds a log
/// or vote rejoins its cluster as it was.
pub async fn initialise(raft: &Raft, formation: &Formation, node_id: NodeId, advertise: &str) -> Result<(), NodeError> {
    if raft.is_initialized().await.map_err(|e| NodeError::Raft(e.to_string()))? {
        tracing::info!(node_id, "rejoining the cluster recorded in the data directory");
        return Ok(());
    }
    let members: BTreeMap<NodeId, BasicNode> = match formation {
        Formation::Join(_) => return Ok(()),
        Formation::Alone => BTreeMap::from([(node_id, BasicNode::new(advertise))]),
        Formation::Peers(peers) => peers.iter().map(|(id, addr)| (*id, BasicNode::new(addr))).collect(),
    };
    match raft.initialize(members).await {
        Ok(()) => {
            tracing::info!(node_id, ?formation, "initialised a new cluster");
            Ok(())
        }
        // Only a vote granted before this would refuse it, and the node
        // serves its peers after initialising (`NodeBuilder::start`).
        Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
        Err(e) => Err(NodeError::Raft(format!("initialise the cluster: {e}"))),
    }
}

/// Whether this node is the only voter of its cluster.
pub fn is_single_voter(raft: &Raft, node_id: NodeId) -> bool {
    let metrics = raft.metrics().borrow().clone();
    let voters: Vec<NodeId> = metrics.membership_config.membership().voter_ids().collect();
    voters == [node_id]
}

/// Waits until `node_id` leads and has applied an entry of its own term.
pub async fn wait_until_leading(raft: &Raft, node_id: NodeId) -> Result<(), NodeError> {
    raft.wait(Some(LEADERSHIP_WAIT))
        .metrics(
            |m| m.current_leader == Some(node_id) && m.last_applied.map(|l| l.leader_id.term) == Some(m.current_term),
            "leading",
        )
        .await
        .map(|_| ())
        .map_err(|e| NodeError::Raft(format!("node {node_id} did not become leader: {e}")))
}

/// Asks the cluster at `seeds` (addresses, comma-separated) to add this
/// node, retrying until it succeeds. Runs in the background while the node
/// serves, since the leader replicates the whole log to it before promoting
/// it. First it learns the cluster's id from the seeds' leader and keeps it
/// (see [`Joining`]).
pub async fn join(seeds: String, node_id: NodeId, advertise: String, options: ClientOptions, joining: Joining) {
    // Taken in turn: the client keeps to the first seed that answers, and
    // that one may know no leader (a node joining too, or one cut off).
    let mut seeds: Vec<&str> = seeds.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    loop {
        let seed = seeds.join(",");
        let attempt = async {
            let client = Client::connect_with_options(&seed, options.clone()).await.map_err(|e| e.to_string())?;
            joining.learn_id(&client).await?;
            client.add_node(node_id, &advertise).await.map_err(|e| e.to_string())
        };
        match attempt.await {
            Ok(_) => {
                tracing::info!(node_id, %seed, "joined the cluster as a voter");
                return;
            }
            Err(e) => {
                tracing::warn!(node_id, %seed, error = %e, "joining the cluster failed; retrying");
                seeds.rotate_left(1);
                tokio::time::sleep(JOIN_RETRY).await;
            }
        }
    }
}

/// A joining node's cluster id, learnt from the cluster it joins before it
/// asks to be added. Until then it answers no call naming a cluster
/// ([`ClusterIdentity::learning`]), so the first cluster to call it
/// (another one whose membership has its address, say) cannot claim it.
#[derive(Debug, Clone)]
pub struct Joining {
    pub identity: ClusterIdentity,
    pub data_dir: PathBuf,
}

impl Joining {
    /// Takes the id of the cluster `client` reaches (its leader's), kept
    /// before it is used (see [`learnt`]).
    async fn learn_id(&self, client: &Client) -> Result<(), String> {
        let status = client.cluster_status().await.map_err(|e| e.to_string())?;
        let Some(leader) = status.leader_status() else {
            return Err("the seed knows no leader to learn the cluster's id from".into());
        };
        match learnt(self.identity.get(), leader.cluster_id.as_deref())? {
            Learnt::Known => {}
            Learnt::Take(id) => {
                let kept = cluster_id::keep(&self.data_dir, id).and_then(|()| self.identity.set(id));
                kept.map_err(|e| format!("keep the cluster id: {e}"))?;
                tracing::info!(cluster_id = id, "this node's cluster, learnt from the seed");
            }
            Learnt::NoneThere => {
                self.identity.learnt_none();
                tracing::warn!(
                    "the cluster joined predates cluster ids: calls from other clusters' nodes are not refused"
                );
            }
        }
        Ok(())
    }
}

/// What a joining node makes of the id of the cluster it joins.
#[derive(Debug, PartialEq, Eq)]
enum Learnt<'a> {
    /// The one it kept (it learnt it before a restart).
    Known,
    /// It takes this one.
    Take(&'a str),
    /// The cluster has none (its data predates cluster ids).
    NoneThere,
}

/// What a joining node that kept `mine` makes of `theirs`, the id of the
/// cluster its seeds reach: a node that kept an id joins only that cluster.
fn learnt<'a>(mine: Option<&str>, theirs: Option<&'a str>) -> Result<Learnt<'a>, String> {
    match (mine, theirs) {
        (Some(mine), Some(theirs)) if mine == theirs => Ok(Learnt::Known),
        (Some(mine), theirs) => Err(format!(
            "this node belongs to cluster {mine} (its data directory says so), and the seed's is {}: fix --join, \
             or wipe the data directory to join that cluster",
            theirs.unwrap_or("a cluster without an id")
        )),
        (None, Some(theirs)) => Ok(Learnt::Take(theirs)),
        (None, None) => Ok(Learnt::NoneThere),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settled(formation: &Formation, initialised: bool, data_dir: &Path) -> ClusterIdentity {
        let identity = kept_cluster_id(data_dir).expect("read the kept id");
        settle_cluster_id(&identity, data_dir, formation, initialised).expect("settle the cluster id");
        identity
    }

    fn id_of(identity: &ClusterIdentity) -> Option<String> {
        identity.get().map(str::to_owned)
    }

    #[test]
    fn a_node_settles_its_clusters_id_by_how_its_data_directory_formed() {
        let dirs: Vec<_> = (0..5).map(|_| tempfile::tempdir().expect("temp dir")).collect();
        let peers = Formation::Peers(BTreeMap::from([(1, "n1:7070".to_owned()), (2, "n2:7070".to_owned())]));
        let listed = id_of(&settled(&peers, false, dirs[0].path()));
        assert!(listed.is_some());
        assert_eq!(id_of(&settled(&peers, false, dirs[1].path())), listed, "every listed node derives the same");
        let alone = id_of(&settled(&Formation::Alone, false, dirs[2].path()));
        assert!(alone.is_some() && alone != listed, "a cluster formed alone makes its own");
        assert_eq!(
            id_of(&settled(&Formation::Alone, true, dirs[0].path())),
            listed,
            "kept, whatever the flags say now"
        );

        let joining = settled(&Formation::Join("n1:7070".into()), false, dirs[3].path());
        assert_eq!(id_of(&joining), None, "learnt from the cluster it joins, later");
        let calling = listed.as_deref().map(str::as_bytes);
        assert_eq!(joining.check(calling, true).expect_err("not yet").code(), tonic::Code::Unavailable);

        let from_before_ids = settled(&peers, true, dirs[4].path());
        assert_eq!(id_of(&from_before_ids), None);
        assert_eq!(cluster_id::read(dirs[4].path()).expect("read"), None, "nothing derived from today's list");
        assert!(from_before_ids.check(calling, true).is_ok());
    }

    #[test]
    fn a_joining_node_takes_its_clusters_id_and_joins_no_other_once_it_kept_one() {
        let (a, b) = ("a".repeat(32), "b".repeat(32));
        assert_eq!(learnt(None, Some(&a)), Ok(Learnt::Take(&a)));
        assert_eq!(learnt(None, None), Ok(Learnt::NoneThere));
        assert_eq!(learnt(Some(&a), Some(&a)), Ok(Learnt::Known));
        let other = learnt(Some(&a), Some(&b)).expect_err("another cluster");
        assert!(other.contains(&a) && other.contains(&b), "{other}");
        assert!(learnt(Some(&a), None).is_err(), "nor one without an id");
    }
}
