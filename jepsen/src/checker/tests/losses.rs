//! `lost` (after a complete drain) and the hole rule `lost-write`.

use super::builder::{check_small, clean, only, pos, HistoryBuilder, SUB};
use crate::checker::{Anomaly, LostRegion, LostWrite, Missing, Verdict};
use crate::history::Kind;

#[test]
fn lost_values_are_split_per_writer_into_prefix_middle_and_postfix() {
    // Each lost value alone in its partition, so no hole rule applies.
    let mut builder = HistoryBuilder::new(5, &[SUB, "complete"], &[]);
    let published = [("1-0", 1, 0), ("1-1", 0, 0), ("1-2", 2, 0), ("1-3", 0, 1), ("1-4", 3, 0), ("2-0", 4, 0)];
    for at in published {
        builder.publish(1, Kind::Ok, &[at]);
    }
    builder.consume(10, SUB, &[("1-1", 0, 0), ("1-3", 0, 1)]);
    builder.consume(11, "complete", &published);
    let report = check_small(&builder.finish());
    assert_eq!(report.verdict, Verdict::Invalid);
    let lost: Vec<(&str, LostRegion, Vec<&str>)> = report
        .anomalies
        .iter()
        .map(|anomaly| match anomaly {
            Anomaly::Lost(lost) => {
                assert_eq!((lost.subscription.as_str(), lost.topic.as_str()), (SUB, "t"));
                assert_eq!(lost.count, lost.values.len() as u64);
                (lost.writer.as_str(), lost.region, lost.values.iter().map(|m| m.value.as_str()).collect())
            }
            other => panic!("unexpected anomaly {other:#?}"),
        })
        .collect();
    assert_eq!(
        lost,
        vec![
            ("1", LostRegion::Prefix, vec!["1-0"]),
            ("1", LostRegion::Middle, vec!["1-2"]),
            ("1", LostRegion::Postfix, vec!["1-4"]),
            // Nothing of writer 2 was delivered: all of it is postfix.
            ("2", LostRegion::Postfix, vec!["2-0"]),
        ]
    );
    let Anomaly::Lost(middle) = &report.anomalies[1] else { unreachable!() };
    assert_eq!(middle.values[0], Missing { value: "1-2".into(), position: pos(2, 0), published_at: 6 });
}

#[test]
fn an_unacknowledged_value_never_delivered_is_not_lost() {
    let mut builder = HistoryBuilder::simple();
    clean(&mut builder, 10);
    builder.publish(2, Kind::Info, &[("2-0", 0, 5)]);
    builder.publish(3, Kind::Fail, &[("3-0", 0, 6)]);
    builder.invoke_publish(4, &["4-0"], None, false); // Never completes.
    let report = check_small(&builder.finish());
    assert_eq!(report.verdict, Verdict::Valid, "{report:#?}");
}

#[test]
fn the_hole_rule_finds_a_lost_write_without_a_drain() {
    let mut builder = HistoryBuilder::simple();
    clean(&mut builder, 10); // Offsets 0..5 of both partitions.
    let hole_published_at = builder.publish(1, Kind::Ok, &[("1-10", 0, 5)]);
    builder.publish(1, Kind::Ok, &[("1-11", 0, 6)]);
    let delivered_at = builder.pull(10, SUB, &[("1-11", 0, 6)]);
    let report = check_small(&builder.build());
    assert_eq!(report.verdict, Verdict::Invalid);
    assert_eq!(
        only(&report),
        &Anomaly::LostWrite(LostWrite {
            subscription: SUB.into(),
            topic: "t".into(),
            partition: 0,
            delivered_offset: 6,
            delivered_at,
            count: 1,
            missing: vec![Missing { value: "1-10".into(), position: pos(0, 5), published_at: hole_published_at }],
        })
    );
}

#[test]
fn a_keyed_message_waiting_behind_its_key_is_not_a_hole() {
    let mut builder = HistoryBuilder::simple();
    clean(&mut builder, 10);
    // "1-10" waits for an unacked earlier message of key k; "1-11" (no key)
    // at a later offset goes out meanwhile.
    builder.publish_with(1, Kind::Ok, &[("1-10", 0, 5)], Some("k"), false);
    builder.publish(1, Kind::Ok, &[("1-11", 0, 6)]);
    builder.pull(10, SUB, &[("1-11", 0, 6)]);
    let report = check_small(&builder.build());
    assert!(report.anomalies.iter().all(|a| a.kind() != "lost-write"), "{report:#?}");
}

#[test]
fn the_hole_rule_is_per_subscription() {
    let mut builder = HistoryBuilder::new(1, &[SUB, "other"], &[]);
    builder.publish(1, Kind::Ok, &[("1-0", 0, 0)]);
    builder.publish(1, Kind::Ok, &[("1-1", 0, 1)]);
    builder.pull(10, SUB, &[("1-0", 0, 0), ("1-1", 0, 1)]);
    builder.pull(11, "other", &[("1-1", 0, 1)]);
    let report = check_small(&builder.build());
    let Anomaly::LostWrite(hole) = only(&report) else { panic!("{report:#?}") };
    assert_eq!((hole.subscription.as_str(), hole.missing[0].value.as_str()), ("other", "1-0"));
}

#[test]
fn a_value_redelivered_later_fills_its_hole() {
    let mut builder = HistoryBuilder::simple();
    builder.publish(1, Kind::Ok, &[("1-0", 0, 0)]);
    builder.publish(1, Kind::Ok, &[("1-1", 0, 1)]);
    builder.consume(10, SUB, &[("1-1", 0, 1)]);
    // A pull that timed out had 1-0; it comes back after its lease expires.
    builder.invoke_pull(11, SUB);
    builder.complete_pull(11, Kind::Info, &[]);
    builder.consume(12, SUB, &[("1-0", 0, 0)]);
    assert_eq!(check_small(&builder.finish()).verdict, Verdict::Valid);
}
