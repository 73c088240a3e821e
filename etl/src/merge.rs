//! The pure heart of closing an hour: the staged batches merged into one
//! sorted, deduplicated list, and split into parts.

use std::collections::HashSet;

use crate::envelope::{Envelope, EventKey};

/// An hour's events, ready to be written.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Merged {
    /// Sorted by (partition, offset); each event key once.
    pub events: Vec<Envelope>,
    /// Copies dropped: redeliveries, and producer retries under one event id.
    pub duplicates: u64,
    pub skewed: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the hour holds more than {max} staged events; raise the close limit (memory) or use more partitions")]
pub struct TooManyEvents {
    pub max: usize,
}

/// Merges staged batches: sorted by (partition, offset), and of events with
/// the same key the first in that order kept. The result depends only on
/// the set of events, never on the order the batches come in.
pub fn merge(batches: impl IntoIterator<Item = Vec<Envelope>>, max: usize) -> Result<Merged, TooManyEvents> {
    let mut events = Vec::new();
    for batch in batches {
        if events.len() + batch.len() > max {
            return Err(TooManyEvents { max });
        }
        events.extend(batch);
    }
    // The whole event breaks ties, so equal positions with different
    // contents still sort the same way every time.
    events.sort_by(|a, b| {
        (a.partition, a.offset, &a.event_id, a.skewed).cmp(&(b.partition, b.offset, &b.event_id, b.skewed))
    });
    let mut seen: HashSet<EventKey> = HashSet::with_capacity(events.len());
    let before = events.len();
    events.retain(|event| seen.insert(event.key()));
    let duplicates = (before - events.len()) as u64;
    let skewed = events.iter().filter(|event| event.skewed).count() as u64;
    Ok(Merged { events, duplicates, skewed })
}

/// Splits sorted events into parts of at most `max_events` events and about
/// `max_bytes` of payload (a part always takes at least one event).
pub fn split(events: &[Envelope], max_events: usize, max_bytes: usize) -> Vec<&[Envelope]> {
    let mut parts = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (index, event) in events.iter().enumerate() {
        let full = index - start >= max_events || (index > start && bytes + event.payload.len() > max_bytes);
        if full {
            parts.push(&events[start..index]);
            (start, bytes) = (index, 0);
        }
        bytes += event.payload.len();
    }
    if start < events.len() {
        parts.push(&events[start..]);
    }
    parts
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::Bytes;

    use super::*;

    fn event(partition: u32, offset: u64, producer_id: Option<&str>) -> Envelope {
        Envelope {
            event_id: producer_id.map_or_else(|| Envelope::message_id("t", partition, offset), str::to_owned),
            publish_time_micros: 1,
            topic: "t".into(),
            partition,
            offset,
            attributes: BTreeMap::new(),
            payload: Bytes::from(vec![0; 10]),
            skewed: offset % 2 == 1,
        }
    }

    #[test]
    fn redeliveries_and_producer_retries_are_dropped_and_counted() {
        let first = vec![event(0, 1, None), event(0, 2, Some("e")), event(1, 0, None)];
        // A redelivery of (0, 1) and a producer retry of "e" at another offset.
        let second = vec![event(0, 1, None), event(1, 5, Some("e"))];
        let merged = merge([first, second], 100).expect("under the limit");
        let kept: Vec<(u32, u64)> = merged.events.iter().map(|e| (e.partition, e.offset)).collect();
        assert_eq!(kept, vec![(0, 1), (0, 2), (1, 0)]);
        assert_eq!(merged.duplicates, 2);
        assert_eq!(merged.skewed, 1);
    }

    #[test]
    fn the_order_of_batches_does_not_change_the_result() {
        let a = vec![event(1, 5, Some("e")), event(0, 3, None)];
        let b = vec![event(0, 2, Some("e")), event(0, 3, None)];
        assert_eq!(merge([a.clone(), b.clone()], 10), merge([b, a], 10));
    }

    #[test]
    fn too_many_events_is_an_error_not_a_partial_close() {
        let batch: Vec<Envelope> = (0..5).map(|o| event(0, o, None)).collect();
        assert_eq!(merge([batch.clone(), batch], 8), Err(TooManyEvents { max: 8 }));
    }

    #[test]
    fn parts_respect_both_bounds_and_keep_every_event() {
        let events: Vec<Envelope> = (0..10).map(|o| event(0, o, None)).collect();
        let lengths = |parts: Vec<&[Envelope]>| parts.iter().map(|p| p.len()).collect::<Vec<_>>();
        assert_eq!(lengths(split(&events, 4, 1_000)), vec![4, 4, 2]);
        assert_eq!(lengths(split(&events, 100, 25)), vec![2, 2, 2, 2, 2]);
        assert_eq!(lengths(split(&events, 100, 1)), vec![1; 10], "an event bigger than the bound gets a part");
        assert!(split(&[], 4, 4).is_empty());
    }
}
