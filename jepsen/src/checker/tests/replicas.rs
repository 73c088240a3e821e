//! `replica-divergence`: nodes' logs after healing.

use super::builder::{check_small, only, HistoryBuilder, SUB};
use crate::checker::{Anomaly, NodeEntry, OffsetDivergence, ReplicaDivergence, Verdict};
use crate::history::Kind;

/// Three acknowledged values in partition 0, delivered and acked, drained.
fn acknowledged_three() -> HistoryBuilder {
    let mut builder = HistoryBuilder::new(1, &[SUB], &[]);
    let at = [("1-0", 0, 0), ("1-1", 0, 1), ("1-2", 0, 2)];
    builder.publish(1, Kind::Ok, &at);
    builder.consume(10, SUB, &at);
    builder.drained(true);
    builder
}

fn entry(node: u64, value: Option<&str>) -> NodeEntry {
    NodeEntry { node, value: value.map(str::to_string) }
}

#[test]
fn a_node_missing_an_acknowledged_message_is_replica_divergence() {
    let mut builder = acknowledged_three();
    builder.replica(1, 0, 0, &[(0, "1-0"), (1, "1-1"), (2, "1-2")]);
    builder.replica(2, 0, 0, &[(0, "1-0"), (1, "1-1"), (2, "1-2")]);
    builder.replica(3, 0, 0, &[(0, "1-0"), (2, "1-2")]);
    let report = check_small(&builder.build());
    assert_eq!(report.verdict, Verdict::Invalid);
    assert_eq!(
        only(&report),
        &Anomaly::ReplicaDivergence(ReplicaDivergence {
            topic: "t".into(),
            partition: 0,
            count: 1,
            offsets: vec![OffsetDivergence {
                offset: 1,
                acknowledged: Some("1-1".into()),
                nodes: vec![entry(1, Some("1-1")), entry(2, Some("1-1")), entry(3, None)],
            }],
        })
    );
}

#[test]
fn nodes_holding_different_values_at_one_offset_diverge() {
    let mut builder = acknowledged_three();
    // Offset 3 was never acknowledged, but two nodes disagree about it.
    builder.replica(1, 0, 0, &[(0, "1-0"), (1, "1-1"), (2, "1-2"), (3, "1-3")]);
    builder.replica(2, 0, 0, &[(0, "1-0"), (1, "1-1"), (2, "1-2"), (3, "2-0")]);
    builder.replica(3, 0, 0, &[(0, "1-0"), (1, "1-1"), (2, "1-2")]);
    let report = check_small(&builder.build());
    assert_eq!(report.verdict, Verdict::Invalid);
    let kinds: Vec<&str> = report.anomalies.iter().map(Anomaly::kind).collect();
    // Both are true: the position has two values, and the replicas disagree.
    assert_eq!(kinds, vec!["inconsistent-offsets", "replica-divergence"], "{report:#?}");
    let Anomaly::ReplicaDivergence(divergence) = &report.anomalies[1] else { unreachable!() };
    assert_eq!(
        divergence.offsets,
        vec![OffsetDivergence {
            offset: 3,
            acknowledged: None,
            nodes: vec![entry(1, Some("1-3")), entry(2, Some("2-0")), entry(3, None)],
        }]
    );
}

#[test]
fn logs_ending_at_different_offsets_or_trimmed_by_retention_agree() {
    let mut builder = acknowledged_three();
    // Node 1 was read after one more (unacknowledged) entry was committed;
    // node 3's retention removed offsets below 2.
    builder.replica(1, 0, 0, &[(0, "1-0"), (1, "1-1"), (2, "1-2"), (3, "1-3")]);
    builder.replica(2, 0, 0, &[(0, "1-0"), (1, "1-1"), (2, "1-2")]);
    builder.replica(3, 0, 2, &[(2, "1-2")]);
    let report = check_small(&builder.build());
    assert_eq!(report.verdict, Verdict::Valid, "{report:#?}");
}
