//! Pub/Sub's snapshots as Ferry's bookmarks (`grpc::bookmarks`):
//! `projects/P/snapshots/S` is the bookmark `P.S`. A snapshot saves each
//! partition's ack floor, so after a seek to it a message acked above its
//! partition's floor when the snapshot was made comes again (the service
//! would not deliver it). Snapshots cannot be changed (UpdateSnapshot
//! answers UNIMPLEMENTED).

use ferry_proto::pubsub as ps;
use ferry_proto::v1 as api;
use ferry_proto::v1::publisher_server::Publisher as _;
use ferry_proto::v1::subscriber_server::Subscriber as _;
use tonic::{Request, Response, Status};

use super::convert::timestamp;
use super::ferry_request;
use super::names::{from_ferry, to_ferry, Kind};
use super::paging::{page_size, FerryPage, ProjectListing, FERRY_PAGE};
use super::subscriber::PubsubSubscriber;
use crate::grpc::{ApiError, PublisherService, SubscriberService};

/// A Ferry bookmark as Pub/Sub shows it; `None` outside any project.
fn snapshot(bookmark: &api::Bookmark) -> Option<ps::Snapshot> {
    Some(ps::Snapshot {
        name: from_ferry(Kind::Snapshot, &bookmark.name)?,
        topic: from_ferry(Kind::Topic, &bookmark.topic).unwrap_or_default(),
        expire_time: Some(timestamp(bookmark.expire_time_unix_micros)),
        labels: bookmark.labels.clone(),
    })
}

fn shown(bookmark: api::Bookmark) -> Result<Response<ps::Snapshot>, Status> {
    Ok(Response::new(snapshot(&bookmark).ok_or_else(|| Status::internal("a snapshot without a project"))?))
}

impl PubsubSubscriber {
    pub(super) async fn create_snapshot_here(
        &self,
        request: &Request<ps::CreateSnapshotRequest>,
    ) -> Result<Response<ps::Snapshot>, Status> {
        let ask = request.get_ref();
        let subscription = to_ferry("subscription", Kind::Subscription, &ask.subscription)?;
        let name = match ask.name.as_str() {
            // As the service does: a new name in the subscription's project.
            "" => {
                let project = subscription.split_once('.').map_or("", |(project, _)| project);
                format!("{project}.snapshot-{:016x}", rand::random::<u64>())
            }
            name => to_ferry("name", Kind::Snapshot, name)?,
        };
        let create = api::CreateBookmarkRequest { name, subscription, labels: ask.labels.clone() };
        shown(self.subscriber().create_bookmark(ferry_request(request, create)).await?.into_inner())
    }

    pub(super) async fn get_snapshot_here(
        &self,
        request: &Request<ps::GetSnapshotRequest>,
    ) -> Result<Response<ps::Snapshot>, Status> {
        let name = to_ferry("snapshot", Kind::Snapshot, &request.get_ref().snapshot)?;
        let get = api::GetBookmarkRequest { name };
        shown(self.subscriber().get_bookmark(ferry_request(request, get)).await?.into_inner())
    }

    pub(super) async fn list_snapshots_here(
        &self,
        request: &Request<ps::ListSnapshotsRequest>,
    ) -> Result<Response<ps::ListSnapshotsResponse>, Status> {
        let ask = request.get_ref();
        let listing = ProjectListing::new(&ask.project, Kind::Snapshot, ask.page_size, &ask.page_token)?;
        let (snapshots, next_page_token) = listing
            .collect(|after| async move {
                let list = api::ListBookmarksRequest { topic: String::new(), page_size: FERRY_PAGE, page_token: after };
                let page = self.subscriber().list_bookmarks(ferry_request(request, list)).await?.into_inner();
                let items = page.bookmarks.iter().map(|b| (b.name.clone(), snapshot(b))).collect();
                Ok(FerryPage { items, more: !page.next_page_token.is_empty() })
            })
            .await?;
        Ok(Response::new(ps::ListSnapshotsResponse { snapshots, next_page_token }))
    }

    pub(super) async fn delete_snapshot_here(
        &self,
        request: &Request<ps::DeleteSnapshotRequest>,
    ) -> Result<Response<()>, Status> {
        let name = to_ferry("snapshot", Kind::Snapshot, &request.get_ref().snapshot)?;
        self.subscriber().delete_bookmark(ferry_request(request, api::DeleteBookmarkRequest { name })).await?;
        Ok(Response::new(()))
    }
}

/// The names of a topic's snapshots (`Publisher.ListTopicSnapshots`).
pub async fn of_topic(
    publisher: &PublisherService,
    subscriber: &SubscriberService,
    request: &Request<ps::ListTopicSnapshotsRequest>,
) -> Result<Response<ps::ListTopicSnapshotsResponse>, Status> {
    let ask = request.get_ref();
    let topic = to_ferry("topic", Kind::Topic, &ask.topic)?;
    let page_size = page_size(ask.page_size)? as u32;
    // Ferry lists none for a topic that does not exist; the service says so.
    let get = api::GetTopicRequest { name: topic.clone(), ..Default::default() };
    publisher.get_topic(ferry_request(request, get)).await?;
    let list = api::ListBookmarksRequest { topic, page_size, page_token: ask.page_token.clone() };
    let page = subscriber.list_bookmarks(ferry_request(request, list)).await?.into_inner();
    let snapshots = page.bookmarks.iter().filter_map(|b| from_ferry(Kind::Snapshot, &b.name)).collect();
    Ok(Response::new(ps::ListTopicSnapshotsResponse { snapshots, next_page_token: page.next_page_token }))
}

/// A Pub/Sub seek target as Ferry's: a time, or a snapshot (a bookmark).
pub fn seek_target(
    subscription: String,
    target: Option<&ps::seek_request::Target>,
) -> Result<api::SeekRequest, ApiError> {
    match target {
        Some(ps::seek_request::Target::Time(time)) => {
            let time_unix_micros = time.seconds.saturating_mul(1_000_000).saturating_add(i64::from(time.nanos / 1_000));
            Ok(api::SeekRequest { subscription, time_unix_micros, ..Default::default() })
        }
        Some(ps::seek_request::Target::Snapshot(name)) => {
            let bookmark = to_ferry("snapshot", Kind::Snapshot, name)?;
            Ok(api::SeekRequest { subscription, bookmark, ..Default::default() })
        }
        None => Err(ApiError::invalid("target", "a seek needs a time or a snapshot")),
    }
}
