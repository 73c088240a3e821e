//! Data groups: the layout, leaving marks, syncing a data group's catalog
//! with group 0's, and what a group turns down for partitions it does not hold.

use super::*;

fn layout(data_groups: u32) -> Layout {
    Layout { data_groups, voters: BTreeMap::from([(1, "a:1".into()), (2, "b:1".into()), (3, "c:1".into())]) }
}

#[test]
fn the_first_layout_stays_and_another_number_of_groups_is_turned_down() {
    let mut model = Model::default();
    let (response, writes) = model.run(Command::SetLayout(layout(4)));
    assert_eq!((response, writes), (Response::LayoutSet(layout(4)), 1));

    let (response, writes) = model.run(Command::SetLayout(layout(4)));
    assert_eq!((response, writes), (Response::LayoutSet(layout(4)), 0), "the same layout again changes nothing");

    let (response, writes) = model.run(Command::SetLayout(layout(9)));
    assert_eq!((response, writes), (Response::Rejected(Rejection::LayoutFixed { data_groups: 4 }), 0));
    assert_eq!(model.catalog.layout, Some(layout(4)));
}

#[test]
fn a_cluster_holding_topics_already_keeps_everything_in_group_0() {
    let mut model = Model::default();
    model.create_topic("formed-before-data-groups", 2);
    let (response, _) = model.run(Command::SetLayout(layout(4)));
    assert_eq!(response, Response::LayoutSet(layout(0)));
    assert_eq!(model.catalog.layout.map(|l| l.data_groups), Some(0));
}

#[test]
fn a_leaving_mark_is_set_once_and_cleared_once() {
    let mut model = Model::default();
    let leaving = |ids: &[u64]| Response::Leaving(ids.iter().copied().collect());
    assert_eq!(model.run(Command::SetLeaving { node_id: 3, leaving: true }), (leaving(&[3]), 1));
    assert_eq!(model.run(Command::SetLeaving { node_id: 3, leaving: true }), (leaving(&[3]), 0), "marked already");
    assert_eq!(model.run(Command::SetLeaving { node_id: 2, leaving: true }), (leaving(&[2, 3]), 1));
    assert_eq!(model.run(Command::SetLeaving { node_id: 3, leaving: false }), (leaving(&[2]), 1));
    assert_eq!(model.run(Command::SetLeaving { node_id: 3, leaving: false }), (leaving(&[2]), 0), "cleared already");
    assert_eq!(model.catalog.leaving, [2].into());
}

/// Group 0's catalog holding topic "t" (id 1, partitions in groups 3, 5, 3)
/// with subscription "s" (id 1), and a sync that installs both in a group
/// that last synced to `expect`.
fn placed_topic_sync(expect: u64, meta_index: u64) -> SyncGroup {
    let mut meta = Model::default();
    let config = TopicConfig {
        partitions: 3,
        max_message_bytes: 1024,
        retention_seconds: 60,
        retention_bytes: 0,
        labels: Default::default(),
    };
    let command = Command::CreateTopic { name: "t".into(), config, create_time_us: 1, groups: vec![3, 5, 3] };
    assert!(matches!(meta.run(command).0, Response::TopicCreated(_)));
    meta.create_subscription("s", "t");
    let topic = meta.catalog.topic("t").expect("topic").clone();
    let subscription = meta.catalog.subscription("s").expect("subscription").clone();
    SyncGroup {
        expect_meta_index: expect,
        meta_index,
        install_topics: vec![topic],
        install_subscriptions: vec![subscription],
        ..SyncGroup::default()
    }
}

fn data_group(group: u32) -> Model {
    Model { catalog: Catalog::for_group(group), ..Model::default() }
}

#[test]
fn a_sync_installs_topics_and_subscriptions_once_and_a_stale_one_changes_nothing() {
    let mut model = data_group(3);
    let (response, writes) = model.run(Command::SyncGroup(placed_topic_sync(0, 10)));
    assert_eq!(response, Response::Synced { meta_index: 10 });
    assert!(writes > 0);
    let topic = model.catalog.topic("t").expect("installed").clone();
    assert_eq!(model.catalog.owned(&topic).collect::<Vec<_>>(), vec![0, 2]);
    assert_eq!(model.catalog.meta_index, 10);

    // The same sync again, or one computed before it: nothing changes.
    let before = model.catalog.clone();
    let stale = Response::Rejected(Rejection::StaleSync { meta_index: 10 });
    assert_eq!(model.run(Command::SyncGroup(placed_topic_sync(0, 10))), (stale.clone(), 0));
    assert_eq!(model.run(Command::SyncGroup(placed_topic_sync(4, 11))), (stale, 0));
    assert_eq!(model.catalog, before);

    // A sync from the current index that installs what is there already
    // only moves the index.
    let (response, writes) = model.run(Command::SyncGroup(placed_topic_sync(10, 12)));
    assert_eq!((response, writes), (Response::Synced { meta_index: 12 }, 1));
}

#[test]
fn a_subscription_synced_later_starts_at_the_end_of_each_owned_partition() {
    let mut model = data_group(3);
    let mut sync = placed_topic_sync(0, 10);
    let subscription = sync.install_subscriptions.remove(0);
    model.run(Command::SyncGroup(sync));
    assert!(matches!(model.publish(1, 2, 5, 4), Response::Published { first_offset: 0, .. }));
    let later = SyncGroup {
        expect_meta_index: 10,
        meta_index: 11,
        install_subscriptions: vec![subscription],
        ..SyncGroup::default()
    };
    model.run(Command::SyncGroup(later));
    assert_eq!((model.floor(1, 0), model.floor(1, 2)), (0, 4), "floors at each owned partition's end");
}

#[test]
fn a_sync_removes_a_topic_with_its_subscriptions_and_messages() {
    let mut model = data_group(3);
    model.run(Command::SyncGroup(placed_topic_sync(0, 10)));
    model.publish(1, 0, 5, 3);
    let remove = SyncGroup { expect_meta_index: 10, meta_index: 20, remove_topics: vec![1], ..SyncGroup::default() };
    assert_eq!(model.run(Command::SyncGroup(remove)).0, Response::Synced { meta_index: 20 });
    assert_eq!((model.catalog.topic_count(), model.catalog.subscription_count()), (0, 0));
    assert!(model.stored.messages.is_empty());
}

#[test]
fn a_command_for_a_partition_held_by_another_group_is_turned_down() {
    let mut model = data_group(3);
    model.run(Command::SyncGroup(placed_topic_sync(0, 10)));
    let elsewhere = Rejection::PartitionNotInGroup { topic_id: 1, partition: 1, group: 3, holder: 5 };
    assert_eq!(model.publish(1, 1, 5, 2), Response::Rejected(elsewhere.clone()));
    assert_eq!(model.ack(1, 1, &[0]), Response::Rejected(elsewhere.clone()));
    let trim = Command::Trim(Trim { topic_id: 1, partition: 1, start_offset: 0 });
    assert_eq!(model.run(trim).0, Response::Rejected(elsewhere));
    assert!(matches!(model.publish(1, 2, 5, 2), Response::Published { .. }), "partition 2 is held here");

    // Group 0 keeps the catalog of record but holds none of these partitions.
    let mut meta = Model::default();
    let sync = placed_topic_sync(0, 10);
    meta.catalog
        .insert_topic(TopicState { partitions: vec![PartitionState::default(); 3], ..sync.install_topics[0].clone() });
    let in_group_3 = Rejection::PartitionNotInGroup { topic_id: 1, partition: 0, group: 0, holder: 3 };
    assert_eq!(meta.publish(1, 0, 5, 1), Response::Rejected(in_group_3));
}

#[test]
fn a_seek_moves_only_the_partitions_the_group_holds() {
    let mut model = data_group(3);
    model.run(Command::SyncGroup(placed_topic_sync(0, 10)));
    model.publish(1, 0, 5, 6);
    model.publish(1, 2, 5, 6);
    let seek = Seek { subscription_id: 1, floors: vec![4, 4, 2] };
    assert_eq!(model.run(Command::Seek(seek)).0, Response::Sought);
    assert_eq!((model.floor(1, 0), model.floor(1, 1), model.floor(1, 2)), (4, 0, 2));
}

#[test]
fn a_data_group_syncs_to_the_topics_it_holds_partitions_of_and_their_subscriptions() {
    let mut meta = Model::default();
    let config = TopicConfig {
        partitions: 2,
        max_message_bytes: 1024,
        retention_seconds: 60,
        retention_bytes: 0,
        labels: Default::default(),
    };
    for (name, groups) in [("placed", vec![3, 5]), ("elsewhere", vec![5, 5]), ("legacy", Vec::new())] {
        let command = Command::CreateTopic { name: name.into(), config: config.clone(), create_time_us: 1, groups };
        assert!(matches!(meta.run(command).0, Response::TopicCreated(_)));
    }
    for (subscription, topic) in [("on-placed", "placed"), ("on-elsewhere", "elsewhere"), ("on-legacy", "legacy")] {
        meta.create_subscription(subscription, topic);
    }
    let mut group = data_group(3);
    let sync = sync::sync_for(&meta.catalog, 10, &group.catalog).expect("something to install");
    let names = |sync: &SyncGroup| -> (Vec<String>, Vec<String>) {
        let topics = sync.install_topics.iter().map(|t| t.name.clone()).collect();
        (topics, sync.install_subscriptions.iter().map(|s| s.name.clone()).collect())
    };
    assert_eq!(names(&sync), (vec!["placed".to_owned()], vec!["on-placed".to_owned()]));
    assert_eq!(group.run(Command::SyncGroup(sync)).0, Response::Synced { meta_index: 10 });
    assert_eq!(sync::sync_for(&meta.catalog, 11, &group.catalog), None, "in sync");

    // Deleted in group 0 and created again under the same name: a new topic.
    meta.run(Command::DeleteTopic { name: "placed".into() });
    let command = Command::CreateTopic { name: "placed".into(), config, create_time_us: 2, groups: vec![5, 3] };
    meta.run(command);
    let sync = sync::sync_for(&meta.catalog, 12, &group.catalog).expect("a change");
    assert_eq!(
        (sync.expect_meta_index, sync.remove_topics.clone(), sync.remove_subscriptions.clone()),
        (10, vec![1], vec![1])
    );
    assert_eq!(names(&sync), (vec!["placed".to_owned()], Vec::new()));
    group.run(Command::SyncGroup(sync));
    let topic = group.catalog.topic("placed").expect("re-created");
    assert_eq!((topic.id, group.catalog.subscription_count()), (4, 0));
    assert_eq!(sync::sync_for(&meta.catalog, 13, &group.catalog), None);
}
