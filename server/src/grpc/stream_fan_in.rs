//! StreamingPull of a subscription on a placed topic. The node the client
//! called keeps the client's stream and runs one sub-stream per group holding
//! a partition, on that group's leader: a plain StreamingPull of the group's
//! share (`streaming_pull.rs`), local when this node leads the group, else
//! `Groups.StreamingPull`. Messages and ack confirmations of every
//! sub-stream go straight to the client; acks and deadline changes go to the
//! sub-stream of the group their ack id's partition is in, read from the
//! id's first characters only (`Route::parse`): that group decodes it whole.
//!
//! Flow control: the client's limits are split over the sub-streams by
//! what each group reports its consumer holds (`stream_shares.rs`), so a
//! busy group is not held to a fraction of the client's window while the
//! others idle. Each sub-stream is told its limits as they move, at most
//! every [`RETARGET_EVERY`], on a request of its own.
//!
//! When a group's leader changes, its sub-stream ends (its leases are gone,
//! those messages are redelivered) and is opened again on the new leader;
//! the client's stream stays open, and so it does when a sub-stream breaks.
//! It ends only when the client goes, the node stops (UNAVAILABLE), the
//! subscription is deleted (NOT_FOUND), or the client asks what no group
//! accepts (INVALID_ARGUMENT). When the client ends its side (or goes),
//! each sub-stream ends its group's side and lasts until the group's stream
//! ends, having taken what was queued for it: a consumer's last acks are
//! submitted, and confirmed as they commit.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ferry_proto::v1 as api;
use futures::StreamExt;
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status};

use super::fan_in::Placed;
use super::routing::GroupRoutes;
use super::status::ApiError;
use super::stream_shares::Shares;
use super::streaming_pull::{Limits, Requests, Responses, RESPONSES_QUEUED_MAX};
use super::sub_stream::{OpenedSubStream, SubStream};
use crate::domain::{validate, InvalidArgument};
use crate::raft::GroupId;

/// Requests queued for one sub-stream, at most.
const SUB_REQUESTS_QUEUED_MAX: usize = 16;
/// How long a group's sub-stream waits before it opens again on the group's
/// (new) leader.
const REOPEN_AFTER: Duration = Duration::from_millis(200);
/// A sub-stream's limits follow the shares at most this often. Every
/// delivery and ack moves them; told of each move, the sub-streams of a
/// 4-group drain got a request each for every response and ack and refilled
/// a sliver at a time (12% fewer messages per second in a first version).
/// At most every 50 ms, a drain costs no more: 1 node, 4 groups, 128 B,
/// 612k msgs/s against 569k with the even split (three runs each).
const RETARGET_EVERY: Duration = Duration::from_millis(50);

/// Starts the fan-in of `placed`'s stream, whose first request is `first`.
pub fn start(
    routes: Arc<GroupRoutes>,
    placed: Placed,
    first: api::StreamingPullRequest,
    requests: Requests,
) -> Result<Responses, ApiError> {
    let limits = Limits::default().changed_by(&first)?;
    let groups = placed.groups();
    let window = Arc::new(Window {
        shares: Mutex::new(Shares::new(limits, groups.iter().copied())),
        moved: watch::Sender::new(()),
    });
    let opening = api::StreamingPullRequest {
        subscription: first.subscription.clone(),
        confirm_ack_ids: first.confirm_ack_ids,
        ..Default::default()
    };
    let (responses, receiver) = mpsc::channel(RESPONSES_QUEUED_MAX);
    let mut subs = BTreeMap::new();
    for group in groups {
        let (sender, sub_requests) = mpsc::channel(SUB_REQUESTS_QUEUED_MAX);
        let sub = Sub {
            routes: Arc::clone(&routes),
            group,
            opening: opening.clone(),
            window: Arc::clone(&window),
            responses: responses.clone(),
        };
        tokio::spawn(sub.run(sub_requests));
        subs.insert(group, sender);
    }
    let fan_in = FanIn { placed, subs, window, responses };
    tokio::spawn(fan_in.run(first, requests));
    Ok(receiver)
}

/// The client's flow-control window, shared by the fan-in (which sees the
/// client change its limits) and the sub-streams (which hear what their
/// groups hold).
struct Window {
    shares: Mutex<Shares>,
    /// Sent to whenever the shares move, so each sub-stream retargets.
    moved: watch::Sender<()>,
}

impl Window {
    fn update(&self, change: impl FnOnce(&mut Shares)) {
        change(&mut self.shares.lock());
        self.moved.send_replace(());
    }
}

/// The client's side: splits its requests over the groups.
struct FanIn {
    placed: Placed,
    /// Each group's sub-stream; dropping a sender ends the sub-stream.
    subs: BTreeMap<GroupId, mpsc::Sender<api::StreamingPullRequest>>,
    window: Arc<Window>,
    responses: mpsc::Sender<Result<api::StreamingPullResponse, Status>>,
}

impl FanIn {
    async fn run(self, first: api::StreamingPullRequest, mut requests: Requests) {
        let mut pending = Some(first);
        loop {
            if let Some(request) = pending.take() {
                let limits = self.window.shares.lock().limits();
                let checked = validate_deadline_changes(&request).and_then(|()| limits.changed_by(&request));
                match checked {
                    Ok(changed) if changed != limits => self.window.update(|shares| shares.set_limits(changed)),
                    Ok(_) => {}
                    Err(problem) => {
                        // As a stream of an unplaced subscription does: the
                        // client is told, and the stream ends.
                        let _ = self.responses.send(Err(ApiError::from(problem).into())).await;
                        break;
                    }
                }
                if self.route(request).await.is_err() {
                    break;
                }
            }
            tokio::select! {
                request = requests.next() => match request {
                    Some(Ok(request)) => pending = Some(request),
                    // The client closed its side, or the connection broke.
                    None | Some(Err(_)) => break,
                },
                () = self.responses.closed() => break,
            }
        }
    }

    /// Sends each ack and deadline change to its group's sub-stream; an ack
    /// id that names no group is confirmed as rejected at once.
    async fn route(&self, request: api::StreamingPullRequest) -> Result<(), ()> {
        let mut by_group: BTreeMap<GroupId, api::StreamingPullRequest> = BTreeMap::new();
        let mut rejected = Vec::new();
        for text in request.ack_ids {
            match self.placed.route_of(&text) {
                Ok(group) => by_group.entry(group).or_default().ack_ids.push(text),
                Err(_) => rejected.push(text),
            }
        }
        for change in request.deadline_changes {
            let mut changes: BTreeMap<GroupId, Vec<String>> = BTreeMap::new();
            for text in change.ack_ids {
                if let Ok(group) = self.placed.route_of(&text) {
                    changes.entry(group).or_default().push(text);
                }
            }
            for (group, ack_ids) in changes {
                let change = api::DeadlineChange { ack_ids, seconds: change.seconds };
                by_group.entry(group).or_default().deadline_changes.push(change);
            }
        }
        if !rejected.is_empty() {
            let confirmation = api::AckConfirmation { rejected_ack_ids: rejected, ..Default::default() };
            let response = api::StreamingPullResponse { ack_confirmation: Some(confirmation), ..Default::default() };
            self.responses.send(Ok(response)).await.map_err(drop)?;
        }
        for (group, request) in by_group {
            if let Some(sub) = self.subs.get(&group) {
                // A sub-stream that has ended takes nothing more; its acks
                // were not confirmed, so the client acks again or gets the
                // messages again.
                let _ = sub.send(request).await;
            }
        }
        Ok(())
    }
}

/// Checked here, as a stream of an unplaced subscription checks them: so
/// the whole request is refused before any group commits its acks, and so
/// are changes whose ids route to no group (dropped unchecked otherwise).
fn validate_deadline_changes(request: &api::StreamingPullRequest) -> Result<(), InvalidArgument> {
    request.deadline_changes.iter().try_for_each(|change| validate::ack_deadline_change(change.seconds))
}

/// Whether a group's sub-stream ending (or failing to open) with `status`
/// ends the client's stream: the subscription is gone, or the client asked
/// for something no group accepts, so opening it again would not help. It
/// rests on this rule: no group answers INVALID_ARGUMENT for a reason that
/// is not the client's (leadership, storage and transport failures map to
/// other codes).
fn ends_client_stream(status: &Status) -> bool {
    matches!(status.code(), Code::NotFound | Code::InvalidArgument)
}

/// One group's sub-stream, opened again on the group's leader whenever it
/// ends while the client is there.
struct Sub {
    routes: Arc<GroupRoutes>,
    group: GroupId,
    /// The first request of every (re)opened sub-stream, but its limits.
    opening: api::StreamingPullRequest,
    window: Arc<Window>,
    responses: mpsc::Sender<Result<api::StreamingPullResponse, Status>>,
}

impl Sub {
    async fn run(self, mut requests: mpsc::Receiver<api::StreamingPullRequest>) {
        loop {
            if requests.is_closed() && requests.is_empty() {
                // The fan-in has stopped (the client's side ended): a group
                // without a reachable leader must not keep the client's
                // stream open by retrying.
                return;
            }
            let (sender, receiver) = mpsc::channel(SUB_REQUESTS_QUEUED_MAX);
            let inner: Requests = Box::pin(ReceiverStream::new(receiver).map(Ok));
            // Watched from before the opening, so no move of the shares
            // while it opens goes unseen.
            let moved = self.window.moved.subscribe();
            let mut opening = self.opening.clone();
            self.window.update(|shares| shares.opened(self.group).set_on(&mut opening));
            match self.routes.streaming_pull(self.group, opening, inner).await {
                Ok(opened) => {
                    if self.pump(opened, moved, &mut requests, sender).await.is_err() {
                        return;
                    }
                    // Its leases went with it: until it opens again, it
                    // counts as the even split it will open with, not as
                    // what it last reported.
                    self.window.update(|shares| {
                        shares.opened(self.group);
                    });
                }
                Err(status) if ends_client_stream(&status) => {
                    let _ = self.responses.send(Err(status)).await;
                    return;
                }
                Err(status) => tracing::debug!(group = self.group, %status, "a group's sub-stream did not open"),
            }
            tokio::select! {
                () = tokio::time::sleep(REOPEN_AFTER) => {}
                () = self.responses.closed() => return,
            }
        }
    }

    /// Relays until the sub-stream ends (`Ok`: open it again) or the client
    /// went away or must be told of an error that ends its stream (`Err`).
    async fn pump(
        &self,
        opened: OpenedSubStream,
        mut moved: watch::Receiver<()>,
        requests: &mut mpsc::Receiver<api::StreamingPullRequest>,
        sender: mpsc::Sender<api::StreamingPullRequest>,
    ) -> Result<(), ()> {
        let OpenedSubStream { mut responses, mut holding } = opened;
        // Set while this group's limits are to be looked at again.
        let mut retarget_at: Option<Instant> = None;
        let mut retargeted = Instant::now();
        loop {
            tokio::select! {
                Ok(()) = holding.changed() => {
                    let reported = *holding.borrow_and_update();
                    self.window.update(|shares| shares.report(self.group, reported));
                }
                Ok(()) = moved.changed(), if retarget_at.is_none() => {
                    retarget_at = Some(retargeted + RETARGET_EVERY);
                }
                () = tokio::time::sleep_until(retarget_at.unwrap_or_else(Instant::now)), if retarget_at.is_some() => {
                    (retarget_at, retargeted) = (None, Instant::now());
                    let Some(limits) = self.window.shares.lock().retarget(self.group) else { continue };
                    let mut request = api::StreamingPullRequest::default();
                    limits.set_on(&mut request);
                    match sender.try_send(request) {
                        Ok(()) => self.window.shares.lock().record_sent(self.group, limits),
                        // Told once the queue has room; the client's acks
                        // and deadline changes go first.
                        Err(mpsc::error::TrySendError::Full(_)) => retarget_at = Some(retargeted + RETARGET_EVERY),
                        // The group's stream is ending: its last response
                        // (an error may end the client's stream) comes next.
                        Err(mpsc::error::TrySendError::Closed(_)) => {}
                    }
                }
                // Taken only while the group's queue has room: waiting here
                // on a full one stopped the relaying of the group's responses,
                // and a group waiting to send one takes no request.
                request = requests.recv(), if sender.capacity() > 0 => match request {
                    Some(request) => match sender.try_send(request) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Closed(_)) => return Ok(()),
                        // Not while this task alone sends and saw room.
                        Err(mpsc::error::TrySendError::Full(request)) => {
                            if sender.send(request).await.is_err() {
                                return Ok(());
                            }
                        }
                    },
                    // The client's side ended: so does the group's, after
                    // the requests queued for it (the client's last acks).
                    None => {
                        self.finish(requests, sender, &mut responses).await;
                        return Err(());
                    }
                },
                response = responses.next() => match response {
                    Some(Ok(response)) => self.responses.send(Ok(response)).await.map_err(drop)?,
                    Some(Err(status)) if ends_client_stream(&status) => {
                        if status.code() == Code::InvalidArgument {
                            // The fan-in checks what it forwards, so this
                            // is a group of another version, or a bug.
                            tracing::warn!(group = self.group, %status, "a group refused a request the fan-in passed");
                        }
                        let _ = self.responses.send(Err(status)).await;
                        return Err(());
                    }
                    Some(Err(status)) => {
                        tracing::debug!(group = self.group, %status, "a group's sub-stream ended; opening it again");
                        return Ok(());
                    }
                    None => return Ok(()),
                },
                // The client went away: what it sent still counts.
                () = self.responses.closed() => {
                    self.finish(requests, sender, &mut responses).await;
                    return Err(());
                }
            }
        }
    }

    /// Ends the group's stream after what was queued for it: requests the
    /// fan-in queued still go (those that fit at once: nothing waits on a
    /// group that may be stuck), the group's request side ends, and its
    /// responses, the confirmations of the last acks among them, are
    /// relayed until its stream ends. Dropped at once, the group's stream
    /// saw its client gone with requests unread, and the last acks of a
    /// consumer that closed cleanly were never committed. A group that does
    /// not end within a forwarded call's timeout (the commit timeout the
    /// group's stream waits out its last acks for, and a margin for the
    /// hop) is left: what it did not commit is delivered again.
    async fn finish(
        &self,
        requests: &mut mpsc::Receiver<api::StreamingPullRequest>,
        sender: mpsc::Sender<api::StreamingPullRequest>,
        responses: &mut SubStream,
    ) {
        while let Ok(request) = requests.try_recv() {
            if sender.try_send(request).is_err() {
                break;
            }
        }
        drop(sender);
        let relay = async {
            // Read to the end even once the client is gone (the sends fail
            // at once then). An error ends the group's stream; it is not
            // passed on, as it would end the client's stream before the
            // other groups' last confirmations.
            while let Some(Ok(response)) = responses.next().await {
                let _ = self.responses.send(Ok(response)).await;
            }
        };
        let wait = self.routes.forward_timeout();
        if tokio::time::timeout(wait, relay).await.is_err() {
            tracing::debug!(
                group = self.group,
                ?wait,
                "a group's sub-stream did not end after the client's side; left"
            );
        }
    }
}
