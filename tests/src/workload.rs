//! A steady publisher for cluster tests: publishes numbered messages in
//! batches until told to stop, recording each batch the server confirmed;
//! and a consumer's rounds: every message across a kill, then acking until
//! the backlog is empty.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_client::{Client, Message, Position, Subscriber};

use crate::Cluster;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What the publisher saw: confirmed (value, position) pairs and errors.
#[derive(Debug, Default)]
pub struct Published {
    pub confirmed: Vec<(String, Position)>,
    pub errors: Vec<String>,
    /// When each batch was confirmed, to measure gaps in service.
    pub confirmed_at: Vec<Instant>,
}

pub struct Publisher {
    stop: Arc<AtomicBool>,
    pub published: Arc<Mutex<Published>>,
    task: JoinHandle<()>,
}

impl Publisher {
    /// Publishes batches of `batch` messages `"<prefix>-<n>"` to `topic`.
    pub fn start(client: Client, topic: &str, prefix: &str, batch: usize) -> Publisher {
        let stop = Arc::new(AtomicBool::new(false));
        let published = Arc::new(Mutex::new(Published::default()));
        let (topic, prefix) = (topic.to_owned(), prefix.to_owned());
        let task = {
            let (stop, published) = (Arc::clone(&stop), Arc::clone(&published));
            tokio::spawn(async move {
                let mut next = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    let values: Vec<String> = (next..next + batch).map(|i| format!("{prefix}-{i}")).collect();
                    let messages = values.iter().cloned().map(Message::new).collect();
                    match client.publish(&topic, messages).await {
                        Ok(positions) => {
                            let mut published = published.lock().expect("lock");
                            published.confirmed.extend(values.into_iter().zip(positions));
                            published.confirmed_at.push(Instant::now());
                            next += batch;
                        }
                        Err(e) => {
                            published.lock().expect("lock").errors.push(e.to_string());
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            })
        };
        Publisher { stop, published, task }
    }

    pub fn confirmed(&self) -> usize {
        self.published.lock().expect("lock").confirmed.len()
    }

    /// Waits until at least `count` messages are confirmed in all.
    pub async fn wait_for(&self, count: usize, within: Duration) {
        let give_up = Instant::now() + within;
        while self.confirmed() < count {
            let errors = self.published.lock().expect("lock").errors.clone();
            assert!(Instant::now() < give_up, "only {} of {count} confirmed; errors: {errors:?}", self.confirmed());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn stop(self) -> Published {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("publisher task");
        Arc::try_unwrap(self.published).expect("sole owner").into_inner().expect("lock")
    }
}

/// Acks what `subscriber` receives until `subscription`'s backlog is empty,
/// for up to a minute. Acks in flight when a leader died, or made of leases
/// a new leader has since redelivered, did not count: those messages come
/// again (at least once), each one of `published`.
pub async fn ack_until_backlog_empty(
    admin: &Client,
    subscriber: &mut Subscriber,
    subscription: &str,
    published: &BTreeSet<String>,
) {
    let give_up = Instant::now() + Duration::from_secs(60);
    loop {
        let backlog = admin.get_subscription(subscription).await.expect("get").backlog.expect("backlog");
        if backlog.unacked_messages == 0 {
            return;
        }
        assert!(Instant::now() < give_up, "acks never committed: {backlog:?}");
        if let Ok(Some(Ok(delivered))) = tokio::time::timeout(Duration::from_millis(500), subscriber.next()).await {
            let value = String::from_utf8_lossy(&delivered.message.message.data).into_owned();
            assert!(published.contains(&value), "only published messages arrive: {value}");
            delivered.ack();
        }
    }
}

/// Receives and acks every one of `published` on `subscriber` (each within
/// 30 s, nothing else), killing and restarting node `victim` of `cluster`
/// once a quarter has come.
pub async fn receive_all_across_a_kill(
    subscriber: &mut Subscriber,
    published: &BTreeSet<String>,
    cluster: &mut Cluster,
    victim: u64,
) {
    let mut received = BTreeSet::new();
    let mut killed = false;
    while received.len() < published.len() {
        let next = tokio::time::timeout(Duration::from_secs(30), subscriber.next()).await;
        let delivered = next.expect("a message within 30 s").expect("the stream stays up").expect("no error");
        let value = String::from_utf8_lossy(&delivered.message.message.data).into_owned();
        assert!(published.contains(&value), "only published messages arrive: {value}");
        received.insert(value);
        delivered.ack();
        if !killed && received.len() >= published.len() / 4 {
            cluster.kill9(victim);
            cluster.restart(victim);
            killed = true;
        }
    }
    assert_eq!(&received, published, "every message arrives");
}
