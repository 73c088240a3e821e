//! The heart of closing an hour: its staged batches merged into one stream
//! sorted by (partition, offset), each event key once, cut into parts. The
//! result depends only on the set of staged events, never on the order the
//! batches come in, and memory stays within a budget however big the hour
//! (the sorts spill to scratch files, see [`crate::spill`]).
//!
//! Two sorts: the events by position; and, for events with a producer event
//! id, (digest of the id, position), which puts copies of one id side by
//! side — all but the first position of each are dropped when the events
//! stream past. Copies at one position (redeliveries) are side by side in
//! the event sort already.

use std::io;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::avro;
use crate::envelope::{Envelope, EventKey};
use crate::spill::{Record, Sorted, Sorter};

/// An event as the close sorts it: by position, then by every other field,
/// so records that compare equal are identical.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sortable(Envelope);

impl Sortable {
    fn order(&self) -> impl Ord + '_ {
        let e = &self.0;
        (e.partition, e.offset, &e.event_id, e.skewed, e.publish_time_micros, &e.topic, &e.attributes, &e.payload)
    }
}

impl Ord for Sortable {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.order().cmp(&other.order())
    }
}

impl PartialOrd for Sortable {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Record for Sortable {
    fn encode(&self, out: &mut Vec<u8>) {
        avro::encode_event(&self.0, out);
    }

    fn decode(mut bytes: &[u8]) -> io::Result<Self> {
        let event = avro::decode_event(&mut bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(Self(event))
    }

    fn footprint(&self) -> usize {
        let e = &self.0;
        let attributes: usize = e.attributes.iter().map(|(k, v)| k.len() + v.len() + 64).sum();
        std::mem::size_of::<Envelope>() + e.event_id.len() + e.topic.len() + e.payload.len() + attributes
    }
}

/// A producer event id (by a 128-bit digest: ids may be long, and two ids
/// colliding is as likely as a random 128-bit match) at a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct IdAt {
    digest: [u8; 16],
    position: Position,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Position {
    partition: u32,
    offset: u64,
}

impl Position {
    fn of(event: &Envelope) -> Self {
        Self { partition: event.partition, offset: event.offset }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.partition.to_be_bytes());
        out.extend_from_slice(&self.offset.to_be_bytes());
    }

    fn decode(bytes: &[u8]) -> io::Result<Self> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "a spilled position is not 12 bytes");
        let partition = u32::from_be_bytes(bytes.get(..4).ok_or_else(bad)?.try_into().map_err(|_| bad())?);
        let offset = u64::from_be_bytes(bytes.get(4..12).ok_or_else(bad)?.try_into().map_err(|_| bad())?);
        Ok(Self { partition, offset })
    }
}

impl Record for Position {
    fn encode(&self, out: &mut Vec<u8>) {
        Position::encode(self, out);
    }

    fn decode(bytes: &[u8]) -> io::Result<Self> {
        Position::decode(bytes)
    }

    fn footprint(&self) -> usize {
        std::mem::size_of::<Self>()
    }
}

impl Record for IdAt {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.digest);
        self.position.encode(out);
    }

    fn decode(bytes: &[u8]) -> io::Result<Self> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "a spilled event id is not 28 bytes");
        let digest = bytes.get(..16).ok_or_else(bad)?.try_into().map_err(|_| bad())?;
        Ok(Self { digest, position: Position::decode(&bytes[16..])? })
    }

    fn footprint(&self) -> usize {
        std::mem::size_of::<Self>()
    }
}

/// Takes an hour's staged batches, in any order.
pub struct HourMerge {
    scratch: std::path::PathBuf,
    budget: usize,
    events: Sorter<Sortable>,
    ids: Sorter<IdAt>,
}

impl HourMerge {
    /// Sorting within `budget` bytes of memory, spilling under `scratch`.
    pub fn new(scratch: &Path, budget: usize) -> io::Result<Self> {
        // Ids are small; most of the budget goes to the events.
        let events = Sorter::new(scratch, budget / 4 * 3)?;
        let ids = Sorter::new(scratch, budget / 8)?;
        Ok(Self { scratch: scratch.to_owned(), budget, events, ids })
    }

    pub fn add(&mut self, batch: Vec<Envelope>) -> io::Result<()> {
        for event in batch {
            if let EventKey::Producer(id) = event.key() {
                let mut digest = [0; 16];
                digest.copy_from_slice(&Sha256::digest(id.as_bytes())[..16]);
                self.ids.push(IdAt { digest, position: Position::of(&event) })?;
            }
            self.events.push(Sortable(event))?;
        }
        Ok(())
    }

    /// Sorted files spilled so far (0: the hour fit in memory).
    pub fn spilled_runs(&self) -> usize {
        self.events.runs() + self.ids.runs()
    }

    /// The hour's events, deduplicated, ready to be cut into parts.
    pub fn finish(self) -> io::Result<Deduplicated> {
        // Of each id, the first position is kept and the others dropped.
        let mut dropped = Sorter::new(&self.scratch, self.budget / 8)?;
        let mut kept: Option<IdAt> = None;
        for id in self.ids.finish()? {
            let id = id?;
            match kept {
                Some(first) if first.digest == id.digest => {
                    if id.position != first.position {
                        dropped.push(id.position)?;
                    }
                }
                _ => kept = Some(id),
            }
        }
        Ok(Deduplicated {
            events: self.events.finish()?,
            dropped: dropped.finish()?,
            next_dropped: None,
            last: None,
            pending: None,
            duplicates: 0,
            skewed: 0,
        })
    }
}

/// The hour's events in order, each key once; counts what it dropped.
pub struct Deduplicated {
    events: Sorted<Sortable>,
    dropped: Sorted<Position>,
    next_dropped: Option<Position>,
    /// The position of the last event read (kept or not).
    last: Option<Position>,
    /// An event read but left for the next part.
    pending: Option<Envelope>,
    /// Copies dropped: redeliveries, and producer retries under one event id.
    pub duplicates: u64,
    pub skewed: u64,
}

impl Deduplicated {
    /// The next part: at most `max_events` events and about `max_bytes` of
    /// payload (a part always takes at least one event); empty at the end.
    pub fn next_part(&mut self, max_events: usize, max_bytes: usize) -> io::Result<Vec<Envelope>> {
        let mut part = Vec::new();
        let mut bytes = 0;
        loop {
            let event = match self.pending.take() {
                Some(event) => event,
                None => match self.next_event()? {
                    Some(event) => event,
                    None => return Ok(part),
                },
            };
            let size = event.payload.len();
            if part.len() >= max_events || (!part.is_empty() && bytes + size > max_bytes) {
                self.pending = Some(event);
                return Ok(part);
            }
            bytes += size;
            part.push(event);
        }
    }

    fn next_event(&mut self) -> io::Result<Option<Envelope>> {
        while let Some(Sortable(event)) = self.events.next().transpose()? {
            let position = Position::of(&event);
            let repeated = self.last == Some(position);
            self.last = Some(position);
            if repeated || self.is_dropped(position)? {
                self.duplicates += 1;
                continue;
            }
            self.skewed += u64::from(event.skewed);
            return Ok(Some(event));
        }
        Ok(None)
    }

    /// Whether an id's later copy sits at `position` (positions come in
    /// order, so the dropped ones are walked alongside).
    fn is_dropped(&mut self, position: Position) -> io::Result<bool> {
        loop {
            if self.next_dropped.is_none() {
                self.next_dropped = self.dropped.next().transpose()?;
            }
            match self.next_dropped {
                Some(dropped) if dropped < position => self.next_dropped = None,
                Some(dropped) => return Ok(dropped == position),
                None => return Ok(false),
            }
        }
    }
}

/// Splits sorted events into slices of at most `max_events` events and
/// about `max_bytes` of payload (a slice always takes at least one event):
/// the blocks of an Avro file, by the same rule as the close's parts.
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
            attributes: BTreeMap::from([("k".into(), format!("{partition}/{offset}"))]),
            payload: Bytes::from(vec![0; 10]),
            skewed: offset % 2 == 1,
        }
    }

    /// Every part of the merged batches, and (duplicates, skewed).
    fn close(batches: Vec<Vec<Envelope>>, budget: usize, part_events: usize) -> (Vec<Vec<Envelope>>, u64, u64) {
        let scratch = tempfile::tempdir().expect("scratch");
        let mut merge = HourMerge::new(scratch.path(), budget).expect("merge");
        for batch in batches {
            merge.add(batch).expect("add");
        }
        let mut events = merge.finish().expect("finish");
        let mut parts = Vec::new();
        loop {
            let part = events.next_part(part_events, usize::MAX).expect("part");
            if part.is_empty() {
                return (parts, events.duplicates, events.skewed);
            }
            parts.push(part);
        }
    }

    fn positions(parts: &[Vec<Envelope>]) -> Vec<(u32, u64)> {
        parts.iter().flatten().map(|e| (e.partition, e.offset)).collect()
    }

    #[test]
    fn redeliveries_and_producer_retries_are_dropped_and_counted() {
        let first = vec![event(0, 1, None), event(0, 2, Some("e")), event(1, 0, None)];
        // A redelivery of (0, 1), a producer retry of "e" at another offset,
        // and a redelivery of the kept copy of "e".
        let second = vec![event(0, 1, None), event(1, 5, Some("e")), event(0, 2, Some("e"))];
        let (parts, duplicates, skewed) = close(vec![first, second], 1 << 20, 100);
        assert_eq!(positions(&parts), vec![(0, 1), (0, 2), (1, 0)]);
        assert_eq!(duplicates, 3);
        assert_eq!(skewed, 1);
    }

    #[test]
    fn the_order_of_batches_does_not_change_the_result() {
        let a = vec![event(1, 5, Some("e")), event(0, 3, None)];
        let b = vec![event(0, 2, Some("e")), event(0, 3, None)];
        assert_eq!(close(vec![a.clone(), b.clone()], 1 << 20, 10), close(vec![b, a], 1 << 20, 10));
    }

    #[test]
    fn an_hour_far_over_the_memory_budget_closes_the_same_as_one_within_it() {
        // 3,000 events, a third of them copies of others (same id elsewhere,
        // or the same position again), in batches shuffled across the hour.
        let batches: Vec<Vec<Envelope>> = (0..30u64)
            .map(|b| {
                (0..100u64)
                    .map(|i| {
                        let n = (b * 100 + i).wrapping_mul(7919) % 3_000;
                        match n % 3 {
                            0 => event((n % 4) as u32, n, Some(&format!("id-{}", n % 500))),
                            1 => event((n % 4) as u32, n / 2, None),
                            _ => event((n % 4) as u32, n, None),
                        }
                    })
                    .collect()
            })
            .collect();
        let in_memory = close(batches.clone(), 1 << 30, 700);
        let spilled = close(batches, 2_000, 700);
        assert_eq!(spilled, in_memory);
        let (parts, duplicates, _) = in_memory;
        assert!(duplicates > 500, "{duplicates}");
        assert_eq!(parts.iter().map(Vec::len).sum::<usize>() as u64 + duplicates, 3_000);
        assert!(parts.iter().all(|p| p.len() <= 700));
        let all = positions(&parts);
        assert!(all.windows(2).all(|w| w[0] < w[1]), "sorted, each position once");
    }

    #[test]
    fn parts_respect_both_bounds_and_keep_every_event() {
        let events: Vec<Envelope> = (0..10).map(|o| event(0, o, None)).collect();
        let lengths = |parts: Vec<&[Envelope]>| parts.iter().map(|p| p.len()).collect::<Vec<_>>();
        assert_eq!(lengths(split(&events, 4, 1_000)), vec![4, 4, 2]);
        assert_eq!(lengths(split(&events, 100, 25)), vec![2, 2, 2, 2, 2]);
        assert_eq!(lengths(split(&events, 100, 1)), vec![1; 10], "an event bigger than the bound gets a part");
        assert!(split(&[], 4, 4).is_empty());

        let scratch = tempfile::tempdir().expect("scratch");
        let mut merge = HourMerge::new(scratch.path(), 1 << 20).expect("merge");
        merge.add(events).expect("add");
        let mut merged = merge.finish().expect("finish");
        let mut streamed = Vec::new();
        loop {
            let part = merged.next_part(100, 25).expect("part");
            if part.is_empty() {
                break;
            }
            streamed.push(part.len());
        }
        assert_eq!(streamed, vec![2, 2, 2, 2, 2], "parts are cut by the same rule as blocks");
    }
}
