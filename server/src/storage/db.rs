//! Opening the RocksDB databases with their column families and tuning.
//!
//! Memory is bounded per process, however many Raft groups it hosts (each
//! has a state database; all share the raft-log database): every database
//! draws from one [`DbResources`], a capped block cache and a capped
//! write-buffer budget for the state databases and the same for the raft log.

use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use rocksdb::{
    AsColumnFamilyRef, BlockBasedOptions, BoundColumnFamily, Cache, ColumnFamilyDescriptor, DBCompressionType,
    DBRecoveryMode, DBWithThreadMode, LruCacheOptions, MultiThreaded, Options, ThreadMode, WriteBufferManager, DB,
};

use super::background;
use super::keys::Format;
use super::StorageError;

pub const CF_LOG: &str = "log";
pub const CF_RAFT_META: &str = "raft_meta";
/// Data groups' votes, commits and purge points, keyed by group (group 0's
/// stay in `raft_meta`).
pub const CF_GROUP_META: &str = "group_meta";
/// Data group `g`'s log is the column family `log-<g>`.
const CF_GROUP_LOG_PREFIX: &str = "log-";
pub const CF_META: &str = "meta";
pub const CF_MESSAGES: &str = "messages";
pub const CF_ACKS: &str = "acks";

/// Column families of the state database, in a fixed order (snapshots and
/// atomic flushes name them in this order).
pub const STATE_FAMILIES: [&str; 3] = [CF_META, CF_MESSAGES, CF_ACKS];

const WRITE_BUFFER_BYTES: usize = 32 * 1024 * 1024;
/// The raft log's memtable: large enough to outlast several size-driven
/// snapshots (`node::log_purge`), so most entries are purged while still in
/// it and never written to a table.
const LOG_WRITE_BUFFER_BYTES: usize = 128 * 1024 * 1024;
/// Disk a raft-log WAL file takes the moment RocksDB switches to it: it
/// allocates the file ahead as large as a memtable and a tenth.
pub const LOG_WAL_FILE_BYTES: u64 = LOG_WRITE_BUFFER_BYTES as u64 * 11 / 10;
/// WAL kept at most by the raft log. Past it RocksDB flushes the column
/// families that pin old WAL files (the small `raft_meta` would otherwise keep
/// every WAL file alive, and with them the purged log). Above the log's
/// memtables, so they are flushed when full rather than early.
const LOG_WAL_BYTES_MAX: u64 = 3 * LOG_WRITE_BUFFER_BYTES as u64;
/// RocksDB deletes archived raft-log WAL files itself, all at once, past
/// either bound: the WAL trimmer (`raft::wal_trimmer`) removes them gently
/// within moments, and these only bound the archive should it stop. The
/// age is since a file was last written, and RocksDB checks both right
/// after archiving (at most every 10 minutes), so the age must be far
/// longer than a WAL file lives: a file written a while ago is old the
/// moment it is archived.
const LOG_WAL_ARCHIVE_SECONDS: u64 = 24 * 3600;
const LOG_WAL_ARCHIVE_MB: u64 = 1024;
const WRITE_BUFFERS_MAX: i32 = 3;
/// Batch records this large or larger are kept in blob files (see
/// [`messages_family_options`]); smaller ones, a message or a few published
/// alone, stay inline in the tables, where a read needs no second lookup.
pub const BLOB_MIN_BYTES: u64 = 4096;
/// The state block cache, which every state database's reads share (table
/// blocks and batches).
const STATE_CACHE_BYTES: usize = 64 * 1024 * 1024;
/// The state block cache is split into 2^this shards (16 MiB each), each
/// with a lock and an LRU list of its own. An entry larger than its shard is
/// not kept at all: RocksDB's default, 64 shards of 1 MiB here, kept no
/// batch over 1 MiB (a thousand messages of 1.1 KiB), so the streams reading
/// a partition each read such a batch from disk again for their part of it.
/// A batch near the largest a publish may make (16 MiB) fills its shard, and
/// pushes out what the shard held.
const STATE_CACHE_SHARD_BITS: i32 = 2;
/// The raft log's block cache: recent entries are read from the memtable.
const LOG_CACHE_BYTES: usize = 16 * 1024 * 1024;
/// Memtables of all state databases together: one database's three
/// families at their most (3 × 3 × 32 MiB), shared by every group's.
const STATE_BUFFERS_BYTES: usize = 9 * WRITE_BUFFER_BYTES;
/// A state database's WAL, at most: it holds only the format key.
const STATE_WAL_BYTES_MAX: u64 = 1024 * 1024;
const STATE_MANIFEST_PREALLOCATION_BYTES: usize = 64 * 1024;
/// Memtables of the raft log: group 0's two families at their most
/// (3 × 128 MiB + 3 × 32 MiB), shared by every group's.
const LOG_BUFFERS_BYTES: usize = 3 * (LOG_WRITE_BUFFER_BYTES + WRITE_BUFFER_BYTES);

/// What every database of a process draws memory from, so memory does not
/// grow with the number of groups hosted: one block cache for the state
/// databases and one for the raft log, and a memtable budget for each. Past
/// a budget, a database being written flushes its oldest memtable early.
/// Writes never stall on the budget: with databases sharing it, a writer
/// could wait on memory only an idle database's flush would free. The hard
/// bound stays each family's memtable count and size.
#[derive(Clone)]
pub struct DbResources {
    state_cache: Cache,
    state_buffers: WriteBufferManager,
    log_cache: Cache,
    log_buffers: WriteBufferManager,
}

impl Default for DbResources {
    fn default() -> Self {
        Self {
            state_cache: state_cache(),
            state_buffers: WriteBufferManager::new_write_buffer_manager(STATE_BUFFERS_BYTES, false),
            log_cache: Cache::new_lru_cache(LOG_CACHE_BYTES),
            log_buffers: WriteBufferManager::new_write_buffer_manager(LOG_BUFFERS_BYTES, false),
        }
    }
}

impl DbResources {
    /// Bytes the state databases' cache holds now.
    #[cfg(test)]
    pub fn state_cache_usage(&self) -> usize {
        self.state_cache.get_usage()
    }
}

/// [`STATE_CACHE_BYTES`] in [`STATE_CACHE_SHARD_BITS`] shards.
fn state_cache() -> Cache {
    let mut options = LruCacheOptions::default();
    options.set_capacity(STATE_CACHE_BYTES);
    options.set_num_shard_bits(STATE_CACHE_SHARD_BITS);
    Cache::new_lru_cache_opts(&options)
}

impl std::fmt::Debug for DbResources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbResources").finish_non_exhaustive()
    }
}

/// Options every database shares; `direct_io` is whether its directory
/// takes O_DIRECT ([`direct_io_supported`]).
fn db_options(direct_io: bool) -> Options {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    options.set_max_background_jobs(2);
    options.set_bytes_per_sync(1024 * 1024);
    options.set_keep_log_file_num(4);
    options.set_use_direct_io_for_flush_and_compaction(direct_io);
    options
}

/// Whether `dir` takes O_DIRECT. Where it does, every database's flushes and
/// compactions write past the page cache, and the state databases read past
/// it too.
///
/// Why writes: through the page cache, a flush leaves tens of megabytes of dirty
/// pages for the kernel to write back while the raft log's fsync waits
/// behind them, and it fills the page cache with data read, if ever, long
/// after. Measured on one node at 300,000 msgs/s of 128 B, four 10 s runs in
/// a row, three times: publish p99 was 15–41 ms, growing run by run, and is
/// 5–23 ms, not growing; a run's CPU grew from 3.8 to 5.6 s with the data on
/// disk (the flush thread's copies into new page-cache pages) and stays at
/// 3.8–4.1 s.
///
/// Why reads: a consumer catching up reads batches flushed long ago, which
/// are not in the page cache (flushes bypass it), and a read through it
/// fills fresh page-cache pages first. On this 2-core VM a cold 1 GB file
/// took 1.3–2.2 s of system time to read through the page cache and 0.13 s
/// direct. One node draining a million 1 KiB messages from one partition
/// (`ferry bench consume`, 4 consumers): ferryd's CPU per message went from
/// 4.5–6.0 µs to 3.2–3.4 µs, and the drain from 161,000–228,000 to
/// 254,000–272,000 msgs/s; at 128 B no difference showed. What is read again
/// soon (a batch the subscription's streams share, index and ack blocks)
/// stays in the state block cache, within its bound. The raft log is read back
/// mostly from its memtables and keeps the page cache.
///
/// The probe writes and reads as RocksDB will: blocks of the device's
/// logical block size, one at a non-zero offset. A filesystem that refuses
/// that (older tmpfs, some FUSE filesystems, some that want more alignment
/// than the device reports) would otherwise fail the first flush, which
/// stops the database's writes, or the first read of a table; there the
/// node falls back to the page cache. Any other failure (a full disk, say)
/// is no answer, and RocksDB is trusted with it.
fn direct_io_supported(dir: &Path) -> bool {
    // Made first, so its device can be looked up (RocksDB accepts it empty).
    let _ = std::fs::create_dir_all(dir);
    let block = logical_block_size(dir).unwrap_or(DIRECT_BLOCK_DEFAULT);
    match probe_direct_io(dir, block) {
        Ok(()) => true,
        Err(e) if refuses_direct_io(&e) => {
            tracing::info!(dir = %dir.display(), error = %e, "no O_DIRECT here; flushes and reads go through the page cache");
            false
        }
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "could not probe O_DIRECT; flushes and reads use it");
            true
        }
    }
}

/// RocksDB's block for direct I/O where the device's is unknown.
const DIRECT_BLOCK_DEFAULT: usize = 4096;

/// The logical block size of the device holding `dir`, where RocksDB finds
/// it too (sysfs; a partition's queue is its disk's).
fn logical_block_size(dir: &Path) -> Option<usize> {
    let device = std::fs::metadata(dir).ok()?.dev();
    let (major, minor) = (nix::sys::stat::major(device), nix::sys::stat::minor(device));
    let device = std::fs::canonicalize(format!("/sys/dev/block/{major}:{minor}")).ok()?;
    let queue = [device.join("queue"), device.parent()?.join("queue")].into_iter().find(|q| q.is_dir())?;
    std::fs::read_to_string(queue.join("logical_block_size")).ok()?.trim().parse().ok().filter(|&b: &usize| b > 0)
}

/// Writes two `block`-sized blocks with O_DIRECT into a scratch file in
/// `dir`, the second at offset `block`, reads the second back the same way,
/// and removes the file.
fn probe_direct_io(dir: &Path, block: usize) -> std::io::Result<()> {
    let probe = dir.join(".direct-io-probe");
    let probed = (|| {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(nix::fcntl::OFlag::O_DIRECT.bits())
            .open(&probe)?;
        // O_DIRECT wants the buffer aligned too: the aligned block inside a
        // buffer twice its size.
        let mut buffer = vec![0u8; 2 * block];
        let start = buffer.as_ptr().align_offset(block.next_power_of_two());
        let aligned = buffer.get_mut(start..start + block).ok_or(std::io::ErrorKind::InvalidInput)?;
        file.write_all_at(aligned, 0)?;
        file.write_all_at(aligned, block as u64)?;
        file.read_exact_at(aligned, block as u64)
    })();
    let _ = std::fs::remove_file(&probe);
    probed
}

/// Whether a probe's error says the filesystem does not take O_DIRECT.
fn refuses_direct_io(error: &std::io::Error) -> bool {
    let refusals = [nix::errno::Errno::EINVAL, nix::errno::Errno::EOPNOTSUPP].map(|e| e as i32);
    error.raw_os_error().is_some_and(|code| refusals.contains(&code))
}

fn family_options(cache: &Cache, compression: DBCompressionType, write_buffer_bytes: usize) -> Options {
    let mut options = Options::default();
    options.set_write_buffer_size(write_buffer_bytes);
    options.set_max_write_buffer_number(WRITE_BUFFERS_MAX);
    options.set_compression_type(compression);
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    // Index and filter blocks count against the capped cache too, so memory
    // does not grow with the data on disk (a week of backlog). Level 0's stay
    // pinned: they are read on every lookup.
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    table.set_bloom_filter(10.0, false);
    options.set_block_based_table_factory(&table);
    options
}

/// The `messages` family keeps batch records of at least [`BLOB_MIN_BYTES`]
/// in blob files, written once at flush, and only their keys in tables.
///
/// Why: a group's partitions share one memtable, so every flushed table
/// spans all their newest offsets, and its key range covers every older
/// batch of the partitions between the first and the last. Leveled compaction
/// then rewrote those whole partitions again and again: measured on one node
/// at 300,000 msgs/s of 128 B over 4 partitions, 15 s wrote 1.84 GB of tables
/// for 0.58 GB of messages. With the bodies in blob files, compaction moves
/// keys and blob references (bytes per batch), and the same run wrote
/// 0.56 GB of blobs and 0.5 MB of tables.
///
/// Blob garbage collection is off: it relocates live blobs out of the oldest
/// files, which is a rewrite of everything retained. Retention deletes a
/// partition's oldest batches and compacts their range
/// ([`StateDb::compact_messages`](super::state_db::StateDb::compact_messages)),
/// so a blob file is freed once every batch in it was trimmed: within one
/// retention period of its last batch. Batches read are cached
/// uncompressed in the state block cache, within its bound.
fn messages_family_options(cache: &Cache) -> Options {
    let mut options = family_options(cache, DBCompressionType::Lz4, WRITE_BUFFER_BYTES);
    options.set_enable_blob_files(true);
    options.set_min_blob_size(BLOB_MIN_BYTES);
    options.set_blob_compression_type(DBCompressionType::Lz4);
    options.set_enable_blob_gc(false);
    options.set_blob_cache(cache);
    options
}

/// The raft-log database, shared by every group this process hosts. Column
/// families are added while it is open (a data group's on first use), hence
/// the multi-threaded mode.
pub type LogRocksDb = DBWithThreadMode<MultiThreaded>;

/// The column family holding group `group`'s log (group 0 keeps `log`).
pub fn group_log_family(group: u32) -> String {
    if group == 0 {
        CF_LOG.to_owned()
    } else {
        format!("{CF_GROUP_LOG_PREFIX}{group}")
    }
}

/// Tuning of a raft-log column family by its name.
fn log_db_family_options(cache: &Cache, name: &str) -> Options {
    if name == CF_LOG || name.starts_with(CF_GROUP_LOG_PREFIX) {
        family_options(cache, DBCompressionType::Lz4, LOG_WRITE_BUFFER_BYTES)
    } else {
        family_options(cache, DBCompressionType::None, WRITE_BUFFER_BYTES)
    }
}

/// Opens (or creates) the Raft log database with every column family it
/// holds: group 0's always, and those of the data groups created so far.
pub fn open_log_db(path: &Path, resources: &DbResources) -> Result<LogRocksDb, StorageError> {
    let mut options = db_options(direct_io_supported(path));
    options.set_write_buffer_manager(&resources.log_buffers);
    let mut names = vec![CF_LOG.to_owned(), CF_RAFT_META.to_owned()];
    if path.join("CURRENT").exists() {
        let stored = LogRocksDb::list_cf(&options, path)
            .map_err(StorageError::rocksdb(format!("list the raft log's families at {}", path.display())))?;
        // RocksDB opens `default` by itself.
        let added: Vec<String> = stored.into_iter().filter(|name| !names.contains(name) && name != "default").collect();
        names.extend(added);
    }
    let families = names
        .iter()
        .map(|name| ColumnFamilyDescriptor::new(name, log_db_family_options(&resources.log_cache, name)))
        .collect::<Vec<_>>();
    options.set_max_total_wal_size(LOG_WAL_BYTES_MAX);
    // Obsolete WAL files are renamed into `archive/` rather than deleted:
    // deleting hundreds of MB at once stalls the fsyncs of appends.
    options.set_wal_ttl_seconds(LOG_WAL_ARCHIVE_SECONDS);
    options.set_wal_size_limit_mb(LOG_WAL_ARCHIVE_MB);
    // Every append is fsynced before it is acknowledged, so damage anywhere
    // but a torn last record is a broken disk. RocksDB's default recovery
    // would keep the log up to the damage and drop the rest silently: the
    // node would come back without entries it told the leader it stored
    // (which openraft's leader refuses with a panic, and which could lose a
    // commit it voted for). Refuse to open instead; the operator replaces
    // the node (remove it, wipe it, let it join again).
    options.set_wal_recovery_mode(DBRecoveryMode::TolerateCorruptedTailRecords);
    let db = LogRocksDb::open_cf_descriptors(&options, path, families)
        .map_err(StorageError::rocksdb(format!("open raft log at {}", path.display())))?;
    background::lower_priority();
    Ok(db)
}

/// Creates `family` in the raft-log database unless it exists. The new
/// family is recorded in the database's manifest, which RocksDB syncs.
pub fn ensure_log_family(db: &LogRocksDb, resources: &DbResources, name: &str) -> Result<(), StorageError> {
    if db.cf_handle(name).is_some() {
        return Ok(());
    }
    db.create_cf(name, &log_db_family_options(&resources.log_cache, name))
        .map_err(StorageError::rocksdb(format!("create the raft log's column family {name}")))
}

/// Opens (or creates) a state-machine database.
pub fn open_state_db(path: &Path, resources: &DbResources) -> Result<DB, StorageError> {
    let direct_io = direct_io_supported(path);
    let mut options = db_options(direct_io);
    options.set_use_direct_reads(direct_io);
    options.set_write_buffer_manager(&resources.state_buffers);
    // The state is written without a WAL; flushing all families together keeps
    // what is on disk a state that existed at one applied log id.
    options.set_atomic_flush(true);
    // So its WAL (the format key alone) and manifest take no room ahead:
    // RocksDB preallocates a WAL file as large as a write buffer (72 MB) and
    // a manifest 4 MB, which an empty node with 30 data groups held 31 times
    // over (2.4 GB). The WAL limit caps that preallocation, and is never
    // reached, so it forces no flush.
    options.set_max_total_wal_size(STATE_WAL_BYTES_MAX);
    options.set_manifest_preallocation_size(STATE_MANIFEST_PREALLOCATION_BYTES);
    let families = STATE_FAMILIES.map(|name| {
        let options = if name == CF_MESSAGES {
            messages_family_options(&resources.state_cache)
        } else {
            family_options(&resources.state_cache, DBCompressionType::None, WRITE_BUFFER_BYTES)
        };
        ColumnFamilyDescriptor::new(name, options)
    });
    let db = DB::open_cf_descriptors(&options, path, families)
        .map_err(StorageError::rocksdb(format!("open state at {}", path.display())))?;
    background::lower_priority();
    Ok(db)
}

/// Opens a state database to read only, such as a checkpoint: nothing in
/// its directory is written, and its tables open as they are read.
pub fn open_state_db_read_only(path: &Path) -> Result<DB, StorageError> {
    let mut options = Options::default();
    // Not every table at open (the default for read-only): only the few read.
    options.set_max_open_files(64);
    DB::open_cf_for_read_only(&options, path, STATE_FAMILIES, false)
        .map_err(StorageError::rocksdb(format!("open state at {} to read", path.display())))
}

/// Checks (or, on a new database, writes) the layout version. A version the
/// format reads as it is gets replaced by the current one.
pub fn check_format<T: ThreadMode>(
    db: &DBWithThreadMode<T>,
    cf: &impl AsColumnFamilyRef,
    key: &[u8],
    what: &str,
    format: Format,
) -> Result<(), StorageError> {
    let stored = db.get_cf(cf, key).map_err(StorageError::rocksdb(format!("read {what} format")))?;
    let stored = match stored {
        None => None,
        Some(bytes) => match <[u8; 4]>::try_from(bytes.as_slice()) {
            Ok(bytes) => Some(u32::from_be_bytes(bytes)),
            Err(_) => {
                return Err(StorageError::Invalid(format!("{what} has a storage format of {} bytes", bytes.len())))
            }
        },
    };
    match stored {
        Some(version) if version == format.version => Ok(()),
        Some(version) if !format.reads_older.contains(&version) => Err(StorageError::Invalid(format!(
            "{what} has storage format {version}; this build of ferryd reads format {} (and {:?})",
            format.version, format.reads_older
        ))),
        None | Some(_) => {
            let mut options = rocksdb::WriteOptions::default();
            options.set_sync(true);
            db.put_cf_opt(cf, key, format.version.to_be_bytes(), &options)
                .map_err(StorageError::rocksdb(format!("write {what} format")))
        }
    }
}

/// A raft-log column family by name.
pub fn log_family<'a>(db: &'a LogRocksDb, family: &str) -> Result<std::sync::Arc<BoundColumnFamily<'a>>, StorageError> {
    db.cf_handle(family).ok_or_else(|| StorageError::Invalid(format!("column family {family} is missing")))
}

pub fn handle<'a>(db: &'a DB, family: &str) -> Result<&'a rocksdb::ColumnFamily, StorageError> {
    db.cf_handle(family).ok_or_else(|| StorageError::Invalid(format!("column family {family} is missing")))
}

#[cfg(test)]
mod tests {
    use super::{direct_io_supported, logical_block_size, probe_direct_io, refuses_direct_io};

    #[test]
    fn the_direct_io_probe_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("temp dir");
        direct_io_supported(dir.path());
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0, "the probe file is gone");
    }

    /// Needs the temporary directory on a block device's filesystem (ext4,
    /// xfs), which wants direct writes aligned to the device's block: a
    /// block of a quarter of it is refused, as a misaligned flush would be.
    #[test]
    fn a_direct_write_smaller_than_the_devices_block_is_refused_and_turns_them_off() {
        let dir = tempfile::tempdir().expect("temp dir");
        let block = logical_block_size(dir.path()).expect("the temp dir is on a block device");
        probe_direct_io(dir.path(), block).expect("a whole block at an aligned offset is written and read back");
        let refused = probe_direct_io(dir.path(), block / 4).expect_err("a quarter block is refused");
        assert!(refuses_direct_io(&refused), "{refused}");
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0, "the probe file is gone");
    }
}
