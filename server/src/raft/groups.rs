//! The Raft groups one process hosts.
//!
//! Every group is a whole openraft instance with its own log, state and
//! leader; peers address a group by its id on the shared Raft service. Group
//! 0 holds the catalog and the membership of record; data groups follow the
//! plan in `docs/design/multi-raft.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ferry_metrics::Histogram;
use parking_lot::RwLock;

use super::{AppliedState, NodeId, Raft, STORAGE_WAIT_BOUNDS_SECONDS};
use crate::storage::disk_space::DiskSpace;

/// A Raft group's id, unique in the cluster.
pub type GroupId = u32;

/// The group holding the catalog (and, until data groups exist, everything).
pub const META_GROUP: GroupId = 0;

/// Where a group keeps its state databases, `STATE` pointer and snapshots:
/// the data directory itself for group 0 (as before data groups existed),
/// `<data>/groups/<g>/` for data group g.
pub fn group_root(data_dir: &Path, group: GroupId) -> PathBuf {
    if group == META_GROUP {
        data_dir.to_owned()
    } else {
        data_dir.join("groups").join(group.to_string())
    }
}

/// What serving a hosted group's peers needs.
#[derive(Clone)]
pub struct HostedGroup {
    pub raft: Raft,
    pub state: Arc<AppliedState>,
    /// Set while this node, leading the group, hands its leadership to
    /// another voter: the group takes no writes meanwhile, since any entry
    /// replicated would renew the followers' leader lease and keep the
    /// target from winning (`grpc/handoff.rs`).
    pub handing_off: Arc<AtomicBool>,
    /// The term in which a quorum last confirmed this node leads the group,
    /// and when that check began (`Proposer::recently_confirmed_leader_term`).
    pub confirmed: Arc<parking_lot::Mutex<Option<(u64, tokio::time::Instant)>>>,
    /// The node's free space, shared by its groups: writes that grow the
    /// data wait for room (`storage/disk_space.rs`).
    pub disk: Arc<DiskSpace>,
    /// How long each command proposed here took from its submission to Raft
    /// until it was committed and applied here: the log's fsyncs, the
    /// replication round trips and the Raft core's queue, as a publish waits
    /// for them (`Submitted::outcome`; one that timed out counts the time it
    /// was waited for, one whose caller went away is not counted).
    pub proposal_seconds: Arc<Histogram>,
}

impl HostedGroup {
    pub fn new(raft: Raft, state: Arc<AppliedState>, disk: Arc<DiskSpace>) -> Self {
        Self {
            raft,
            state,
            handing_off: Arc::default(),
            confirmed: Arc::default(),
            disk,
            proposal_seconds: Arc::new(Histogram::new(&STORAGE_WAIT_BOUNDS_SECONDS)),
        }
    }

    /// Whether this node is handing the group's leadership to another.
    pub fn is_handing_off(&self) -> bool {
        self.handing_off.load(Ordering::Acquire)
    }

    /// The voters (id → address) of the group's membership in effect; `None`
    /// while a change is under way (a joint membership).
    pub fn voters(&self) -> Option<BTreeMap<NodeId, String>> {
        (!self.in_joint_config()).then(|| self.all_voters())
    }

    /// Whether the group is between two sets of voters (a joint
    /// configuration): a change under way, or one its leader left half done.
    pub fn in_joint_config(&self) -> bool {
        self.raft.metrics().borrow().membership_config.membership().get_joint_config().len() != 1
    }

    /// The voters of a joint configuration's second half, where the change
    /// was going; `None` unless the group is between two sets of voters.
    pub fn joint_target(&self) -> Option<BTreeSet<NodeId>> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let configs = metrics.membership_config.membership().get_joint_config();
        configs.get(1).filter(|_| configs.len() == 2).cloned()
    }

    /// The voters of every configuration the group has (of both halves of a
    /// joint one), with their addresses.
    pub fn all_voters(&self) -> BTreeMap<NodeId, String> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        membership.voter_ids().filter_map(|id| Some((id, membership.get_node(&id)?.addr.clone()))).collect()
    }

    /// The members that are not voters.
    pub fn learners(&self) -> BTreeSet<NodeId> {
        self.raft.metrics().borrow().membership_config.membership().learner_ids().collect()
    }

    /// The group as this node sees it, for a log line or an error: its
    /// leader, voters (of both halves while joint) and learners.
    pub fn describe(&self) -> String {
        let (leader, configs) = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow();
            (metrics.current_leader, metrics.membership_config.membership().get_joint_config().len())
        };
        let leader = leader.map_or("none".to_owned(), |id| id.to_string());
        if configs == 0 {
            return format!("leader {leader}, no membership");
        }
        let voters: Vec<NodeId> = self.all_voters().into_keys().collect();
        let joint = if configs > 1 { " (joint)" } else { "" };
        format!("leader {leader}, voters {voters:?}{joint}, learners {:?}", self.learners())
    }

    /// What every data group's voters should be, read from group 0 (`self`):
    /// its voters, less the nodes marked leaving. `None` while group 0's
    /// membership is changing.
    pub fn data_group_voters(&self) -> Option<BTreeMap<NodeId, String>> {
        let mut voters = self.voters()?;
        let leaving = self.state.catalog().leaving.clone();
        voters.retain(|id, _| !leaving.contains(id));
        Some(voters)
    }
}

/// The groups this process hosts, by id.
#[derive(Default)]
pub struct Groups {
    hosted: RwLock<BTreeMap<GroupId, HostedGroup>>,
}

impl std::fmt::Debug for Groups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Groups").field("hosted", &self.hosted.read().keys().collect::<Vec<_>>()).finish()
    }
}

impl Groups {
    /// Starts serving `group`'s peers (replacing what served it before).
    pub fn host(&self, id: GroupId, group: HostedGroup) {
        self.hosted.write().insert(id, group);
    }

    pub fn get(&self, id: GroupId) -> Option<HostedGroup> {
        self.hosted.read().get(&id).cloned()
    }

    /// Every hosted data group (all but group 0), by id.
    pub fn data(&self) -> Vec<(GroupId, HostedGroup)> {
        self.hosted.read().range(META_GROUP + 1..).map(|(id, group)| (*id, group.clone())).collect()
    }

    /// Every hosted group, by id.
    pub fn all(&self) -> Vec<(GroupId, HostedGroup)> {
        self.hosted.read().iter().map(|(id, group)| (*id, group.clone())).collect()
    }
}
