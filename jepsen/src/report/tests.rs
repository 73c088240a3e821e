//! The report folder from small hand-built histories: every file is written,
//! the plots are well-formed SVG with the fault windows shaded and labelled,
//! and an empty history still gives every file.

use std::path::Path;

use super::timeline::{Function, Timeline};
use crate::checker::{check, CheckOptions};
use crate::history::{
    Delivery, Event, Fault, FaultStatus, Kind, Op, Phase, PhaseName, Position, Publish, Pull, Run, Settle,
    SubscriptionInfo, TopicInfo, NEMESIS_PROCESS,
};

const FILES: [&str; 5] = ["anomalies.json", "summary.txt", "rate.svg", "latency.svg", "unseen.svg"];
const PLOTS: [&str; 3] = ["rate.svg", "latency.svg", "unseen.svg"];

/// Appends events with the next index at the given times.
#[derive(Default)]
struct History {
    events: Vec<Event>,
}

impl History {
    fn push(&mut self, time_ms: u64, process: u64, kind: Kind, op: Op) {
        let index = self.events.len() as u64;
        self.events.push(Event { index, time_us: time_ms * 1_000, process, kind, op });
    }

    fn publish(&mut self, process: u64, value: &str, invoke_ms: u64, complete_ms: u64, kind: Kind, offset: u64) {
        let mut publish = Publish {
            topic: "t".into(),
            values: vec![value.into()],
            idempotent: true,
            ordering_key: None,
            positions: Vec::new(),
        };
        self.push(invoke_ms, process, Kind::Invoke, Op::Publish(publish.clone()));
        if kind == Kind::Ok {
            publish.positions = vec![Position { partition: 0, offset }];
        }
        self.push(complete_ms, process, kind, Op::Publish(publish));
    }

    /// Pulls `values` (at offsets from 0) and acks them, both `ok`.
    fn consume(&mut self, process: u64, values: &[&str], invoke_ms: u64) {
        let messages: Vec<Delivery> = values
            .iter()
            .enumerate()
            .map(|(offset, value)| Delivery {
                value: value.to_string(),
                position: Position { partition: 0, offset: offset as u64 },
                attempt: 1,
                ordering_key: None,
            })
            .collect();
        let positions = messages.iter().map(|message| message.position).collect();
        self.push(invoke_ms, process, Kind::Invoke, Op::Pull(Pull { subscription: "s".into(), messages: Vec::new() }));
        self.push(invoke_ms + 40, process, Kind::Ok, Op::Pull(Pull { subscription: "s".into(), messages }));
        let settle = Settle { subscription: "s".into(), positions };
        self.push(invoke_ms + 50, process, Kind::Invoke, Op::Ack(settle.clone()));
        self.push(invoke_ms + 52, process, Kind::Ok, Op::Ack(settle));
    }

    fn fault(&mut self, time_ms: u64, name: &str, nodes: &[u64], status: FaultStatus) {
        let fault = Fault { name: name.into(), nodes: nodes.to_vec(), status, detail: "SIGKILL".into() };
        self.push(time_ms, NEMESIS_PROCESS, Kind::Info, Op::Fault(fault));
    }

    fn phase(&mut self, time_ms: u64, name: PhaseName, complete: Option<bool>) {
        self.push(time_ms, NEMESIS_PROCESS, Kind::Info, Op::Phase(Phase { name, complete }));
    }
}

/// A few seconds of a run: publishes ok and info, a kill of node 2 from
/// 1.5 s to 3 s, consumption, then heal, healed and a complete drain.
fn small_run() -> Vec<Event> {
    let mut history = History::default();
    let run = Run {
        nodes: 3,
        network: "loopback".into(),
        nemeses: vec!["kill".into()],
        seed: 7,
        topics: vec![TopicInfo { name: "t".into(), partitions: 1 }],
        subscriptions: vec![SubscriptionInfo { name: "s".into(), topic: "t".into() }],
    };
    history.push(0, NEMESIS_PROCESS, Kind::Info, Op::Run(run));
    history.publish(1, "1-0", 100, 103, Kind::Ok, 0);
    history.publish(1, "1-1", 600, 612, Kind::Ok, 1);
    history.fault(1_500, "kill", &[2], FaultStatus::Installed);
    history.publish(1, "1-2", 1_600, 2_600, Kind::Info, 0);
    history.publish(2, "2-0", 2_700, 3_200, Kind::Ok, 2);
    history.fault(3_000, "kill", &[2], FaultStatus::Healed);
    history.phase(3_500, PhaseName::Heal, None);
    history.phase(3_600, PhaseName::Healed, None);
    history.consume(10, &["1-0", "1-1", "2-0"], 3_700);
    history.phase(4_000, PhaseName::Drained, Some(true));
    history.events
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("reading {name}: {e}"))
}

/// Every opened tag is closed in order and every `&` starts an entity: what
/// an SVG viewer needs, without an XML crate.
fn assert_well_formed(name: &str, svg: &str) {
    assert!(svg.starts_with("<svg "), "{name} starts with {:?}", &svg[..svg.len().min(20)]);
    let mut open: Vec<&str> = Vec::new();
    for tag in svg.split('<').skip(1) {
        let tag = tag.split('>').next().unwrap_or_default();
        if let Some(closing) = tag.strip_prefix('/') {
            assert_eq!(open.pop(), Some(closing.trim()), "{name}: </{closing}> closes the wrong tag");
        } else if !tag.ends_with('/') {
            open.push(tag.split_whitespace().next().unwrap_or_default());
        }
    }
    assert!(open.is_empty(), "{name}: unclosed {open:?}");
    for entity in svg.split('&').skip(1) {
        let known = ["amp;", "lt;", "gt;", "quot;", "apos;"];
        assert!(known.iter().any(|e| entity.starts_with(e)), "{name}: bare & before {:?}", &entity[..10]);
    }
}

#[test]
fn a_run_gives_every_file_with_the_fault_window_shaded_and_labelled() {
    let events = small_run();
    let report = check(&events, &CheckOptions { min_acknowledged_publishes: 1 });
    let dir = tempfile::tempdir().expect("tempdir");
    super::write(dir.path(), &events, &report).expect("write");

    for name in FILES {
        assert!(dir.path().join(name).is_file(), "{name} missing");
    }
    for name in PLOTS {
        let svg = read(dir.path(), name);
        assert_well_formed(name, &svg);
        assert!(svg.contains(">kill</text>"), "{name} labels the fault window");
        assert!(svg.contains(r#"fill-opacity="0.13""#) && svg.contains("<rect"), "{name} shades the fault window");
        for phase in ["heal", "healed", "drained"] {
            assert!(svg.contains(&format!(">{phase}</text>")), "{name} marks {phase}");
        }
        assert!(!svg.contains("no data"), "{name} has data");
    }
    assert!(read(dir.path(), "unseen.svg").contains(">s</text>"), "the unseen legend names the subscription");

    let anomalies: serde_json::Value = serde_json::from_str(&read(dir.path(), "anomalies.json")).expect("json");
    assert_eq!(anomalies["verdict"], report.verdict.as_str());
    let summary = read(dir.path(), "summary.txt");
    assert!(summary.starts_with(&format!("verdict: {}\n", report.verdict.as_str())), "{summary}");
    assert!(summary.contains("kill: 1 / 0 / 0 / 1"), "{summary}");
    assert!(summary.contains("publishes: 4 invoked, 3 ok, 0 fail, 1 info"), "{summary}");
}

#[test]
fn an_empty_history_still_gives_every_file_saying_no_data() {
    let report = check(&[], &CheckOptions::default());
    let dir = tempfile::tempdir().expect("tempdir");
    super::write(dir.path(), &[], &report).expect("write");
    for name in PLOTS {
        let svg = read(dir.path(), name);
        assert_well_formed(name, &svg);
        assert!(svg.contains("no data"), "{name} says no data");
    }
    assert!(read(dir.path(), "summary.txt").starts_with("verdict: unknown\n"));
}

#[test]
fn operations_pair_by_process_and_unfinished_ones_are_left_out() {
    let mut events = small_run();
    // Process 3 invokes and never completes: no completion time to plot.
    let publish = Publish {
        topic: "t".into(),
        values: vec!["3-0".into()],
        idempotent: true,
        ordering_key: None,
        positions: vec![],
    };
    events.push(Event { index: 99, time_us: 4_100_000, process: 3, kind: Kind::Invoke, op: Op::Publish(publish) });
    let timeline = Timeline::build(&events);
    let publishes: Vec<_> = timeline.ops.iter().filter(|op| op.f == Function::Publish).collect();
    assert_eq!(publishes.len(), 4);
    assert_eq!((publishes[2].outcome, publishes[2].latency_us()), (Kind::Info, 1_000_000));
    let pull = timeline.ops.iter().find(|op| op.f == Function::Pull).expect("pull");
    assert_eq!((pull.values, pull.latency_us()), (3, 40_000));
    assert_eq!(timeline.end_us, 4_100_000);
}

#[test]
fn a_fault_window_ends_at_its_own_heal_or_at_the_end_of_the_history() {
    let mut history = History::default();
    history.fault(1_000, "partition", &[1], FaultStatus::Installed);
    history.fault(2_000, "partition", &[2], FaultStatus::Installed);
    history.fault(2_500, "pause", &[3], FaultStatus::Skipped);
    history.fault(3_000, "partition", &[2], FaultStatus::Healed);
    history.fault(4_000, "kill", &[1], FaultStatus::Installed);
    history.fault(5_000, "kill", &[3], FaultStatus::Healed);
    history.phase(6_000, PhaseName::Drained, Some(false));
    let timeline = Timeline::build(&history.events);
    let windows: Vec<(&str, &[u64], u64, u64, bool)> = timeline
        .faults
        .iter()
        .map(|w| (w.name.as_str(), w.nodes.as_slice(), w.start_us / 1_000, w.end_us / 1_000, w.healed))
        .collect();
    assert_eq!(
        windows,
        [
            ("partition", &[1][..], 1_000, 6_000, false),
            ("partition", &[2][..], 2_000, 3_000, true),
            // Healed under other nodes: the name still closes it.
            ("kill", &[1][..], 4_000, 5_000, true),
        ]
    );
    assert_eq!(timeline.phases[0].label, "drained (incomplete)");
}
