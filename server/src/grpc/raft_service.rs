//! The internal `ferry.internal.v1.Raft` service: peers' Raft RPCs, handed to
//! the openraft instance of the group they name, and snapshots streamed in
//! file by file.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use ferry_proto::internal as pb;
use ferry_proto::internal::raft_server::Raft as RaftRpc;
use tokio::io::AsyncWriteExt;
use tonic::{Request, Response, Status, Streaming};

use crate::raft::codec::{log_id_from_record, stored_membership_from_record, vote_from_record, vote_to_record};
use crate::raft::rpc_codec::*;
use crate::raft::snapshot_dir::{self, SnapshotDir};
use crate::raft::type_config::{Snapshot, SnapshotMeta};
use crate::raft::{GroupId, Groups, HostedGroup};
use crate::storage::files::sync_dir;

#[derive(Clone)]
pub struct RaftService {
    groups: Arc<Groups>,
}

impl std::fmt::Debug for RaftService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftService").finish_non_exhaustive()
    }
}

impl RaftService {
    pub fn new(groups: Arc<Groups>) -> Self {
        Self { groups }
    }

    fn group(&self, id: GroupId) -> Result<HostedGroup, Status> {
        self.groups.get(id).ok_or_else(|| Status::not_found(format!("raft group {id} is not hosted on this node")))
    }
}

fn malformed(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("malformed raft message: {e}"))
}

fn stopped(e: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("raft is not running: {e}"))
}

/// Snapshot file names come from the network: allow plain names only.
fn safe_file_name(name: &str) -> Result<&str, Status> {
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if plain {
        Ok(name)
    } else {
        Err(Status::invalid_argument(format!("snapshot file name {name:?} is not a plain file name")))
    }
}

/// A snapshot file being received.
struct Incoming {
    name: String,
    file: tokio::fs::File,
    next_offset: u64,
}

impl Incoming {
    async fn finish(self) -> Result<(), Status> {
        self.file.sync_all().await.map_err(|e| Status::internal(format!("fsync snapshot file {}: {e}", self.name)))
    }
}

async fn receive_files<S>(dir: &Path, stream: &mut S, marked: bool) -> Result<(), Status>
where
    S: futures::Stream<Item = Result<pb::SnapshotChunk, Status>> + Unpin,
{
    use futures::StreamExt;
    let mut current: Option<Incoming> = None;
    let (mut files, mut bytes) = (0u32, 0u64);
    let mut ended = None;
    while let Some(chunk) = stream.next().await.transpose()? {
        let chunk = match chunk.part {
            Some(pb::snapshot_chunk::Part::File(chunk)) if ended.is_none() => chunk,
            Some(pb::snapshot_chunk::Part::End(end)) if ended.is_none() => {
                ended = Some(end);
                continue;
            }
            _ => return Err(Status::invalid_argument("a snapshot stream is a header, files, then its end")),
        };
        let name = safe_file_name(&chunk.name)?;
        if current.as_ref().is_none_or(|c| c.name != name) {
            if let Some(done) = current.take() {
                done.finish().await?;
            }
            files += 1;
            let path = dir.join(name);
            let file = tokio::fs::File::options()
                .write(true)
                .create_new(true)
                .open(&path)
                .await
                .map_err(|e| Status::internal(format!("create {}: {e}", path.display())))?;
            current = Some(Incoming { name: name.to_owned(), file, next_offset: 0 });
        }
        let incoming = current.as_mut().ok_or_else(|| Status::internal("no snapshot file open"))?;
        if chunk.offset != incoming.next_offset {
            return Err(Status::invalid_argument(format!(
                "snapshot file {name}: chunk at offset {} where {} was expected",
                chunk.offset, incoming.next_offset
            )));
        }
        incoming.file.write_all(&chunk.data).await.map_err(|e| Status::internal(format!("write {name}: {e}")))?;
        incoming.next_offset += chunk.data.len() as u64;
        bytes += chunk.data.len() as u64;
    }
    if let Some(done) = current.take() {
        done.finish().await?;
    }
    match ended {
        Some(end) if (end.files, end.bytes) != (files, bytes) => {
            return Err(Status::invalid_argument(format!(
                "the snapshot stream sent {files} files of {bytes} bytes where its end says {} of {}",
                end.files, end.bytes
            )))
        }
        None if marked => return Err(Status::aborted("the snapshot stream ended before its end: it was cut short")),
        _ => {}
    }
    sync_dir(dir).map_err(|e| Status::internal(e.to_string()))
}

/// A directory removed when dropped, if it is still there.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[tonic::async_trait]
impl RaftRpc for RaftService {
    async fn append_entries(
        &self,
        request: Request<pb::AppendEntriesRequest>,
    ) -> Result<Response<pb::AppendEntriesResponse>, Status> {
        let request = request.into_inner();
        let group = self.group(request.group_id)?;
        let request = append_request_from_record(request).map_err(malformed)?;
        let response = group.raft.append_entries(request).await.map_err(stopped)?;
        Ok(Response::new(append_response_to_record(&response)))
    }

    async fn vote(&self, request: Request<pb::VoteRequest>) -> Result<Response<pb::VoteResponse>, Status> {
        let request = request.into_inner();
        let group = self.group(request.group_id)?;
        let request = vote_request_from_record(request).map_err(malformed)?;
        let response = group.raft.vote(request).await.map_err(stopped)?;
        Ok(Response::new(vote_response_to_record(&response)))
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<pb::SnapshotChunk>>,
    ) -> Result<Response<pb::SnapshotReply>, Status> {
        let mut stream = request.into_inner();
        let Some(pb::SnapshotChunk { part: Some(pb::snapshot_chunk::Part::Header(header)) }) = stream.message().await?
        else {
            return Err(Status::invalid_argument("a snapshot stream must start with its header"));
        };
        let group = self.group(header.group_id)?;
        let vote = header.vote.as_ref().map(vote_from_record).ok_or_else(|| malformed("snapshot without a vote"))?;
        let meta = header.meta.ok_or_else(|| malformed("snapshot without meta"))?;
        let meta = SnapshotMeta {
            last_log_id: meta.last_log_id.as_ref().map(log_id_from_record),
            last_membership: stored_membership_from_record(meta.last_membership.unwrap_or_default()),
            snapshot_id: meta.snapshot_id,
        };
        let dir = group.state.snapshot_receive_dir(&meta.snapshot_id).map_err(|e| Status::internal(e.to_string()))?;
        // Removed if this call ends before the install (an error, or the
        // peer giving up: the call is dropped), else when the install ends
        // (Raft may not need it); installing moves it away.
        let received = RemoveOnDrop(dir.clone());
        receive_files(&dir, &mut stream, header.ends_with_marker).await?;
        // Refused here, an incomplete snapshot is sent again; handed to Raft,
        // its install fails, which stops the group on this node.
        snapshot_dir::check_whole(&dir, &meta.snapshot_id)
            .map_err(|e| Status::unavailable(format!("{e}; send it again")))?;
        tracing::info!(group = header.group_id, snapshot = %meta.snapshot_id, "received a snapshot; installing");
        let snapshot = Snapshot { meta, snapshot: Box::new(SnapshotDir { path: dir.clone() }) };
        let raft = group.raft.clone();
        let install = async move { raft.install_full_snapshot(vote, snapshot).await };
        let response = install_holding_dir(received, install).await?.map_err(stopped)?;
        Ok(Response::new(pb::SnapshotReply { vote: Some(vote_to_record(&response.vote)) }))
    }
}

/// Runs a snapshot's `install` on a task of its own, which keeps the
/// directory `received` removes until the install ends, even if this call
/// is dropped. Run in the call, it went on in Raft after a call the leader
/// gave up on (a slow transfer) was dropped, and the directory was removed
/// under it: the install failed for want of its files, which stopped the
/// group on this node (seen in CI, a backup restored into a new cluster on
/// a loaded machine).
async fn install_holding_dir<T: Send + 'static>(
    received: RemoveOnDrop,
    install: impl Future<Output = T> + Send + 'static,
) -> Result<T, Status> {
    let installing = tokio::spawn(async move {
        let installed = install.await;
        drop(received);
        installed
    });
    installing.await.map_err(|e| Status::internal(format!("installing the snapshot failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, offset: u64, data: &'static [u8]) -> Result<pb::SnapshotChunk, Status> {
        let chunk = pb::FileChunk { name: name.into(), offset, data: data.into() };
        Ok(pb::SnapshotChunk { part: Some(pb::snapshot_chunk::Part::File(chunk)) })
    }

    fn end(files: u32, bytes: u64) -> Result<pb::SnapshotChunk, Status> {
        Ok(pb::SnapshotChunk { part: Some(pb::snapshot_chunk::Part::End(pb::SnapshotEnd { files, bytes })) })
    }

    #[tokio::test]
    async fn a_snapshot_stream_counts_only_when_it_ends_with_its_marker_and_sizes() {
        let receive = |chunks: Vec<Result<pb::SnapshotChunk, Status>>, marked: bool| async move {
            let dir = tempfile::tempdir().expect("temp dir");
            receive_files(dir.path(), &mut futures::stream::iter(chunks), marked).await
        };
        let whole =
            vec![file("CURRENT", 0, b"MANIFEST-1\n"), file("1.sst", 0, b"abc"), file("1.sst", 3, b"de"), end(2, 16)];
        receive(whole, true).await.expect("a whole snapshot is received");
        // A sender that gave up mid-way ends the stream cleanly: not a snapshot.
        let cut = vec![file("CURRENT", 0, b"MANIFEST-1\n"), file("1.sst", 0, b"abc")];
        let refused = receive(cut.clone(), true).await.expect_err("cut short");
        assert_eq!(refused.code(), tonic::Code::Aborted, "{refused:?}");
        receive(cut, false).await.expect("an older sender has no marker to wait for");
        let short = vec![file("CURRENT", 0, b"MANIFEST-1\n"), end(2, 11)];
        assert_eq!(receive(short, true).await.expect_err("a file missing").code(), tonic::Code::InvalidArgument);
        let after = vec![end(0, 0), file("CURRENT", 0, b"x")];
        assert_eq!(receive(after, true).await.expect_err("a file after the end").code(), tonic::Code::InvalidArgument);
    }

    #[tokio::test]
    async fn a_snapshot_being_installed_keeps_its_files_when_the_call_is_dropped() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("partial-1-received-0");
        std::fs::create_dir(&dir).expect("create");
        std::fs::write(dir.join("CURRENT"), b"MANIFEST-1\n").expect("write");
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let (report, seen) = tokio::sync::oneshot::channel::<bool>();
        let current = dir.join("CURRENT");
        let install = async move {
            let _ = wait.await;
            let _ = report.send(current.is_file());
        };
        let mut call = Box::pin(install_holding_dir(RemoveOnDrop(dir.clone()), install));
        assert!(futures::poll!(call.as_mut()).is_pending(), "the install waits");
        drop(call);
        go.send(()).expect("the install runs on");
        assert!(seen.await.expect("the install ended"), "the install found its files");
        // On this one-thread runtime the install's task ran to its end (and
        // dropped its guard) before this one was polled again.
        assert!(!dir.exists(), "the directory stayed after the install ended");
    }

    #[tokio::test]
    async fn a_group_this_node_does_not_host_is_not_found_and_named() {
        let service = RaftService::new(Arc::new(Groups::default()));
        let voted = service.vote(Request::new(pb::VoteRequest { group_id: 7, ..Default::default() })).await;
        let status = voted.expect_err("no group 7 here");
        assert_eq!(status.code(), tonic::Code::NotFound);
        assert!(status.message().contains("raft group 7"), "{}", status.message());
        let request = pb::AppendEntriesRequest { group_id: 7, ..Default::default() };
        let appended = service.append_entries(Request::new(request)).await;
        assert_eq!(appended.expect_err("no group 7 here").code(), tonic::Code::NotFound);
    }
}
