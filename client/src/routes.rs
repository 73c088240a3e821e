//! `PartitionRoutes`: where each partition of a topic placed in data groups
//! is led, so a `Publisher` lane sends its partition's batches straight to
//! that group's leader instead of to whichever node the router follows
//! (which would forward them, one hop). A stale table costs that hop, not an
//! error, so it is only refreshed now and then. A topic in group 0 has no
//! routes and its batches go through the router as before.

use std::sync::{Arc, Weak};
use std::time::Duration;

use ferry_proto::v1 as api;
use parking_lot::RwLock;
use tokio::task::JoinHandle;

use crate::client::{cluster, rpc};
use crate::router::Router;

/// How often a publisher asks where its topic's partitions are led.
const REFRESH_EVERY: Duration = Duration::from_secs(2);

/// The address of each partition's leader, by partition; `None` where
/// unknown (or for a topic in group 0).
#[derive(Debug, Default)]
pub(crate) struct PartitionRoutes {
    leaders: RwLock<Vec<Option<String>>>,
}

impl PartitionRoutes {
    /// Where to send `partition`'s publishes, if known.
    pub(crate) fn leader(&self, partition: u32) -> Option<String> {
        self.leaders.read().get(partition as usize).cloned().flatten()
    }

    /// Asks any node for the topic's routes and keeps them; keeps the old
    /// ones if the node cannot answer (an older server, say).
    async fn refresh(&self, router: &Router, topic: &str) {
        let request = api::RoutesRequest { topic: topic.to_owned() };
        let Ok(response) = router.call(rpc!(cluster, routes, request)).await else { return };
        let leaders = response
            .partitions
            .into_iter()
            .map(|route| Some(route.leader_addr).filter(|addr| !addr.is_empty()))
            .collect();
        *self.leaders.write() = leaders;
    }

    /// The topic's routes, refreshed every [`REFRESH_EVERY`] by a task that
    /// ends once no one holds them.
    pub(crate) async fn follow(router: Arc<Router>, topic: &str) -> (Arc<Self>, JoinHandle<()>) {
        let routes = Arc::new(Self::default());
        routes.refresh(&router, topic).await;
        let held: Weak<Self> = Arc::downgrade(&routes);
        let topic = topic.to_owned();
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(REFRESH_EVERY).await;
                let Some(routes) = held.upgrade() else { return };
                routes.refresh(&router, &topic).await;
            }
        });
        (routes, task)
    }
}
