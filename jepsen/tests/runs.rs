//! Short runs of the real harness against real `ferryd` processes, in network
//! namespaces and on loopback behind the fault-injecting proxies: a correct
//! server must come out valid under faults (with and without data groups), and a server that acknowledges
//! before commit, or skips fsync, must come out invalid — a harness that has
//! never said "invalid" proves nothing.
//!
//! The namespace runs need root (namespaces, iptables) and FUSE (power loss);
//! `make check` runs as root and `scripts/ensure-build-deps` installs the tools.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use ferry_jepsen::cluster::net::namespaces_available;

/// One run at a time: each is a whole cluster, and several at once on a
/// small machine would time out operations rather than test anything.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The harness's flags for the data groups a run forms its cluster with
/// unless it names a number: 4, as the black-box suite (`ferry_tests::
/// DATA_GROUPS`), so the smokes run the path a default cluster runs (placed
/// partitions, forwarding) without 31 groups a node on a 2-core machine.
const DATA_GROUPS: [&str; 4] = ["--ferryd-arg", "--data-groups", "--ferryd-arg", "4"];

/// Runs `ferry-jepsen run` and returns its exit code and what it printed on stderr.
fn run(reports: &Path, args: &[&str]) -> (i32, String) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let groups = if args.contains(&"--data-groups") { &[][..] } else { &DATA_GROUPS[..] };
    let output = Command::new(env!("CARGO_BIN_EXE_ferry-jepsen"))
        .arg("run")
        .arg("--reports")
        .arg(reports)
        .args(args)
        .args(groups)
        .output()
        .expect("ferry-jepsen runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code().unwrap_or(-1), stderr)
}

fn require_namespaces() {
    assert!(
        namespaces_available(),
        "these tests need root with ip and iptables (scripts/ensure-build-deps installs them)"
    );
}

#[test]
fn a_correct_cluster_under_kills_partitions_and_delays_is_valid() {
    require_namespaces();
    let reports = tempfile::tempdir().expect("temp dir");
    let (code, stderr) = run(
        reports.path(),
        &["--nodes", "3", "--nemesis", "kill,partition,delay", "--time-limit", "30s", "--seed", "11"],
    );
    assert_eq!(code, 0, "expected valid:\n{stderr}");
    let report = only_report(reports.path());
    for file in ["history.jsonl", "anomalies.json", "summary.txt", "n1.log"] {
        assert!(report.join(file).is_file(), "{file} missing from the report folder");
    }
}

#[test]
fn a_cluster_with_data_groups_under_kills_partitions_and_leader_moves_is_valid() {
    require_namespaces();
    let reports = tempfile::tempdir().expect("temp dir");
    // The topic's partitions in data groups: publishes forwarded to each
    // partition's leader, pulls merged from the groups.
    let (code, stderr) = run(
        reports.path(),
        &[
            "--nodes",
            "3",
            "--nemesis",
            "kill,partition,transfer-leader",
            "--time-limit",
            "30s",
            "--seed",
            "7",
            "--ferryd-arg",
            "--data-groups",
            "--ferryd-arg",
            "4",
        ],
    );
    assert_eq!(code, 0, "expected valid:\n{stderr}");
}

#[test]
fn a_server_that_acks_before_commit_is_caught() {
    require_namespaces();
    let reports = tempfile::tempdir().expect("temp dir");
    let (code, stderr) = run(
        reports.path(),
        &[
            "--nodes",
            "3",
            "--nemesis",
            "partition-leader",
            "--time-limit",
            "25s",
            "--seed",
            "5",
            "--ferryd-arg=--unsafe-ack-before-commit",
        ],
    );
    assert_eq!(code, 1, "expected invalid:\n{stderr}");
    assert!(stderr.contains("anomaly lost"), "the early acks were lost writes:\n{stderr}");
}

#[test]
fn on_loopback_a_correct_cluster_under_partitions_loss_and_delays_is_valid() {
    let reports = tempfile::tempdir().expect("temp dir");
    let (code, stderr) = run(
        reports.path(),
        &[
            "--network",
            "loopback",
            "--nodes",
            "3",
            "--nemesis",
            "partition,loss,delay",
            "--time-limit",
            "30s",
            "--seed",
            "11",
            // The single-group path too (clusters formed before data groups).
            "--ferryd-arg",
            "--data-groups",
            "--ferryd-arg",
            "0",
        ],
    );
    assert_eq!(code, 0, "expected valid:\n{stderr}");
    let summary = std::fs::read_to_string(only_report(reports.path()).join("summary.txt")).expect("summary");
    assert!(summary.contains("on loopback"), "the run was not on loopback:\n{summary}");
}

/// The proxies' cuts are real: an isolated leader's early acks are lost.
#[test]
fn on_loopback_a_server_that_acks_before_commit_is_caught() {
    let reports = tempfile::tempdir().expect("temp dir");
    let (code, stderr) = run(
        reports.path(),
        &[
            "--network",
            "loopback",
            "--nodes",
            "3",
            "--nemesis",
            "partition-leader",
            "--time-limit",
            "25s",
            "--seed",
            "5",
            "--ferryd-arg=--unsafe-ack-before-commit",
        ],
    );
    assert_eq!(code, 1, "expected invalid:\n{stderr}");
    assert!(stderr.contains("anomaly lost"), "the early acks were lost writes:\n{stderr}");
}

#[test]
fn a_correct_cluster_keeps_everything_acknowledged_across_power_losses_and_full_disks() {
    require_namespaces();
    let reports = tempfile::tempdir().expect("temp dir");
    let (code, stderr) = run(
        reports.path(),
        &["--nodes", "3", "--nemesis", "power-loss,power-loss-all,disk-full", "--time-limit", "30s", "--seed", "2"],
    );
    assert_eq!(code, 0, "expected valid:\n{stderr}");
}

#[test]
fn a_server_that_skips_fsync_loses_acknowledged_messages_to_a_power_loss_and_is_caught() {
    require_namespaces();
    let reports = tempfile::tempdir().expect("temp dir");
    let (code, stderr) = run(
        reports.path(),
        &[
            "--nodes",
            "3",
            "--nemesis",
            "power-loss-all",
            "--time-limit",
            "20s",
            "--seed",
            "4",
            "--ferryd-arg=--unsafe-skip-fsync",
        ],
    );
    assert_eq!(code, 1, "expected invalid:\n{stderr}");
    // Consumers see the loss only if some lost message was still undelivered
    // at the power cut; the replicas, which all lost it, always show it.
    assert!(
        stderr.contains("anomaly lost") || stderr.contains("anomaly replica-divergence"),
        "acknowledged messages were lost:\n{stderr}"
    );
}

fn only_report(reports: &Path) -> std::path::PathBuf {
    let mut dirs: Vec<_> = std::fs::read_dir(reports).expect("reports").map(|e| e.expect("entry").path()).collect();
    assert_eq!(dirs.len(), 1, "one run, one report folder");
    dirs.remove(0)
}
