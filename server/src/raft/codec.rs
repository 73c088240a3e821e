//! Conversions between openraft's types and their persistent records
//! (`ferry.internal.v1`): log entries, log ids, votes and memberships.

use std::collections::{BTreeMap, BTreeSet};

use ferry_proto::internal as pb;
use openraft::{BasicNode, CommittedLeaderId, EntryPayload};

use super::type_config::{Entry, LogId, Membership, StoredMembership, Vote};
use crate::storage::records::{command_from_record, command_to_record};
use crate::storage::CodecError;

pub fn log_id_to_record(log_id: &LogId) -> pb::LogId {
    pb::LogId { term: log_id.leader_id.term, leader_node_id: log_id.leader_id.node_id, index: log_id.index }
}

pub fn log_id_from_record(record: &pb::LogId) -> LogId {
    LogId::new(CommittedLeaderId::new(record.term, record.leader_node_id), record.index)
}

pub fn vote_to_record(vote: &Vote) -> pb::Vote {
    pb::Vote { term: vote.leader_id.term, node_id: vote.leader_id.node_id, committed: vote.committed }
}

pub fn vote_from_record(record: &pb::Vote) -> Vote {
    if record.committed {
        Vote::new_committed(record.term, record.node_id)
    } else {
        Vote::new(record.term, record.node_id)
    }
}

pub fn membership_to_record(membership: &Membership) -> pb::Membership {
    pb::Membership {
        configs: membership
            .get_joint_config()
            .iter()
            .map(|voters| pb::VoterSet { node_ids: voters.iter().copied().collect() })
            .collect(),
        nodes: membership.nodes().map(|(id, node)| (*id, pb::NodeInfo { addr: node.addr.clone() })).collect(),
    }
}

pub fn membership_from_record(record: pb::Membership) -> Membership {
    let configs: Vec<BTreeSet<u64>> = record.configs.into_iter().map(|c| c.node_ids.into_iter().collect()).collect();
    let nodes: BTreeMap<u64, BasicNode> =
        record.nodes.into_iter().map(|(id, info)| (id, BasicNode { addr: info.addr })).collect();
    Membership::new(configs, nodes)
}

pub fn stored_membership_to_record(stored: &StoredMembership) -> pb::StoredMembership {
    pb::StoredMembership {
        log_id: stored.log_id().as_ref().map(log_id_to_record),
        membership: Some(membership_to_record(stored.membership())),
    }
}

pub fn stored_membership_from_record(record: pb::StoredMembership) -> StoredMembership {
    let membership = record.membership.map(membership_from_record).unwrap_or_default();
    StoredMembership::new(record.log_id.as_ref().map(log_id_from_record), membership)
}

pub fn entry_to_record(entry: &Entry) -> pb::LogEntry {
    use pb::log_entry::Payload;
    let payload = match &entry.payload {
        EntryPayload::Blank => Payload::Blank(pb::Blank {}),
        EntryPayload::Normal(command) => Payload::Command(command_to_record(command)),
        EntryPayload::Membership(membership) => Payload::Membership(membership_to_record(membership)),
    };
    pb::LogEntry {
        term: entry.log_id.leader_id.term,
        leader_node_id: entry.log_id.leader_id.node_id,
        index: entry.log_id.index,
        payload: Some(payload),
    }
}

pub fn entry_from_record(record: pb::LogEntry) -> Result<Entry, CodecError> {
    use pb::log_entry::Payload;
    let log_id = LogId::new(CommittedLeaderId::new(record.term, record.leader_node_id), record.index);
    let payload = match record.payload.ok_or(CodecError::Missing("log entry payload"))? {
        Payload::Blank(_) => EntryPayload::Blank,
        Payload::Command(command) => EntryPayload::Normal(command_from_record(command)?),
        Payload::Membership(membership) => EntryPayload::Membership(membership_from_record(membership)),
    };
    Ok(Entry { log_id, payload })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::domain::Command;
    use crate::storage::codec;

    fn round_trip(entry: &Entry) -> Entry {
        let bytes = codec::encode(&entry_to_record(entry));
        entry_from_record(codec::decode("entry", Bytes::from(bytes)).expect("decode")).expect("convert")
    }

    #[test]
    fn entries_of_every_payload_round_trip() {
        let log_id = LogId::new(CommittedLeaderId::new(7, 2), 42);
        let nodes =
            BTreeMap::from([(1, BasicNode::new("a:1")), (2, BasicNode::new("b:2")), (3, BasicNode::new("c:3"))]);
        let membership = Membership::new(vec![BTreeSet::from([1, 2]), BTreeSet::from([2, 3])], nodes);
        let entries = [
            Entry { log_id, payload: EntryPayload::Blank },
            Entry { log_id, payload: EntryPayload::Normal(Command::DeleteTopic { name: "t".into() }) },
            Entry { log_id, payload: EntryPayload::Membership(membership) },
        ];
        for entry in &entries {
            assert_eq!(&round_trip(entry), entry);
        }
    }

    #[test]
    fn votes_and_memberships_round_trip() {
        for vote in [Vote::new(3, 1), Vote::new_committed(9, 4)] {
            assert_eq!(vote_from_record(&vote_to_record(&vote)), vote);
        }
        let stored = StoredMembership::new(
            Some(LogId::new(CommittedLeaderId::new(1, 1), 5)),
            Membership::new(vec![BTreeSet::from([1])], BTreeMap::from([(1, BasicNode::new("x:1"))])),
        );
        assert_eq!(stored_membership_from_record(stored_membership_to_record(&stored)), stored);
    }
}
