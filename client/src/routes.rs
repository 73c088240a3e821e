//! `PartitionRoutes`: where each partition of a topic placed in data groups
//! is led, so a `Publisher` lane sends its partition's batches straight to
//! that group's leader instead of to whichever node the router follows
//! (which would forward them, one hop). A stale table costs that hop, not an
//! error, so it is only refreshed now and then. A topic in group 0 has no
//! routes and its batches go through the router as before.
//!
//! `RouteBook`: the routes of the topics a `Client` publishes to itself
//! (`Client::publish`), so its keyless batches go to every partition's
//! leader in turn. Left to the node the router follows, they would all land
//! in the partitions that node leads: one node's share of the cluster for
//! every client that follows it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use ferry_proto::v1 as api;
use parking_lot::{Mutex, RwLock};
use tokio::task::JoinHandle;

use crate::client::{cluster, rpc};
use crate::error::Result;
use crate::router::Router;

/// How often a publisher asks where its topic's partitions are led (a
/// [`RouteBook`]: at most this often, and only while it publishes).
const REFRESH_EVERY: Duration = Duration::from_secs(2);
/// Topics a [`RouteBook`] keeps routes for; past it, it forgets the one
/// whose routes it asked for longest ago.
const BOOK_TOPICS_MAX: usize = 4096;

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

    /// The leader of the partition whose turn `turn` is, round the topic's
    /// partitions, if known.
    pub(crate) fn leader_in_turn(&self, turn: u64) -> Option<String> {
        let leaders = self.leaders.read();
        let partition = turn.checked_rem(leaders.len() as u64)?;
        leaders[partition as usize].clone()
    }

    /// Asks any node for the topic's routes and keeps them; keeps the old
    /// ones if the node cannot answer (an older server, say).
    async fn refresh(&self, router: &Router, topic: &str) {
        self.keep(router.call(rpc!(cluster, routes, routes_request(topic))).await);
    }

    /// As [`refresh`](Self::refresh), asking once only, of the node the
    /// router follows: a publish waiting for the answer, or an ask running
    /// behind it, takes a round trip at most, however the cluster fares.
    async fn ask_once(&self, router: &Router, topic: &str) {
        self.keep(router.call_here(rpc!(cluster, routes, routes_request(topic))).await);
    }

    fn keep(&self, answer: Result<api::RoutesResponse>) {
        let Ok(response) = answer else { return };
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

fn routes_request(topic: &str) -> api::RoutesRequest {
    api::RoutesRequest { topic: topic.to_owned() }
}

/// The routes of the topics one `Client` publishes to: each topic's are
/// asked for on its first publish, and again, in the background, by the
/// first publish after [`REFRESH_EVERY`].
#[derive(Debug, Default)]
pub(crate) struct RouteBook {
    topics: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug)]
struct Entry {
    routes: Arc<PartitionRoutes>,
    /// When the routes were last asked for.
    asked: Instant,
    /// Set while an ask runs in the background: a slow answer holds back the
    /// next ask rather than letting asks pile up (or an old answer land on
    /// a newer one).
    asking: Arc<AtomicBool>,
}

impl RouteBook {
    /// `topic`'s routes: those known (asked for again behind the caller's
    /// back when stale), else asked for now.
    pub(crate) async fn routes(&self, router: &Arc<Router>, topic: &str) -> Arc<PartitionRoutes> {
        let stale = match self.topics.lock().get_mut(topic) {
            Some(entry) if entry.asked.elapsed() < REFRESH_EVERY || entry.asking.load(Ordering::Acquire) => {
                return Arc::clone(&entry.routes)
            }
            Some(entry) => {
                entry.asked = Instant::now();
                entry.asking.store(true, Ordering::Release);
                Some((Arc::clone(&entry.routes), Arc::clone(&entry.asking)))
            }
            None => None,
        };
        if let Some((routes, asking)) = stale {
            let (router, topic, refreshed) = (Arc::clone(router), topic.to_owned(), Arc::clone(&routes));
            tokio::spawn(async move {
                refreshed.ask_once(&router, &topic).await;
                asking.store(false, Ordering::Release);
            });
            return routes;
        }
        let routes = Arc::new(PartitionRoutes::default());
        routes.ask_once(router, topic).await;
        let mut topics = self.topics.lock();
        if topics.len() >= BOOK_TOPICS_MAX {
            let oldest = topics.iter().min_by_key(|(_, entry)| entry.asked).map(|(name, _)| name.clone());
            if let Some(name) = oldest {
                topics.remove(&name);
            }
        }
        let entry = Entry { routes: Arc::clone(&routes), asked: Instant::now(), asking: Arc::default() };
        topics.insert(topic.to_owned(), entry);
        routes
    }
}
