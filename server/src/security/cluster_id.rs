//! The cluster's id: every call one node makes to another carries it
//! (`ferry-cluster-id`), and a node refuses a call carrying another
//! cluster's (FAILED_PRECONDITION).
//!
//! Without it, a node would act on whatever cluster calls its address. A
//! cluster whose membership still names an address now used by a node of
//! another cluster (a host reused, a node wiped and started elsewhere, a
//! mistyped `--peers` or `--join`) sends that node its Raft calls: with a
//! higher term, its AppendEntries make the node replace its log with the
//! foreign leader's, acknowledged messages and all; with a lower one, the
//! node's answer makes the foreign leader step down. Forwarded publishes
//! would commit in the wrong cluster. etcd puts a cluster id on every
//! message for the same reason.
//!
//! How a node learns its cluster's id (`node::formation::settle_cluster_id`)
//! and keeps it in its data directory (the file `cluster-id`):
//! - a node forming a cluster alone, or restoring a backup as a new one,
//!   makes a random id;
//! - the nodes of a static peer list each derive the same id from the list
//!   (so they agree without talking; started with different lists, they
//!   refuse each other, as they should);
//! - a node joining a cluster takes the id of the first call carrying one
//!   (its log is empty: it has nothing to lose to the wrong cluster, and
//!   once it has an id it refuses every other);
//! - a data directory from before cluster ids has none: its node neither
//!   sends nor checks one (nor do the nodes it calls, for its calls carry
//!   none), until it is formed again.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tonic::metadata::{Ascii, MetadataMap, MetadataValue};
use tonic::Status;

use crate::raft::snapshot_dir::{sync_dir, write_synced};
use crate::storage::StorageError;

/// The metadata key a call between nodes carries the cluster's id in.
pub const CLUSTER_ID_HEADER: &str = "ferry-cluster-id";
/// The file of the data directory that holds the cluster's id.
const FILE: &str = "cluster-id";
/// Characters of an id: 128 bits in hex.
const ID_CHARS: usize = 32;

/// This node's cluster id, shared by what sends calls to peers (which stamp
/// it) and by the server (which checks it). Empty until the node knows it.
#[derive(Debug, Clone, Default)]
pub struct ClusterId(Arc<Cell>);

#[derive(Debug, Default)]
struct Cell {
    id: OnceLock<MetadataValue<Ascii>>,
    /// Set while this node may take the id of the first call carrying one:
    /// the data directory the id is then kept in.
    adopt_into: Mutex<Option<PathBuf>>,
}

/// How a node came by its cluster's id, for its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterIdOrigin {
    Kept,
    Made,
    Derived,
    Adopted,
}

impl ClusterId {
    /// The id this node keeps in `data_dir`, if any.
    pub fn read(data_dir: &Path) -> Result<Option<String>, StorageError> {
        let path = data_dir.join(FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text.trim().to_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io(format!("read {}", path.display()))(e)),
        }
    }

    /// A new random id.
    pub fn make() -> String {
        let bits: u128 = rand::random();
        format!("{bits:0width$x}", width = ID_CHARS)
    }

    /// The id every node of a cluster formed from the peer list `peers`
    /// (`(node id, address)` pairs, in order of node id) derives alike.
    pub fn derive<'a>(peers: impl IntoIterator<Item = (u64, &'a str)>) -> String {
        let mut hash = Sha256::new();
        for (id, addr) in peers {
            hash.update(format!("{id}={addr}\n"));
        }
        hash.finalize().iter().take(ID_CHARS / 2).map(|byte| format!("{byte:02x}")).collect()
    }

    /// Makes `id` this node's, kept in `data_dir` (written and fsynced before
    /// any call carries it).
    pub fn set(&self, id: &str, origin: ClusterIdOrigin, data_dir: &Path) -> Result<(), StorageError> {
        let value = MetadataValue::try_from(id)
            .map_err(|_| StorageError::Invalid(format!("cluster id {id:?} is not printable ASCII")))?;
        if origin != ClusterIdOrigin::Kept {
            keep(data_dir, id)?;
        }
        if self.0.id.set(value).is_err() {
            return Err(StorageError::Invalid("the cluster id was set twice".into()));
        }
        tracing::info!(cluster_id = id, ?origin, "this node's cluster");
        Ok(())
    }

    /// Lets this node take the id of the first call that carries one, kept
    /// in `data_dir`.
    pub fn adopt_first_into(&self, data_dir: &Path) {
        *self.0.adopt_into.lock() = Some(data_dir.to_owned());
    }

    /// The id, once known.
    pub fn get(&self) -> Option<&str> {
        self.0.id.get().and_then(|value| value.to_str().ok())
    }

    /// Puts the id (if known) on a call to a peer.
    pub fn stamp(&self, metadata: &mut MetadataMap) {
        if let Some(value) = self.0.id.get() {
            metadata.insert(CLUSTER_ID_HEADER, value.clone());
        }
    }

    /// Whether a call carrying `theirs` (the caller's cluster id, if it sent
    /// one) may run here. Calls without one run: clients send none, nor do
    /// nodes that do not know theirs.
    pub fn check(&self, theirs: Option<&[u8]>) -> Result<(), Status> {
        let Some(theirs) = theirs else { return Ok(()) };
        if self.0.id.get().is_none() {
            self.adopt(theirs)?;
        }
        match self.0.id.get() {
            Some(mine) if mine.as_bytes() != theirs => Err(Status::failed_precondition(format!(
                "this node is a member of cluster {}, and the call came from a node of cluster {}: \
                 that cluster has this node's address as one of its members' (an address reused, or a \
                 mistyped --peers or --join)",
                mine.to_str().unwrap_or("?"),
                String::from_utf8_lossy(theirs),
            ))),
            _ => Ok(()),
        }
    }

    /// Takes `theirs` as this node's id if it may; the lock makes two first
    /// calls of different clusters take one id.
    fn adopt(&self, theirs: &[u8]) -> Result<(), Status> {
        let mut adopt_into = self.0.adopt_into.lock();
        let Some(data_dir) = adopt_into.as_deref() else { return Ok(()) };
        if self.0.id.get().is_some() {
            return Ok(());
        }
        let id = std::str::from_utf8(theirs)
            .map_err(|_| Status::invalid_argument(format!("{CLUSTER_ID_HEADER} must be ASCII")))?;
        // Once in a node's life, and before the call runs: a blocking write
        // and fsync here is what makes the id outlive a crash right after.
        self.set(id, ClusterIdOrigin::Adopted, data_dir)
            .map_err(|e| Status::unavailable(format!("this node could not keep its cluster id: {e}")))?;
        *adopt_into = None;
        Ok(())
    }
}

/// Writes `id` into `data_dir`'s file, replacing it whole.
fn keep(data_dir: &Path, id: &str) -> Result<(), StorageError> {
    let (partial, path) = (data_dir.join(format!("{FILE}.partial")), data_dir.join(FILE));
    write_synced(&partial, format!("{id}\n").as_bytes())?;
    std::fs::rename(&partial, &path).map_err(StorageError::io(format!("rename to {}", path.display())))?;
    sync_dir(data_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamped(id: &ClusterId) -> Option<Vec<u8>> {
        let mut metadata = MetadataMap::new();
        id.stamp(&mut metadata);
        metadata.get(CLUSTER_ID_HEADER).map(|value| value.as_bytes().to_vec())
    }

    #[test]
    fn a_node_refuses_calls_of_another_cluster_and_takes_its_own_and_unmarked_ones() {
        let dir = tempfile::tempdir().expect("temp dir");
        let id = ClusterId::default();
        id.set("aaaa", ClusterIdOrigin::Made, dir.path()).expect("set");
        assert_eq!(stamped(&id).as_deref(), Some(&b"aaaa"[..]));
        assert!(id.check(Some(b"aaaa")).is_ok());
        assert!(id.check(None).is_ok(), "clients and nodes that know no id send none");
        let refused = id.check(Some(b"bbbb")).expect_err("another cluster's call");
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
        assert!(refused.message().contains("aaaa") && refused.message().contains("bbbb"), "{}", refused.message());
    }

    #[test]
    fn an_id_made_or_derived_is_kept_in_the_data_directory() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert_eq!(ClusterId::read(dir.path()).expect("read"), None);
        let made = ClusterId::make();
        assert_eq!(made.len(), ID_CHARS);
        assert_ne!(made, ClusterId::make());
        ClusterId::default().set(&made, ClusterIdOrigin::Made, dir.path()).expect("set");
        assert_eq!(ClusterId::read(dir.path()).expect("read").as_deref(), Some(made.as_str()));
        let kept = ClusterId::default();
        kept.set(&made, ClusterIdOrigin::Kept, dir.path()).expect("set");
        assert_eq!(kept.get(), Some(made.as_str()));
    }

    #[test]
    fn nodes_given_the_same_peer_list_derive_the_same_id_and_other_lists_another() {
        let list = [(1, "10.0.0.1:7070"), (2, "10.0.0.2:7070"), (3, "10.0.0.3:7070")];
        assert_eq!(ClusterId::derive(list), ClusterId::derive(list));
        assert_eq!(ClusterId::derive(list).len(), ID_CHARS);
        let other = [(1, "10.0.0.1:7070"), (2, "10.0.0.2:7070"), (3, "10.0.0.4:7070")];
        assert_ne!(ClusterId::derive(list), ClusterId::derive(other));
    }

    #[test]
    fn a_joining_node_takes_the_first_id_it_is_called_with_and_keeps_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let id = ClusterId::default();
        assert!(id.check(Some(b"cccc")).is_ok(), "a node that may not adopt runs any call");
        assert_eq!(id.get(), None);
        id.adopt_first_into(dir.path());
        assert!(id.check(None).is_ok());
        assert_eq!(id.get(), None, "a call without an id gives none");
        assert!(id.check(Some(b"cccc")).is_ok());
        assert_eq!(id.get(), Some("cccc"));
        assert_eq!(ClusterId::read(dir.path()).expect("read").as_deref(), Some("cccc"));
        assert_eq!(id.check(Some(b"dddd")).expect_err("refused").code(), tonic::Code::FailedPrecondition);
    }
}
