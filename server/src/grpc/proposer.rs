//! `Proposer`: how the services reach Raft — proposing commands with a commit
//! timeout, and checking that this node may serve leader-only reads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferry_metrics::Histogram;
use openraft::error::ClientWriteError;
use openraft::raft::responder::Responder;
use openraft::RaftTypeConfig;
use parking_lot::Mutex;
use tokio::time::Instant;

use super::status::ApiError;
use crate::domain::{Command, Response};
use crate::raft::{AppliedState, HostedGroup, NodeId, Raft, TypeConfig};
use crate::storage::disk_space::DiskSpace;

#[derive(Clone)]
pub struct Proposer {
    raft: Raft,
    node_id: NodeId,
    state: Arc<AppliedState>,
    /// The group's leadership is being handed to another node: no writes.
    handing_off: Arc<AtomicBool>,
    commit_timeout: Duration,
    /// Shared by every proposer of the group: see [`HostedGroup::confirmed`].
    confirmed: Arc<Mutex<Option<(u64, Instant)>>>,
    disk: Arc<DiskSpace>,
    /// The group's: see [`HostedGroup::proposal_seconds`].
    proposal_seconds: Arc<Histogram>,
}

impl std::fmt::Debug for Proposer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proposer").field("node_id", &self.node_id).finish()
    }
}

impl Proposer {
    /// Proposes to `group`, one of the groups this node hosts.
    pub fn new(group: &HostedGroup, node_id: NodeId, commit_timeout: Duration) -> Self {
        Self {
            raft: group.raft.clone(),
            node_id,
            state: Arc::clone(&group.state),
            handing_off: Arc::clone(&group.handing_off),
            commit_timeout,
            confirmed: Arc::clone(&group.confirmed),
            disk: Arc::clone(&group.disk),
            proposal_seconds: Arc::clone(&group.proposal_seconds),
        }
    }

    pub fn state(&self) -> &Arc<AppliedState> {
        &self.state
    }

    /// Proposes a command and waits until it is committed and applied here.
    /// A rejection computed by the state machine comes back as an error.
    pub async fn propose(&self, command: Command) -> Result<Response, ApiError> {
        self.submit(command).await?.outcome().await
    }

    /// Hands a command to Raft without waiting for it to commit. Commands
    /// submitted one after another enter the log in that order.
    pub async fn submit(&self, command: Command) -> Result<Submitted, ApiError> {
        if self.handing_off.load(Ordering::Acquire) {
            return Err(moving(self.node_id));
        }
        if command.adds_data() {
            self.disk.check()?;
        }
        let kind = command.kind();
        let submitted = Instant::now();
        let receiver = self
            .raft
            .client_write_ff(command)
            .await
            .map_err(|fatal| ApiError::Unavailable(format!("raft has stopped: {fatal}")))?;
        Ok(Submitted {
            receiver,
            kind,
            submitted,
            commit_timeout: self.commit_timeout,
            node_id: self.node_id,
            proposal_seconds: Arc::clone(&self.proposal_seconds),
        })
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// Every public request is served by the leader, so a client that follows
    /// the leader reads its own writes. Others get UNAVAILABLE with a hint.
    pub fn ensure_leader(&self) -> Result<u64, ApiError> {
        let metrics = self.raft.metrics().borrow().clone();
        if metrics.current_leader == Some(self.node_id) {
            if self.handing_off.load(Ordering::Acquire) {
                return Err(moving(self.node_id));
            }
            return Ok(metrics.current_term);
        }
        let leader = metrics
            .current_leader
            .and_then(|id| metrics.membership_config.membership().get_node(&id).map(|node| (id, node.addr.clone())));
        let reason = match leader {
            Some((id, _)) => format!("node {} is not the leader; node {id} is", self.node_id),
            None => format!("node {} knows no leader (an election may be under way)", self.node_id),
        };
        Err(ApiError::NotLeader { reason, leader })
    }

    /// The current term, if this node leads it and has applied every entry
    /// committed before it (so its ack floors are current).
    pub fn leader_term(&self) -> Result<u64, ApiError> {
        let term = self.ensure_leader()?;
        let applied_term = self.state.last_applied().map(|id| id.leader_id.term);
        if applied_term != Some(term) {
            return Err(ApiError::Unavailable("the leader is still applying entries of earlier terms".into()));
        }
        Ok(term)
    }

    /// [`leader_term`](Self::leader_term), confirmed with a quorum, with
    /// every entry committed before the call applied here. A leader cut off
    /// from the others still believes it leads (openraft 0.9 does not step
    /// down), while a new leader elsewhere commits acks it has not seen: a
    /// read it served would hand out messages already acked.
    pub async fn confirmed_leader_term(&self) -> Result<u64, ApiError> {
        let term = self.leader_term()?;
        let began = Instant::now();
        let unconfirmed = |why: String| {
            ApiError::Unavailable(format!("node {} could not confirm its leadership: {why}", self.node_id))
        };
        match tokio::time::timeout(LEADERSHIP_CHECK_MAX, self.raft.ensure_linearizable()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(unconfirmed(e.to_string())),
            Err(_) => return Err(unconfirmed(format!("no quorum answered within {LEADERSHIP_CHECK_MAX:?}"))),
        }
        if self.leader_term()? != term {
            return Err(unconfirmed("the term changed meanwhile".into()));
        }
        *self.confirmed.lock() = Some((term, began));
        Ok(term)
    }

    /// [`confirmed_leader_term`](Self::confirmed_leader_term), asking the
    /// quorum again only when the last confirmation of this term began
    /// `LEADERSHIP_FRESH_FOR` ago or more. Within that time no other node
    /// can have been elected: the followers that confirmed heard from this
    /// leader then, and keep its lease (refusing votes) for an election
    /// timeout, 1 s at least; a handoff turns this node's calls away first.
    pub async fn recently_confirmed_leader_term(&self) -> Result<u64, ApiError> {
        let term = self.leader_term()?;
        let fresh = self
            .confirmed
            .lock()
            .is_some_and(|(confirmed, began)| confirmed == term && began.elapsed() < LEADERSHIP_FRESH_FOR);
        if fresh {
            return Ok(term);
        }
        self.confirmed_leader_term().await
    }
}

/// How long confirming leadership with a quorum may take.
const LEADERSHIP_CHECK_MAX: Duration = Duration::from_secs(1);
/// How long a confirmation of leadership stands: well under the election
/// timeout (`election_timeout_min`, 1 s).
const LEADERSHIP_FRESH_FOR: Duration = Duration::from_millis(250);

/// A leader handing its group to another node turns calls away without a
/// leader hint: one naming the target would send clients back and forth
/// between the two until the move is done; without one they back off.
fn moving(node_id: NodeId) -> ApiError {
    ApiError::NotLeader {
        reason: format!("node {node_id} is handing its leadership of the group to another node"),
        leader: None,
    }
}

type ResponseReceiver = <<TypeConfig as RaftTypeConfig>::Responder as Responder<TypeConfig>>::Receiver;

/// A command in Raft's hands, on its way to commit.
pub struct Submitted {
    receiver: ResponseReceiver,
    kind: &'static str,
    submitted: Instant,
    commit_timeout: Duration,
    node_id: NodeId,
    proposal_seconds: Arc<Histogram>,
}

impl Submitted {
    /// Waits until the command is committed and applied here. A rejection
    /// computed by the state machine comes back as an error.
    pub async fn outcome(self) -> Result<Response, ApiError> {
        let Self { receiver, kind, submitted, commit_timeout, node_id, proposal_seconds } = self;
        let written = match tokio::time::timeout_at(submitted + commit_timeout, receiver).await {
            Err(_) => {
                // At least this long: a stalled quorum shows in the top buckets.
                proposal_seconds.observe(submitted.elapsed().as_secs_f64());
                return Err(ApiError::Unavailable(format!(
                    "{kind} was not committed within {commit_timeout:?} (no quorum reachable?); it may still commit"
                )));
            }
            Ok(Err(_)) => return Err(ApiError::Unavailable("raft stopped before answering".into())),
            Ok(Ok(written)) => written,
        };
        let response = match written {
            Ok(written) => {
                proposal_seconds.observe(submitted.elapsed().as_secs_f64());
                written.data
            }
            Err(ClientWriteError::ForwardToLeader(forward)) => {
                let leader = forward.leader_id.zip(forward.leader_node.map(|n| n.addr));
                let reason = format!("node {node_id} is not the leader");
                return Err(ApiError::NotLeader { reason, leader });
            }
            Err(ClientWriteError::ChangeMembershipError(e)) => return Err(ApiError::Internal(format!("{kind}: {e}"))),
        };
        match response {
            Response::Rejected(rejection) => Err(rejection.into()),
            other => Ok(other),
        }
    }
}
