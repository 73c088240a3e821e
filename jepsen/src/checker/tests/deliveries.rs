//! Where delivered values came from, where values are stored, and
//! redelivery after an ack.

use super::builder::{check_small, clean, only, pos, HistoryBuilder, SUB};
use crate::checker::{
    AbortedRead, Anomaly, Claim, DuplicatePublish, InconsistentOffsets, RedeliveredAfterAck, Source, Unexpected,
    Verdict,
};
use crate::history::Kind;

#[test]
fn a_value_nobody_published_is_unexpected() {
    let mut builder = HistoryBuilder::simple();
    clean(&mut builder, 10);
    let delivered_at = builder.pull(11, SUB, &[("9-9", 1, 50)]);
    builder.pull(11, SUB, &[("9-9", 1, 50)]); // Reported once.
    let report = check_small(&builder.finish());
    assert_eq!(report.verdict, Verdict::Invalid);
    assert_eq!(
        only(&report),
        &Anomaly::Unexpected(Unexpected {
            subscription: SUB.into(),
            topic: "t".into(),
            value: "9-9".into(),
            position: pos(1, 50),
            delivered_at,
        })
    );
}

#[test]
fn a_value_whose_publish_failed_is_an_aborted_read() {
    let mut builder = HistoryBuilder::simple();
    clean(&mut builder, 10);
    let failed_at = builder.publish(2, Kind::Fail, &[("2-0", 1, 50)]);
    let delivered_at = builder.pull(11, SUB, &[("2-0", 1, 50)]);
    let report = check_small(&builder.finish());
    assert_eq!(report.verdict, Verdict::Invalid);
    assert_eq!(
        only(&report),
        &Anomaly::AbortedRead(AbortedRead {
            subscription: SUB.into(),
            topic: "t".into(),
            value: "2-0".into(),
            position: pos(1, 50),
            delivered_at,
            failed_at: vec![failed_at],
        })
    );
}

#[test]
fn a_value_whose_publish_outcome_is_unknown_may_be_delivered() {
    let mut builder = HistoryBuilder::simple();
    clean(&mut builder, 10);
    builder.publish(2, Kind::Info, &[("2-0", 1, 50)]);
    builder.consume(11, SUB, &[("2-0", 1, 50)]);
    assert_eq!(check_small(&builder.finish()).verdict, Verdict::Valid);
}

#[test]
fn two_values_at_one_offset_are_inconsistent_offsets() {
    let mut builder = HistoryBuilder::simple();
    let first_at = builder.publish(1, Kind::Ok, &[("1-0", 0, 0)]);
    let second_at = builder.publish(2, Kind::Ok, &[("2-0", 0, 0)]);
    let delivered_at = builder.pull(10, SUB, &[("2-0", 0, 0)]);
    builder.pull(10, SUB, &[("1-0", 0, 0)]);
    builder.drained(true);
    let report = check_small(&builder.build());
    assert_eq!(report.verdict, Verdict::Invalid);
    let Anomaly::InconsistentOffsets(inconsistent) = only(&report) else { panic!("{report:#?}") };
    assert_eq!(
        inconsistent,
        &InconsistentOffsets {
            topic: "t".into(),
            position: pos(0, 0),
            claims: vec![
                Claim {
                    value: "1-0".into(),
                    sources: vec![
                        Source::Publish { at: first_at },
                        Source::Delivery { subscription: SUB.into(), at: delivered_at + 2 },
                    ],
                },
                Claim {
                    value: "2-0".into(),
                    sources: vec![
                        Source::Publish { at: second_at },
                        Source::Delivery { subscription: SUB.into(), at: delivered_at },
                    ],
                },
            ],
        }
    );
}

/// 1-10 published once at (0, 5), but also delivered from (1, 5).
fn stored_twice(idempotent: bool) -> Vec<crate::history::Event> {
    let mut builder = HistoryBuilder::simple();
    clean(&mut builder, 10);
    builder.publish_with(1, Kind::Ok, &[("1-10", 0, 5)], None, idempotent);
    builder.consume(10, SUB, &[("1-10", 0, 5)]);
    builder.consume(10, SUB, &[("1-10", 1, 5)]);
    builder.finish()
}

#[test]
fn an_idempotent_value_stored_twice_is_a_fatal_duplicate_publish() {
    let report = check_small(&stored_twice(true));
    assert_eq!(report.verdict, Verdict::Invalid);
    let expected = DuplicatePublish {
        topic: "t".into(),
        value: "1-10".into(),
        idempotent: true,
        positions: vec![pos(0, 5), pos(1, 5)],
    };
    assert_eq!(only(&report), &Anomaly::DuplicatePublish(expected));
    assert!(report.anomalies[0].is_fatal());
}

#[test]
fn a_plain_value_stored_twice_is_reported_but_not_fatal() {
    let report = check_small(&stored_twice(false));
    assert_eq!(report.verdict, Verdict::Valid);
    let Anomaly::DuplicatePublish(duplicate) = only(&report) else { panic!("{report:#?}") };
    assert!(!duplicate.idempotent);
    assert!(!report.anomalies[0].is_fatal());
}

#[test]
fn a_pull_invoked_after_an_ok_ack_must_not_return_the_message() {
    let mut builder = HistoryBuilder::simple();
    builder.publish(1, Kind::Ok, &[("1-0", 0, 0)]);
    builder.pull(10, SUB, &[("1-0", 0, 0)]);
    let acked_at = builder.ack(10, SUB, Kind::Ok, &[pos(0, 0)]);
    let pull_invoked_at = builder.invoke_pull(11, SUB);
    let delivered_at = builder.complete_pull(11, Kind::Ok, &[("1-0", 0, 0)]);
    let report = check_small(&builder.finish());
    assert_eq!(report.verdict, Verdict::Invalid);
    assert_eq!(
        only(&report),
        &Anomaly::RedeliveredAfterAck(RedeliveredAfterAck {
            subscription: SUB.into(),
            topic: "t".into(),
            value: "1-0".into(),
            position: pos(0, 0),
            acked_at,
            pull_invoked_at,
            delivered_at,
        })
    );
}

#[test]
fn redelivery_overlapping_the_ack_or_after_an_unknown_ack_is_allowed() {
    let mut builder = HistoryBuilder::simple();
    builder.publish(1, Kind::Ok, &[("1-0", 0, 0)]);
    builder.publish(1, Kind::Ok, &[("1-1", 0, 1)]);
    builder.pull(10, SUB, &[("1-0", 0, 0), ("1-1", 0, 1)]);
    // 1-0: a pull invoked before the ack completed may be served first.
    builder.invoke_pull(11, SUB);
    builder.ack(10, SUB, Kind::Ok, &[pos(0, 0)]);
    builder.complete_pull(11, Kind::Ok, &[("1-0", 0, 0)]);
    // 1-1: an ack of unknown outcome may not have happened.
    builder.ack(10, SUB, Kind::Info, &[pos(0, 1)]);
    builder.pull(12, SUB, &[("1-1", 0, 1)]);
    builder.ack(12, SUB, Kind::Ok, &[pos(0, 1)]);
    assert_eq!(check_small(&builder.finish()).verdict, Verdict::Valid);
}

#[test]
fn a_subscription_may_redeliver_what_another_subscription_acked() {
    let mut builder = HistoryBuilder::new(1, &[SUB, "other"], &[]);
    builder.publish(1, Kind::Ok, &[("1-0", 0, 0)]);
    builder.consume(10, SUB, &[("1-0", 0, 0)]);
    builder.consume(11, "other", &[("1-0", 0, 0)]);
    assert_eq!(check_small(&builder.finish()).verdict, Verdict::Valid);
}
