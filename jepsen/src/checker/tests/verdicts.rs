//! When a run is `valid`, and every way it is only `unknown`.

use super::builder::{check_small, clean, HistoryBuilder, SUB};
use crate::checker::{check, Anomaly, CheckOptions, Verdict};
use crate::history::{FaultStatus, Kind};

#[test]
fn a_clean_history_is_valid() {
    let mut builder = HistoryBuilder::new(2, &[SUB], &["kill"]);
    builder.fault("kill", FaultStatus::Installed);
    clean(&mut builder, 10);
    builder.fault("kill", FaultStatus::Healed);
    let report = check_small(&builder.finish());
    assert_eq!(report.verdict, Verdict::Valid, "{report:#?}");
    assert!(report.anomalies.is_empty());
    assert!(report.unknown_reasons.is_empty());
    assert_eq!(report.verdict.exit_code(), 0);
}

#[test]
fn the_default_threshold_makes_ten_acknowledged_publishes_unknown() {
    let mut builder = HistoryBuilder::simple();
    clean(&mut builder, 10);
    let report = check(&builder.finish(), &CheckOptions::default());
    assert_eq!(report.verdict, Verdict::Unknown);
    assert_eq!(report.verdict.exit_code(), 2);
    assert_eq!(report.unknown_reasons.len(), 1, "{:?}", report.unknown_reasons);
    assert!(report.unknown_reasons[0].contains("only 10 acknowledged"), "{:?}", report.unknown_reasons);
}

#[test]
fn without_a_drain_losses_are_not_judged_and_the_verdict_is_unknown() {
    let mut builder = HistoryBuilder::simple();
    clean(&mut builder, 10);
    // Acknowledged, never delivered, above everything delivered: not a hole.
    builder.publish(1, Kind::Ok, &[("1-10", 0, 5)]);
    builder.replicas_agree(&[1, 2, 3]);
    let report = check_small(&builder.build());
    assert_eq!(report.verdict, Verdict::Unknown, "{report:#?}");
    assert!(report.anomalies.is_empty(), "{:#?}", report.anomalies);
    assert_eq!(report.unknown_reasons, vec!["no drained phase: lost messages were not checked".to_string()]);
}

#[test]
fn an_incomplete_drain_is_unknown() {
    let mut builder = HistoryBuilder::simple();
    clean(&mut builder, 10);
    builder.drained(false);
    builder.replicas_agree(&[1, 2, 3]);
    let report = check_small(&builder.build());
    assert_eq!(report.verdict, Verdict::Unknown);
    assert_eq!(report.unknown_reasons, vec!["the drain did not complete: lost messages were not checked".to_string()]);
}

#[test]
fn a_requested_nemesis_that_never_fired_is_unknown() {
    let mut builder = HistoryBuilder::new(2, &[SUB], &["kill", "partition-leader"]);
    builder.fault("kill", FaultStatus::Installed);
    // Skipped or unknown is not fired, and names must match exactly.
    builder.fault("partition-leader", FaultStatus::Skipped);
    builder.fault("partition-leader", FaultStatus::Unknown);
    builder.fault("partition-leaders", FaultStatus::Installed);
    clean(&mut builder, 10);
    let report = check_small(&builder.finish());
    assert_eq!(report.verdict, Verdict::Unknown);
    assert_eq!(
        report.unknown_reasons,
        vec![r#"nemesis "partition-leader" was requested but never installed"#.to_string()]
    );
}

#[test]
fn without_replica_logs_the_verdict_is_unknown() {
    let mut builder = HistoryBuilder::simple();
    clean(&mut builder, 10);
    builder.drained(true);
    let report = check_small(&builder.build());
    assert_eq!(report.verdict, Verdict::Unknown);
    assert_eq!(report.unknown_reasons, vec!["replicas were not compared".to_string()]);
}

#[test]
fn a_fatal_anomaly_is_invalid_even_when_the_run_is_otherwise_unknown() {
    let mut builder = HistoryBuilder::simple();
    clean(&mut builder, 4);
    builder.pull(11, SUB, &[("nobody-1", 1, 9)]);
    let report = check(&builder.build(), &CheckOptions::default());
    assert_eq!(report.verdict, Verdict::Invalid);
    assert_eq!(report.verdict.exit_code(), 1);
    assert!(matches!(super::builder::only(&report), Anomaly::Unexpected(_)));
    // The reasons are still there, for the record.
    assert_eq!(report.unknown_reasons.len(), 3, "{:?}", report.unknown_reasons);
}

#[test]
fn a_completion_without_an_invocation_makes_the_history_unknown() {
    let mut builder = HistoryBuilder::simple();
    clean(&mut builder, 10);
    let mut events = builder.finish();
    let stray = events[1].clone(); // A publish invocation…
    let mut completion = stray;
    completion.kind = Kind::Ok; // …completed by a process with nothing open.
    completion.process = 99;
    completion.index = events.len() as u64;
    events.push(completion);
    let report = check_small(&events);
    assert_eq!(report.verdict, Verdict::Unknown);
    assert_eq!(report.unknown_reasons.len(), 1);
    assert!(report.unknown_reasons[0].contains("without an invocation"), "{:?}", report.unknown_reasons);
}

#[test]
fn events_are_taken_by_index_whatever_their_order_in_the_slice() {
    let mut builder = HistoryBuilder::simple();
    clean(&mut builder, 10);
    let mut events = builder.finish();
    events.reverse();
    assert_eq!(check_small(&events).verdict, Verdict::Valid);
}
