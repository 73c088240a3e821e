use proptest::prelude::*;

use super::*;

const GROUPS: u32 = 4;

/// A client's stream over four groups, each with a backlog or not, whose
/// streams deliver all they are given and report what their consumer holds.
struct Model {
    shares: Shares,
    given: BTreeMap<GroupId, Limits>,
    held: BTreeMap<GroupId, u32>,
}

impl Model {
    fn new(messages: u32) -> Self {
        let mut shares = Shares::new(Limits { messages, bytes: 1 << 30 }, 1..=GROUPS);
        let given = (1..=GROUPS).map(|group| (group, shares.opened(group))).collect();
        let mut model = Self { shares, given, held: (1..=GROUPS).map(|group| (group, 0)).collect() };
        (1..=GROUPS).for_each(|group| model.report(group));
        model
    }

    fn report(&mut self, group: GroupId) {
        let messages = self.held[&group] as usize;
        self.shares.report(group, Some(Holding { messages, bytes: messages * 100 }));
    }

    /// `group`'s stream sends all it may (it has a backlog).
    fn fill(&mut self, group: GroupId) {
        let held = self.held.get_mut(&group).expect("a group");
        *held = (*held).max(self.given[&group].messages);
        self.report(group);
    }

    /// The client acks `count` of `group`'s messages (through any call).
    fn ack(&mut self, group: GroupId, count: u32) {
        let held = self.held.get_mut(&group).expect("a group");
        *held -= count.min(*held);
        self.report(group);
    }

    /// `group` fills what it is given, then the limits move; `rounds` times.
    fn fill_rounds(&mut self, group: GroupId, rounds: usize) {
        for _ in 0..rounds {
            self.fill(group);
            self.retarget_all();
        }
    }

    fn retarget_all(&mut self) {
        for group in 1..=GROUPS {
            if let Some(limits) = self.shares.retarget(group) {
                self.shares.record_sent(group, limits);
                self.given.insert(group, limits);
            }
        }
    }

    fn given_total(&self) -> u32 {
        self.given.values().map(|limits| limits.messages).sum()
    }
}

#[test]
fn a_busy_group_grows_into_the_room_idle_groups_leave() {
    let mut model = Model::new(100);
    assert_eq!(model.given[&1].messages, 25, "the even split to start with");
    model.fill_rounds(1, 20);
    assert!(model.held[&1] >= 90, "group 1 holds {} of the client's 100", model.held[&1]);
    assert!(model.given_total() <= 100 + GROUPS, "limits given add up to {}", model.given_total());
}

#[test]
fn a_group_that_filled_the_window_first_shrinks_to_its_part_as_another_gets_busy() {
    let mut model = Model::new(1000);
    model.fill_rounds(1, 40);
    assert!(model.held[&1] >= 900, "group 1 holds {}", model.held[&1]);
    // Group 2 gets a backlog too; the consumer acks a tenth of what each
    // group holds, in small acks, and the streams refill.
    for _ in 0..200 {
        for group in [1, 2] {
            let tenth = model.held[&group].div_ceil(10);
            model.ack(group, tenth);
            model.fill(group);
        }
        model.retarget_all();
    }
    model.fill(1);
    model.fill(2);
    let (one, two) = (model.held[&1], model.held[&2]);
    assert!((450..=550).contains(&one) && (450..=550).contains(&two), "group 1 holds {one}, group 2 {two}");
    // Per group a message, the room to start (1000 / 4 / 16) and a lag
    // (1000 / 4 / 32).
    assert!(model.given_total() <= 1000 + GROUPS * (1 + 15 + 7), "limits given add up to {}", model.given_total());
}

#[test]
fn acks_the_fan_in_never_sees_still_free_room() {
    // Acks through unary calls, or leases that ran out: only the group's
    // report says so, and the room comes back.
    let mut model = Model::new(100);
    model.fill_rounds(1, 5);
    // All but the idle groups' room to start (one message each).
    assert_eq!(model.held[&1], 97);
    model.ack(1, 97);
    model.retarget_all();
    assert!(model.given.values().all(|limits| limits.messages == 1), "all idle: {:?}", model.given);
    // A message arrives: group 1 is busy again, and takes the window.
    model.fill(1);
    model.retarget_all();
    model.fill(1);
    assert_eq!(model.held[&1], 97);
}

#[test]
fn a_group_that_does_not_report_counts_as_holding_all_it_was_given() {
    let mut shares = Shares::new(Limits { messages: 100, bytes: 4_000 }, 1..=GROUPS);
    for group in 1..=GROUPS {
        assert_eq!(shares.opened(group), Limits { messages: 25, bytes: 1_000 });
    }
    // Group 1 (a leader of an earlier version) never reports: it is not
    // told anything, and counts as busy, holding its even split.
    for group in 2..=GROUPS {
        shares.report(group, Some(Holding::default()));
    }
    assert_eq!(shares.retarget(1), None);
    for group in 2..=GROUPS {
        let target = shares.retarget(group).expect("moved");
        assert_eq!(target.messages, 1, "idle: room to start");
        shares.record_sent(group, target);
    }
    shares.report(2, Some(Holding { messages: 1, bytes: 10 }));
    let target = shares.retarget(2).expect("moved");
    assert_eq!(target.messages, 37, "1 held, and half of the 72 free (two busy groups)");
}

#[test]
fn room_a_group_was_given_stays_its_own_until_it_is_told_less() {
    let mut model = Model::new(100);
    model.fill_rounds(1, 5);
    assert_eq!(model.given[&1].messages, 97);
    // Group 1 is acked down to nothing, and group 2 gets busy: until group 1
    // is told less, group 2 gets no more than the room to start, so the two
    // cannot both fill the window.
    model.ack(1, 97);
    model.fill(2);
    let two = model.shares.retarget(2).map_or(model.given[&2].messages, |limits| limits.messages);
    assert!(two <= 2, "group 2 may take {two} while group 1 may still take 97");
    // Once group 1 was told, group 2 takes the window.
    for _ in 0..5 {
        model.retarget_all();
        model.fill(2);
    }
    assert!(model.held[&2] >= 90, "group 2 holds {}", model.held[&2]);
}

#[test]
fn a_client_changing_its_limits_moves_every_group() {
    let mut shares = Shares::new(Limits { messages: 100, bytes: 4_000 }, 1..=GROUPS);
    for group in 1..=GROUPS {
        shares.opened(group);
        shares.report(group, Some(Holding { messages: 10, bytes: 250 }));
    }
    for group in 1..=GROUPS {
        assert_eq!(shares.retarget(group), None, "at its part already");
    }
    shares.set_limits(Limits { messages: 100, bytes: 8_000 });
    for group in 1..=GROUPS {
        assert_eq!(shares.retarget(group), Some(Limits { messages: 25, bytes: 2_000 }));
    }
}

proptest! {
    /// Whatever the groups deliver and the client acks, in whatever order:
    /// every group may hold at least one message and at most the client's
    /// limit, and once every group is retargeted the limits given add up to
    /// at most the client's plus, per group, a message, the room to start
    /// and the lag a limit may have.
    #[test]
    fn limits_given_stay_within_the_clients_limit_plus_a_little_per_group(
        limit in 1u32..2_000,
        steps in prop::collection::vec((1..=GROUPS, any::<bool>(), 0u32..600, any::<bool>()), 1..80),
    ) {
        let mut model = Model::new(limit);
        for (group, deliver, count, retarget) in steps {
            if deliver {
                model.fill(group);
            } else {
                model.ack(group, count);
            }
            if retarget {
                model.retarget_all();
            }
            prop_assert!(model.given.values().all(|limits| limits.messages >= 1 && limits.messages <= limit));
        }
        model.retarget_all();
        let held: u32 = model.held.values().sum();
        let even = limit.div_ceil(GROUPS);
        let (start, lag) = ((even / 16).max(1), (even / 32).max(1));
        prop_assert!(
            held > limit || model.given_total() <= limit + GROUPS * (1 + start + lag),
            "limits add up to {} for a limit of {limit}", model.given_total()
        );
    }
}
