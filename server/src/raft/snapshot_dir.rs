//! Snapshots as directories: a RocksDB checkpoint of the state database plus a
//! `meta` file, kept under `<data>/snapshots/<id>/`.
//!
//! Building one is cheap (a flush and hard links), so the Raft log can be
//! purged often; sending one streams its files (see `raft::network`). Only the
//! newest snapshot is kept.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;

use bytes::Bytes;
use ferry_proto::internal as pb;
use parking_lot::Mutex;

use super::codec::{log_id_from_record, log_id_to_record, stored_membership_from_record, stored_membership_to_record};
use super::type_config::SnapshotMeta;
use crate::storage::files::{sync_dir, write_synced};
use crate::storage::state_db::StateDb;
use crate::storage::{codec, StorageError};

const META_FILE: &str = "meta";
const PARTIAL_PREFIX: &str = "partial-";
/// The partial directory a snapshot is built in, before its id is known.
const BUILDING: &str = "building";

/// A snapshot's files on disk: what openraft passes around as snapshot data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotDir {
    pub path: PathBuf,
}

/// The `snapshots/` directory of a group on this node.
#[derive(Debug)]
pub struct SnapshotStore {
    root: PathBuf,
    /// Held while a snapshot becomes the current one: a build and an install
    /// may finish at once.
    publishing: Mutex<()>,
    /// Numbers the directories snapshots are received into.
    received: AtomicU64,
}

impl SnapshotStore {
    /// Opens the directory, deleting partial snapshots left by a crash.
    pub fn open(root: PathBuf) -> Result<Self, StorageError> {
        fs::create_dir_all(&root).map_err(StorageError::io(format!("create {}", root.display())))?;
        for entry in read_dir(&root)? {
            if entry.file_name().to_string_lossy().starts_with(PARTIAL_PREFIX) {
                remove_dir(&entry.path())?;
            }
        }
        Ok(Self { root, publishing: Mutex::new(()), received: AtomicU64::new(0) })
    }

    /// A new directory of its own to receive a snapshot's files into. A
    /// leader that gives up on a slow transfer sends the same snapshot
    /// again; the two streams must not share a directory, or the first
    /// one's install would adopt files the second is still writing.
    pub fn receive_dir(&self, id: &str) -> Result<PathBuf, StorageError> {
        let unique = self.received.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = self.root.join(format!("{PARTIAL_PREFIX}{}-received-{unique}", sanitize(id)));
        if dir.exists() {
            remove_dir(&dir)?;
        }
        fs::create_dir_all(&dir).map_err(StorageError::io(format!("create {}", dir.display())))?;
        Ok(dir)
    }

    /// A fresh directory to build or adopt snapshot `id` in.
    pub fn partial_dir(&self, id: &str) -> Result<PathBuf, StorageError> {
        let dir = self.root.join(format!("{PARTIAL_PREFIX}{}", sanitize(id)));
        if dir.exists() {
            remove_dir(&dir)?;
        }
        Ok(dir)
    }

    /// The newest complete snapshot, if any.
    pub fn current(&self) -> Result<Option<(SnapshotMeta, SnapshotDir)>, StorageError> {
        let mut newest: Option<(SnapshotMeta, SnapshotDir)> = None;
        for entry in read_dir(&self.root)? {
            let path = entry.path();
            // A partial one (received, not installed) may hold a `meta` too.
            if entry.file_name().to_string_lossy().starts_with(PARTIAL_PREFIX) || !path.join(META_FILE).is_file() {
                continue;
            }
            let meta = read_meta(&path)?;
            if newest.as_ref().is_none_or(|(n, _)| meta.last_log_id > n.last_log_id) {
                newest = Some((meta, SnapshotDir { path }));
            }
        }
        Ok(newest)
    }

    /// Checkpoints the state database into a partial snapshot;
    /// [`finish`](Self::finish) makes it the current one.
    pub fn checkpoint(&self, state: &StateDb) -> Result<PathBuf, StorageError> {
        let partial = self.partial_dir(BUILDING)?;
        state.checkpoint(&partial)?;
        Ok(partial)
    }

    /// Completes a [`checkpoint`](Self::checkpoint) as the current snapshot,
    /// described by `meta`, and returns it; unless a newer snapshot was
    /// installed while it was built, which stays current and is returned
    /// instead (replacing it would leave the node's snapshot behind a log
    /// already purged past it).
    pub fn finish(&self, partial: PathBuf, meta: &SnapshotMeta) -> Result<(SnapshotMeta, SnapshotDir), StorageError> {
        let _publishing = self.publishing.lock();
        if let Some((current_meta, current)) = self.current()? {
            if current_meta.last_log_id > meta.last_log_id {
                remove_dir(&partial)?;
                return Ok((current_meta, current));
            }
        }
        write_meta(&partial, meta)?;
        Ok((meta.clone(), self.publish(partial, meta)?))
    }

    /// Makes `source` (a received or foreign snapshot) this node's current
    /// snapshot, and creates the database at `target` from it. Files are
    /// hard-linked when possible; nothing opens them for writing afterwards,
    /// so the link is as good as a copy.
    ///
    /// The database is made while no other snapshot can be published: a
    /// snapshot built meanwhile (openraft builds them beside an install)
    /// would remove this one's files as they are linked, and a database
    /// made without CURRENT opens empty, the group's state silently gone.
    pub fn adopt_into(
        &self,
        source: &SnapshotDir,
        meta: &SnapshotMeta,
        target: &Path,
    ) -> Result<SnapshotDir, StorageError> {
        check_whole(&source.path, &meta.snapshot_id)?;
        let partial = self.partial_dir(&meta.snapshot_id)?;
        if source.path.parent() == Some(self.root.as_path()) {
            // Received here: move it, it is nobody else's.
            fs::rename(&source.path, &partial)
                .map_err(StorageError::io(format!("rename {}", source.path.display())))?;
        } else {
            link_or_copy_dir(&source.path, &partial, |_| true)?;
        }
        write_meta(&partial, meta)?;
        let _publishing = self.publishing.lock();
        let adopted = self.publish(partial, meta)?;
        materialize(&adopted, target, &meta.snapshot_id)?;
        Ok(adopted)
    }

    /// Renames a finished partial snapshot into place and removes the others.
    /// The caller holds `publishing`.
    fn publish(&self, partial: PathBuf, meta: &SnapshotMeta) -> Result<SnapshotDir, StorageError> {
        let done = self.root.join(sanitize(&meta.snapshot_id));
        if done.exists() {
            // The same snapshot, received again (a leader resends one it gave
            // up on): the one in place stays. This node may be sending it to
            // a follower; replacing it removed files under the stream, which
            // sent the follower a snapshot without them. A copy left behind
            // is only disk until the next start clears it.
            if let Err(e) = remove_dir(&partial) {
                tracing::warn!(error = %e, "could not remove a snapshot received twice");
            }
            return Ok(SnapshotDir { path: done });
        }
        fs::rename(&partial, &done).map_err(StorageError::io(format!("rename {}", partial.display())))?;
        sync_dir(&self.root)?;
        for entry in read_dir(&self.root)? {
            let path = entry.path();
            if path != done && !entry.file_name().to_string_lossy().starts_with(PARTIAL_PREFIX) {
                remove_dir(&path)?;
            }
        }
        Ok(SnapshotDir { path: done })
    }
}

/// Whether the files at `dir` can be snapshot `snapshot_id`: a checkpoint
/// always has CURRENT, and without it the files are not a database (opening
/// them would make an empty one).
pub fn check_whole(dir: &Path, snapshot_id: &str) -> Result<(), StorageError> {
    if dir.join("CURRENT").is_file() {
        return Ok(());
    }
    Err(StorageError::Invalid(format!(
        "snapshot {snapshot_id} at {} is incomplete: it has no CURRENT file",
        dir.display()
    )))
}

/// Creates a RocksDB directory at `target` from a snapshot: tables and blob
/// files are immutable and hard-linked; the rest (MANIFEST, CURRENT, OPTIONS)
/// is copied, since the new database will write to it. Checked whole after,
/// as the snapshot was before.
fn materialize(snapshot: &SnapshotDir, target: &Path, snapshot_id: &str) -> Result<(), StorageError> {
    link_or_copy_dir(&snapshot.path, target, |name| name.ends_with(".sst") || name.ends_with(".blob"))?;
    let meta = target.join(META_FILE);
    if meta.exists() {
        fs::remove_file(&meta).map_err(StorageError::io(format!("remove {}", meta.display())))?;
    }
    sync_dir(target)?;
    check_whole(target, snapshot_id)
}

pub fn read_meta(dir: &Path) -> Result<SnapshotMeta, StorageError> {
    let path = dir.join(META_FILE);
    let bytes = fs::read(&path).map_err(StorageError::io(format!("read {}", path.display())))?;
    let record: pb::SnapshotMeta = codec::decode("snapshot meta", Bytes::from(bytes))
        .map_err(StorageError::corrupt(path.display().to_string()))?;
    Ok(SnapshotMeta {
        last_log_id: record.last_log_id.as_ref().map(log_id_from_record),
        last_membership: stored_membership_from_record(record.last_membership.unwrap_or_default()),
        snapshot_id: record.snapshot_id,
    })
}

fn write_meta(dir: &Path, meta: &SnapshotMeta) -> Result<(), StorageError> {
    let record = pb::SnapshotMeta {
        last_log_id: meta.last_log_id.as_ref().map(log_id_to_record),
        last_membership: Some(stored_membership_to_record(&meta.last_membership)),
        snapshot_id: meta.snapshot_id.clone(),
    };
    write_synced(&dir.join(META_FILE), &codec::encode(&record))?;
    sync_dir(dir)
}

fn link_or_copy_dir(from: &Path, to: &Path, link: impl Fn(&str) -> bool) -> Result<(), StorageError> {
    fs::create_dir_all(to).map_err(StorageError::io(format!("create {}", to.display())))?;
    for entry in read_dir(from)? {
        let name = entry.file_name();
        let (source, target) = (entry.path(), to.join(&name));
        let linked = link(&name.to_string_lossy()) && fs::hard_link(&source, &target).is_ok();
        if !linked {
            fs::copy(&source, &target).map_err(StorageError::io(format!("copy {}", source.display())))?;
            fs::File::open(&target)
                .and_then(|f| f.sync_all())
                .map_err(StorageError::io(format!("fsync {}", target.display())))?;
        }
    }
    sync_dir(to)
}

fn read_dir(dir: &Path) -> Result<Vec<fs::DirEntry>, StorageError> {
    let context = || format!("list {}", dir.display());
    fs::read_dir(dir)
        .map_err(|e| StorageError::io(context())(e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StorageError::io(context())(e))
}

fn remove_dir(dir: &Path) -> Result<(), StorageError> {
    fs::remove_dir_all(dir).map_err(StorageError::io(format!("remove {}", dir.display())))
}

/// Snapshot ids become directory names; keep them to safe characters.
fn sanitize(id: &str) -> String {
    id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    /// A directory under `parent` with the files of a checkpoint.
    fn checkpoint_files(parent: &Path, name: &str) -> SnapshotDir {
        let path = parent.join(name);
        fs::create_dir_all(&path).expect("create");
        for file in ["CURRENT", "MANIFEST-000001", "000007.sst"] {
            fs::write(path.join(file), file).expect("write");
        }
        SnapshotDir { path }
    }

    /// A store under `dir`, and the meta of a snapshot `id` to adopt into it.
    fn store_and_meta(dir: &Path, id: &str) -> (SnapshotStore, SnapshotMeta) {
        let store = SnapshotStore::open(dir.join("snapshots")).expect("open");
        (store, SnapshotMeta { last_log_id: None, last_membership: Default::default(), snapshot_id: id.into() })
    }

    #[test]
    fn a_snapshot_adopted_again_leaves_the_files_in_place_untouched() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, meta) = store_and_meta(dir.path(), "1-1-1-7");
        let first =
            store.adopt_into(&checkpoint_files(dir.path(), "first"), &meta, &dir.path().join("db-1")).expect("adopt");
        let inode = |snapshot: &SnapshotDir| fs::metadata(snapshot.path.join("CURRENT")).expect("CURRENT").ino();
        let before = inode(&first);

        // As when a leader resends a snapshot: the same id, other files,
        // received into a directory of the store's own.
        let received = store.receive_dir(&meta.snapshot_id).expect("receive dir");
        fs::remove_dir(&received).expect("empty");
        let received =
            checkpoint_files(received.parent().expect("root"), &received.file_name().expect("name").to_string_lossy());
        let again = store.adopt_into(&received, &meta, &dir.path().join("db-2")).expect("adopt again");
        assert_eq!(again, first);
        assert_eq!(inode(&again), before, "a peer may be reading the files in place: they stay");
        assert_eq!(store.current().expect("current").map(|(meta, _)| meta.snapshot_id), Some("1-1-1-7".into()));
        let partials = read_dir(&store.root).expect("list").into_iter().filter(|e| e.file_name() != "1-1-1-7").count();
        assert_eq!(partials, 0, "the copy received again is removed");
    }

    #[test]
    fn an_adopted_snapshot_makes_a_whole_database_without_its_meta() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, meta) = store_and_meta(dir.path(), "1-1-1-9");
        let target = dir.path().join("db");
        let adopted = store.adopt_into(&checkpoint_files(dir.path(), "s"), &meta, &target).expect("adopt");
        let mut files: Vec<_> = read_dir(&target).expect("list").iter().map(|e| e.file_name()).collect();
        files.sort();
        assert_eq!(files, ["000007.sst", "CURRENT", "MANIFEST-000001"]);
        let table = |dir: &Path| fs::metadata(dir.join("000007.sst")).expect("table").ino();
        assert_eq!(table(&target), table(&adopted.path), "tables are linked, not copied");
        assert_eq!(read_meta(&adopted.path).expect("meta").snapshot_id, "1-1-1-9");
    }

    #[test]
    fn a_database_made_from_files_without_current_is_refused() {
        // As when the snapshot's files were removed while being linked: the
        // database would open empty in place of the group's state.
        let dir = tempfile::tempdir().expect("temp dir");
        let snapshot = checkpoint_files(dir.path(), "s");
        fs::remove_file(snapshot.path.join("CURRENT")).expect("remove");
        let error = materialize(&snapshot, &dir.path().join("db"), "s").expect_err("no CURRENT");
        assert!(error.to_string().contains("incomplete"), "{error}");
    }

    #[test]
    fn a_snapshot_without_current_is_incomplete() {
        let dir = tempfile::tempdir().expect("temp dir");
        let snapshot = checkpoint_files(dir.path(), "s");
        check_whole(&snapshot.path, "s").expect("whole");
        fs::remove_file(snapshot.path.join("CURRENT")).expect("remove");
        let error = check_whole(&snapshot.path, "s").expect_err("no CURRENT");
        assert!(error.to_string().contains("incomplete"), "{error}");
    }
}
