//! Free space on the data directory's filesystem, and the reserve the node
//! keeps there. Below the reserve the node turns away what would grow its
//! data (publishes, new topics and subscriptions) with RESOURCE_EXHAUSTED,
//! and keeps serving reads and the writes that shrink it (acks, deletes):
//! running the disk truly full would fail a Raft append or a RocksDB flush,
//! which stops the node, while a refusal costs the client a retry later.
//!
//! The figure is refreshed every second ([`DiskSpace::watch`]) rather than
//! per write, so the reserve must cover a second of writes at full speed
//! (the default, 1 GiB, covers a few seconds of this machine's disk).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::db::LOG_WAL_FILE_BYTES;

/// The reserve unless configured: room for a few seconds of writes and for
/// RocksDB to compact.
pub const DISK_RESERVE_BYTES_DEFAULT: u64 = 1 << 30;
/// The least reserve a node takes: a raft-log WAL file allocated whole
/// when RocksDB switches to it, and as much again for the writes of the
/// second between two measurements. With a 64 MiB reserve the switch filled
/// the disk, a group's snapshot failed with ENOSPC, and its Raft stopped.
pub const DISK_RESERVE_BYTES_MIN: u64 = 2 * LOG_WAL_FILE_BYTES;
/// How often free space is measured.
const MEASURE_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct DiskSpace {
    dir: PathBuf,
    reserve_bytes: u64,
    free_bytes: AtomicU64,
    low: AtomicBool,
}

/// The refusal of a write that would grow the data while space is low.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "the data directory's filesystem has {free_bytes} bytes free, less than the {reserve_bytes}-byte reserve \
     (--disk-reserve-bytes); writes that add data resume once space returns"
)]
pub struct DiskLow {
    pub free_bytes: u64,
    pub reserve_bytes: u64,
}

impl DiskSpace {
    /// Watches the filesystem holding `dir`, measured once now.
    pub fn new(dir: &Path, reserve_bytes: u64) -> std::io::Result<Arc<Self>> {
        let space = Self {
            dir: dir.to_owned(),
            reserve_bytes,
            free_bytes: AtomicU64::new(u64::MAX),
            low: AtomicBool::new(false),
        };
        space.record(free_bytes(dir)?);
        Ok(Arc::new(space))
    }

    /// Room for a write that grows the data, as last measured.
    pub fn check(&self) -> Result<(), DiskLow> {
        if self.low.load(Ordering::Acquire) {
            return Err(DiskLow { free_bytes: self.free_bytes(), reserve_bytes: self.reserve_bytes });
        }
        Ok(())
    }

    pub fn free_bytes(&self) -> u64 {
        self.free_bytes.load(Ordering::Acquire)
    }

    pub fn reserve_bytes(&self) -> u64 {
        self.reserve_bytes
    }

    pub fn is_low(&self) -> bool {
        self.low.load(Ordering::Acquire)
    }

    /// Measures every second for as long as the node runs, logging each
    /// change between enough space and too little.
    pub async fn watch(self: Arc<Self>) {
        loop {
            tokio::time::sleep(MEASURE_EVERY).await;
            match free_bytes(&self.dir) {
                Ok(free) => self.record(free),
                Err(e) => tracing::warn!(dir = %self.dir.display(), error = %e, "cannot measure free disk space"),
            }
        }
    }

    fn record(&self, free: u64) {
        self.free_bytes.store(free, Ordering::Release);
        let low = free < self.reserve_bytes;
        if self.low.swap(low, Ordering::AcqRel) != low {
            if low {
                tracing::warn!(
                    free,
                    reserve = self.reserve_bytes,
                    "disk space is low: refusing publishes and new topics and subscriptions"
                );
            } else {
                tracing::info!(free, reserve = self.reserve_bytes, "disk space is back: taking all writes again");
            }
        }
    }
}

/// Refuses a reserve below [`DISK_RESERVE_BYTES_MIN`], which would not keep
/// the disk from filling.
pub fn check_reserve(reserve_bytes: u64) -> Result<(), String> {
    if reserve_bytes < DISK_RESERVE_BYTES_MIN {
        return Err(format!(
            "disk_reserve_bytes: {reserve_bytes} is under the least reserve, {DISK_RESERVE_BYTES_MIN} bytes: \
             a new raft-log WAL file alone takes {LOG_WAL_FILE_BYTES}"
        ));
    }
    Ok(())
}

/// Bytes an unprivileged writer may still use on the filesystem of `dir`.
fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let stats = nix::sys::statvfs::statvfs(dir).map_err(std::io::Error::from)?;
    Ok(stats.blocks_available() as u64 * stats.fragment_size() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_the_reserve_growth_is_refused_and_at_it_allowed_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        let space = DiskSpace::new(dir.path(), 100).expect("measure");
        assert!(space.free_bytes() > 100 && space.free_bytes() < u64::MAX, "measured at once");
        assert!(space.check().is_ok());
        space.record(10);
        let err = space.check().expect_err("10 bytes free is under a 100-byte reserve");
        assert_eq!((err.free_bytes, err.reserve_bytes), (10, 100));
        assert!(err.to_string().contains("--disk-reserve-bytes"), "{err}");
        space.record(100);
        assert!(space.check().is_ok(), "at the reserve, writes go on");
    }

    #[test]
    fn a_reserve_smaller_than_a_wal_file_is_refused_by_name() {
        let refused = check_reserve(64 << 20).expect_err("64 MiB is under a WAL file");
        assert!(refused.starts_with("disk_reserve_bytes: 67108864 is under"), "{refused}");
        assert!(check_reserve(DISK_RESERVE_BYTES_MIN).is_ok());
        assert!(check_reserve(DISK_RESERVE_BYTES_DEFAULT).is_ok(), "the default is allowed");
    }
}
