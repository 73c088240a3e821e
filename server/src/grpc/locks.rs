//! The `ferry.v1.Locks` service: named locks that expire, kept in group 0
//! (`domain::locks`). Group 0's leader answers; others point to it.

use std::sync::Arc;

use ferry_proto::v1 as api;
use ferry_proto::v1::locks_server::Locks;
use tonic::{Request, Response, Status};

use super::proposer::Proposer;
use super::status::ApiError;
use crate::clock::Clock;
use crate::domain::{self, validate, Command, LockState};
use crate::security::{authorize, Action};

#[derive(Debug)]
pub struct LocksService {
    /// Group 0's.
    proposer: Proposer,
    clock: Arc<dyn Clock>,
}

impl LocksService {
    pub fn new(proposer: Proposer, clock: Arc<dyn Clock>) -> Self {
        Self { proposer, clock }
    }

    async fn acquire(&self, request: api::AcquireLockRequest) -> Result<api::AcquireLockResponse, ApiError> {
        validate::name("name", &request.name)?;
        validate::lock_holder(&request.holder)?;
        let ttl_seconds = validate::lock_ttl_seconds(request.ttl_seconds)?;
        self.proposer.ensure_leader()?;
        let command = Command::AcquireLock {
            name: request.name,
            holder: request.holder,
            ttl_us: u64::from(ttl_seconds) * 1_000_000,
            now_us: self.clock.wall_us(),
        };
        match self.proposer.propose(command).await? {
            domain::Response::Lock { granted, lock } => {
                Ok(api::AcquireLockResponse { granted, lock: Some(lock_to_api(lock)) })
            }
            other => Err(ApiError::Internal(format!("acquire lock answered {other:?}"))),
        }
    }

    async fn release(&self, request: api::ReleaseLockRequest) -> Result<api::ReleaseLockResponse, ApiError> {
        validate::name("name", &request.name)?;
        validate::lock_holder(&request.holder)?;
        self.proposer.ensure_leader()?;
        match self.proposer.propose(Command::ReleaseLock { name: request.name, holder: request.holder }).await? {
            domain::Response::LockReleased { released } => Ok(api::ReleaseLockResponse { released }),
            other => Err(ApiError::Internal(format!("release lock answered {other:?}"))),
        }
    }
}

fn lock_to_api(lock: LockState) -> api::Lock {
    api::Lock { name: lock.name, holder: lock.holder, epoch: lock.epoch, expire_time_unix_micros: lock.expire_time_us }
}

#[tonic::async_trait]
impl Locks for LocksService {
    #[tracing::instrument(skip_all, fields(lock = %request.get_ref().name, holder = %request.get_ref().holder))]
    async fn acquire_lock(
        &self,
        request: Request<api::AcquireLockRequest>,
    ) -> Result<Response<api::AcquireLockResponse>, Status> {
        authorize(request.extensions(), Action::Lock, Some(&request.get_ref().name))?;
        Ok(Response::new(self.acquire(request.into_inner()).await?))
    }

    #[tracing::instrument(skip_all, fields(lock = %request.get_ref().name, holder = %request.get_ref().holder))]
    async fn release_lock(
        &self,
        request: Request<api::ReleaseLockRequest>,
    ) -> Result<Response<api::ReleaseLockResponse>, Status> {
        authorize(request.extensions(), Action::Lock, Some(&request.get_ref().name))?;
        Ok(Response::new(self.release(request.into_inner()).await?))
    }

    async fn list_locks(
        &self,
        request: Request<api::ListLocksRequest>,
    ) -> Result<Response<api::ListLocksResponse>, Status> {
        self.proposer.ensure_leader().map_err(Status::from)?;
        // A token sees the locks it may take: their holders are what
        // releasing one takes.
        let visible = |lock: &&LockState| authorize(request.extensions(), Action::Lock, Some(&lock.name)).is_ok();
        let catalog = self.proposer.state().catalog();
        let locks = catalog.locks.values().filter(visible).cloned().map(lock_to_api).collect();
        Ok(Response::new(api::ListLocksResponse { locks }))
    }
}
