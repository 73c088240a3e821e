//! `Arrivals`: what consumers with nothing to take wait on for new messages.
//!
//! One watch per topic, so a publish wakes only the streams of its own topic
//! (with 1,000 topics, one watch for all would wake every waiting stream on
//! every publish), and one for everything: a seek or an installed snapshot
//! may make any subscription's messages deliverable again.

use std::collections::HashMap;

use parking_lot::Mutex;
use tokio::sync::watch;

#[derive(Debug)]
pub struct Arrivals {
    everything: watch::Sender<u64>,
    /// Only topics someone watches; entries nobody watches any more are
    /// dropped when a new one is added, so this holds at most one per topic
    /// being waited on.
    topics: Mutex<HashMap<u64, watch::Sender<u64>>>,
}

/// A consumer's view of [`Arrivals`] for one topic, taken before it looks for
/// messages so nothing that arrives after it looked is missed.
#[derive(Debug)]
pub struct ArrivalWatch {
    topic: watch::Receiver<u64>,
    everything: watch::Receiver<u64>,
}

impl ArrivalWatch {
    /// Returns when messages arrived in the topic, or anything arrived
    /// everywhere, since the watch was taken or last returned.
    pub async fn changed(&mut self) {
        // The senders live as long as this receiver (see `Arrivals::watch`),
        // so neither `changed` fails.
        tokio::select! {
            _ = self.topic.changed() => {}
            _ = self.everything.changed() => {}
        }
    }
}

impl Default for Arrivals {
    fn default() -> Self {
        Self { everything: watch::channel(0).0, topics: Mutex::new(HashMap::new()) }
    }
}

impl Arrivals {
    pub fn watch(&self, topic_id: u64) -> ArrivalWatch {
        let mut topics = self.topics.lock();
        let topic = match topics.get(&topic_id) {
            Some(sender) => sender.subscribe(),
            None => {
                topics.retain(|_, sender| sender.receiver_count() > 0);
                let (sender, receiver) = watch::channel(0);
                topics.insert(topic_id, sender);
                receiver
            }
        };
        let mut everything = self.everything.subscribe();
        everything.borrow_and_update();
        ArrivalWatch { topic, everything }
    }

    /// Messages were appended to `topic_id`.
    pub fn published(&self, topic_id: u64) {
        if let Some(sender) = self.topics.lock().get(&topic_id) {
            sender.send_modify(|count| *count = count.wrapping_add(1));
        }
    }

    /// Any subscription may have messages to deliver again.
    pub fn everywhere(&self) {
        self.everything.send_modify(|count| *count = count.wrapping_add(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publish_wakes_the_watchers_of_its_topic_only_and_everywhere_wakes_all() {
        let arrivals = Arrivals::default();
        let (mut a, b) = (arrivals.watch(1), arrivals.watch(2));
        arrivals.published(1);
        assert!(a.topic.has_changed().expect("open"), "topic 1's watcher is woken");
        assert!(!b.topic.has_changed().expect("open") && !b.everything.has_changed().expect("open"), "not topic 2's");
        a.topic.borrow_and_update();
        arrivals.everywhere();
        assert!(a.everything.has_changed().expect("open") && b.everything.has_changed().expect("open"));
        arrivals.published(3);
        assert!(!a.topic.has_changed().expect("open"), "nobody watches topic 3: nothing to wake, nothing kept");
    }

    #[test]
    fn topics_nobody_watches_any_more_are_forgotten() {
        let arrivals = Arrivals::default();
        for topic in 0..1000 {
            drop(arrivals.watch(topic));
        }
        let kept = arrivals.watch(5000);
        assert_eq!(arrivals.topics.lock().len(), 1, "only the watched topic is kept");
        drop(kept);
    }

    #[tokio::test]
    async fn a_waiting_watcher_returns_on_its_topics_publish() {
        let arrivals = std::sync::Arc::new(Arrivals::default());
        let mut watch = arrivals.watch(7);
        let publisher = std::sync::Arc::clone(&arrivals);
        tokio::spawn(async move { publisher.published(7) });
        tokio::time::timeout(std::time::Duration::from_secs(5), watch.changed()).await.expect("woken");
    }
}
