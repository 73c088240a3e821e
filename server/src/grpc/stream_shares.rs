//! How a placed stream's flow-control window is split over the sub-streams
//! of its groups (`stream_fan_in.rs`).
//!
//! An equal split (the limit ÷ the groups) held a client back whenever its
//! messages sat in a few partitions: with four groups and a limit of 100,
//! at most 25 messages of a busy partition were out, however idle the other
//! groups were. Instead each group may hold what it holds plus an equal part
//! of the room nobody holds. A busy group grows into the room idle ones
//! leave, each group may always hold one more message, and the message
//! limits given out add up to the client's limit plus at most one message
//! per group.
//!
//! What a group holds is the fan-in's count: messages its sub-stream sent,
//! less the acks and nacks the client sent for them. The fan-in does not see
//! a lease run out; a client that does not extend a lease still acks or
//! nacks the message in the end (the Ferry client nacks what it will not
//! handle), which brings the count back down. Acks of messages a group no
//! longer counts (their stream was reopened) bring a count down early, so
//! for a moment the client may be sent that many more. Bytes keep the equal
//! split: counting them would mean keeping each message's size until its ack.
//!
//! A sub-stream (re)opens with the equal split, which a group leader of an
//! earlier version keeps (it ignores limits on later requests), and its
//! count starts at zero: its leases went with the stream it replaces.

use std::collections::BTreeMap;

use super::streaming_pull::Limits;
use crate::raft::GroupId;

/// The client's limits and what each group holds of them.
#[derive(Debug)]
pub struct Shares {
    limits: Limits,
    groups: BTreeMap<GroupId, Share>,
    /// The sum of the groups' `held`.
    held: u32,
}

#[derive(Debug, Default)]
struct Share {
    /// Delivered and not yet acked or nacked, by the fan-in's count.
    held: u32,
    /// The limits the group's sub-stream was last given.
    given: Option<Limits>,
}

impl Shares {
    pub fn new(limits: Limits, groups: impl IntoIterator<Item = GroupId>) -> Self {
        let groups = groups.into_iter().map(|group| (group, Share::default())).collect();
        Self { limits, groups, held: 0 }
    }

    /// The client's limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The client changed its limits.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// `group`'s sub-stream is opening (again): the limits it opens with,
    /// the equal split. It holds nothing yet.
    pub fn opened(&mut self, group: GroupId) -> Limits {
        let equal = self.equal_split();
        let share = self.groups.entry(group).or_default();
        self.held -= share.held;
        share.held = 0;
        share.given = Some(equal);
        equal
    }

    /// `group`'s sub-stream sent `count` messages.
    pub fn delivered(&mut self, group: GroupId, count: usize) {
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        let Some(share) = self.groups.get_mut(&group) else { return };
        share.held = share.held.saturating_add(count);
        self.held = self.held.saturating_add(count);
    }

    /// The client acked or nacked `count` messages of `group`.
    pub fn settled(&mut self, group: GroupId, count: usize) {
        let Some(share) = self.groups.get_mut(&group) else { return };
        let count = u32::try_from(count).unwrap_or(u32::MAX).min(share.held);
        share.held -= count;
        self.held -= count;
    }

    /// The limits `group`'s sub-stream should be given now, if they moved
    /// far enough from what it was last given to be worth a request; they
    /// count as given from here.
    pub fn retarget(&mut self, group: GroupId) -> Option<Limits> {
        let groups = self.groups.len().max(1) as u32;
        let free = self.limits.messages.saturating_sub(self.held);
        let equal = self.equal_split();
        let share = self.groups.get_mut(&group)?;
        let target = Limits { messages: share.held.saturating_add(free.div_ceil(groups)).max(1), bytes: equal.bytes };
        // Not every message acked is worth a request to every group: a
        // group's limit moves once it is off by a sixteenth of its equal
        // split, which leaves room unused of at most that much per group.
        let step = (equal.messages / 16).max(1);
        let moved = match share.given {
            None => true,
            Some(given) => given.bytes != target.bytes || given.messages.abs_diff(target.messages) >= step,
        };
        if !moved {
            return None;
        }
        share.given = Some(target);
        Some(target)
    }

    fn equal_split(&self) -> Limits {
        let groups = self.groups.len().max(1);
        Limits {
            messages: self.limits.messages.div_ceil(groups as u32),
            bytes: self.limits.bytes.div_ceil(groups as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn limits(messages: u32) -> Limits {
        Limits { messages, bytes: 4_000 }
    }

    /// Retargets every group, as each sub-stream does when told the shares
    /// moved, and returns what each was given last.
    fn retarget_all(shares: &mut Shares, given: &mut BTreeMap<GroupId, Limits>) {
        for group in 1..=4 {
            if let Some(limits) = shares.retarget(group) {
                given.insert(group, limits);
            }
        }
    }

    #[test]
    fn a_busy_group_grows_into_the_room_idle_groups_leave() {
        let mut shares = Shares::new(limits(100), 1..=4);
        let mut given: BTreeMap<GroupId, Limits> = (1..=4).map(|group| (group, shares.opened(group))).collect();
        assert_eq!(given[&1], Limits { messages: 25, bytes: 1_000 }, "the equal split to start with");
        // Group 1's sub-stream sends what it may, again and again; the
        // others have nothing to send.
        for _ in 0..20 {
            let room = given[&1].messages - shares.groups[&1].held;
            shares.delivered(1, room as usize);
            retarget_all(&mut shares, &mut given);
        }
        let held = shares.groups[&1].held;
        assert!(held >= 90, "group 1 holds {held} of the client's 100");
        let total: u32 = given.values().map(|limits| limits.messages).sum();
        assert!(total <= 100 + 4, "limits given add up to {total}");
        assert!(given.values().all(|limits| limits.bytes == 1_000), "bytes keep the equal split");

        // Once the client acks, the room goes back to be shared.
        shares.settled(1, held as usize);
        retarget_all(&mut shares, &mut given);
        assert!(given.values().all(|limits| limits.messages == 25), "{given:?}");
    }

    #[test]
    fn a_reopened_group_starts_from_the_equal_split_and_holds_nothing() {
        let mut shares = Shares::new(limits(100), 1..=4);
        for group in 1..=4 {
            shares.opened(group);
        }
        shares.delivered(2, 25);
        assert_eq!(shares.opened(2), Limits { messages: 25, bytes: 1_000 });
        assert_eq!(shares.held, 0);
        // An ack of a message of the stream it replaced counts nothing.
        shares.settled(2, 10);
        assert_eq!(shares.held, 0);
    }

    #[test]
    fn a_client_changing_its_limits_moves_every_group() {
        let mut shares = Shares::new(limits(100), 1..=4);
        for group in 1..=4 {
            shares.opened(group);
        }
        shares.set_limits(Limits { messages: 100, bytes: 8_000 });
        for group in 1..=4 {
            assert_eq!(shares.retarget(group), Some(Limits { messages: 25, bytes: 2_000 }));
        }
    }

    proptest! {
        /// Whatever is delivered and settled, in whatever order: every
        /// group may hold at least one message, and the limits given add up to the client's plus one per group
        /// whenever the groups hold no more than the client's limit.
        #[test]
        fn limits_given_stay_within_the_clients_limit_plus_one_per_group(
            limit in 1u32..2_000,
            steps in prop::collection::vec((1u32..=4, 0usize..600, any::<bool>()), 1..60),
        ) {
            let mut shares = Shares::new(limits(limit), 1..=4);
            let mut given: BTreeMap<GroupId, Limits> = (1..=4).map(|group| (group, shares.opened(group))).collect();
            for (group, count, deliver) in steps {
                if deliver {
                    // A sub-stream sends no more than it was given.
                    let room = given[&group].messages.saturating_sub(shares.groups[&group].held);
                    shares.delivered(group, count.min(room as usize));
                } else {
                    shares.settled(group, count);
                }
                // Only some groups hear of it before the next step.
                if let Some(limits) = shares.retarget(group) {
                    given.insert(group, limits);
                }
                let limits = shares.retarget(group % 4 + 1);
                if let Some(limits) = limits {
                    given.insert(group % 4 + 1, limits);
                }
                prop_assert!(given.values().all(|limits| limits.messages >= 1));
                prop_assert_eq!(shares.held, shares.groups.values().map(|share| share.held).sum::<u32>());
            }
            retarget_all(&mut shares, &mut given);
            let total: u64 = given.values().map(|limits| u64::from(limits.messages)).sum();
            let step = u64::from((limit.div_ceil(4) / 16).max(1));
            // Each group's target is what it holds plus a quarter of the
            // free room rounded up; what it was given is within a step of it.
            prop_assert!(
                shares.held > limit || total <= u64::from(limit) + 3 + 4 * step,
                "limits add up to {total} for a limit of {limit}"
            );
        }
    }
}
