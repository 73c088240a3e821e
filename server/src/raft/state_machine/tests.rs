//! A data group's state lives under `groups/<g>/`, beside group 0's, and its
//! snapshots are built and installed there; a build that finishes after a
//! newer snapshot was installed leaves the newer one current; batches kept in
//! blob files travel with the snapshot, and a deleted topic's are freed.

use openraft::{CommittedLeaderId, EntryPayload};
use tempfile::TempDir;

use super::*;
use crate::domain::{MessageBody, PublishBatch, TopicConfig};
use crate::raft::{GroupId, META_GROUP};

const DATA_GROUP: GroupId = 3;

fn log_id(index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(1, 1), index)
}

fn create_topic(index: u64, name: &str) -> Entry {
    let config = TopicConfig {
        partitions: 2,
        max_message_bytes: 1024,
        retention_seconds: 3600,
        retention_bytes: 0,
        labels: Default::default(),
    };
    let command = Command::CreateTopic { name: name.into(), config, create_time_us: 1, groups: Vec::new() };
    Entry { log_id: log_id(index), payload: EntryPayload::Normal(command) }
}

fn publish(index: u64, topic_id: u64, partition: u32, messages: Vec<MessageBody>) -> Entry {
    let batch = PublishBatch { topic_id, partition, publish_time_us: 5, messages, producer: None };
    Entry { log_id: log_id(index), payload: EntryPayload::Normal(Command::Publish(batch)) }
}

/// The blob files in `dir`.
fn blob_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let entries = std::fs::read_dir(dir).expect("list");
    entries.map(|e| e.expect("entry").path()).filter(|p| p.to_string_lossy().ends_with(".blob")).collect()
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

#[test]
fn a_snapshot_carries_the_batches_kept_in_blob_files_and_installs_them_as_links() {
    let (sender, receiver) = (TempDir::new().expect("temp dir"), TempDir::new().expect("temp dir"));
    let resources = DbResources::default();
    let state = AppliedState::open(sender.path(), META_GROUP, &resources).expect("open");
    state.apply_entry(create_topic(1, "clicks")).expect("apply");
    let topic_id = state.catalog().topic("clicks").expect("created").id;
    // 8 messages of 1,000 bytes: a batch record above the blob threshold.
    let messages: Vec<MessageBody> =
        (0..8u8).map(|n| MessageBody { data: vec![n; 1000].into(), ..MessageBody::default() }).collect();
    let published = state.apply_entry(publish(2, topic_id, 1, messages.clone())).expect("apply");
    assert!(matches!(published, Response::Published { .. }));

    let snapshot = state.build_snapshot().expect("build");
    assert_eq!(blob_files(&snapshot.snapshot.path).len(), 1, "the batch was flushed to a blob file");

    let installing = AppliedState::open(receiver.path(), META_GROUP, &resources).expect("open");
    installing.install_snapshot(&snapshot.meta, &snapshot.snapshot).expect("install");
    let read = installing.db().read_messages(topic_id, 1, 0, 100, usize::MAX).expect("read");
    assert_eq!(read.into_iter().map(|m| m.body).collect::<Vec<_>>(), messages);
    // Immutable files are linked into the live database, not copied: a
    // snapshot of a week of backlog must not need its size again in free disk.
    let installed = blob_files(installing.db().path());
    assert_eq!(installed.len(), 1);
    use std::os::unix::fs::MetadataExt;
    assert!(std::fs::metadata(&installed[0]).expect("stat").nlink() >= 2, "{} is a copy", installed[0].display());
}

#[test]
fn deleting_a_topic_frees_the_blob_files_of_its_batches() {
    let dir = TempDir::new().expect("temp dir");
    let state = AppliedState::open(dir.path(), META_GROUP, &DbResources::default()).expect("open");
    state.apply_entry(create_topic(1, "clicks")).expect("apply");
    let topic_id = state.catalog().topic("clicks").expect("created").id;
    let messages = vec![MessageBody { data: vec![7; 8000].into(), ..MessageBody::default() }];
    state.apply_entry(publish(2, topic_id, 0, messages)).expect("apply");
    state.db().flush().expect("flush");
    assert_eq!(blob_files(state.db().path()).len(), 1);

    let delete = Command::DeleteTopic { name: "clicks".into() };
    state.apply_entry(Entry { log_id: log_id(3), payload: EntryPayload::Normal(delete) }).expect("apply");
    assert_eq!(blob_files(state.db().path()).len(), 0, "the deleted topic's batches are compacted away at once");
}
