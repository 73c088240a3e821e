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
//! The id is not authentication (the peer token is): a node that names no
//! id is let in, as clients are, and so are the nodes of a data directory
//! from before cluster ids, which have none.
//!
//! How a node learns its cluster's id is `node::formation`'s: the file
//! `cluster-id` of its data directory keeps it once known.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use sha2::{Digest, Sha256};
use tonic::metadata::{Ascii, MetadataMap, MetadataValue};
use tonic::Status;

use crate::grpc::status::REASON_METADATA;
use crate::storage::files::replace_synced;
use crate::storage::StorageError;

/// The metadata key a call between nodes carries the cluster's id in.
pub const CLUSTER_ID_HEADER: &str = "ferry-cluster-id";
/// The `ferry-reason` of a call refused for naming another cluster.
pub const OTHER_CLUSTER_REASON: &str = "other-cluster";
/// The `ferry-reason` of a call refused because this node, joining, has not
/// learnt its cluster's id yet.
pub const LEARNING_REASON: &str = "cluster-id-not-learnt";
/// The file of the data directory that keeps the cluster's id.
const FILE: &str = "cluster-id";
/// Characters of an id: 128 bits in lowercase hex.
const ID_CHARS: usize = 32;

/// This node's cluster id, shared by what calls peers (which stamp it on
/// each call) and by the server (which checks each call against it).
#[derive(Debug, Clone, Default)]
pub struct ClusterIdentity(Arc<Cell>);

#[derive(Debug, Default)]
struct Cell {
    id: OnceLock<MetadataValue<Ascii>>,
    /// Set while this node joins a cluster and has yet to learn its id:
    /// calls naming a cluster are refused until it has (it cannot tell its
    /// own cluster's from another's).
    learning: AtomicBool,
}

impl ClusterIdentity {
    /// Makes `id` this node's (once; a valid id, see [`parse`]).
    pub fn set(&self, id: &str) -> Result<(), StorageError> {
        let value = MetadataValue::try_from(parse(id)?).expect("an id is lowercase hex");
        self.0.id.set(value).map_err(|_| StorageError::Invalid("the cluster id is set once".into()))?;
        self.0.learning.store(false, Ordering::Release);
        Ok(())
    }

    /// Until [`set`](Self::set) or [`learnt_none`](Self::learnt_none),
    /// calls naming a cluster are refused as not yet answerable.
    pub fn learning(&self) {
        self.0.learning.store(true, Ordering::Release);
    }

    /// The cluster joined has no id (its data predates them): calls are
    /// let in, as a node without an id lets them in.
    pub fn learnt_none(&self) {
        self.0.learning.store(false, Ordering::Release);
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

    /// Whether a call naming the cluster `theirs` (if it names one) may run
    /// here; `internal`: it is a call only nodes make (Raft's, say). While
    /// this node learns its id it takes none of those, named or not: a
    /// node of a cluster from before ids names none, and its AppendEntries
    /// would make this node a member of that cluster instead.
    pub fn check(&self, theirs: Option<&[u8]>, internal: bool) -> Result<(), Status> {
        let learning = self.0.learning.load(Ordering::Acquire) && self.0.id.get().is_none();
        if learning && (internal || theirs.is_some()) {
            return Err(refusal(
                Status::unavailable(
                    "this node is joining a cluster and has not learnt its id yet; it takes calls of its \
                     cluster's nodes once it has",
                ),
                LEARNING_REASON,
            ));
        }
        let Some(theirs) = theirs else { return Ok(()) };
        match self.0.id.get() {
            Some(mine) if mine.as_bytes() != theirs => Err(refusal(
                Status::failed_precondition(format!(
                    "this node is a member of cluster {}, and the call came from a node of cluster {}: \
                 that cluster has this node's address as one of its members' (an address reused, or a \
                 mistyped --peers or --join)",
                    mine.to_str().unwrap_or("?"),
                    String::from_utf8_lossy(theirs),
                )),
                OTHER_CLUSTER_REASON,
            )),
            _ => Ok(()),
        }
    }
}

/// `status` with the `ferry-reason` that says why, so a caller can tell a
/// refusal from another failure with the same code.
fn refusal(mut status: Status, reason: &'static str) -> Status {
    status.metadata_mut().insert(REASON_METADATA, MetadataValue::from_static(reason));
    status
}

/// Whether `status` is a node's refusal of this cluster's calls: it belongs
/// to another cluster, or is joining one and has not learnt its id.
pub fn is_refusal(status: &Status) -> bool {
    let reason = status.metadata().get(REASON_METADATA).and_then(|v| v.to_str().ok());
    matches!(reason, Some(OTHER_CLUSTER_REASON | LEARNING_REASON))
}

/// `text` as an id: 32 lowercase hex characters.
pub fn parse(text: &str) -> Result<&str, StorageError> {
    let valid = text.len() == ID_CHARS && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !valid {
        return Err(StorageError::Invalid(format!("{text:?} is not a cluster id ({ID_CHARS} lowercase hex digits)")));
    }
    Ok(text)
}

/// The id `data_dir` keeps, if any.
pub fn read(data_dir: &Path) -> Result<Option<String>, StorageError> {
    let path = data_dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = parse(text.trim()).map_err(|e| StorageError::Invalid(format!("{}: {e}", path.display())))?;
            Ok(Some(id.to_owned()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io(format!("read {}", path.display()))(e)),
    }
}

/// Keeps `id` in `data_dir`, durably, before any call carries it.
pub fn keep(data_dir: &Path, id: &str) -> Result<(), StorageError> {
    replace_synced(data_dir, FILE, format!("{}\n", parse(id)?).as_bytes())
}

/// A new random id.
pub fn make() -> String {
    let bits: u128 = rand::random();
    format!("{bits:0width$x}", width = ID_CHARS)
}

/// The id every node given the peer list `peers` (`(node id, address)`
/// pairs, in order of node id) derives alike.
pub fn derive<'a>(peers: impl IntoIterator<Item = (u64, &'a str)>) -> String {
    let mut hash = Sha256::new();
    for (id, addr) in peers {
        hash.update(format!("{id}={addr}\n"));
    }
    hash.finalize().iter().take(ID_CHARS / 2).map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn stamped(identity: &ClusterIdentity) -> Option<Vec<u8>> {
        let mut metadata = MetadataMap::new();
        identity.stamp(&mut metadata);
        metadata.get(CLUSTER_ID_HEADER).map(|value| value.as_bytes().to_vec())
    }

    #[test]
    fn a_node_refuses_calls_of_another_cluster_and_takes_its_own_and_unnamed_ones() {
        let identity = ClusterIdentity::default();
        assert_eq!(stamped(&identity), None, "no id, nothing stamped");
        assert!(identity.check(Some(B.as_bytes()), true).is_ok(), "a node without an id checks nothing");
        identity.set(A).expect("set");
        assert_eq!(stamped(&identity).as_deref(), Some(A.as_bytes()));
        assert!(identity.check(Some(A.as_bytes()), true).is_ok());
        assert!(identity.check(None, false).is_ok(), "clients and nodes without an id name none");
        let refused = identity.check(Some(B.as_bytes()), true).expect_err("another cluster's call");
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
        assert!(is_refusal(&refused));
        assert!(refused.message().contains(A) && refused.message().contains(B), "{}", refused.message());
        assert!(!is_refusal(&Status::failed_precondition("another failure")));
        assert!(identity.set(B).is_err(), "set once");
    }

    #[test]
    fn a_joining_node_takes_no_call_naming_a_cluster_until_it_knows_its_own() {
        let identity = ClusterIdentity::default();
        identity.learning();
        let not_yet = identity.check(Some(B.as_bytes()), false).expect_err("not yet");
        assert_eq!(not_yet.code(), tonic::Code::Unavailable);
        assert!(is_refusal(&not_yet));
        assert!(identity.check(None, true).is_err(), "nor a node's call that names no cluster");
        assert!(identity.check(None, false).is_ok(), "clients are served meanwhile");
        identity.set(A).expect("set");
        assert!(identity.check(Some(A.as_bytes()), true).is_ok());
        assert_eq!(
            identity.check(Some(B.as_bytes()), true).expect_err("refused").code(),
            tonic::Code::FailedPrecondition
        );

        let into_old_cluster = ClusterIdentity::default();
        into_old_cluster.learning();
        into_old_cluster.learnt_none();
        assert!(into_old_cluster.check(Some(B.as_bytes()), true).is_ok());
        assert!(into_old_cluster.check(None, true).is_ok());
    }

    #[test]
    fn an_id_is_kept_in_the_data_directory_and_a_damaged_one_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert_eq!(read(dir.path()).expect("read"), None);
        let made = make();
        assert!(parse(&made).is_ok(), "{made}");
        assert_ne!(made, make());
        keep(dir.path(), &made).expect("keep");
        assert_eq!(read(dir.path()).expect("read"), Some(made));
        std::fs::write(dir.path().join(FILE), "").expect("write");
        assert!(read(dir.path()).is_err(), "an empty file is damaged");
        std::fs::write(dir.path().join(FILE), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n").expect("write");
        assert!(read(dir.path()).is_err(), "uppercase");
        assert!(keep(dir.path(), "short").is_err());
    }

    #[test]
    fn nodes_given_the_same_peer_list_derive_the_same_id_and_other_lists_another() {
        let list = [(1, "10.0.0.1:7070"), (2, "10.0.0.2:7070"), (3, "10.0.0.3:7070")];
        assert_eq!(derive(list), derive(list));
        assert!(parse(&derive(list)).is_ok());
        let other = [(1, "10.0.0.1:7070"), (2, "10.0.0.2:7070"), (3, "10.0.0.4:7070")];
        assert_ne!(derive(list), derive(other));
    }
}
