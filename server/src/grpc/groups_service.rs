//! The internal `ferry.internal.v1.Groups` service: a group's work that
//! another node forwarded to this one because it leads the group.

use std::sync::Arc;

use ferry_proto::internal as pb;
use ferry_proto::internal::groups_server::Groups;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use super::routing::{GroupRoutes, NOT_LEADER_REASON};
use super::status::{ApiError, REASON_METADATA};

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
    #[tracing::instrument(skip_all, fields(group = request.get_ref().group_id))]
    async fn publish(
        &self,
        request: Request<pb::ForwardedPublish>,
    ) -> Result<Response<pb::ForwardedPublishReply>, Status> {
        let published = self.routes.publish_forwarded(request.into_inner()).await.map_err(status)?;
        Ok(Response::new(pb::ForwardedPublishReply {
            first_offset: published.first_offset,
            duplicate: published.duplicate,
        }))
    }
}
