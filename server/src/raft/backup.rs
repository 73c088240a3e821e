//! Backing up a node's state, and restoring a backup as a new cluster.
//!
//! A backup is a RocksDB checkpoint of each group's state database (hard
//! links on the node's own filesystem, so it is quick and costs no space
//! until the live files change), in `<dir>/group-<g>/`, with a manifest,
//! `ferry-backup.toml`, written last: a directory without one is not a
//! backup. Each checkpoint is consistent: it holds a group's state as of one
//! applied Raft entry. The data groups are copied before group 0, so group
//! 0's catalog is as new as theirs or newer, which is the order they follow
//! it in when running.
//!
//! The Raft log is not part of a backup. Restoring (`ferryd --restore-from`)
//! makes a new one-node cluster: it copies each group's checkpoint into a
//! new data directory as that group's state, names this node the only
//! voter in the layout the data groups start from, and resets what the
//! data groups last synced of group 0 (group 0's log starts again).
//!
//! The state is not what any log replays to, so every group must look as a
//! node that installed a snapshot does ([`restore_log`]): the state is at
//! the new cluster's first entry (term 1, index 1) with this node as the
//! only voter, and the log is purged up to that entry. A node that joins
//! later needs an entry the log no longer has, so it gets a snapshot of the
//! state, never a replay that would leave the restored data out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use openraft::storage::RaftLogStorage;
use openraft::{BasicNode, CommittedLeaderId};

use super::codec::{log_id_to_record, stored_membership_to_record};
use super::groups::{group_root, GroupId, Groups, META_GROUP};
use super::type_config::{LogId, Membership, StoredMembership, Vote};
use super::{LogDb, LogStore, NodeId};
use crate::domain::{Layout, Write};
use crate::security::cluster_id;
use crate::storage::db::DbResources;
use crate::storage::files::{sync_dir, write_synced};
use crate::storage::state_db::StateDb;
use crate::storage::StorageError;

/// The manifest's file name; written last.
pub const MANIFEST: &str = "ferry-backup.toml";
/// The manifest's format; a restore refuses others.
const FORMAT: i64 = 1;
/// Where a restored group's state goes under its root: the state directory
/// a new group starts with (`state_dirs.rs`).
const RESTORED_STATE_DIR: &str = "state-0";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The request or the backup directory is not usable; nothing was changed.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// One group's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupBackup {
    pub group: GroupId,
    /// The Raft entry the copy's state is at.
    pub applied_term: u64,
    pub applied_index: u64,
    pub bytes: u64,
}

/// What a backup holds, as its manifest says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub node_id: NodeId,
    pub created_unix_micros: u64,
    /// Group 0 first.
    pub groups: Vec<GroupBackup>,
}

/// Checkpoints every group this node hosts into `dir`, a new directory
/// whose parent exists.
pub fn create(groups: &Groups, node_id: NodeId, dir: &Path) -> Result<Manifest, BackupError> {
    if !dir.is_absolute() {
        return Err(BackupError::Invalid(format!("{} is not an absolute path", dir.display())));
    }
    if dir.exists() {
        return Err(BackupError::Invalid(format!(
            "{} exists already; a backup goes into a new directory",
            dir.display()
        )));
    }
    match dir.parent() {
        Some(parent) if parent.is_dir() => {}
        _ => return Err(BackupError::Invalid(format!("the parent directory of {} does not exist", dir.display()))),
    }
    std::fs::create_dir(dir).map_err(StorageError::io(format!("create {}", dir.display())))?;
    let created = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_micros() as u64;
    let mut hosted = groups.all();
    // Data groups first: group 0 must be at least as new as they are.
    hosted.sort_by_key(|(group, _)| (*group == META_GROUP, *group));
    let mut backups = Vec::new();
    for (group, hosted) in hosted {
        let copy = dir.join(format!("group-{group}"));
        hosted.state.db().checkpoint(&copy)?;
        let applied = StateDb::load_applied_read_only(&copy)?.last_applied.unwrap_or_default();
        backups.push(GroupBackup {
            group,
            applied_term: applied.term,
            applied_index: applied.index,
            bytes: bytes_under(&copy)?,
        });
    }
    backups.sort_by_key(|b| b.group);
    let manifest = Manifest { node_id, created_unix_micros: created, groups: backups };
    write_synced(&dir.join(MANIFEST), manifest.to_toml().as_bytes())?;
    sync_dir(dir)?;
    Ok(manifest)
}

/// Makes a new data directory `data_dir` (absent or empty) hold the backup
/// at `backup` as the state of a one-node cluster whose only voter is
/// `node_id` at `advertise`; [`restore_log`] must follow, before Raft starts.
/// A restore that fails leaves the directory to be emptied before the next
/// (a part-copied state, or the new cluster's id alone).
pub fn restore_state(
    backup: &Path,
    data_dir: &Path,
    node_id: NodeId,
    advertise: &str,
) -> Result<Manifest, BackupError> {
    let manifest = Manifest::read(backup)?;
    let in_use = std::fs::read_dir(data_dir).map(|mut entries| entries.next().is_some()).unwrap_or(false);
    if in_use {
        return Err(BackupError::Invalid(format!(
            "data directory {} is not empty; a backup is restored into a new one",
            data_dir.display()
        )));
    }
    // A new cluster, with an id of its own: a node of the backed-up one that
    // calls it is refused. Kept first, so no restored directory lacks one.
    cluster_id::keep(data_dir, &cluster_id::make())?;
    let resources = DbResources::default();
    for backed_up in &manifest.groups {
        let state_dir = group_root(data_dir, backed_up.group).join(RESTORED_STATE_DIR);
        copy_dir(&backup.join(format!("group-{}", backed_up.group)), &state_dir)?;
        let db = StateDb::open(&state_dir, &resources)?;
        let catalog = db.load_catalog(backed_up.group)?;
        let writes = if backed_up.group == META_GROUP {
            let layout = catalog.layout.map(|layout| Layout {
                data_groups: layout.data_groups,
                voters: BTreeMap::from([(node_id, advertise.to_owned())]),
            });
            let expected = layout.as_ref().map_or(0, |l| l.data_groups as usize) + 1;
            if manifest.groups.len() != expected {
                return Err(BackupError::Invalid(format!(
                    "the backup holds {} groups, its layout {expected}: it is incomplete",
                    manifest.groups.len()
                )));
            }
            layout.map(Write::PutLayout).into_iter().chain([Write::PutLeaving(Default::default())]).collect()
        } else {
            // Group 0's new log starts from 1: sync from its start again.
            vec![Write::PutMetaIndex(0)]
        };
        let (applied, membership) = restored_position(node_id, advertise);
        db.rebase(writes, &log_id_to_record(&applied), &stored_membership_to_record(&membership))?;
    }
    sync_dir(data_dir)?;
    Ok(manifest)
}

/// Gives each restored group a log purged up to the state's entry, and a
/// vote for this node in its term, so Raft starts as after installing a
/// snapshot (see the module's comment).
pub async fn restore_log(log_db: &Arc<LogDb>, manifest: &Manifest, node_id: NodeId) -> Result<(), BackupError> {
    let (applied, _) = restored_position(node_id, "");
    for backed_up in &manifest.groups {
        let mut log = LogStore::open(log_db, backed_up.group)?;
        let failed =
            |e: openraft::StorageError<NodeId>| StorageError::Invalid(format!("group {}: {e}", backed_up.group));
        log.save_vote(&Vote::new(applied.leader_id.term, node_id)).await.map_err(failed)?;
        log.purge(applied).await.map_err(failed)?;
    }
    Ok(())
}

/// The entry a restored group's state is at, and its membership: this
/// node alone.
fn restored_position(node_id: NodeId, advertise: &str) -> (LogId, StoredMembership) {
    let applied = LogId::new(CommittedLeaderId::new(1, node_id), 1);
    let voters = BTreeMap::from([(node_id, BasicNode::new(advertise))]);
    let membership = Membership::new(vec![voters.keys().copied().collect()], voters);
    (applied, StoredMembership::new(Some(applied), membership))
}

impl Manifest {
    /// The manifest as TOML, written by hand: a few plain keys.
    fn to_toml(&self) -> String {
        let mut text = format!(
            "# A Ferry backup: each group-N directory is a RocksDB checkpoint of group N's state.\n\
             format = {FORMAT}\nversion = \"{}\"\ncommit = \"{}\"\nnode_id = {}\ncreated_unix_micros = {}\n",
            crate::VERSION,
            crate::GIT_COMMIT,
            self.node_id,
            self.created_unix_micros
        );
        for g in &self.groups {
            text.push_str(&format!(
                "\n[[groups]]\ngroup = {}\napplied_term = {}\napplied_index = {}\nbytes = {}\n",
                g.group, g.applied_term, g.applied_index, g.bytes
            ));
        }
        text
    }

    /// Reads and checks the manifest of the backup at `dir`.
    pub fn read(dir: &Path) -> Result<Self, BackupError> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            BackupError::Invalid(format!(
                "{} is not a finished backup: cannot read {}: {e}",
                dir.display(),
                path.display()
            ))
        })?;
        let bad = |what: &str| BackupError::Invalid(format!("{}: {what}", path.display()));
        let table: toml::Table = text.parse().map_err(|e| bad(&format!("not TOML: {e}")))?;
        let number = |table: &toml::Table, key: &str| {
            table
                .get(key)
                .and_then(toml::Value::as_integer)
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| bad(&format!("no {key}")))
        };
        if table.get("format").and_then(toml::Value::as_integer) != Some(FORMAT) {
            return Err(bad(&format!("not backup format {FORMAT}")));
        }
        let mut groups = Vec::new();
        for group in table.get("groups").and_then(toml::Value::as_array).ok_or_else(|| bad("no groups"))? {
            let group = group.as_table().ok_or_else(|| bad("a group is not a table"))?;
            groups.push(GroupBackup {
                group: u32::try_from(number(group, "group")?).map_err(|_| bad("a group id out of range"))?,
                applied_term: number(group, "applied_term")?,
                applied_index: number(group, "applied_index")?,
                bytes: number(group, "bytes")?,
            });
        }
        groups.sort_by_key(|g| g.group);
        if groups.first().map(|g| g.group) != Some(META_GROUP) {
            return Err(bad("no group 0"));
        }
        Ok(Self {
            node_id: number(&table, "node_id")?,
            created_unix_micros: number(&table, "created_unix_micros")?,
            groups,
        })
    }
}

/// Copies the files of `from` (a checkpoint: files only) into a new `to`.
fn copy_dir(from: &Path, to: &Path) -> Result<(), BackupError> {
    std::fs::create_dir_all(to).map_err(StorageError::io(format!("create {}", to.display())))?;
    let entries = std::fs::read_dir(from).map_err(StorageError::io(format!("read {}", from.display())))?;
    for entry in entries {
        let entry = entry.map_err(StorageError::io(format!("read {}", from.display())))?;
        let target: PathBuf = to.join(entry.file_name());
        std::fs::copy(entry.path(), &target).map_err(StorageError::io(format!("copy to {}", target.display())))?;
        std::fs::File::open(&target)
            .and_then(|f| f.sync_all())
            .map_err(StorageError::io(format!("fsync {}", target.display())))?;
    }
    sync_dir(to)?;
    Ok(())
}

fn bytes_under(dir: &Path) -> Result<u64, StorageError> {
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir).map_err(StorageError::io(format!("read {}", dir.display())))? {
        let entry = entry.map_err(StorageError::io(format!("read {}", dir.display())))?;
        bytes += entry.metadata().map_err(StorageError::io(format!("stat {}", dir.display())))?.len();
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_reads_back_as_written() {
        let dir = tempfile::tempdir().expect("temp dir");
        let manifest = Manifest {
            node_id: 2,
            created_unix_micros: 1_700_000_000_000_000,
            groups: vec![
                GroupBackup { group: 0, applied_term: 3, applied_index: 120, bytes: 4096 },
                GroupBackup { group: 1, applied_term: 2, applied_index: 77, bytes: 1 << 20 },
            ],
        };
        std::fs::write(dir.path().join(MANIFEST), manifest.to_toml()).expect("write");
        assert_eq!(Manifest::read(dir.path()).expect("read"), manifest);
    }

    #[test]
    fn a_directory_without_a_manifest_is_not_a_backup() {
        let dir = tempfile::tempdir().expect("temp dir");
        let err = Manifest::read(dir.path()).expect_err("no manifest");
        assert!(err.to_string().contains("not a finished backup"), "{err}");
        std::fs::write(dir.path().join(MANIFEST), "format = 9\n").expect("write");
        assert!(Manifest::read(dir.path()).expect_err("format").to_string().contains("format 1"));
    }
}
