//! A data group's state lives under `groups/<g>/`, beside group 0's, and its
//! snapshots are built and installed there; a build that finishes after a
//! newer snapshot was installed leaves the newer one current.

use openraft::{CommittedLeaderId, EntryPayload};
use tempfile::TempDir;

use super::*;
use crate::domain::TopicConfig;
use crate::raft::{GroupId, META_GROUP};

const DATA_GROUP: GroupId = 3;

fn log_id(index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(1, 1), index)
}

fn create_topic(index: u64, name: &str) -> Entry {
    let config = TopicConfig { partitions: 2, max_message_bytes: 1024, retention_seconds: 3600, retention_bytes: 0 };
    let command = Command::CreateTopic { name: name.into(), config, create_time_us: 1, groups: Vec::new() };
    Entry { log_id: log_id(index), payload: EntryPayload::Normal(command) }
}

fn topics(state: &AppliedState) -> Vec<String> {
    state.catalog().topics_after("").map(|topic| topic.name.clone()).collect()
}

#[test]
fn a_data_groups_snapshot_is_built_and_installed_under_its_own_directory() {
    let (sender, receiver) = (TempDir::new().expect("temp dir"), TempDir::new().expect("temp dir"));
    let resources = DbResources::default();
    let meta_group = AppliedState::open(sender.path(), META_GROUP, &resources).expect("open group 0");
    let data_group = AppliedState::open(sender.path(), DATA_GROUP, &resources).expect("open group 3");
    data_group.apply_entry(create_topic(1, "clicks")).expect("apply");
    data_group.apply_entry(create_topic(2, "views")).expect("apply");
    assert!(topics(&meta_group).is_empty(), "group 0 shares nothing with group 3");

    let snapshot = data_group.build_snapshot().expect("build");
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(2)));
    assert!(snapshot.snapshot.path.starts_with(sender.path().join("groups/3/snapshots")));

    let installing = AppliedState::open(receiver.path(), DATA_GROUP, &resources).expect("open");
    installing.install_snapshot(&snapshot.meta, &snapshot.snapshot).expect("install");
    assert_eq!(topics(&installing), vec!["clicks", "views"]);
    assert_eq!(installing.last_applied(), Some(log_id(2)));
    assert!(installing.db().path().starts_with(receiver.path().join("groups/3")));
    drop(installing);

    // Reopened, the installed state is the live one.
    let reopened = AppliedState::open(receiver.path(), DATA_GROUP, &resources).expect("reopen");
    assert_eq!(topics(&reopened), vec!["clicks", "views"]);
    assert!(!receiver.path().join("STATE").exists(), "group 0's pointer is untouched");
}

#[test]
fn a_snapshot_built_while_a_newer_one_was_installed_leaves_the_newer_current() {
    let (leader, follower) = (TempDir::new().expect("temp dir"), TempDir::new().expect("temp dir"));
    let resources = DbResources::default();
    let ahead = AppliedState::open(leader.path(), META_GROUP, &resources).expect("open");
    ahead.apply_entry(create_topic(1, "clicks")).expect("apply");
    ahead.apply_entry(create_topic(2, "views")).expect("apply");
    let newer = ahead.build_snapshot().expect("build at 2");

    let behind = AppliedState::open(follower.path(), META_GROUP, &resources).expect("open");
    behind.apply_entry(create_topic(1, "clicks")).expect("apply");
    // The follower's build checkpoints at 1; the newer snapshot is
    // installed before the build finishes.
    let partial = behind.snapshots.checkpoint(&behind.db()).expect("checkpoint");
    behind.install_snapshot(&newer.meta, &newer.snapshot).expect("install");
    let older = SnapshotMeta { last_log_id: Some(log_id(1)), snapshot_id: "older".into(), ..newer.meta.clone() };
    let (meta, dir) = behind.snapshots.finish(partial.clone(), &older).expect("finish");

    assert_eq!(meta.last_log_id, Some(log_id(2)), "the installed snapshot stays current");
    let (current, _) = behind.snapshots.current().expect("read").expect("a snapshot");
    assert_eq!(current.last_log_id, Some(log_id(2)));
    assert_eq!(crate::raft::snapshot_dir::read_meta(&dir.path).expect("meta").last_log_id, Some(log_id(2)));
    assert!(!partial.exists(), "the outdated build is removed");
}
