//! Which data group holds each partition of a new topic. Placement is
//! decided once, by group 0's leader when the topic is created, recorded in
//! the topic and never changed; only group leaders move.

use super::catalog::Catalog;

/// Groups for a new topic's `partitions` partitions, given how many
/// partitions each data group holds (`held[g - 1]` for group g): the least
/// loaded groups first (the lowest id on ties), so one topic's partitions
/// land on different groups, and wrapping round when there are more
/// partitions than groups. Keeps the most and least loaded groups within
/// one partition of each other. Empty when there are no data groups.
pub fn assign(partitions: u32, held: &[u32]) -> Vec<u32> {
    if held.is_empty() {
        return Vec::new();
    }
    let mut load: Vec<(u32, u32)> = held.iter().enumerate().map(|(i, held)| (*held, i as u32 + 1)).collect();
    let mut groups = Vec::with_capacity(partitions as usize);
    while groups.len() < partitions as usize {
        // One round: each group at most once, least loaded first.
        load.sort_unstable();
        let round = (partitions as usize - groups.len()).min(load.len());
        for (held, group) in &mut load[..round] {
            groups.push(*group);
            *held += 1;
        }
    }
    groups
}

/// How many partitions each of `data_groups` data groups holds in
/// `catalog` (group 0's): `held[g - 1]` for group g, as [`assign`] takes it.
pub fn held(catalog: &Catalog, data_groups: u32) -> Vec<u32> {
    let mut held = vec![0; data_groups as usize];
    for topic in catalog.topics_after("") {
        for group in &topic.groups {
            if let Some(count) = (*group as usize).checked_sub(1).and_then(|i| held.get_mut(i)) {
                *count += 1;
            }
        }
    }
    held
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn partitions_go_to_the_least_loaded_groups_lowest_id_first() {
        assert_eq!(assign(2, &[3, 1, 1, 2]), vec![2, 3]);
        assert_eq!(assign(1, &[0, 0, 0]), vec![1]);
        assert_eq!(assign(5, &[0, 0]), vec![1, 2, 1, 2, 1]);
        assert_eq!(assign(3, &[]), Vec::<u32>::new(), "no data groups");
    }

    /// The most minus the fewest partitions any group holds.
    fn spread(held: &[u32]) -> u32 {
        held.iter().max().copied().unwrap_or(0) - held.iter().min().copied().unwrap_or(0)
    }

    fn place_all(groups: usize, topics: &[u32]) -> Vec<u32> {
        let mut held = vec![0; groups];
        for partitions in topics {
            let placed = assign(*partitions, &held);
            assert_eq!(placed.len(), *partitions as usize);
            let distinct: BTreeSet<u32> = placed.iter().copied().collect();
            assert_eq!(distinct.len(), (*partitions as usize).min(groups), "a topic's partitions spread: {placed:?}");
            for group in placed {
                held[group as usize - 1] += 1;
            }
        }
        held
    }

    #[test]
    fn held_counts_the_partitions_each_group_holds() {
        let mut catalog = Catalog::default();
        let topic = |id: u64, groups: Vec<u32>| crate::domain::TopicState {
            id,
            name: format!("t{id}"),
            config: crate::domain::TopicConfig {
                partitions: groups.len().max(1) as u32,
                max_message_bytes: 0,
                retention_seconds: 0,
                retention_bytes: 0,
                labels: Default::default(),
            },
            create_time_us: 0,
            partitions: Vec::new(),
            groups,
        };
        catalog.insert_topic(topic(1, vec![1, 2, 3]));
        catalog.insert_topic(topic(2, vec![3]));
        catalog.insert_topic(topic(3, Vec::new()));
        assert_eq!(held(&catalog, 4), vec![1, 1, 2, 0]);
        assert_eq!(assign(2, &held(&catalog, 4)), vec![4, 1], "the next topic goes to the emptiest groups");
    }

    #[test]
    fn a_thousand_topics_fill_thirty_groups_evenly() {
        for partitions in [1, 4, 24] {
            let held = place_all(30, &vec![partitions; 1000]);
            assert!(spread(&held) <= 1, "{partitions} partitions per topic: {held:?}");
        }
        let mixed: Vec<u32> = (0..1000).map(|i| if i % 20 == 0 { 24 } else { 1 }).collect();
        let held = place_all(30, &mixed);
        assert!(spread(&held) <= 1, "{held:?}");
    }

    proptest! {
        #[test]
        fn load_stays_within_one_partition(groups in 1usize..40, topics in prop::collection::vec(1u32..64, 1..60)) {
            let held = place_all(groups, &topics);
            prop_assert!(spread(&held) <= 1);
            prop_assert_eq!(held.iter().sum::<u32>(), topics.iter().sum::<u32>());
        }
    }
}
