//! What the run knows live: which values were acknowledged and which each
//! subscription has been delivered, so the final drain knows when it is done.
//! (The verdict never relies on this; the checker recomputes everything
//! from the history.)

use std::collections::{HashMap, HashSet};

use parking_lot::Mutex;

#[derive(Debug, Default)]
pub struct Tracker {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    acknowledged: HashSet<String>,
    delivered: HashMap<String, HashSet<String>>,
}

impl Tracker {
    pub fn new(subscriptions: &[String]) -> Self {
        let delivered = subscriptions.iter().map(|s| (s.clone(), HashSet::new())).collect();
        Self { inner: Mutex::new(Inner { acknowledged: HashSet::new(), delivered }) }
    }

    pub fn acknowledged(&self, values: &[String]) {
        self.inner.lock().acknowledged.extend(values.iter().cloned());
    }

    pub fn delivered<'a>(&self, subscription: &str, values: impl IntoIterator<Item = &'a str>) {
        let mut inner = self.inner.lock();
        let seen = inner.delivered.entry(subscription.to_owned()).or_default();
        seen.extend(values.into_iter().map(str::to_owned));
    }

    pub fn acknowledged_count(&self) -> usize {
        self.inner.lock().acknowledged.len()
    }

    /// Acknowledged values some subscription has not been delivered yet.
    pub fn unseen(&self) -> usize {
        let inner = self.inner.lock();
        inner.delivered.values().map(|seen| inner.acknowledged.iter().filter(|v| !seen.contains(*v)).count()).sum()
    }
}
