//! `Sequencer`: puts an idempotent producer's concurrent batches into the
//! Raft log in sequence order.
//!
//! A Publisher keeps several batches of a partition in flight. HTTP/2 hands
//! them to separate handler tasks, which may reach Raft in any order, and the
//! state machine refuses a batch that overtook an earlier one (a sequence gap)
//! so the client resends it: correct, but a wasted round trip and log entry
//! per overtaking. On the leader, the sequencer makes a batch wait briefly
//! until its predecessor has been submitted to Raft.
//!
//! It only orders submissions; correctness never depends on it. A batch whose
//! predecessor does not show up within [`WAIT_MAX`] is submitted anyway and
//! the state machine decides, and a lane forgotten (term change, eviction)
//! only costs the resends the sequencer exists to save.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::domain::ProducerKey;

/// How long a batch waits for its predecessor: longer than two requests sent
/// back to back take to arrive, far shorter than a client's resend cycle.
const WAIT_MAX: Duration = Duration::from_millis(500);

/// How many producer lanes the leader tracks, like the state's producer table.
const LANES_MAX: usize = crate::domain::limits::PRODUCER_STATES_MAX;

/// A lane unused this long may be dropped when the table is full.
const LANE_IDLE: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub struct Sequencer {
    lanes: Mutex<Lanes>,
}

#[derive(Debug, Default)]
struct Lanes {
    /// The leader term the lanes belong to: a new term starts empty, since
    /// the previous term's submissions may not have made it into the log.
    term: u64,
    by_key: HashMap<ProducerKey, Lane>,
}

#[derive(Debug)]
struct Lane {
    /// The first sequence number not yet submitted.
    next: watch::Sender<u64>,
    last_used: Instant,
}

impl Sequencer {
    /// Runs `submit` (which hands a batch of sequences
    /// `first_sequence..end_sequence` to Raft) once every earlier batch of the
    /// producer has been submitted in this term, or [`WAIT_MAX`] has passed.
    /// `committed_next` is the producer's next sequence in the applied state,
    /// where a lane new to this leader starts.
    pub async fn in_order<T>(
        &self,
        term: u64,
        key: ProducerKey,
        sequences: std::ops::Range<u64>,
        committed_next: u64,
        submit: impl Future<Output = T>,
    ) -> T {
        if let Some(mut next) = self.lane(term, key, committed_next) {
            let first = sequences.start;
            // An error means the lane was dropped; either way, go ahead.
            let _ = tokio::time::timeout(WAIT_MAX, next.wait_for(|next| *next >= first)).await;
        }
        let submitted = submit.await;
        self.advance(term, key, sequences.end);
        submitted
    }

    /// The lane's progress, created if new; `None` when the table is full.
    fn lane(&self, term: u64, key: ProducerKey, committed_next: u64) -> Option<watch::Receiver<u64>> {
        let mut lanes = self.lanes.lock();
        if lanes.term != term {
            lanes.term = term;
            lanes.by_key.clear();
        }
        let now = Instant::now();
        if !lanes.by_key.contains_key(&key) && lanes.by_key.len() >= LANES_MAX {
            lanes.by_key.retain(|_, lane| now.duration_since(lane.last_used) < LANE_IDLE);
            if lanes.by_key.len() >= LANES_MAX {
                return None;
            }
        }
        let lane = lanes
            .by_key
            .entry(key)
            .or_insert_with(|| Lane { next: watch::Sender::new(committed_next), last_used: now });
        lane.last_used = now;
        Some(lane.next.subscribe())
    }

    /// Records that everything before `end` was submitted.
    fn advance(&self, term: u64, key: ProducerKey, end: u64) {
        let lanes = self.lanes.lock();
        if lanes.term != term {
            return;
        }
        if let Some(lane) = lanes.by_key.get(&key) {
            lane.next.send_if_modified(|next| {
                let moved = *next < end;
                *next = (*next).max(end);
                moved
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn key() -> ProducerKey {
        ProducerKey { topic_id: 1, partition: 0, producer_id: 7 }
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_that_arrives_early_is_submitted_after_its_predecessor() {
        let sequencer = Arc::new(Sequencer::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let second = tokio::spawn({
            let (sequencer, order) = (sequencer.clone(), order.clone());
            async move { sequencer.in_order(1, key(), 10..20, 0, async { order.lock().push(10) }).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(order.lock().is_empty(), "the second batch waits for the first");
        sequencer.in_order(1, key(), 0..10, 0, async { order.lock().push(0) }).await;
        second.await.expect("second batch");
        assert_eq!(*order.lock(), [0, 10]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_whose_predecessor_never_comes_goes_after_the_wait_limit() {
        let sequencer = Sequencer::default();
        let started = Instant::now();
        sequencer.in_order(1, key(), 10..20, 0, async {}).await;
        assert_eq!(started.elapsed(), WAIT_MAX);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_and_lanes_of_a_new_term_do_not_wait() {
        let sequencer = Sequencer::default();
        let started = Instant::now();
        sequencer.in_order(1, key(), 5..10, 5, async {}).await;
        // A retry of an earlier batch.
        sequencer.in_order(1, key(), 0..5, 5, async {}).await;
        // A new term starts from what is committed.
        sequencer.in_order(2, key(), 3..4, 3, async {}).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
