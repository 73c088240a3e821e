//! Which partition a publish request's messages without an ordering key go
//! to.
//!
//! Each topic's requests take its partitions in turn, so its partitions
//! fill evenly. A turn alone is blind to load, though: a producer cycling
//! through many topics, a request to each, reaches every topic at the same
//! turn, and placement, spreading each topic over the least loaded groups,
//! puts partition p of every topic of as many partitions as there are groups
//! in one group. All its requests in flight then went to one group while the
//! others idled: one node with four data groups, a client with 8 batches of
//! 100 × 128 B in flight, published 310,000–337,000 msgs/s to 1,000 topics
//! against 590,000–615,000 to one.
//!
//! So a request goes to the partition of its turn unless one of the next few
//! candidates has fewer batches in flight through this node in its group
//! ([`PublishLoads`](super::publish_loads::PublishLoads)), as Kafka's
//! adaptive partitioner weighs brokers by their queues. With equal loads the
//! turn decides, so a topic's partitions still fill evenly while its groups
//! keep up; a group that falls behind gets fewer keyless requests until it
//! catches up.

use std::sync::atomic::{AtomicU64, Ordering};

/// Turns kept: topics whose ids share one share its turn.
const TURNS: usize = 1024;
/// Candidates weighed per request, from its turn on: enough to find a group
/// with room among a few, without reading a load per partition of a topic
/// with hundreds.
const CHOICES: usize = 4;

#[derive(Debug)]
pub struct Keyless {
    /// Turns of requests without ordering keys, by topic id modulo their
    /// number: each topic's requests go round its partitions. One turn for
    /// every topic let a client alternating two topics fill every other
    /// partition of each.
    turns: Box<[AtomicU64]>,
}

impl Default for Keyless {
    fn default() -> Self {
        Self { turns: (0..TURNS).map(|_| AtomicU64::new(0)).collect() }
    }
}

impl Keyless {
    /// The partition of topic `topic_id`'s next keyless request: of the
    /// `candidates` from the topic's turn on, up to [`CHOICES`] of them, the
    /// first with the least `load` (the batches in flight in its group).
    /// `candidates` must not be empty (a topic has a partition at least).
    pub fn choose(&self, topic_id: u64, candidates: &[u32], load: impl Fn(u32) -> usize) -> u32 {
        debug_assert!(!candidates.is_empty(), "a topic has a partition at least");
        let turn = self.turns[topic_id as usize % TURNS].fetch_add(1, Ordering::Relaxed);
        let start = (turn % candidates.len() as u64) as usize;
        let weighed = candidates.iter().cycle().skip(start).take(CHOICES.min(candidates.len()));
        // `min_by_key` keeps the first of equals: the turn's own on a tie.
        *weighed.min_by_key(|&&partition| load(partition)).expect("candidates is not empty")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::grpc::publish_loads::PublishLoads;
    use crate::raft::GroupId;

    /// Partition p of every topic in group p + 1, as placement puts topics
    /// of four partitions on four groups.
    fn group_of(partition: u32) -> GroupId {
        partition + 1
    }

    const FOUR: [u32; 4] = [0, 1, 2, 3];

    #[test]
    fn with_nothing_in_flight_each_topic_takes_its_partitions_in_turn() {
        let keyless = Keyless::default();
        let mut taken = BTreeMap::<u64, Vec<u32>>::new();
        for request in 0..12 {
            let topic = request % 2;
            taken.entry(topic).or_default().push(keyless.choose(topic, &FOUR, |_| 0));
        }
        let in_turn = vec![0, 1, 2, 3, 0, 1];
        assert_eq!(taken, BTreeMap::from([(0, in_turn.clone()), (1, in_turn)]));
    }

    #[test]
    fn requests_in_flight_to_many_topics_at_one_turn_spread_over_the_groups() {
        let (keyless, loads) = (Keyless::default(), PublishLoads::default());
        // One request to each of eight topics, all at their first turn,
        // each held in flight.
        let mut held = Vec::new();
        for topic in 0..8 {
            let partition = keyless.choose(topic, &FOUR, |p| loads.of(group_of(p)));
            held.push(loads.track(group_of(partition)));
        }
        let in_flight: Vec<usize> = (1..=4).map(|group| loads.of(group)).collect();
        assert_eq!(in_flight, vec![2, 2, 2, 2]);
    }

    #[test]
    fn a_group_behind_gets_no_request_while_another_has_room() {
        let (keyless, loads) = (Keyless::default(), PublishLoads::default());
        let _busy = [loads.track(1), loads.track(1)];
        let chosen: Vec<u32> = (0..6).map(|_| keyless.choose(7, &FOUR, |p| loads.of(group_of(p)))).collect();
        assert_eq!(chosen, vec![1, 1, 2, 3, 1, 1], "partition 0's group has two in flight, the rest none");
    }

    #[test]
    fn only_candidates_are_weighed_and_chosen() {
        let (keyless, loads) = (Keyless::default(), PublishLoads::default());
        let _busy = loads.track(group_of(2));
        for _ in 0..4 {
            assert_eq!(keyless.choose(3, &[5], |p| loads.of(group_of(p))), 5, "the only candidate");
            // Its own topic, so its turns take 2 first every other time.
            assert_eq!(keyless.choose(4, &[2, 6], |p| loads.of(group_of(p))), 6, "2's group is loaded");
        }
    }

    #[test]
    fn past_the_first_few_candidates_load_is_not_weighed() {
        let (keyless, loads) = (Keyless::default(), PublishLoads::default());
        // Eight partitions, the first four in loaded groups: at turn 0 the
        // four weighed are all loaded, so the turn's own is taken.
        let eight: Vec<u32> = (0..8).collect();
        let _busy: Vec<_> = (0..4).map(|p| loads.track(group_of(p))).collect();
        assert_eq!(keyless.choose(9, &eight, |p| loads.of(group_of(p))), 0);
        assert_eq!(keyless.choose(9, &eight, |p| loads.of(group_of(p))), 4, "turn 1 weighs 1..=4");
    }
}
