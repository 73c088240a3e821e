//! Ordering keys (`ordering`, `ordering-key-overlap`) and the non-fatal
//! `partition-order` of messages without a key.

use super::builder::{check_small, clean, only, pos, HistoryBuilder, SUB};
use crate::checker::{Anomaly, FirstDelivery, KeyOverlap, OrderingInversion, PartitionInversion, Verdict};
use crate::history::Kind;

fn first(value: &str, offset: u64, delivered_at: u64) -> FirstDelivery {
    FirstDelivery { value: value.into(), offset, delivered_at }
}

/// Two messages of key `k` at (0, 10) and (0, 11), after a clean prefix.
fn keyed_pair() -> HistoryBuilder {
    let mut builder = HistoryBuilder::simple();
    clean(&mut builder, 10);
    builder.publish_with(2, Kind::Ok, &[("2-0", 0, 10), ("2-1", 0, 11)], Some("k"), true);
    builder
}

#[test]
fn a_key_delivered_in_order_one_at_a_time_is_valid() {
    let mut builder = keyed_pair();
    builder.consume(10, SUB, &[("2-0", 0, 10)]);
    builder.consume(11, SUB, &[("2-1", 0, 11)]);
    let report = check_small(&builder.finish());
    assert_eq!(report.verdict, Verdict::Valid, "{report:#?}");
}

#[test]
fn a_key_whose_first_deliveries_go_backwards_is_an_ordering_anomaly() {
    let mut builder = keyed_pair();
    let later_at = builder.pull(10, SUB, &[("2-1", 0, 11)]);
    builder.ack(10, SUB, Kind::Ok, &[pos(0, 11)]);
    let earlier_at = builder.pull(11, SUB, &[("2-0", 0, 10)]);
    builder.ack(11, SUB, Kind::Ok, &[pos(0, 10)]);
    let report = check_small(&builder.finish());
    assert_eq!(report.verdict, Verdict::Invalid);
    assert_eq!(
        only(&report),
        &Anomaly::Ordering(OrderingInversion {
            subscription: SUB.into(),
            topic: "t".into(),
            ordering_key: "k".into(),
            partition: 0,
            earlier: first("2-1", 11, later_at),
            later: first("2-0", 10, earlier_at),
        })
    );
}

#[test]
fn a_keys_next_message_before_the_previous_was_acked_is_an_overlap() {
    let mut builder = keyed_pair();
    let previous_at = builder.pull(10, SUB, &[("2-0", 0, 10)]);
    let next_at = builder.pull(11, SUB, &[("2-1", 0, 11)]);
    let ack_invoked_at = builder.invoke_ack(10, SUB, &[pos(0, 10)]);
    builder.complete_ack(10, Kind::Ok);
    builder.ack(11, SUB, Kind::Ok, &[pos(0, 11)]);
    let report = check_small(&builder.finish());
    assert_eq!(report.verdict, Verdict::Invalid);
    assert_eq!(
        only(&report),
        &Anomaly::OrderingKeyOverlap(KeyOverlap {
            subscription: SUB.into(),
            topic: "t".into(),
            ordering_key: "k".into(),
            partition: 0,
            previous: first("2-0", 10, previous_at),
            previous_ack_invoked_at: ack_invoked_at,
            next: first("2-1", 11, next_at),
        })
    );
}

#[test]
fn a_key_overlap_needs_proof_that_the_previous_was_not_yet_acked() {
    let mut builder = keyed_pair();
    builder.publish_with(3, Kind::Ok, &[("3-0", 1, 10), ("3-1", 1, 11)], Some("dead"), true);
    builder.publish_with(4, Kind::Ok, &[("4-0", 1, 12), ("4-1", 1, 13)], Some("info"), true);
    // Key k: the ack of 2-0 was sent before 2-1's pull completed, so it may
    // have taken effect first.
    builder.pull(10, SUB, &[("2-0", 0, 10)]);
    builder.invoke_pull(11, SUB);
    builder.ack(10, SUB, Kind::Ok, &[pos(0, 10)]);
    builder.complete_pull(11, Kind::Ok, &[("2-1", 0, 11)]);
    builder.ack(11, SUB, Kind::Ok, &[pos(0, 11)]);
    // Key dead: 3-0 was dead-lettered (never acked), then 3-1 went out.
    builder.pull(12, SUB, &[("3-0", 1, 10)]);
    builder.consume(13, SUB, &[("3-1", 1, 11)]);
    // Key info: 4-0's ack has an unknown outcome, no ok ack at all.
    builder.pull(14, SUB, &[("4-0", 1, 12)]);
    builder.consume(15, SUB, &[("4-1", 1, 13)]);
    builder.ack(14, SUB, Kind::Info, &[pos(1, 12)]);
    let report = check_small(&builder.finish());
    assert_eq!(report.verdict, Verdict::Valid, "{report:#?}");
}

#[test]
fn partition_order_is_judged_per_consumer_and_first_time_deliveries_only() {
    let mut builder = HistoryBuilder::simple();
    builder.publish(1, Kind::Ok, &[("1-0", 0, 0), ("1-1", 0, 1), ("1-2", 0, 2)]);
    builder.pull(10, SUB, &[("1-1", 0, 1)]);
    // Another consumer going back relative to process 10 proves nothing…
    builder.pull(11, SUB, &[("1-0", 0, 0)]);
    // …and neither does a redelivery to process 10.
    builder.pull(10, SUB, &[("1-2", 0, 2), ("1-0", 0, 0)]);
    builder.ack(10, SUB, Kind::Ok, &[pos(0, 0), pos(0, 1), pos(0, 2)]);
    let report = check_small(&builder.finish());
    assert_eq!(report.verdict, Verdict::Valid, "{report:#?}");
    assert!(report.anomalies.is_empty(), "{:#?}", report.anomalies);
}

#[test]
fn one_consumer_seeing_a_partition_go_backwards_without_keys_is_reported_not_fatal() {
    let mut builder = HistoryBuilder::simple();
    builder.publish(1, Kind::Ok, &[("1-0", 0, 0), ("1-1", 0, 1)]);
    let earlier_at = builder.pull(10, SUB, &[("1-1", 0, 1)]);
    let later_at = builder.pull(10, SUB, &[("1-0", 0, 0)]);
    builder.ack(10, SUB, Kind::Ok, &[pos(0, 0), pos(0, 1)]);
    let report = check_small(&builder.finish());
    assert_eq!(report.verdict, Verdict::Valid);
    let anomaly = only(&report);
    assert!(!anomaly.is_fatal());
    assert_eq!(
        anomaly,
        &Anomaly::PartitionOrder(PartitionInversion {
            subscription: SUB.into(),
            topic: "t".into(),
            process: 10,
            partition: 0,
            earlier: first("1-1", 1, earlier_at),
            later: first("1-0", 0, later_at),
        })
    );
}
