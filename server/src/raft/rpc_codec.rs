//! Conversions between openraft's RPC messages and `ferry.internal.v1` Raft
//! service messages. Entries travel in their storage encoding.

use ferry_proto::internal as pb;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, VoteRequest, VoteResponse};

use super::codec::{
    entry_from_record, entry_to_record, log_id_from_record, log_id_to_record, vote_from_record, vote_to_record,
};
use super::groups::GroupId;
use super::type_config::{NodeId, TypeConfig, Vote};
use crate::storage::CodecError;

fn vote_of(record: Option<&pb::Vote>, what: &'static str) -> Result<Vote, CodecError> {
    record.map(vote_from_record).ok_or(CodecError::Missing(what))
}

/// `request` to `group`, on the wire.
pub fn append_request_to_record(
    group: GroupId,
    request: &AppendEntriesRequest<TypeConfig>,
) -> pb::AppendEntriesRequest {
    pb::AppendEntriesRequest {
        group_id: group,
        vote: Some(vote_to_record(&request.vote)),
        prev_log_id: request.prev_log_id.as_ref().map(log_id_to_record),
        entries: request.entries.iter().map(entry_to_record).collect(),
        leader_commit: request.leader_commit.as_ref().map(log_id_to_record),
    }
}

pub fn append_request_from_record(
    record: pb::AppendEntriesRequest,
) -> Result<AppendEntriesRequest<TypeConfig>, CodecError> {
    Ok(AppendEntriesRequest {
        vote: vote_of(record.vote.as_ref(), "append entries vote")?,
        prev_log_id: record.prev_log_id.as_ref().map(log_id_from_record),
        entries: record.entries.into_iter().map(entry_from_record).collect::<Result<_, _>>()?,
        leader_commit: record.leader_commit.as_ref().map(log_id_from_record),
    })
}

pub fn append_response_to_record(response: &AppendEntriesResponse<NodeId>) -> pb::AppendEntriesResponse {
    use pb::append_entries_response::Result as R;
    let result = match response {
        AppendEntriesResponse::Success => R::Success(pb::Accepted {}),
        AppendEntriesResponse::PartialSuccess(log_id) => {
            R::PartialSuccess(pb::PartialSuccess { log_id: log_id.as_ref().map(log_id_to_record) })
        }
        AppendEntriesResponse::Conflict => R::Conflict(pb::Rejected {}),
        AppendEntriesResponse::HigherVote(vote) => R::HigherVote(vote_to_record(vote)),
    };
    pb::AppendEntriesResponse { result: Some(result) }
}

pub fn append_response_from_record(
    record: pb::AppendEntriesResponse,
) -> Result<AppendEntriesResponse<NodeId>, CodecError> {
    use pb::append_entries_response::Result as R;
    Ok(match record.result.ok_or(CodecError::Missing("append entries result"))? {
        R::Success(_) => AppendEntriesResponse::Success,
        R::PartialSuccess(p) => AppendEntriesResponse::PartialSuccess(p.log_id.as_ref().map(log_id_from_record)),
        R::Conflict(_) => AppendEntriesResponse::Conflict,
        R::HigherVote(vote) => AppendEntriesResponse::HigherVote(vote_from_record(&vote)),
    })
}

/// `request` to `group`, on the wire.
pub fn vote_request_to_record(group: GroupId, request: &VoteRequest<NodeId>) -> pb::VoteRequest {
    pb::VoteRequest {
        group_id: group,
        vote: Some(vote_to_record(&request.vote)),
        last_log_id: request.last_log_id.as_ref().map(log_id_to_record),
    }
}

pub fn vote_request_from_record(record: pb::VoteRequest) -> Result<VoteRequest<NodeId>, CodecError> {
    Ok(VoteRequest {
        vote: vote_of(record.vote.as_ref(), "vote request vote")?,
        last_log_id: record.last_log_id.as_ref().map(log_id_from_record),
    })
}

pub fn vote_response_to_record(response: &VoteResponse<NodeId>) -> pb::VoteResponse {
    pb::VoteResponse {
        vote: Some(vote_to_record(&response.vote)),
        vote_granted: response.vote_granted,
        last_log_id: response.last_log_id.as_ref().map(log_id_to_record),
    }
}

pub fn vote_response_from_record(record: pb::VoteResponse) -> Result<VoteResponse<NodeId>, CodecError> {
    Ok(VoteResponse {
        vote: vote_of(record.vote.as_ref(), "vote response vote")?,
        vote_granted: record.vote_granted,
        last_log_id: record.last_log_id.as_ref().map(log_id_from_record),
    })
}
