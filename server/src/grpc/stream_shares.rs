//! How a placed stream's flow-control window is split over the sub-streams
//! of its groups (`stream_fan_in.rs`).
//!
//! An even split (the limits ÷ the groups) holds a client back whenever its
//! messages sit in a few partitions: with four groups and a limit of 100, at
//! most 25 messages of a busy partition are out, however idle the other
//! groups. Instead, by what each group reports its consumer holds:
//!
//! - a group holding something is busy, and the busy groups are each
//!   entitled to an equal part of the limits;
//! - a busy group may hold what it holds plus an equal part (among the
//!   busy) of the room nobody holds, up to its entitlement;
//! - an idle group may hold a sixteenth of the even split, or what room
//!   there is, at least one message: enough to start, and it is busy once
//!   it reports holding them.
//!
//! So a busy group grows into the room idle ones leave, and when another
//! becomes busy the first shrinks to its part as its messages are acked
//! while the other grows into the room that frees. Room counts as taken by
//! a group up to what it was given, even while it holds less: it may fill
//! that before it hears it has less. So once every group has been told, the
//! limits given add up to at most the client's plus, per group, a message
//! and a sixteenth of the even split (what a group was given may lag its
//! target by a thirty-second of it).
//!
//! The reports are exact: each group's stream counts its leases, so acks
//! made through other calls and leases that run out are in them. A group
//! that reports nothing (yet, or a leader of an earlier version, which also
//! ignores new limits) counts as holding all it was given; a (re)opened
//! sub-stream starts with the even split.

use std::collections::BTreeMap;

use super::streaming_pull::{Limits, OUTSTANDING_BYTES_MAX, OUTSTANDING_MESSAGES_MAX};
use crate::delivery::Holding;
use crate::raft::GroupId;

/// The client's limits, and what each group holds and was given of them.
#[derive(Debug)]
pub struct Shares {
    limits: Limits,
    groups: BTreeMap<GroupId, Share>,
}

#[derive(Debug, Default)]
struct Share {
    /// As the group last reported; `None` if it has not.
    holding: Option<Holding>,
    /// The limits the group's sub-stream was last given.
    given: Option<Limits>,
}

impl Share {
    /// Messages and bytes it holds or may take: what it reports holding, or
    /// all it was given when that is more. A group given much and holding
    /// little may take it any moment, until it is told less; counted as
    /// holding only what it reports, its room went to another group too,
    /// and both could fill it.
    fn held(&self) -> (u64, u64) {
        let given = self.given.map_or((0, 0), |given| (u64::from(given.messages), given.bytes));
        match self.holding {
            Some(holding) => ((holding.messages as u64).max(given.0), (holding.bytes as u64).max(given.1)),
            None => given,
        }
    }

    fn busy(&self) -> bool {
        self.holding.is_none_or(|holding| holding.messages > 0)
    }
}

impl Shares {
    pub fn new(limits: Limits, groups: impl IntoIterator<Item = GroupId>) -> Self {
        Self { limits, groups: groups.into_iter().map(|group| (group, Share::default())).collect() }
    }

    /// The client's limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The client changed its limits.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// `group`'s sub-stream is opening (again), or ended and will: the
    /// limits it opens with, the even split. What it holds is unknown until
    /// its new stream reports.
    pub fn opened(&mut self, group: GroupId) -> Limits {
        let even = self.even_split();
        if let Some(share) = self.groups.get_mut(&group) {
            *share = Share { holding: None, given: Some(even) };
        }
        even
    }

    /// What `group`'s consumer holds, as its stream reported it.
    pub fn report(&mut self, group: GroupId, holding: Option<Holding>) {
        if let Some(share) = self.groups.get_mut(&group) {
            share.holding = holding;
        }
    }

    /// The limits `group`'s sub-stream should be given now, if they moved
    /// far enough from what it was given to be worth a request.
    pub fn retarget(&self, group: GroupId) -> Option<Limits> {
        let share = self.groups.get(&group)?;
        // Nothing heard, nothing to go by (and a leader of an earlier
        // version would not take it).
        share.holding?;
        let target = self.target(share);
        let step = self.step();
        let off = |given: Limits| {
            given.messages.abs_diff(target.messages) >= step.messages
                || given.bytes.abs_diff(target.bytes) >= step.bytes
        };
        share.given.is_none_or(off).then_some(target)
    }

    /// `group`'s sub-stream was sent `limits`.
    pub fn record_sent(&mut self, group: GroupId, limits: Limits) {
        if let Some(share) = self.groups.get_mut(&group) {
            share.given = Some(limits);
        }
    }

    fn target(&self, share: &Share) -> Limits {
        let busy = self.groups.values().filter(|share| share.busy()).count().max(1) as u64;
        let (held_messages, held_bytes) =
            self.groups.values().map(Share::held).fold((0, 0), |(m, b), (dm, db)| (m + dm, b + db));
        let (own_messages, own_bytes) = share.held();
        let start = self.room_to_start();
        let part = |limit: u64, held: u64, own: u64, start: u64| {
            let free = limit.saturating_sub(held);
            let part = if share.busy() {
                (own + free.div_ceil(busy)).min(limit.div_ceil(busy))
            } else {
                // Room for its first messages, and more once it reports
                // holding them.
                free.min(start)
            };
            part.max(1)
        };
        let messages = part(u64::from(self.limits.messages), held_messages, own_messages, start.messages.into());
        Limits {
            messages: messages.min(OUTSTANDING_MESSAGES_MAX.into()) as u32,
            bytes: part(self.limits.bytes, held_bytes, own_bytes, start.bytes).min(OUTSTANDING_BYTES_MAX),
        }
    }

    /// What an idle group may hold: a sixteenth of the even split.
    fn room_to_start(&self) -> Limits {
        let even = self.even_split();
        Limits { messages: (even.messages / 16).max(1), bytes: (even.bytes / 16).max(1) }
    }

    /// How far a group's limits may be off before it is told: not every ack
    /// is worth a request to every group, so a thirty-second of the even
    /// split (less than the room to start, which an idle group then gets).
    fn step(&self) -> Limits {
        let even = self.even_split();
        Limits { messages: (even.messages / 32).max(1), bytes: (even.bytes / 32).max(1) }
    }

    fn even_split(&self) -> Limits {
        let groups = self.groups.len().max(1);
        Limits {
            messages: self.limits.messages.div_ceil(groups as u32),
            bytes: self.limits.bytes.div_ceil(groups as u64),
        }
    }
}

#[cfg(test)]
#[path = "stream_shares_tests.rs"]
mod tests;
