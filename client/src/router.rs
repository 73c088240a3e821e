//! `Router`: which node a client sends its next request to, and the retry
//! loop that follows leader hints and skips nodes that are down.
//!
//! Every public request is served by the leader. A node that is not the
//! leader answers UNAVAILABLE, with the leader's address when it knows it; the
//! router switches to that node and retries. A node that is down (or knows no
//! leader, during an election) makes the router try the next known node after
//! a short backoff. Retries are bounded by a time budget.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;
use tonic::service::interceptor::InterceptedService;
use tonic::Code;

use crate::error::{Error, Result};
use crate::options::{ClientOptions, Conn, Credentials};

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct State {
    /// Every address known: the seeds, then leaders learned from hints.
    known: Vec<String>,
    current: usize,
    channels: HashMap<String, Conn>,
    options: ClientOptions,
    credentials: Credentials,
}

impl State {
    /// The connection to `addr`, made on first use.
    fn channel(&mut self, addr: &str) -> Result<Conn> {
        if let Some(channel) = self.channels.get(addr) {
            return Ok(channel.clone());
        }
        let channel = InterceptedService::new(self.options.endpoint(addr)?.connect_lazy(), self.credentials.clone());
        self.channels.insert(addr.to_owned(), channel.clone());
        Ok(channel)
    }
}

#[derive(Debug)]
pub(crate) struct Router {
    state: Mutex<State>,
    retry_budget: Duration,
}

impl Router {
    /// Checks every address and connects to the first that answers.
    pub(crate) async fn connect(seeds: &[String], options: ClientOptions) -> Result<Self> {
        if seeds.is_empty() {
            return Err(Error::InvalidAddress { addr: String::new(), reason: "no server address given".into() });
        }
        let credentials = options.credentials()?;
        let conn = |channel| InterceptedService::new(channel, credentials.clone());
        let mut channels = HashMap::new();
        for seed in seeds {
            channels.insert(seed.clone(), conn(options.endpoint(seed)?.connect_lazy()));
        }
        let mut last_error = None;
        let mut current = 0;
        for (i, seed) in seeds.iter().enumerate() {
            match options.endpoint(seed)?.connect().await {
                Ok(channel) => {
                    channels.insert(seed.clone(), conn(channel));
                    current = i;
                    last_error = None;
                    break;
                }
                Err(source) => last_error = Some(Error::Connect { addr: seed.clone(), source }),
            }
        }
        if let Some(error) = last_error {
            return Err(error);
        }
        let retry_budget = options.retry_budget;
        let state = State { known: seeds.to_vec(), current, channels, options, credentials };
        Ok(Self { state: Mutex::new(state), retry_budget })
    }

    fn current(&self) -> (String, Conn) {
        let state = self.state.lock();
        let addr = state.known[state.current].clone();
        let channel = state.channels.get(&addr).cloned().expect("a channel for every known address");
        (addr, channel)
    }

    /// Switches to the hinted leader, learning its address if it is new.
    fn follow(&self, hint: &str) -> Result<()> {
        // Hints look like `<node id>=<host:port>`.
        let addr = hint.split_once('=').map_or(hint, |(_, addr)| addr).to_owned();
        let mut state = self.state.lock();
        let index = match state.known.iter().position(|a| *a == addr) {
            Some(index) => index,
            None => {
                state.channel(&addr)?;
                state.known.push(addr);
                state.known.len() - 1
            }
        };
        state.current = index;
        Ok(())
    }

    /// Moves on from a node that did not help.
    fn skip(&self, failed: &str) {
        let mut state = self.state.lock();
        if state.known[state.current] == failed {
            state.current = (state.current + 1) % state.known.len();
        }
    }

    /// Runs `op` against the leader, following hints and skipping nodes that
    /// are down, until it succeeds, fails for another reason, or the retry
    /// budget is spent.
    pub(crate) async fn call<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let give_up = Instant::now() + self.retry_budget;
        let mut backoff = BACKOFF_MIN;
        loop {
            let (addr, channel) = self.current();
            let status = match op(channel).await {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) => status,
            };
            let lost_connection = is_connection_failure(&status);
            let error = Error::from(status);
            let leader_hint = match &error {
                Error::Status { code: Code::Unavailable, leader_hint, .. } => leader_hint,
                _ if lost_connection => &None,
                _ => return Err(error),
            };
            if Instant::now() >= give_up {
                return Err(error);
            }
            match leader_hint {
                Some(hint) if !hint.ends_with(&format!("={addr}")) => self.follow(hint)?,
                _ => {
                    self.skip(&addr);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// Runs `op` once at `leader_addr` (the leader of a data group, for a
    /// call any node takes and that node serves without a hop); if it
    /// cannot take it there (unreachable, or UNAVAILABLE), or no leader is
    /// named, runs it as [`Router::call`] does. Only for calls that may be
    /// retried (a publish sent again may be stored twice).
    pub(crate) async fn call_routed<T, F, Fut>(&self, leader_addr: Option<&str>, op: F) -> Result<Routed<T>>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut missed = false;
        if let Some(addr) = leader_addr {
            missed = true;
            if let Ok(channel) = self.channel(addr) {
                match op(channel).await {
                    Ok(response) => return Ok(Routed { answer: response.into_inner(), missed: false }),
                    Err(status) if status.code() == Code::Unavailable || is_connection_failure(&status) => {}
                    Err(status) => return Err(status.into()),
                }
            }
        }
        self.call(op).await.map(|answer| Routed { answer, missed })
    }

    /// The channel to `addr`, made on first use (not a node the router
    /// follows unless a hint names it).
    fn channel(&self, addr: &str) -> Result<Conn> {
        self.state.lock().channel(addr)
    }

    /// Runs `op` once at the node at `addr`, without retries or redirects.
    pub(crate) async fn call_at<T, F, Fut>(&self, addr: &str, op: F) -> Result<T>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        Ok(op(self.channel(addr)?).await?.into_inner())
    }

    /// Runs `op` once against the node currently chosen, without retries.
    pub(crate) async fn call_here<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let (_, channel) = self.current();
        Ok(op(channel).await?.into_inner())
    }
}

/// The answer of a [`Router::call_routed`], and whether the leader it named
/// could not take the call (so the routes that named it may be stale).
pub(crate) struct Routed<T> {
    pub(crate) answer: T,
    pub(crate) missed: bool,
}

/// A request that died with its connection (the node was killed or
/// restarted mid-call): its outcome is unknown, like UNAVAILABLE.
fn is_connection_failure(status: &tonic::Status) -> bool {
    // hyper reports a request whose connection was torn down under it as
    // CANCELLED ("operation was canceled"); a caller that really gives up
    // drops the future instead and never sees a status.
    if status.code() == Code::Cancelled {
        return true;
    }
    if status.code() != Code::Unknown {
        return false;
    }
    let message = status.message();
    ["transport error", "connection", "broken pipe", "stream closed", "h2 protocol error"]
        .iter()
        .any(|m| message.contains(m))
}
