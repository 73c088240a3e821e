//! The test-only `ferry.internal.v1.Testing` service: moves a node's manual
//! clock. Served only when ferryd runs with `--unsafe-manual-clock`.

use std::sync::Arc;
use std::time::Duration;

use ferry_proto::internal as pb;
use ferry_proto::internal::testing_server::Testing;
use tonic::{Request, Response, Status};

use crate::clock::{Clock, ManualClock};

#[derive(Debug)]
pub struct TestingService {
    clock: Arc<ManualClock>,
}

impl TestingService {
    pub fn new(clock: Arc<ManualClock>) -> Self {
        Self { clock }
    }
}

#[tonic::async_trait]
impl Testing for TestingService {
    async fn advance_clock(
        &self,
        request: Request<pb::AdvanceClockRequest>,
    ) -> Result<Response<pb::AdvanceClockResponse>, Status> {
        self.clock.advance(Duration::from_millis(request.into_inner().millis));
        Ok(Response::new(pb::AdvanceClockResponse { wall_unix_micros: self.clock.wall_us() }))
    }
}
