//! The internal `ferry.internal.v1.Groups` service: a group's work that
//! another node forwarded to this one because it leads the group.

use std::sync::Arc;

use ferry_proto::internal as pb;
use ferry_proto::internal::groups_server::Groups;
use ferry_proto::v1 as api;
use futures::StreamExt;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use super::group_delivery::{GroupDelivery, SeekTarget};
use super::routing::{GroupRoutes, NOT_LEADER_REASON};
use super::status::{ApiError, REASON_METADATA};
use super::stopping::ResponseStream;
use super::streaming_pull::{self, HoldingReport, Requests};
use super::sub_stream;
use crate::raft::GroupId;

#[derive(Debug)]
pub struct GroupsService {
    routes: Arc<GroupRoutes>,
}

impl GroupsService {
    pub fn new(routes: Arc<GroupRoutes>) -> Self {
        Self { routes }
    }
}

/// A forwarded call is never forwarded again: a node that does not lead the
/// group says so in a way the forwarder recognises, and the forwarder looks
/// for the leader itself.
fn status(error: ApiError) -> Status {
    let not_leader = matches!(error, ApiError::NotLeader { .. });
    let mut status = Status::from(error);
    if not_leader {
        status.metadata_mut().insert(REASON_METADATA, MetadataValue::from_static(NOT_LEADER_REASON));
    }
    status
}

#[tonic::async_trait]
impl Groups for GroupsService {
    type StreamingPullStream = ResponseStream<pb::GroupStreamingPullResponse>;

    #[tracing::instrument(skip_all, fields(group = request.get_ref().group_id))]
    async fn publish(
        &self,
        request: Request<pb::ForwardedPublish>,
    ) -> Result<Response<pb::ForwardedPublishReply>, Status> {
        Ok(Response::new(self.routes.publish_forwarded(request.into_inner()).await.map_err(status)?))
    }

    #[tracing::instrument(skip_all, fields(group = request.get_ref().group_id))]
    async fn pull(&self, request: Request<pb::GroupPull>) -> Result<Response<api::PullResponse>, Status> {
        let (delivery, request) = self.delivery(request.into_inner().into())?;
        Ok(Response::new(delivery.pull(request).await.map_err(status)?))
    }

    #[tracing::instrument(skip_all, fields(group = request.get_ref().group_id))]
    async fn wait(&self, request: Request<pb::GroupPull>) -> Result<Response<pb::GroupWoke>, Status> {
        let (delivery, request) = self.delivery(request.into_inner().into())?;
        delivery.wait(request).await.map_err(status)?;
        Ok(Response::new(pb::GroupWoke {}))
    }

    #[tracing::instrument(skip_all, fields(group = request.get_ref().group_id))]
    async fn acknowledge(
        &self,
        request: Request<pb::GroupAcknowledge>,
    ) -> Result<Response<api::AcknowledgeResponse>, Status> {
        let (delivery, request) = self.delivery(request.into_inner().into())?;
        Ok(Response::new(delivery.acknowledge(request).await.map_err(status)?))
    }

    #[tracing::instrument(skip_all, fields(group = request.get_ref().group_id))]
    async fn modify_ack_deadline(
        &self,
        request: Request<pb::GroupModifyAckDeadline>,
    ) -> Result<Response<api::ModifyAckDeadlineResponse>, Status> {
        let (delivery, request) = self.delivery(request.into_inner().into())?;
        Ok(Response::new(delivery.modify_ack_deadline(request).map_err(status)?))
    }

    #[tracing::instrument(skip_all, fields(group = request.get_ref().group_id))]
    async fn seek(&self, request: Request<pb::GroupSeek>) -> Result<Response<api::SeekResponse>, Status> {
        let seek = request.into_inner();
        let group = seek.group_id;
        let (subscription, target) = SeekTarget::from_record(seek).map_err(status)?;
        let delivery = self.routes.local(group).map_err(status)?.delivery();
        Ok(Response::new(delivery.seek(&subscription, target).await.map_err(status)?))
    }

    async fn streaming_pull(
        &self,
        request: Request<Streaming<pb::GroupStreamingPull>>,
    ) -> Result<Response<Self::StreamingPullStream>, Status> {
        self.routes.stopping().refuse_if_stopping("a new stream")?;
        let mut requests = request.into_inner();
        let first = requests.message().await?.ok_or_else(|| status(ApiError::invalid("stream", "has no request")))?;
        let report = first.report_holding.then(|| HoldingReport::new(None));
        let holding = report.as_ref().map(HoldingReport::subscribe);
        let (delivery, opening) = self.delivery(Addressed { group: first.group_id, request: first.request })?;
        let rest: Requests = Box::pin(requests.map(|request| request.map(|r| r.request.unwrap_or_default())));
        let responses = streaming_pull::start(delivery, opening, rest, report).await.map_err(status)?;
        Ok(Response::new(sub_stream::to_fan_in(self.routes.stopping().until_stopping(responses), holding)))
    }

    #[tracing::instrument(skip_all, fields(group = request.get_ref().group_id))]
    async fn transfer_leader(
        &self,
        request: Request<pb::GroupTransfer>,
    ) -> Result<Response<pb::GroupTransferred>, Status> {
        let pb::GroupTransfer { group_id, node_id } = request.into_inner();
        Ok(Response::new(self.routes.transfer_here(group_id, node_id).await.map_err(status)?))
    }

    #[tracing::instrument(skip_all, fields(group = request.get_ref().group_id))]
    async fn campaign(&self, request: Request<pb::GroupCampaign>) -> Result<Response<pb::GroupCampaigning>, Status> {
        self.routes.campaign(request.into_inner().group_id).map_err(status)?;
        Ok(Response::new(pb::GroupCampaigning {}))
    }

    #[tracing::instrument(skip_all, fields(group = request.get_ref().group_id))]
    async fn backlog(&self, request: Request<pb::GroupBacklog>) -> Result<Response<api::Backlog>, Status> {
        let pb::GroupBacklog { group_id, subscription } = request.into_inner();
        let delivery = self.routes.local(group_id).map_err(status)?.delivery();
        Ok(Response::new(delivery.backlog(&subscription).map_err(status)?))
    }
}

/// A forwarded delivery call: the group it is for and the public request.
struct Addressed<T> {
    group: GroupId,
    request: Option<T>,
}

macro_rules! addressed {
    ($($message:ty => $request:ty),* $(,)?) => {$(
        impl From<$message> for Addressed<$request> {
            fn from(message: $message) -> Self {
                Addressed { group: message.group_id, request: message.request }
            }
        }
    )*};
}

addressed! {
    pb::GroupPull => api::PullRequest,
    pb::GroupAcknowledge => api::AcknowledgeRequest,
    pb::GroupModifyAckDeadline => api::ModifyAckDeadlineRequest,
}

impl GroupsService {
    /// The group's delivery on this node, and the request it is to serve.
    fn delivery<T>(&self, addressed: Addressed<T>) -> Result<(GroupDelivery, T), Status> {
        let request = addressed.request.ok_or_else(|| status(ApiError::invalid("request", "is required")))?;
        Ok((self.routes.local(addressed.group).map_err(status)?.delivery(), request))
    }
}
