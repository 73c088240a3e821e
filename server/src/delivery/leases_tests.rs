//! `Leases` against a model that scans every lease: the index finds exactly
//! what is due, in order, and the next deadline, whatever the changes; it
//! stays bounded; and the floor sweep finds every lease below a floor.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use tokio::time::Instant;

use super::*;

#[derive(Debug, Clone)]
enum Op {
    /// Insert at (partition, offset) with a state and a deadline in seconds.
    Insert(u32, u64, u8, u64),
    Modify(u32, u64, u8, u64),
    Remove(u32, u64),
    Due(u64),
    NextAfter(u64),
    RemoveBelow(u32, u64),
}

fn state(code: u8) -> LeaseState {
    [LeaseState::Leased, LeaseState::Acking, LeaseState::Ready, LeaseState::DeadLettering][code as usize % 4]
}

fn lease(base: Instant, code: u8, seconds: u64) -> Lease {
    Lease {
        delivery_id: 0,
        attempt: 1,
        state: state(code),
        deadline: base + Duration::from_secs(seconds),
        consumer: 1,
        size: 1,
        key: None,
    }
}

fn op() -> impl Strategy<Value = Op> {
    let position = (0u32..3, 0u64..40);
    prop_oneof![
        4 => (position.clone(), any::<u8>(), 0u64..20).prop_map(|((p, o), c, s)| Op::Insert(p, o, c, s)),
        3 => (position.clone(), any::<u8>(), 0u64..20).prop_map(|((p, o), c, s)| Op::Modify(p, o, c, s)),
        1 => position.prop_map(|(p, o)| Op::Remove(p, o)),
        1 => (0u64..25).prop_map(Op::Due),
        1 => (0u64..25).prop_map(Op::NextAfter),
        1 => (0u32..3, 0u64..45).prop_map(|(p, f)| Op::RemoveBelow(p, f)),
    ]
}

/// What is due by the model: every timed lease at or before `now`, by
/// (deadline, position).
fn model_due(model: &BTreeMap<Position, Lease>, now: Instant) -> Vec<Position> {
    let mut due: Vec<(Instant, Position)> =
        model.iter().filter(|(_, l)| l.timed() && l.deadline <= now).map(|(p, l)| (l.deadline, *p)).collect();
    due.sort_unstable();
    due.into_iter().map(|(_, p)| p).collect()
}

proptest! {
    #[test]
    fn the_index_finds_what_a_scan_finds(ops in prop::collection::vec(op(), 1..200)) {
        let base = Instant::now();
        let mut leases = Leases::default();
        let mut model: BTreeMap<Position, Lease> = BTreeMap::new();
        let mut floors = [0u64; 3];
        for op in ops {
            match op {
                Op::Insert(p, o, c, s) => {
                    leases.insert((p, o), lease(base, c, s));
                    model.insert((p, o), lease(base, c, s));
                }
                Op::Modify(p, o, c, s) => {
                    let change = |l: &mut Lease| { l.state = state(c); l.deadline = base + Duration::from_secs(s); };
                    prop_assert_eq!(leases.modify(&(p, o), change).is_some(), model.get_mut(&(p, o)).map(change).is_some());
                }
                Op::Remove(p, o) => {
                    prop_assert_eq!(leases.remove(&(p, o)).is_some(), model.remove(&(p, o)).is_some());
                }
                Op::Due(s) => {
                    let now = base + Duration::from_secs(s);
                    prop_assert_eq!(leases.due(now), model_due(&model, now));
                }
                Op::NextAfter(s) => {
                    let now = base + Duration::from_secs(s);
                    let next = model.values().filter(|l| l.timed() && l.deadline > now).map(|l| l.deadline).min();
                    prop_assert_eq!(leases.next_deadline_after(now), next);
                }
                Op::RemoveBelow(p, f) => {
                    // Floors only rise, as the replicated ones do.
                    let floor = floors[p as usize].max(f);
                    floors[p as usize] = floor;
                    let removed: Vec<Position> = leases.remove_below(p, floor).into_iter().map(|(q, _)| q).collect();
                    let expected: Vec<Position> = model.range((p, 0)..(p, floor)).map(|(q, _)| *q).collect();
                    for q in &expected {
                        model.remove(q);
                    }
                    prop_assert_eq!(removed, expected);
                }
            }
            prop_assert_eq!(leases.len(), model.len());
        }
    }
}

#[test]
fn acked_leases_leave_the_index_bounded() {
    let base = Instant::now();
    let mut leases = Leases::default();
    // 10,000 leases stay out while 100,000 more are granted, acked (no
    // longer timed) and gone, with deadlines too far ahead to come due.
    for offset in 0..110_000u64 {
        leases.insert((0, offset), lease(base, 0, 600 + offset % 7));
        if offset >= 10_000 {
            leases.modify(&(0, offset), |l| l.state = LeaseState::Acking);
            leases.remove(&(0, offset));
        }
    }
    assert_eq!(leases.len(), 10_000);
    let entries = leases.deadlines.entries();
    assert!(entries <= 2 * 10_000 + 1, "{entries} index entries for 10,000 leases");
    assert_eq!(leases.due(base + Duration::from_secs(700)).len(), 10_000);
}

#[test]
fn a_floor_jump_finds_every_lease_below_it() {
    let base = Instant::now();
    let mut leases = Leases::default();
    for offset in [5, 1_000_000, 7_000_000] {
        leases.insert((1, offset), lease(base, 0, 10));
    }
    leases.insert((0, 3), lease(base, 0, 10));
    let below = |leases: &mut Leases, floor| -> Vec<Position> {
        leases.remove_below(1, floor).into_iter().map(|(p, _)| p).collect()
    };
    assert_eq!(below(&mut leases, 2_000_000), vec![(1, 5), (1, 1_000_000)]);
    assert_eq!(below(&mut leases, 2_000_000), vec![]);
    // A lease put back below the last floor (an ordering key's next message)
    // is found again.
    leases.insert((1, 6), lease(base, 2, 10));
    assert_eq!(below(&mut leases, 7_000_001), vec![(1, 6), (1, 7_000_000)]);
    assert_eq!(leases.len(), 1, "partition 0's lease stays");
}
