//! Names of what the ETL writes under a topic, all pure functions of what
//! the files hold, so a retry writes the same name with the same bytes:
//!
//! ```text
//! <topic>/dt=YYYY-MM-DD/hr=HH/_staging/<digest>.avro   written as events arrive
//! <topic>/dt=YYYY-MM-DD/hr=HH/_CLOSING                 the staging files a close uses
//! <topic>/dt=YYYY-MM-DD/hr=HH/part-00000.avro          the hour, deduplicated (or .jsonl[.gz|.zst])
//! <topic>/dt=YYYY-MM-DD/hr=HH/_SUCCESS                 the manifest: the hour is complete
//! ```
//!
//! Underscored names are hidden from Hadoop-style readers, which see only the
//! parts, and only read an hour once its `_SUCCESS` exists.

use sha2::{Digest, Sha256};

use crate::hour::Hour;

pub const STAGING_DIR: &str = "_staging";
pub const CLOSING: &str = "_CLOSING";
pub const SUCCESS: &str = "_SUCCESS";

/// What identifies a set of events: a SHA-256 over the hour they are bound
/// for and their (partition, offset) pairs in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SetDigest([u8; 32]);

impl SetDigest {
    /// `positions` must be sorted and without repeats (as a staged batch is).
    pub fn of(hour: Hour, positions: impl IntoIterator<Item = (u32, u64)>) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(hour.start_micros().to_be_bytes());
        for (partition, offset) in positions {
            hasher.update(partition.to_be_bytes());
            hasher.update(offset.to_be_bytes());
        }
        Self(hasher.finalize().into())
    }

    /// The staging file's name: 128 bits of the digest in hex.
    pub fn staging_name(&self) -> String {
        format!("{}.avro", hex(&self.0[..16]))
    }

    /// The Avro sync marker of a file: derived, not random, so equal
    /// contents give equal bytes.
    pub fn sync_marker(&self) -> [u8; 16] {
        let mut marker = [0; 16];
        marker.copy_from_slice(&self.0[16..]);
        marker
    }
}

/// The `index`th part of a closed hour, with the format's `extension`.
pub fn part_name(index: usize, extension: &str) -> String {
    format!("part-{index:05}.{extension}")
}

/// Where `name` goes in `hour` of `topic`, relative to the output root.
pub fn in_hour(topic: &str, hour: Hour, name: &str) -> String {
    format!("{topic}/{}/{name}", hour.dir())
}

/// Where a staging file goes.
pub fn staging_path(topic: &str, hour: Hour, digest: &SetDigest) -> String {
    in_hour(topic, hour, &format!("{STAGING_DIR}/{}", digest.staging_name()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hour() -> Hour {
        "2026-11-22T13".parse().expect("hour")
    }

    #[test]
    fn the_same_events_for_the_same_hour_get_the_same_name_and_marker() {
        let a = SetDigest::of(hour(), [(0, 5), (1, 7)]);
        assert_eq!(a, SetDigest::of(hour(), [(0, 5), (1, 7)]));
        assert_eq!(a.staging_name().len(), 32 + ".avro".len());
        assert_ne!(a.sync_marker(), [0; 16]);
    }

    #[test]
    fn another_set_or_another_hour_gets_another_name() {
        let a = SetDigest::of(hour(), [(0, 5), (1, 7)]);
        assert_ne!(a, SetDigest::of(hour(), [(0, 5)]));
        assert_ne!(a, SetDigest::of(hour(), [(0, 5), (1, 8)]));
        assert_ne!(a, SetDigest::of(hour(), [(1, 5), (0, 7)]));
        assert_ne!(a, SetDigest::of(hour().next(), [(0, 5), (1, 7)]));
    }

    #[test]
    fn paths_follow_the_bucket_layout() {
        let digest = SetDigest::of(hour(), [(0, 1)]);
        let path = staging_path("clicks", hour(), &digest);
        assert!(path.starts_with("clicks/dt=2026-11-22/hr=13/_staging/"), "{path}");
        assert_eq!(in_hour("clicks", hour(), &part_name(3, "avro")), "clicks/dt=2026-11-22/hr=13/part-00003.avro");
    }
}
