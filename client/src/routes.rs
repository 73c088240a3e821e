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

/// How often a `Publisher` lane asks where its topic's partitions are led:
/// a stale route costs its batches a hop.
const REFRESH_EVERY: Duration = Duration::from_secs(2);
/// How long a [`RouteBook`] keeps a topic's routes before asking again (on
/// the topic's next publish), unless a publish missed the leader they named.
/// A stale route costs a keyless batch nothing but evenness: the node it
/// reaches puts it in a partition it leads. Asking every 2 s, a client
/// publishing to a thousand topics made one ask for every two publishes.
const BOOK_REFRESH_EVERY: Duration = Duration::from_secs(30);
/// How long after its last ask a topic whose publish missed the named
/// leader asks again.
const MISSED_ASK_GAP: Duration = Duration::from_secs(1);
/// Topics a [`RouteBook`] keeps routes for; past it, it forgets the one
/// whose routes it asked for longest ago.
const BOOK_TOPICS_MAX: usize = 4096;
/// How long a topic's first publish waits for the topic's routes; without
/// them it goes through the router.
const FIRST_ASK_WAIT: Duration = Duration::from_secs(1);

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
    async fn ask_retrying(&self, router: &Router, topic: &str) {
        self.keep(router.call(rpc!(cluster, routes, routes_request(topic))).await);
    }

    /// As [`ask_retrying`](Self::ask_retrying), asking once only, of the
    /// node the router follows.
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
        routes.ask_retrying(&router, topic).await;
        let held: Weak<Self> = Arc::downgrade(&routes);
        let topic = topic.to_owned();
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(REFRESH_EVERY).await;
                let Some(routes) = held.upgrade() else { return };
                routes.ask_retrying(&router, &topic).await;
            }
        });
        (routes, task)
    }
}

fn routes_request(topic: &str) -> api::RoutesRequest {
    api::RoutesRequest { topic: topic.to_owned() }
}

/// The routes of the topics one `Client` publishes to, and each topic's
/// turn for keyless batches. A topic's routes are asked for on its first
/// publish (which waits for them, [`FIRST_ASK_WAIT`] at most), and again,
/// in the background, by the first publish after [`BOOK_REFRESH_EVERY`] or
/// after one that [`missed`](RouteBook::missed) the leader they named.
#[derive(Debug, Default)]
pub(crate) struct RouteBook {
    topics: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug)]
struct Entry {
    routes: Arc<PartitionRoutes>,
    /// The topic's next keyless batch goes to partition `turn` (modulo the
    /// topic's partitions). Starts anywhere: short-lived clients (one per
    /// run of a script, say) would otherwise all start at partition 0.
    turn: u64,
    /// When the routes were last asked for.
    asked: Instant,
    /// A publish missed the leader the routes named since they were asked for.
    missed: bool,
    /// Set while an ask runs: a slow answer holds back the next ask rather
    /// than letting asks pile up (or an old answer land on a newer one).
    asking: Arc<AtomicBool>,
}

/// Keeps an entry's `asking` set for as long as it lives, so the flag
/// clears however the ask ends (a task dropped with its runtime too).
struct Asking(Arc<AtomicBool>);

impl Asking {
    fn start(flag: &Arc<AtomicBool>) -> Self {
        flag.store(true, Ordering::Release);
        Self(Arc::clone(flag))
    }
}

impl Drop for Asking {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// An ask a turn calls for: the topic's first (its publish waits), or a
/// stale table's (in the background).
struct Ask {
    first: bool,
    _asking: Asking,
}

impl RouteBook {
    /// Where `topic`'s next keyless batch goes: the leader of the topic's
    /// partition in turn, if known.
    pub(crate) async fn keyless_leader(&self, router: &Arc<Router>, topic: &str) -> Option<String> {
        let (routes, turn, ask) = self.take_turn(topic);
        match ask {
            Some(ask) if ask.first => {
                // Unanswered, the batch goes through the router.
                let _ = tokio::time::timeout(FIRST_ASK_WAIT, routes.ask_once(router, topic)).await;
                drop(ask);
            }
            Some(ask) => {
                // Retrying, so a router left on a node that went down moves on.
                let (router, topic, routes) = (Arc::clone(router), topic.to_owned(), Arc::clone(&routes));
                tokio::spawn(async move {
                    routes.ask_retrying(&router, &topic).await;
                    drop(ask);
                });
            }
            None => {}
        }
        routes.leader_in_turn(turn)
    }

    /// Takes `topic`'s next turn, and the ask for its routes that is due.
    fn take_turn(&self, topic: &str) -> (Arc<PartitionRoutes>, u64, Option<Ask>) {
        let mut topics = self.topics.lock();
        if topics.len() >= BOOK_TOPICS_MAX && !topics.contains_key(topic) {
            let oldest = topics.iter().min_by_key(|(_, entry)| entry.asked).map(|(name, _)| name.clone());
            if let Some(name) = oldest {
                topics.remove(&name);
            }
        }
        let mut first = false;
        let entry = topics.entry(topic.to_owned()).or_insert_with(|| {
            first = true;
            let (asked, missed, asking) = (Instant::now(), false, Arc::default());
            Entry { routes: Arc::default(), turn: rand::random(), asked, missed, asking }
        });
        let turn = entry.turn;
        entry.turn = turn.wrapping_add(1);
        // After a miss, not at once: while a node is down, answers may name
        // it for seconds, and every publish would miss and ask again.
        let since = entry.asked.elapsed();
        let stale = since >= BOOK_REFRESH_EVERY || (entry.missed && since >= MISSED_ASK_GAP);
        let due = first || (stale && !entry.asking.load(Ordering::Acquire));
        let ask = due.then(|| {
            (entry.asked, entry.missed) = (Instant::now(), false);
            Ask { first, _asking: Asking::start(&entry.asking) }
        });
        (Arc::clone(&entry.routes), turn, ask)
    }

    /// Notes that a publish to `topic` missed the leader its routes named
    /// (a node down, say): its next publish asks for them again, once
    /// [`MISSED_ASK_GAP`] has passed since the last ask.
    pub(crate) fn missed(&self, topic: &str) {
        if let Some(entry) = self.topics.lock().get_mut(topic) {
            entry.missed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topics_turns_follow_each_other_and_only_its_first_waits_for_an_ask() {
        let book = RouteBook::default();
        let (_, first_turn, ask) = book.take_turn("t");
        assert!(ask.is_some_and(|ask| ask.first), "the first publish asks, and waits");
        for n in 1..5u64 {
            let (_, turn, ask) = book.take_turn("t");
            assert_eq!(turn, first_turn.wrapping_add(n), "the next partition in turn");
            assert!(ask.is_none(), "asked for less than {BOOK_REFRESH_EVERY:?} ago");
        }
    }

    #[test]
    fn a_publish_that_missed_the_named_leader_makes_a_later_one_ask_again() {
        let book = RouteBook::default();
        let (_, _, first) = book.take_turn("t");
        drop(first);
        book.missed("t");
        let (_, _, ask) = book.take_turn("t");
        assert!(ask.is_none(), "not within {MISSED_ASK_GAP:?} of the last ask");
        // As if the last ask were older than the gap.
        if let Some(entry) = book.topics.lock().get_mut("t") {
            entry.asked = Instant::now().checked_sub(MISSED_ASK_GAP).expect("an instant a second ago");
        }
        let (_, _, ask) = book.take_turn("t");
        assert!(ask.as_ref().is_some_and(|ask| !ask.first), "asked again, in the background");
        let (_, _, again) = book.take_turn("t");
        assert!(again.is_none(), "one ask per miss");
        drop(ask);
        book.missed("unknown topic");
        assert!(!book.topics.lock().contains_key("unknown topic"), "a miss adds no topic");
    }

    #[test]
    fn the_book_keeps_at_most_its_bound_of_topics() {
        let book = RouteBook::default();
        for topic in 0..BOOK_TOPICS_MAX + 10 {
            book.take_turn(&format!("topic-{topic}"));
        }
        let topics = book.topics.lock();
        assert_eq!(topics.len(), BOOK_TOPICS_MAX);
        assert!(topics.contains_key(&format!("topic-{}", BOOK_TOPICS_MAX + 9)), "the newest is kept");
    }
}
