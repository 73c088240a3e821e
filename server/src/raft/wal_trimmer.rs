//! The raft log's obsolete WAL files, deleted a few MiB at a time.
//!
//! Why: RocksDB deletes WAL files the moment no column family needs them,
//! and under load that is several at once (a forced flush frees every file
//! the small metadata families pinned: about 360 MB on each node at
//! 195,000 msgs/s). Freeing that many blocks makes the filesystem's next
//! journal commits slow, and the log-sync thread's fsyncs are those
//! commits: measured on three nodes sharing the development VM's disk
//! (ext4, mounted with `discard`), fsyncs of 25–100 ms on every node at
//! the same instants.
//!
//! So RocksDB only archives obsolete WAL files (a rename into `archive/`,
//! see `storage::db::open_log_db`), and this thread shrinks each by
//! [`CHUNK_BYTES`] at a time before removing it: each fsync then commits a
//! small free. RocksDB's own expiry of the archive stays as the backstop,
//! should this thread stop. Measured on three nodes at 136,000
//! msgs/s for a minute: no fsync over 25 ms (5–8 per node before), publish
//! p99 26 ms (54 ms before).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::Duration;

/// The directory under the raft log's where RocksDB archives WAL files.
pub const ARCHIVE_DIR: &str = "archive";

/// Freed per step: small enough that a journal commit holding it stays
/// short, large enough to outpace the WAL (each step frees this much per
/// [`STEP_PAUSE`]: 800 MB/s, several times the fastest WAL written here).
const CHUNK_BYTES: u64 = 4 * 1024 * 1024;

/// Between steps, so the frees spread over several fsyncs.
const STEP_PAUSE: Duration = Duration::from_millis(5);

/// How often the archive is looked at when it was empty.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Trims `archive` until `stop`'s sender is dropped. A failure is retried
/// at every poll, and logged once per file (not ten times a second):
/// RocksDB's expiry removes what this misses.
pub fn run(archive: &Path, stop: Receiver<()>) {
    // Files whose trimming failed, still in the archive: at most its files.
    let mut failing: HashSet<PathBuf> = HashSet::new();
    loop {
        match stop.recv_timeout(POLL_INTERVAL) {
            Err(RecvTimeoutError::Timeout) | Ok(()) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let files = archived_oldest_first(archive);
        failing.retain(|file| files.contains(file));
        for file in files {
            match trim(&file, &stop) {
                Ok(()) => {}
                Err(Trim::Stopped) => return,
                Err(Trim::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(Trim::Io(e)) => {
                    if failing.insert(file.clone()) {
                        tracing::warn!(
                            error = %e,
                            file = %file.display(),
                            "trimming an archived WAL file failed; retrying quietly until it goes"
                        );
                    }
                }
            }
        }
    }
}

/// The bytes of the WAL files waiting in `archive`: up to a few hundred MB
/// for a moment after a flush archives them while the trimmer keeps up,
/// staying high while it fails (the node's metrics show it, so a stuck file
/// is seen without reading the log).
pub fn archived_bytes(archive: &Path) -> u64 {
    archived_oldest_first(archive).iter().filter_map(|file| file.metadata().ok()).map(|m| m.len()).sum()
}

/// Archived WAL files, by name: RocksDB numbers them in order of creation.
fn archived_oldest_first(archive: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(archive) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|extension| extension == "log"))
        .collect();
    files.sort();
    files
}

enum Trim {
    Stopped,
    Io(std::io::Error),
}

impl From<std::io::Error> for Trim {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// Shrinks `file` a chunk at a time, then removes it.
fn trim(file: &Path, stop: &Receiver<()>) -> Result<(), Trim> {
    let handle = std::fs::OpenOptions::new().write(true).open(file)?;
    let mut length = handle.metadata()?.len();
    while length > CHUNK_BYTES {
        length -= CHUNK_BYTES;
        handle.set_len(length)?;
        std::thread::sleep(STEP_PAUSE);
        if let Err(TryRecvError::Disconnected) = stop.try_recv() {
            return Err(Trim::Stopped);
        }
    }
    drop(handle);
    std::fs::remove_file(file)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::sync_channel;

    use super::*;
    use crate::storage::db::{self, DbResources, CF_LOG};

    /// The names in `dir`, sorted; none if it does not exist (yet).
    fn names_in(dir: &Path) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
        let mut names: Vec<String> =
            entries.map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    /// Waits up to 10 s for `dir` to hold `expected`.
    fn wait_for(dir: &Path, expected: &[&str]) -> Vec<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while names_in(dir) != expected && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        names_in(dir)
    }

    /// The raft log's database archives a WAL file no family needs any
    /// more rather than deleting it, and the trimmer removes it.
    #[test]
    fn the_log_database_archives_obsolete_wal_files_for_the_trimmer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log_db = db::open_log_db(dir.path(), &DbResources::default()).expect("open");
        let log = db::log_family(&log_db, CF_LOG).expect("log family");
        log_db.put_cf(&log, b"entry", vec![7u8; 4096]).expect("write");
        // Flushed, the family needs none of the WAL written so far.
        log_db.flush_cf(&log).expect("flush");
        let archive = dir.path().join(ARCHIVE_DIR);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !names_in(&archive).iter().any(|name| name.ends_with(".log")) {
            assert!(std::time::Instant::now() < deadline, "nothing archived: {:?}", names_in(dir.path()));
            std::thread::sleep(Duration::from_millis(20));
        }

        let (stop, stopped) = sync_channel(0);
        let trimmer = std::thread::spawn(move || run(&archive, stopped));
        assert_eq!(wait_for(&dir.path().join(ARCHIVE_DIR), &[]), Vec::<String>::new());
        drop(stop);
        trimmer.join().expect("the trimmer stops when told");
    }

    /// A writer into a shared buffer, for the log lines of a test.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A file that cannot be trimmed (here a directory named like a WAL
    /// file) is warned of once, not at every poll, and does not stop the
    /// others going.
    #[test]
    fn a_file_that_cannot_be_trimmed_is_warned_of_once_and_the_rest_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let archive = dir.path().join(ARCHIVE_DIR);
        std::fs::create_dir_all(archive.join("000001.log")).expect("a directory no trim opens");
        std::fs::write(archive.join("000002.log"), b"small").expect("write");
        let logs = Captured::default();
        let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer({
            let logs = logs.clone();
            move || logs.clone()
        });
        let (stop, stopped) = sync_channel(0);
        let stopper = std::thread::spawn(move || {
            // At least ten polls: each of these is one (the trimmer looks at
            // `stop` only between the chunks of a file larger than one), and
            // a wait that times out first adds another.
            for _ in 0..10 {
                stop.send(()).expect("the trimmer polls");
            }
        });
        tracing::subscriber::with_default(subscriber.finish(), || run(&archive, stopped));
        stopper.join().expect("stopper");

        assert_eq!(names_in(&dir.path().join(ARCHIVE_DIR)), ["000001.log"]);
        let text = String::from_utf8(logs.0.lock().expect("lock").clone()).expect("utf-8");
        assert_eq!(text.matches("trimming an archived WAL file failed").count(), 1, "{text}");
    }

    /// Every archived WAL file goes, however large; other files stay. The
    /// bytes waiting count the WAL files only.
    #[test]
    fn archived_wal_files_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().expect("tempdir");
        let archive = dir.path().join(ARCHIVE_DIR);
        std::fs::create_dir(&archive).expect("archive");
        let large = archive.join("000012.log");
        std::fs::File::create(&large).expect("create").set_len(3 * CHUNK_BYTES + 17).expect("size");
        std::fs::write(archive.join("000013.log"), b"small").expect("write");
        std::fs::write(archive.join("LOCK"), b"").expect("write");
        assert_eq!(archived_bytes(&archive), 3 * CHUNK_BYTES + 17 + 5, "the WAL files' bytes, not the lock's");
        let (stop, stopped) = sync_channel(0);
        let trimmer = std::thread::spawn({
            let archive = archive.clone();
            move || run(&archive, stopped)
        });
        assert_eq!(wait_for(&archive, &["LOCK"]), ["LOCK"]);
        assert_eq!(archived_bytes(&archive), 0);
        drop(stop);
        trimmer.join().expect("the trimmer stops when told");
        assert_eq!(archived_bytes(&dir.path().join("nowhere")), 0, "no archive (yet): nothing waits");
    }
}
