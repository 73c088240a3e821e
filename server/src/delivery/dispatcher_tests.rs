//! The dispatcher against a real state database: one leadership term's
//! leases at a time, and a late call of an older term, or of a copy of the
//! subscription from before a seek, leaves them alone.

use openraft::{CommittedLeaderId, EntryPayload};
use tempfile::TempDir;

use super::*;
use crate::clock::SystemClock;
use crate::domain::{Command, MessageBody, PublishBatch, Seek, SubscriptionConfig, TopicConfig};
use crate::raft::type_config::{Entry, LogId};
use crate::raft::META_GROUP;
use crate::storage::db::DbResources;

fn entry(index: u64, command: Command) -> Entry {
    Entry { log_id: LogId::new(CommittedLeaderId::new(1, 1), index), payload: EntryPayload::Normal(command) }
}

/// A node's state with topic `t` (one partition, three messages) and subscription `s` on it.
fn state_with_three_messages(dir: &TempDir) -> Arc<AppliedState> {
    let state = AppliedState::open(dir.path(), META_GROUP, &DbResources::default()).expect("open");
    let config = TopicConfig {
        partitions: 1,
        max_message_bytes: 1024,
        retention_seconds: 3600,
        retention_bytes: 0,
        labels: Default::default(),
    };
    let topic = Command::CreateTopic { name: "t".into(), config, create_time_us: 1, groups: Vec::new() };
    state.apply_entry(entry(1, topic)).expect("create topic");
    let config = SubscriptionConfig { ack_deadline_seconds: 60, ..Default::default() };
    let subscription = Command::CreateSubscription { name: "s".into(), topic: "t".into(), config, create_time_us: 1 };
    state.apply_entry(entry(2, subscription)).expect("create subscription");
    let topic_id = state.catalog().topic("t").expect("created").id;
    let messages = (0..3u8).map(|n| MessageBody { data: vec![n].into(), ..MessageBody::default() }).collect();
    let batch = PublishBatch { topic_id, partition: 0, publish_time_us: 5, messages, producer: None };
    state.apply_entry(entry(3, Command::Publish(batch))).expect("publish");
    state
}

#[test]
fn a_late_call_of_an_older_term_leaves_the_current_terms_leases_alone() {
    let dir = TempDir::new().expect("temp dir");
    let dispatcher = Dispatcher::new(state_with_three_messages(&dir), Arc::new(SystemClock), 100);
    let subscription = dispatcher.subscription("s").expect("subscription");
    let lessee = Lessee { consumer: 1, count_max: 10, bytes_max: usize::MAX };
    assert_eq!(dispatcher.lease(7, "s", lessee).expect("lease").deliveries.len(), 3);
    // A stream of term 5 (this node led then, lost it, and leads again) ends now.
    dispatcher.drop_consumer(5, &subscription, 99);
    assert_eq!(dispatcher.leased(7, &subscription), 3, "term 7's leases are still there");
    let again = dispatcher.lease(7, "s", Lessee { consumer: 2, ..lessee }).expect("lease");
    assert!(again.deliveries.is_empty(), "nothing leased in term 7 is delivered twice: {:?}", again.deliveries);
}

#[test]
fn a_late_call_with_a_copy_from_before_a_seek_leaves_the_current_epochs_leases_alone() {
    let dir = TempDir::new().expect("temp dir");
    let state = state_with_three_messages(&dir);
    let dispatcher = Dispatcher::new(Arc::clone(&state), Arc::new(SystemClock), 100);
    // An ack waiting for its commit holds this copy.
    let before_seek = dispatcher.subscription("s").expect("subscription");
    let seek = Seek { subscription_id: before_seek.id, floors: vec![0] };
    state.apply_entry(entry(4, Command::Seek(seek))).expect("seek");
    let current = dispatcher.subscription("s").expect("subscription");
    assert_eq!(current.seek_epoch, before_seek.seek_epoch + 1);
    let lessee = Lessee { consumer: 1, count_max: 10, bytes_max: usize::MAX };
    assert_eq!(dispatcher.lease(7, "s", lessee).expect("lease").deliveries.len(), 3);
    // The ack's commit ends now, with the copy from before the seek.
    dispatcher.finish_ack(7, &before_seek, &[(0, 0)], false);
    assert_eq!(dispatcher.leased(7, &current), 3, "the current epoch's leases are still there");
    let again = dispatcher.lease(7, "s", Lessee { consumer: 2, ..lessee }).expect("lease");
    assert!(again.deliveries.is_empty(), "nothing leased since the seek is delivered twice: {:?}", again.deliveries);
}
