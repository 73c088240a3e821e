//! Which source topics a mirror copies: names and patterns (`*` any run of
//! characters, `?` one), and the routes it runs for them, listed again
//! periodically so a topic created later is copied too.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_client::{Client, ClientOptions};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::lock::LockSettings;
use crate::progress::Progress;
use crate::route::{run_until_stopped, Route};
use crate::stopped;

/// After a failed listing, the next comes this soon, then twice as late
/// each time, up to the usual period.
const RETRY_MIN: Duration = Duration::from_secs(1);

/// Names and patterns of source topics.
#[derive(Debug, Clone)]
pub struct TopicFilter {
    patterns: Vec<String>,
}

impl TopicFilter {
    pub fn new(patterns: Vec<String>) -> Self {
        Self { patterns }
    }

    pub fn matches(&self, topic: &str) -> bool {
        self.patterns.iter().any(|pattern| glob(pattern.as_bytes(), topic.as_bytes()))
    }

    /// Whether it names exactly one topic, with no pattern.
    pub fn single_name(&self) -> Option<&str> {
        match self.patterns.as_slice() {
            [name] if !name.contains(['*', '?']) => Some(name),
            _ => None,
        }
    }
}

/// `*` matches any run of characters (none included), `?` any one.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    // The classic backtracking walk: on a mismatch, let the last `*` take
    // one more character.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((star_p, star_n)) => {
                    p = star_p + 1;
                    n = star_n + 1;
                    star = Some((star_p, star_n + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// A route's settings, but for its topic.
#[derive(Debug, Clone)]
pub struct RouteTemplate {
    pub source: String,
    pub destination: String,
    /// How each side is reached (token, TLS).
    pub source_options: ClientOptions,
    pub destination_options: ClientOptions,
    pub source_cluster: String,
    pub destination_cluster: String,
    /// With a single topic only: its name at the destination and its
    /// subscription's, when not the defaults.
    pub destination_topic: Option<String>,
    pub subscription: Option<String>,
    pub batch_messages: usize,
    pub compression: ferry_client::Compression,
    pub max_bytes_per_second: Option<u64>,
    pub create_destination_topics: bool,
    pub holder: String,
    pub lock_ttl: Duration,
    pub gap_check_every: Duration,
}

impl RouteTemplate {
    /// The route that copies source topic `topic`.
    pub fn route(&self, topic: &str) -> Route {
        let destination_topic = self.destination_topic.clone().unwrap_or_else(|| topic.to_owned());
        Route {
            source: self.source.clone(),
            destination: self.destination.clone(),
            source_options: self.source_options.clone(),
            destination_options: self.destination_options.clone(),
            source_cluster: self.source_cluster.clone(),
            destination_cluster: self.destination_cluster.clone(),
            topic: topic.to_owned(),
            subscription: self
                .subscription
                .clone()
                .unwrap_or_else(|| format!("ferry-mirror.{}.{topic}", self.destination_cluster)),
            lock: LockSettings {
                name: lock_name(&self.source_cluster, topic, &destination_topic),
                holder: self.holder.clone(),
                ttl: self.lock_ttl,
            },
            destination_topic,
            batch_messages: self.batch_messages,
            compression: self.compression,
            max_bytes_per_second: self.max_bytes_per_second,
            create_destination_topic: self.create_destination_topics,
            gap_check_every: self.gap_check_every,
        }
    }
}

/// The route's lock name, `ferry-mirror.<source cluster>.<topic>.<destination
/// topic>`, or, past the 249 bytes a name may have, the route hashed.
fn lock_name(source_cluster: &str, topic: &str, destination_topic: &str) -> String {
    let name = format!("ferry-mirror.{source_cluster}.{topic}.{destination_topic}");
    if name.len() <= 249 {
        return name;
    }
    let route = format!("{source_cluster}\0{topic}\0{destination_topic}");
    format!("ferry-mirror.{:016x}", crate::origin::fnv1a(&route))
}

/// The routes running, with their progress for the metrics endpoint.
pub type RouteProgress = Arc<Mutex<BTreeMap<String, (Route, Arc<Progress>)>>>;

/// Runs a route for each source topic `filter` matches, until `stop` turns
/// true: topics that appear are picked up at the next listing (every
/// `refresh`); a route whose topic is gone from the source is stopped.
pub async fn run_routes(
    template: RouteTemplate,
    filter: TopicFilter,
    refresh: Duration,
    running: RouteProgress,
    mut stop: watch::Receiver<bool>,
) {
    let mut tasks: BTreeMap<String, JoinHandle<()>> = BTreeMap::new();
    let mut source: Option<Client> = None;
    let mut discover = tokio::time::interval(refresh);
    let mut retry = RETRY_MIN;
    loop {
        tokio::select! {
            () = stopped(&mut stop) => break,
            _ = discover.tick() => {}
        }
        let topics = match list_topics(&template.source, &template.source_options, &mut source).await {
            Ok(topics) => {
                retry = RETRY_MIN;
                topics
            }
            Err(e) => {
                tracing::warn!(error = %e, pause = ?retry, "listing the source's topics failed; trying again");
                discover.reset_at(Instant::now() + retry);
                retry = (retry * 2).min(refresh);
                continue;
            }
        };
        let matching: Vec<String> = topics.into_iter().filter(|t| filter.matches(t)).collect();
        tasks.retain(|topic, task| {
            let keep = matching.contains(topic);
            if !keep {
                tracing::info!(%topic, "the source topic is gone: its route stops");
                task.abort();
                lock(&running).remove(topic);
            }
            keep
        });
        for topic in matching {
            if tasks.contains_key(&topic) {
                continue;
            }
            let route = template.route(&topic);
            let progress = Arc::new(Progress::default());
            lock(&running).insert(topic.clone(), (route.clone(), Arc::clone(&progress)));
            tracing::info!(%topic, destination_topic = %route.destination_topic, "starting a route");
            tasks.insert(topic, tokio::spawn(run_until_stopped(route, progress, stop.clone())));
        }
    }
    // Each route stops on its own (handing back what it holds, releasing
    // its lock); wait for them.
    for (_, task) in tasks {
        let _ = task.await;
    }
}

async fn list_topics(
    addrs: &str,
    options: &ClientOptions,
    source: &mut Option<Client>,
) -> ferry_client::Result<Vec<String>> {
    if source.is_none() {
        *source = Some(Client::connect_with_options(addrs, options.clone()).await?);
    }
    let client = source.as_ref().expect("connected above");
    Ok(client.list_topics().await?.into_iter().map(|t| t.name).collect())
}

fn lock(running: &RouteProgress) -> std::sync::MutexGuard<'_, BTreeMap<String, (Route, Arc<Progress>)>> {
    running.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The Prometheus text of every running route.
pub fn prometheus(running: &RouteProgress) -> String {
    let routes = lock(running);
    let labels: Vec<([(&str, &str); 3], &Progress)> = routes
        .values()
        .map(|(route, progress)| {
            let labels = [
                ("source_cluster", route.source_cluster.as_str()),
                ("topic", route.topic.as_str()),
                ("destination_topic", route.destination_topic.as_str()),
            ];
            (labels, progress.as_ref())
        })
        .collect();
    let labelled: Vec<(&[(&str, &str)], &Progress)> = labels.iter().map(|(l, p)| (&l[..], *p)).collect();
    crate::progress::prometheus(&labelled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_names() {
        let filter = TopicFilter::new(vec!["events.*".into(), "clicks".into(), "a?c".into()]);
        for name in ["events.", "events.web", "events.web.eu", "clicks", "abc", "a.c"] {
            assert!(filter.matches(name), "{name}");
        }
        for name in ["events", "xevents.web", "clicks2", "click", "ac", "abbc"] {
            assert!(!filter.matches(name), "{name}");
        }
        assert!(glob(b"*a*b*", b"xxaxxbxx") && !glob(b"*a*b", b"xxaxxbxx"));
        assert!(glob(b"*", b"") && glob(b"**", b"anything"));
    }

    #[test]
    fn a_lock_name_too_long_for_the_cluster_is_hashed() {
        assert_eq!(lock_name("dc1", "clicks", "clicks"), "ferry-mirror.dc1.clicks.clicks");
        let long = "t".repeat(200);
        let hashed = lock_name("dc1", &long, &long);
        assert!(hashed.len() <= 249 && hashed.starts_with("ferry-mirror."), "{hashed}");
        assert_ne!(hashed, lock_name("dc2", &long, &long));
    }

    #[test]
    fn only_a_lone_name_is_a_single_name() {
        assert_eq!(TopicFilter::new(vec!["clicks".into()]).single_name(), Some("clicks"));
        assert_eq!(TopicFilter::new(vec!["clicks*".into()]).single_name(), None);
        assert_eq!(TopicFilter::new(vec!["a".into(), "b".into()]).single_name(), None);
    }
}
