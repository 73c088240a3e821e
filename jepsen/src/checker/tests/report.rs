//! What the report says besides the verdict: stats, the unseen curve, and
//! the JSON shape of `anomalies.json`.

use std::collections::BTreeMap;

use super::builder::{check_small, clean, pos, HistoryBuilder, SUB};
use crate::checker::{check, CheckOptions, OpCounts, UnseenSeries};
use crate::history::{FaultStatus, Kind};

#[test]
fn stats_count_operations_faults_and_how_often_values_were_delivered() {
    let mut builder = HistoryBuilder::new(2, &[SUB], &["kill"]);
    builder.fault("kill", FaultStatus::Installed);
    builder.fault("kill", FaultStatus::Healed);
    builder.fault("kill", FaultStatus::Installed);
    builder.fault("pause", FaultStatus::Skipped);
    clean(&mut builder, 4);
    builder.publish(2, Kind::Fail, &[("2-0", 0, 0)]);
    builder.publish(3, Kind::Info, &[("3-0", 0, 0)]);
    builder.invoke_publish(4, &["4-0"], None, false);
    builder.pull(11, SUB, &[("1-0", 0, 0), ("1-1", 1, 0)]);
    builder.pull(11, SUB, &[("1-0", 0, 0)]);
    let report = check_small(&builder.build());
    let stats = &report.stats;
    assert_eq!(stats.publishes, OpCounts { invoked: 7, ok: 4, fail: 1, info: 2 });
    assert_eq!(stats.values_acknowledged, 4);
    assert_eq!(stats.deliveries, 7);
    assert_eq!(stats.acks_ok, 4);
    assert_eq!(stats.faults_installed, BTreeMap::from([("kill".to_string(), 2)]));
    // 1-2 and 1-3 once, 1-1 twice, 1-0 three times.
    let distribution = BTreeMap::from([(1, 2), (2, 1), (3, 1)]);
    assert_eq!(stats.duplicates_delivered, BTreeMap::from([(SUB.to_string(), distribution)]));
    assert_eq!(stats.replica_logs, 0);
}

#[test]
fn unseen_rises_with_acknowledged_publishes_and_falls_with_deliveries() {
    let mut builder = HistoryBuilder::simple();
    builder.publish(1, Kind::Ok, &[("1-0", 0, 0)]); // Completes at 2.
    builder.publish(1, Kind::Ok, &[("1-1", 0, 1)]); // 4.
    builder.pull(10, SUB, &[("1-0", 0, 0)]); // 6.
                                             // Delivered before its publish was acknowledged: never unseen.
    builder.invoke_publish(2, &["2-0"], None, false); // 7.
    builder.pull(10, SUB, &[("2-0", 1, 0), ("1-1", 0, 1)]); // 9.
    builder.complete_publish(2, Kind::Ok, &[("2-0", 1, 0)]); // 10.
    builder.ack(10, SUB, Kind::Ok, &[pos(0, 0)]); // 12.
    let report = check_small(&builder.build());
    let points = vec![(0, 0), (2_000, 1), (4_000, 2), (6_000, 1), (9_000, 0), (12_000, 0)];
    assert_eq!(report.unseen, vec![UnseenSeries { subscription: SUB.into(), points }]);
}

#[test]
fn the_report_serializes_with_kebab_case_kinds_and_lowercase_verdict() {
    let mut builder = HistoryBuilder::simple();
    clean(&mut builder, 4);
    builder.publish(1, Kind::Ok, &[("1-4", 0, 2), ("1-5", 0, 3)]);
    builder.pull(10, SUB, &[("1-5", 0, 3)]);
    builder.pull(10, SUB, &[("nobody-0", 1, 7)]);
    let report = check(&builder.finish(), &CheckOptions::default());
    let json = serde_json::to_value(&report).expect("serialize");
    assert_eq!(json["verdict"], "invalid");
    let kinds: Vec<&str> =
        json["anomalies"].as_array().expect("list").iter().filter_map(|a| a["kind"].as_str()).collect();
    assert_eq!(kinds, vec!["lost", "lost-write", "unexpected"], "{json:#}");
    assert_eq!(json["anomalies"][0]["region"], "middle");
    assert_eq!(json["anomalies"][1]["missing"][0]["position"], serde_json::json!({"partition": 0, "offset": 2}));
    assert_eq!(report.anomaly_counts(), BTreeMap::from([("lost", 1), ("lost-write", 1), ("unexpected", 1)]));
}
