//! Data groups: group 0's leader sets the cluster's layout once, and every
//! node then starts the layout's data groups, each a whole openraft instance
//! with its log in the shared raft-log database and its state under
//! `<data>/groups/<g>/`, whose voters follow group 0's (`membership.rs`) and
//! whose topics and subscriptions follow group 0's catalog
//! (`catalog_sync.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::{BasicNode, Config};
use tokio::task::JoinHandle;

use super::{balancer, catalog_sync, log_purge, membership, Formation, NodeError};
use crate::domain::limits::DATA_GROUPS_MAX;
use crate::domain::{Command, Layout, Response};
use crate::grpc::Proposer;
use crate::raft::log_sizes::LogSizes;
use crate::raft::network::Network;
use crate::raft::{AppliedState, GroupId, Groups, HostedGroup, LogDb, LogStore, NodeId, Raft, StateMachine};
use crate::storage::db::DbResources;
use crate::storage::disk_space::DiskSpace;

/// How often group 0's layout is looked at until it is set.
const LAYOUT_POLL: Duration = Duration::from_millis(200);
/// How long a new group's preferred leader waits for a leader after each
/// campaign: a peer that starts the group gets a vote request within this.
const CAMPAIGN_WAIT: Duration = Duration::from_millis(100);
/// How long it keeps campaigning while no leader is known: peers start the
/// group when they have read the layout and opened its databases, which on
/// a loaded machine took more than a second.
const CAMPAIGN_FOR: Duration = Duration::from_secs(10);
/// How long the other voters of a new group hold their elections back for
/// the preferred node's leadership.
const DEFER_FOR: Duration = Duration::from_secs(5);

/// Refuses more data groups than [`DATA_GROUPS_MAX`]: publishes are counted
/// per group up to it (`grpc/publish_loads.rs`), and a group past it would
/// look idle to every keyless publish. The CLI's parser refuses them too;
/// this holds for a node embedded through [`NodeBuilder`](super::NodeBuilder).
pub fn check_count(data_groups: u32) -> Result<(), NodeError> {
    if data_groups > DATA_GROUPS_MAX {
        return Err(NodeError::Config(format!("data_groups: {data_groups} is over the limit of {DATA_GROUPS_MAX}")));
    }
    Ok(())
}

/// Proposes the layout whenever this node leads group 0, until one is
/// applied: `data_groups` data groups over group 0's voters.
pub async fn set_layout(proposer: Proposer, data_groups: u32) {
    while proposer.state().catalog().layout.is_none() {
        if proposer.ensure_leader().is_ok() {
            let voters = proposer
                .raft()
                .metrics()
                .borrow()
                .membership_config
                .membership()
                .nodes()
                .map(|(id, node)| (*id, node.addr.clone()))
                .collect();
            match proposer.propose(Command::SetLayout(Layout { data_groups, voters })).await {
                Ok(Response::LayoutSet(layout)) => tracing::info!(data_groups = layout.data_groups, "layout set"),
                Ok(other) => tracing::warn!(?other, "setting the layout was answered unexpectedly"),
                Err(e) => tracing::debug!(error = %e, "setting the layout failed; retrying"),
            }
        }
        tokio::time::sleep(LAYOUT_POLL).await;
    }
}

/// What opening any of this node's groups needs: each is a whole openraft
/// instance with its log in the shared raft-log database and its state under
/// its own root.
pub struct GroupOpener {
    pub node_id: NodeId,
    pub data_dir: PathBuf,
    pub config: Arc<Config>,
    pub network: Network,
    pub log_db: Arc<LogDb>,
    pub resources: DbResources,
    pub disk: Arc<DiskSpace>,
}

impl GroupOpener {
    /// Opens `group`'s log and state and starts its Raft (not yet hosted).
    /// With `first`, a group whose log is empty begins with that membership
    /// (`LogStore::begin_with`) before its Raft starts.
    pub async fn open(&self, group: GroupId, first: Option<BTreeMap<NodeId, BasicNode>>) -> Result<Opened, NodeError> {
        let log = LogStore::open(&self.log_db, group)?;
        let begun = match first {
            Some(members) => log.begin_with(members)?,
            None => false,
        };
        let sizes = log.sizes();
        let state = AppliedState::open(&self.data_dir, group, &self.resources)?;
        let state_machine = StateMachine::new(Arc::clone(&state));
        let raft = Raft::new(self.node_id, Arc::clone(&self.config), self.network.for_group(group), log, state_machine)
            .await
            .map_err(|e| NodeError::Raft(format!("group {group}: {e}")))?;
        Ok(Opened { hosted: HostedGroup::new(raft, state, Arc::clone(&self.disk)), sizes, begun })
    }
}

/// A group [`GroupOpener::open`] started.
pub struct Opened {
    pub hosted: HostedGroup,
    pub sizes: Arc<LogSizes>,
    /// Whether its log was empty and now begins with the membership given.
    pub begun: bool,
}

/// What starting this node's data groups needs.
pub struct DataGroups {
    pub formation: Formation,
    pub opener: GroupOpener,
    pub groups: Arc<Groups>,
}

impl DataGroups {
    /// Waits for group 0's layout, then starts every data group, and keeps
    /// their log purges and membership running as long as this task runs.
    pub async fn run(self, meta: HostedGroup) {
        let layout = loop {
            if let Some(layout) = meta.state.catalog().layout.clone() {
                break layout;
            }
            tokio::time::sleep(LAYOUT_POLL).await;
        };
        if layout.data_groups > 0 {
            // The layout the cluster formed with decides, not this start's flag.
            tracing::info!(data_groups = layout.data_groups, "starting the cluster's data groups");
        }
        let mut tasks = AbortOnDrop(Vec::new());
        tasks.0.push(tokio::spawn(membership::finish_left_change(meta.clone(), self.opener.node_id)));
        for group in 1..=layout.data_groups {
            match self.start(group, &layout, &mut tasks).await {
                Ok((hosted, sizes)) => {
                    let (node_id, network) = (self.opener.node_id, &self.opener.network);
                    tasks.0.push(tokio::spawn(log_purge::run(hosted.raft.clone(), sizes)));
                    tasks.0.push(tokio::spawn(membership::follow(
                        group,
                        meta.clone(),
                        hosted.clone(),
                        node_id,
                        network.clone(),
                    )));
                    tasks.0.push(tokio::spawn(catalog_sync::follow(group, meta.clone(), hosted, node_id)));
                }
                Err(e) => tracing::error!(group, error = %e, "starting a data group failed"),
            }
        }
        std::future::pending::<()>().await;
    }

    /// Opens and hosts `group`; a campaign it starts joins `tasks`.
    async fn start(
        &self,
        group: GroupId,
        layout: &Layout,
        tasks: &mut AbortOnDrop,
    ) -> Result<(HostedGroup, Arc<LogSizes>), NodeError> {
        // Every node formed with the cluster begins a new group's log with
        // the same first membership, as `Formation::Peers` does for group 0;
        // a node that joined later only receives.
        let node_id = self.opener.node_id;
        let voters: BTreeMap<NodeId, BasicNode> =
            layout.voters.iter().map(|(id, addr)| (*id, BasicNode::new(addr))).collect();
        let formed_here = !matches!(self.formation, Formation::Join(_)) && voters.contains_key(&node_id);
        let ids = voters.keys().copied().collect();
        let Opened { hosted, sizes, begun } = self.opener.open(group, formed_here.then_some(voters)).await?;
        if begun {
            let raft = hosted.raft.clone();
            // Only the preferred node campaigns now; the others hold their
            // elections back for its leadership (set before the group is
            // hosted, so before any peer can reach it).
            if balancer::preferred_leader(group, &ids) == Some(node_id) {
                tasks.0.push(tokio::spawn(campaign(group, raft)));
            } else {
                raft.runtime_config().elect(false);
                tasks.0.push(tokio::spawn(elect_unless_led(group, raft)));
            }
        }
        self.groups.host(group, hosted.clone());
        Ok((hosted, sizes))
    }
}

/// Campaigns for a new group's leadership every [`CAMPAIGN_WAIT`] until the
/// group has a leader, so the groups' leaders start spread over the nodes.
/// The peers start their groups when they read the layout, maybe well after
/// this node: a vote request they cannot take yet is lost. With one
/// campaign, another voter often won, and the balancer moved the group soon
/// after (a handoff, about 2 s without writes in the group, seconds into a
/// new cluster). Campaigning this often, this node asks each peer for its
/// vote within 100 ms of the peer starting the group. Each campaign is a new
/// term and a vote write on each node; only a new group does this.
async fn campaign(group: GroupId, raft: Raft) {
    let give_up = tokio::time::Instant::now() + CAMPAIGN_FOR;
    while tokio::time::Instant::now() < give_up {
        let _ = raft.trigger().elect().await;
        let led = raft.wait(Some(CAMPAIGN_WAIT)).metrics(|m| m.current_leader.is_some(), "a leader").await;
        if led.is_ok() {
            return;
        }
    }
    tracing::debug!(group, "no leader after campaigning; left to the elections");
}

/// On a voter of a new group other than its preferred node, whose
/// elections are held back: campaigning at once, a voter that started the
/// group before the preferred node won it instead (on a loaded machine, in
/// 2 test runs of 5), and the balancer moved it soon after. Its elections
/// resume once the group has a leader or after [`DEFER_FOR`] without one
/// (the preferred node may be down, or have died before it led): every
/// voter holds the group's first membership, so any of them can lead it.
async fn elect_unless_led(group: GroupId, raft: Raft) {
    if raft.wait(Some(DEFER_FOR)).metrics(|m| m.current_leader.is_some(), "a leader").await.is_err() {
        tracing::info!(group, "no leader from the preferred node; this voter campaigns too");
    }
    raft.runtime_config().elect(true);
}

/// Aborts the tasks when dropped: when the task holding it is aborted.
struct AbortOnDrop(Vec<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::NodeBuilder;

    #[tokio::test]
    async fn a_node_refuses_more_data_groups_than_the_limit_before_touching_its_directory() {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let data_dir = tmp.path().join("node");
        let too_many = DATA_GROUPS_MAX + 1;
        let refused = NodeBuilder::new(&data_dir).listen("127.0.0.1:0").data_groups(too_many).start().await;
        let message = match refused {
            Err(NodeError::Config(message)) => message,
            Err(other) => panic!("refused for another reason: {other}"),
            Ok(_) => panic!("a node with {too_many} data groups started"),
        };
        assert_eq!(message, format!("data_groups: {too_many} is over the limit of {DATA_GROUPS_MAX}"));
        assert!(!data_dir.exists(), "the refused node created its data directory");
        assert!(check_count(DATA_GROUPS_MAX).is_ok());
    }
}

#[cfg(test)]
mod forming {
    use std::path::Path;

    use openraft::storage::RaftLogStorage;

    use super::*;
    use crate::node::in_process;
    use crate::raft::type_config::Vote;
    use crate::raft::SyncMode;

    /// As if `candidate` had won this node's vote in `group` and died before
    /// replicating anything: a vote for it, no entry.
    async fn voted_without_entries(data_dir: &Path, group: GroupId, candidate: NodeId) {
        let log_db = LogDb::open(&data_dir.join("raft-log"), SyncMode::Fsync, &DbResources::default()).expect("log db");
        let mut log = LogStore::open(&log_db, group).expect("the group's log");
        log.save_vote(&Vote::new(1, candidate)).await.expect("save the vote");
    }

    /// The flaw: the voters of a new data group that granted its preferred
    /// node their vote before they had begun the group could not initialise
    /// it any more (openraft), and with that node gone the group had no
    /// membership on any node and never elected; a remove-node waited on it
    /// forever. Now every formed voter begins the group's log itself.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_new_group_elects_though_its_voters_voted_for_a_node_that_died_before_leading() {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let peers = in_process::peers(3);
        // Node 3 is data group 2's preferred leader, and never starts.
        let ids = peers.keys().copied().collect();
        assert_eq!(balancer::preferred_leader(2, &ids), Some(3));
        let mut nodes = Vec::new();
        for id in [1, 2] {
            let data_dir = tmp.path().join(id.to_string());
            voted_without_entries(&data_dir, 2, 3).await;
            nodes.push(in_process::start(&data_dir, id, &peers, 2).await);
        }
        // The other voters wait `DEFER_FOR` for the preferred node, then elect.
        let within = DEFER_FOR + Duration::from_secs(20);
        for node in &nodes {
            let leader = in_process::leader_of(node, 2, within).await;
            assert!(matches!(leader, Some(1 | 2)), "node {}: group 2's leader is {leader:?}", node.id());
            assert_eq!(node.groups.get(2).expect("hosted").all_voters().into_keys().collect::<Vec<_>>(), [1, 2, 3]);
        }
        for node in nodes {
            node.shutdown().await.expect("a clean shutdown");
        }
    }
}
