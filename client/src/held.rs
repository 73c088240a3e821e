//! [`HeldMessages`]: what a subscriber's application holds, by the number
//! the pump gave each message as it handed it over.
//!
//! Numbers are handed out in order and mostly settled in order, so the
//! recent ones sit in a ring indexed by number: settling one is an index,
//! not a hash probe (a hash map's probes, missing the cache, were 7% of a
//! draining consumer's CPU). A message held for long while thousands after
//! it are settled would leave the ring mostly holes; past a bound the
//! ring's oldest live entries move to a map, so memory is in proportion to
//! what is held (the ring at most twice it plus 1,024 slots), not to what
//! was handed out since the oldest.

use std::collections::{HashMap, VecDeque};

/// Holes the ring may hold beyond its live entries before they move out.
const RING_SLACK: usize = 1024;

#[derive(Debug)]
pub(crate) struct HeldMessages<T> {
    /// Slot `i` is number `base + i`; `None` once settled. Never starts
    /// with a hole.
    ring: VecDeque<Option<T>>,
    base: u64,
    /// Live entries of `ring`.
    ring_live: usize,
    /// Entries moved out of the ring, all numbered below `base` (which
    /// `move_out` sets past them). Hashed with foldhash: SipHash's
    /// resistance to chosen keys buys nothing for numbers counted here.
    moved: HashMap<u64, T, foldhash::fast::RandomState>,
    /// [`RING_SLACK`], smaller in tests so entries move out often.
    slack: usize,
}

impl<T> Default for HeldMessages<T> {
    fn default() -> Self {
        Self::with_slack(RING_SLACK)
    }
}

impl<T> HeldMessages<T> {
    fn with_slack(slack: usize) -> Self {
        Self { ring: VecDeque::new(), base: 0, ring_live: 0, moved: HashMap::default(), slack }
    }

    /// Holds `item` as number `number`, which must be the next number: one
    /// past the last inserted (any number at first).
    pub fn insert(&mut self, number: u64, item: T) {
        if self.ring.is_empty() {
            debug_assert!(self.moved.is_empty() || number >= self.base, "numbers are handed out in order");
            self.base = number;
        }
        debug_assert_eq!(number, self.base + self.ring.len() as u64, "numbers are handed out in order");
        self.ring.push_back(Some(item));
        self.ring_live += 1;
        if self.ring.len() > 2 * self.ring_live + self.slack {
            self.move_out();
        }
    }

    pub fn remove(&mut self, number: u64) -> Option<T> {
        let Some(index) = number.checked_sub(self.base).and_then(|i| usize::try_from(i).ok()) else {
            return self.moved.remove(&number);
        };
        let item = self.ring.get_mut(index)?.take()?;
        self.ring_live -= 1;
        while matches!(self.ring.front(), Some(None)) {
            self.ring.pop_front();
            self.base += 1;
        }
        Some(item)
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u64, &mut T)> {
        let base = self.base;
        let ring = self.ring.iter_mut().zip(base..).filter_map(|(slot, number)| Some((number, slot.as_mut()?)));
        ring.chain(self.moved.iter_mut().map(|(number, item)| (*number, item)))
    }

    /// Takes everything held.
    pub fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.ring_live = 0;
        self.ring.drain(..).flatten().chain(self.moved.drain().map(|(_, item)| item))
    }

    pub fn len(&self) -> usize {
        self.ring_live + self.moved.len()
    }

    /// Moves the ring's oldest live entries to `moved`, from the front,
    /// until at least half its slots are live again: the recent ones,
    /// about to be settled, stay. Each slot leaves the ring once, so the
    /// cost per insert stays constant.
    fn move_out(&mut self) {
        while self.ring.len() > 2 * self.ring_live || matches!(self.ring.front(), Some(None)) {
            let Some(slot) = self.ring.pop_front() else { break };
            if let Some(item) = slot {
                self.moved.insert(self.base, item);
                self.ring_live -= 1;
            }
            self.base += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Step {
        Insert,
        /// Removes the held number at this index (mod how many are held).
        Remove(usize),
        /// Removes the newest held: with the oldest still held, the ring
        /// fills with holes until its live entries move out.
        RemoveNewest,
        /// Removes a number handed out (or about to be) but not held now.
        RemoveMissing(u64),
        Touch(usize),
        /// Looks up a number handed out (or about to be) but not held now.
        TouchMissing(u64),
        Drain,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => Just(Step::Insert),
            2 => any::<usize>().prop_map(Step::Remove),
            4 => Just(Step::RemoveNewest),
            1 => any::<u64>().prop_map(Step::RemoveMissing),
            1 => any::<usize>().prop_map(Step::Touch),
            1 => any::<u64>().prop_map(Step::TouchMissing),
            1 => prop_oneof![9 => Just(Step::Insert), 1 => Just(Step::Drain)],
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        /// Agrees with a map at every step, and its ring never holds more
        /// than twice the most ever held plus the slack.
        #[test]
        fn held_messages_behave_as_a_map_and_stay_bounded(
            first in 0u64..1_000,
            slack in prop_oneof![Just(0usize), 1usize..16, Just(RING_SLACK)],
            steps in proptest::collection::vec(step(), 0..3_000),
        ) {
            let mut held = HeldMessages::with_slack(slack);
            let mut model: BTreeMap<u64, u64> = BTreeMap::new();
            let mut next = first;
            // The ring's bound is in what was held at most, which flow
            // control bounds: removals leave holes until the next insert.
            let mut most_held = 0;
            for step in steps {
                match step {
                    Step::Insert => {
                        held.insert(next, next * 10);
                        model.insert(next, next * 10);
                        next += 1;
                        prop_assert!(held.ring.len() <= 2 * held.ring_live + slack);
                    }
                    Step::Remove(i) if !model.is_empty() => {
                        let number = *model.keys().nth(i % model.len()).expect("held");
                        prop_assert_eq!(held.remove(number), model.remove(&number));
                    }
                    Step::Remove(_) => {}
                    Step::RemoveNewest => {
                        if let Some((&number, _)) = model.iter().next_back() {
                            prop_assert_eq!(held.remove(number), model.remove(&number));
                        }
                    }
                    Step::RemoveMissing(n) => {
                        let number = first + n % (next - first + 1);
                        if !model.contains_key(&number) {
                            prop_assert_eq!(held.remove(number), None);
                        }
                    }
                    Step::TouchMissing(n) => {
                        let number = first + n % (next - first + 1);
                        if !model.contains_key(&number) {
                            prop_assert!(held.iter_mut().all(|(held_number, _)| held_number != number));
                        }
                    }
                    Step::Touch(i) if !model.is_empty() => {
                        let number = *model.keys().nth(i % model.len()).expect("held");
                        *held.iter_mut().find(|(n, _)| *n == number).expect("held").1 += 1;
                        *model.get_mut(&number).expect("held") += 1;
                    }
                    Step::Touch(_) => {}
                    Step::Drain => {
                        let mut drained: Vec<u64> = held.drain().collect();
                        drained.sort_unstable();
                        let expected: Vec<u64> = std::mem::take(&mut model).into_values().collect();
                        prop_assert_eq!(drained, expected);
                    }
                }
                prop_assert_eq!(held.len(), model.len());
                most_held = most_held.max(model.len());
                prop_assert!(held.ring.len() <= 2 * most_held + slack + 1);
                prop_assert_eq!(held.ring_live, held.ring.iter().flatten().count());
                prop_assert!(!matches!(held.ring.front(), Some(None)), "the ring starts with a live entry");
                prop_assert!(held.moved.keys().all(|number| *number < held.base));
                let mut all: Vec<(u64, u64)> = held.iter_mut().map(|(n, v)| (n, *v)).collect();
                all.sort_unstable();
                prop_assert_eq!(all, model.iter().map(|(n, v)| (*n, *v)).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn one_message_held_while_many_are_settled_keeps_the_ring_small() {
        let mut held = HeldMessages::default();
        held.insert(0, "old");
        for number in 1..100_000 {
            held.insert(number, "new");
            assert_eq!(held.remove(number), Some("new"));
        }
        assert!(held.ring.len() <= RING_SLACK + 3, "{}", held.ring.len());
        assert_eq!(held.remove(0), Some("old"));
        assert_eq!(held.len(), 0);
    }
}
