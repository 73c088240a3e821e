//! Locks: one holder at a time, expiry on the stamped clock, epochs that
//! only grow, and the bound on how many the cluster keeps.

use super::*;
use crate::domain::limits::LOCKS_MAX;

const TTL: u64 = 10_000_000;

fn acquire(model: &mut Model, name: &str, holder: &str, now_us: i64) -> (bool, LockState) {
    let command = Command::AcquireLock { name: name.into(), holder: holder.into(), ttl_us: TTL, now_us };
    match model.run(command).0 {
        Response::Lock { granted, lock } => (granted, lock),
        other => panic!("acquire {name} for {holder}: {other:?}"),
    }
}

fn release(model: &mut Model, name: &str, holder: &str) -> bool {
    match model.run(Command::ReleaseLock { name: name.into(), holder: holder.into() }).0 {
        Response::LockReleased { released } => released,
        other => panic!("release {name} for {holder}: {other:?}"),
    }
}

#[test]
fn a_lock_is_held_by_one_holder_until_it_expires_and_renewals_keep_its_epoch() {
    let mut model = Model::default();
    let (granted, first) = acquire(&mut model, "route", "a", 1_000);
    assert!(granted);
    assert_eq!((first.holder.as_str(), first.epoch, first.expire_time_us), ("a", 1, 1_000 + TTL as i64));

    let (granted, seen) = acquire(&mut model, "route", "b", 2_000);
    assert!(!granted, "b must wait while a's lock runs");
    assert_eq!(seen, first, "the refusal names the holder and its expiry");

    let (granted, renewed) = acquire(&mut model, "route", "a", 5_000);
    assert!(granted);
    assert_eq!((renewed.epoch, renewed.expire_time_us), (1, 5_000 + TTL as i64), "a renewal keeps the epoch");

    let (granted, taken) = acquire(&mut model, "route", "b", renewed.expire_time_us);
    assert!(granted, "an expired lock goes to whoever asks");
    assert_eq!((taken.holder.as_str(), taken.epoch), ("b", 2));

    let (granted, _) = acquire(&mut model, "route", "a", renewed.expire_time_us + 1);
    assert!(!granted, "the old holder cannot renew what another took");
}

#[test]
fn a_released_lock_goes_to_the_next_asker_at_once_with_a_new_epoch() {
    let mut model = Model::default();
    acquire(&mut model, "route", "a", 1_000);
    assert!(!release(&mut model, "route", "b"), "only the holder releases");
    assert!(acquire(&mut model, "route", "a", 1_000).0, "b's release changed nothing");
    assert!(release(&mut model, "route", "a"));
    assert!(model.catalog.locks.is_empty());

    let (granted, lock) = acquire(&mut model, "route", "b", 1_001);
    assert!(granted);
    assert_eq!(lock.epoch, 2, "epochs are not reused after a release");
    assert!(!release(&mut model, "other", "b"), "releasing a lock nobody holds is a no-op");
}

#[test]
fn at_the_limit_expired_locks_make_room_and_unexpired_ones_refuse_new_names() {
    let mut model = Model::default();
    for i in 0..LOCKS_MAX {
        assert!(acquire(&mut model, &format!("route-{i}"), "a", i as i64).0);
    }
    let (response, writes) =
        model.run(Command::AcquireLock { name: "one-too-many".into(), holder: "b".into(), ttl_us: TTL, now_us: 5 });
    assert_eq!((response, writes), (Response::Rejected(Rejection::TooManyLocks { limit: LOCKS_MAX }), 0));
    assert!(acquire(&mut model, "route-7", "a", 5).0, "renewing a lock it holds needs no room");

    // At TTL + 3, the locks taken at times 0..=3 have expired (route-7 was renewed).
    let (granted, lock) = acquire(&mut model, "one-too-many", "b", TTL as i64 + 3);
    assert!(granted);
    assert_eq!(model.catalog.locks.len(), LOCKS_MAX + 1 - 4);
    assert!(!model.catalog.locks.contains_key("route-0") && model.catalog.locks.contains_key("route-7"));
    assert_eq!(lock.epoch, LOCKS_MAX as u64 + 1);
}
