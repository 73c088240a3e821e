//! What a data group must change to match group 0: the topics with a
//! partition in the group, and the subscriptions on them, with their
//! settings. Pure, so the
//! leader of each data group computes it from its own copies of both
//! catalogs and proposes the result as a `SyncGroup`.

use std::collections::BTreeSet;

use super::catalog::{Catalog, SubscriptionState, TopicState};
use super::command::SyncGroup;

/// The sync that brings `group`'s catalog to `meta`'s (group 0's catalog at
/// applied index `meta_index`); `None` when they already agree.
pub fn sync_for(meta: &Catalog, meta_index: u64, group: &Catalog) -> Option<SyncGroup> {
    let wanted_topics: BTreeSet<u64> =
        meta.topics_after("").filter(|t| t.groups.contains(&group.group)).map(|t| t.id).collect();
    let wanted_subscriptions: BTreeSet<u64> =
        meta.subscriptions_after("").filter(|s| wanted_topics.contains(&s.topic_id)).map(|s| s.id).collect();
    let held_topics: BTreeSet<u64> = group.topics_after("").map(|t| t.id).collect();
    let held_subscriptions: BTreeSet<u64> = group.subscriptions_after("").map(|s| s.id).collect();
    let sync = SyncGroup {
        expect_meta_index: group.meta_index,
        meta_index,
        install_topics: wanted_topics
            .difference(&held_topics)
            .filter_map(|id| meta.topic_by_id(*id))
            .map(|topic| TopicState { partitions: Vec::new(), ..topic.clone() })
            .collect(),
        remove_topics: held_topics.difference(&wanted_topics).copied().collect(),
        install_subscriptions: wanted_subscriptions
            .difference(&held_subscriptions)
            .filter_map(|id| meta.subscription_by_id(*id))
            .map(|subscription| SubscriptionState { acks: Vec::new(), ..subscription.clone() })
            .collect(),
        remove_subscriptions: held_subscriptions.difference(&wanted_subscriptions).copied().collect(),
        update_topics: wanted_topics
            .intersection(&held_topics)
            .filter_map(|id| Some((meta.topic_by_id(*id)?, group.topic_by_id(*id)?)))
            .filter(|(meta, held)| meta.config != held.config)
            .map(|(meta, _)| TopicState { partitions: Vec::new(), ..meta.clone() })
            .collect(),
        update_subscriptions: wanted_subscriptions
            .intersection(&held_subscriptions)
            .filter_map(|id| Some((meta.subscription_by_id(*id)?, group.subscription_by_id(*id)?)))
            .filter(|(meta, held)| meta.config != held.config)
            .map(|(meta, _)| SubscriptionState { acks: Vec::new(), ..meta.clone() })
            .collect(),
    };
    let unchanged = sync.install_topics.is_empty()
        && sync.remove_topics.is_empty()
        && sync.install_subscriptions.is_empty()
        && sync.remove_subscriptions.is_empty()
        && sync.update_topics.is_empty()
        && sync.update_subscriptions.is_empty();
    (!unchanged).then_some(sync)
}
