//! `StateMachine`: openraft's state machine over the state database, and
//! `AppliedState`, the replica's applied state that the read paths share.
//!
//! Applying an entry runs the pure domain transition under the catalog's write
//! lock and persists its writes plus the applied log id in one atomic batch, so
//! a reader holding the catalog lock sees a catalog that matches the disk.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ferry_metrics::{Histogram, HistogramSnapshot};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, RaftSnapshotBuilder};
use parking_lot::{Mutex, RwLock, RwLockReadGuard};
use tokio::sync::watch;

use super::arrivals::{ArrivalWatch, Arrivals};
use super::codec::{log_id_from_record, log_id_to_record, stored_membership_from_record, stored_membership_to_record};
use super::errors;
use super::groups::{group_root, GroupId};
use super::snapshot_dir::{SnapshotDir, SnapshotStore};
use super::state_dirs::StateDirs;
use super::type_config::{Entry, LogId, RaftStorageError, SnapshotMeta, StoredMembership, TypeConfig};
use super::STORAGE_WAIT_BOUNDS_SECONDS;
use crate::domain::{self, Catalog, Command, Response, Write};
use crate::storage::db::DbResources;
use crate::storage::state_db::StateDb;
use crate::storage::StorageError;

#[derive(Debug, Clone, Default)]
struct Progress {
    last_applied: Option<LogId>,
    membership: StoredMembership,
}

/// The applied state of this replica: written by the state machine, read by
/// the gRPC services and the delivery layer.
#[derive(Debug)]
pub struct AppliedState {
    group: GroupId,
    dirs: StateDirs,
    snapshots: SnapshotStore,
    /// Shared with every database of the process; an installed snapshot's
    /// database draws from it too.
    resources: DbResources,
    db: RwLock<Arc<StateDb>>,
    catalog: RwLock<Catalog>,
    progress: Mutex<Progress>,
    /// What delivery waits on for new messages.
    arrivals: Arrivals,
    /// Counts changes of the catalog's topics and subscriptions (and
    /// installed snapshots): what the catalog's followers wait on.
    catalog_changes: watch::Sender<u64>,
    /// How long applying each entry took (openraft's apply, one entry at a
    /// time): a state database slow to take writes shows here, where a
    /// publish waits for it after the raft log's fsyncs.
    apply_seconds: Histogram,
}

impl AppliedState {
    /// Opens `group`'s live state database under the data directory (at
    /// [`group_root`]), as it was last flushed.
    pub fn open(data_dir: &Path, group: GroupId, resources: &DbResources) -> Result<Arc<Self>, StorageError> {
        let root = group_root(data_dir, group);
        std::fs::create_dir_all(&root).map_err(StorageError::io(format!("create {}", root.display())))?;
        let dirs = StateDirs::new(&root);
        dirs.remove_stale()?;
        let db = StateDb::open(&dirs.live()?, resources)?;
        let catalog = db.load_catalog(group)?;
        let applied = db.load_applied()?;
        let progress = Progress {
            last_applied: applied.last_applied.as_ref().map(log_id_from_record),
            membership: applied.membership.map(stored_membership_from_record).unwrap_or_default(),
        };
        Ok(Arc::new(Self {
            group,
            snapshots: SnapshotStore::open(root.join("snapshots"))?,
            resources: resources.clone(),
            dirs,
            db: RwLock::new(Arc::new(db)),
            catalog: RwLock::new(catalog),
            progress: Mutex::new(progress),
            arrivals: Arrivals::default(),
            catalog_changes: watch::Sender::new(0),
            apply_seconds: Histogram::new(&STORAGE_WAIT_BOUNDS_SECONDS),
        }))
    }

    /// How long applying each entry here took.
    pub fn apply_seconds(&self) -> HistogramSnapshot {
        self.apply_seconds.snapshot()
    }

    /// The catalog as of the last applied entry. Hold the guard briefly: it
    /// blocks applying.
    pub fn catalog(&self) -> RwLockReadGuard<'_, Catalog> {
        self.catalog.read()
    }

    /// The state database, for reading messages and acks.
    pub fn db(&self) -> Arc<StateDb> {
        Arc::clone(&self.db.read())
    }

    pub fn last_applied(&self) -> Option<LogId> {
        self.progress.lock().last_applied
    }

    /// A new, empty directory to receive a snapshot's files into.
    pub fn snapshot_receive_dir(&self, snapshot_id: &str) -> Result<std::path::PathBuf, StorageError> {
        self.snapshots.receive_dir(snapshot_id)
    }

    /// Changes whenever messages are appended to `topic_id` (a publish or a
    /// dead-letter move), or a seek or snapshot may bring any back.
    pub fn watch_arrivals(&self, topic_id: u64) -> ArrivalWatch {
        self.arrivals.watch(topic_id)
    }

    /// Changes whenever a topic or subscription is created or deleted here
    /// (in a data group: synced), or a snapshot replaced the catalog.
    pub fn watch_catalog(&self) -> watch::Receiver<u64> {
        self.catalog_changes.subscribe()
    }

    pub(crate) fn apply_entry(&self, entry: Entry) -> Result<Response, StorageError> {
        let log_id = entry.log_id;
        let appended_to = match &entry.payload {
            EntryPayload::Normal(Command::Publish(batch)) => Some(batch.topic_id),
            EntryPayload::Normal(Command::DeadLetter(dead)) => Some(dead.dead_letter_topic_id),
            _ => None,
        };
        let mut catalog = self.catalog.write();
        let db = self.db();
        let (response, writes, membership) = match entry.payload {
            EntryPayload::Blank => (Response::Empty, Vec::new(), None),
            EntryPayload::Normal(command) => {
                let applied = domain::apply(&mut catalog, command, db.as_ref())?;
                (applied.response, applied.writes, None)
            }
            EntryPayload::Membership(membership) => {
                (Response::Empty, Vec::new(), Some(StoredMembership::new(Some(log_id), membership)))
            }
        };
        let membership_record = membership.as_ref().map(stored_membership_to_record);
        let deleted: Vec<(u64, u32, u64)> = writes
            .iter()
            .flat_map(|w| match w {
                Write::DeleteMessages { topic_id, partition, below } => vec![(*topic_id, *partition, *below)],
                Write::DeleteTopic { id, partitions, .. } => (0..*partitions).map(|p| (*id, p, u64::MAX)).collect(),
                _ => Vec::new(),
            })
            .collect();
        db.write(writes, &log_id_to_record(&log_id), membership_record.as_ref())?;
        if !deleted.is_empty() {
            reclaim(Arc::clone(&db), deleted);
        }
        let mut progress = self.progress.lock();
        progress.last_applied = Some(log_id);
        if let Some(membership) = membership {
            progress.membership = membership;
        }
        drop(progress);
        drop(catalog);
        match (&response, appended_to) {
            (Response::Published { .. } | Response::DeadLettered { position: Some(_) }, Some(topic_id)) => {
                self.arrivals.published(topic_id)
            }
            // A seek brings acked messages back: consumers waiting for new
            // ones must look again.
            (Response::Sought, _) => self.arrivals.everywhere(),
            _ => {}
        }
        if changes_catalog(&response) {
            self.catalog_changes.send_modify(|changes| *changes += 1);
        }
        Ok(response)
    }

    fn build_snapshot(&self) -> Result<Snapshot<TypeConfig>, StorageError> {
        // Applying goes on meanwhile. The checkpoint flushes every column
        // family at one point between two applied entries (atomic flush), so
        // it holds some applied entry's state whole, and names that entry
        // itself: its applied id and membership are read from it.
        let partial = self.snapshots.checkpoint(&self.db())?;
        let applied = StateDb::load_applied_read_only(&partial)?;
        let last_log_id = applied.last_applied.as_ref().map(log_id_from_record);
        let meta = SnapshotMeta {
            snapshot_id: snapshot_id(last_log_id),
            last_log_id,
            last_membership: applied.membership.map(stored_membership_from_record).unwrap_or_default(),
        };
        let (meta, dir) = self.snapshots.finish(partial, &meta)?;
        Ok(Snapshot { meta, snapshot: Box::new(dir) })
    }

    fn install_snapshot(&self, meta: &SnapshotMeta, snapshot: &SnapshotDir) -> Result<(), StorageError> {
        let target = self.dirs.next()?;
        self.snapshots.adopt_into(snapshot, meta, &target)?;
        let db = StateDb::open(&target, &self.resources)?;
        let catalog = db.load_catalog(self.group)?;

        let mut live_catalog = self.catalog.write();
        self.dirs.switch_to(&target)?;
        let old = std::mem::replace(&mut *self.db.write(), Arc::new(db));
        *live_catalog = catalog;
        *self.progress.lock() = Progress { last_applied: meta.last_log_id, membership: meta.last_membership.clone() };
        drop(live_catalog);
        // Remove the replaced database now if no reader still holds it;
        // otherwise the next start-up does.
        if Arc::into_inner(old).is_some() {
            self.dirs.remove_stale()?;
        }
        self.arrivals.everywhere();
        self.catalog_changes.send_modify(|changes| *changes += 1);
        Ok(())
    }
}

/// Whether an applied command created or removed a topic or subscription.
fn changes_catalog(response: &Response) -> bool {
    matches!(
        response,
        Response::TopicCreated(_)
            | Response::TopicDeleted { .. }
            | Response::SubscriptionCreated(_)
            | Response::SubscriptionDeleted
            | Response::Synced { .. }
    )
}

/// Compacts the ranges of trimmed partitions and deleted topics in the
/// background, so their disk space (tables and blob files) comes back
/// promptly; a failure only delays that.
fn reclaim(db: Arc<StateDb>, ranges: Vec<(u64, u32, u64)>) {
    let compact = move || {
        for (topic_id, partition, below) in ranges {
            if let Err(e) = db.compact_messages(topic_id, partition, below) {
                tracing::warn!(error = %e, topic_id, partition, "compacting deleted messages failed");
            }
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(runtime.spawn_blocking(compact)),
        Err(_) => compact(),
    }
}

/// Unique per build: the applied position plus the wall clock.
fn snapshot_id(last_applied: Option<LogId>) -> String {
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    match last_applied {
        Some(id) => format!("{}-{}-{}-{millis}", id.leader_id.term, id.leader_id.node_id, id.index),
        None => format!("0-0-0-{millis}"),
    }
}

/// openraft's handle on the applied state.
#[derive(Debug, Clone)]
pub struct StateMachine {
    state: Arc<AppliedState>,
}

impl StateMachine {
    pub fn new(state: Arc<AppliedState>) -> Self {
        Self { state }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, RaftStorageError> {
        let state = Arc::clone(&self.state);
        let built = tokio::task::spawn_blocking(move || state.build_snapshot())
            .await
            .map_err(|e| StorageError::Invalid(format!("snapshot task failed: {e}")))
            .and_then(|r| r);
        built.map_err(errors::write_snapshot(None))
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), RaftStorageError> {
        let progress = self.state.progress.lock().clone();
        Ok((progress.last_applied, progress.membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, RaftStorageError>
    where
        I: IntoIterator<Item = Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let mut responses = Vec::new();
        for entry in entries {
            let log_id = entry.log_id;
            let started = std::time::Instant::now();
            responses.push(self.state.apply_entry(entry).map_err(errors::apply(log_id))?);
            self.state.apply_seconds.observe(started.elapsed().as_secs_f64());
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotDir>, RaftStorageError> {
        let id = format!("incoming-{}", rand::random::<u64>());
        let path = self.state.snapshots.partial_dir(&id).map_err(errors::write_snapshot(None))?;
        Ok(Box::new(SnapshotDir { path }))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<SnapshotDir>,
    ) -> Result<(), RaftStorageError> {
        let state = Arc::clone(&self.state);
        let (meta, signature) = (meta.clone(), Some(meta.signature()));
        let installed = tokio::task::spawn_blocking(move || state.install_snapshot(&meta, &snapshot))
            .await
            .map_err(|e| StorageError::Invalid(format!("snapshot install task failed: {e}")))
            .and_then(|r| r);
        installed.map_err(errors::write_snapshot(signature))
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, RaftStorageError> {
        let current = self.state.snapshots.current().map_err(errors::read_snapshot(None))?;
        Ok(current.map(|(meta, dir)| Snapshot { meta, snapshot: Box::new(dir) }))
    }
}

#[cfg(test)]
mod tests;
