//! How far a topic's hours have closed, as the output store says: the
//! topic's start hour, and the last hour with a `_SUCCESS`. Hours close in
//! order from the start, so the closed hours are a prefix, found by binary
//! search at start-up and followed forward after.

use crate::hour::Hour;
use crate::manifest::Start;
use crate::naming;
use crate::store::{Output, StoreError};

#[derive(Debug, Clone)]
pub struct Progress {
    topic: String,
    start: Option<Hour>,
    closed_through: Option<Hour>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProgressError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path} is damaged: {reason}")]
    Damaged { path: String, reason: String },
}

impl Progress {
    /// Reads the topic's progress; `now` bounds the search for closed hours.
    pub async fn load(output: &Output, topic: &str, now: Hour) -> Result<Self, ProgressError> {
        let mut progress = Self { topic: topic.to_owned(), start: None, closed_through: None };
        let Some(start) = read_start(output, topic).await? else { return Ok(progress) };
        progress.start = Some(start);
        // The last closed hour is in [start - 1, now]: the largest h with a marker.
        let (mut closed, mut open) = (start.previous(), now.next());
        while closed.next() < open {
            let middle = Hour::between(closed, open);
            if progress.has_marker(output, middle).await? {
                closed = middle;
            } else {
                open = middle;
            }
        }
        progress.closed_through = (closed >= start).then_some(closed);
        Ok(progress)
    }

    /// Sets the start hour if the topic has none (create-only: of two
    /// workers starting at once, both keep the first one written).
    pub async fn ensure_start(&mut self, output: &Output, candidate: Hour) -> Result<Hour, ProgressError> {
        if let Some(start) = self.start {
            return Ok(start);
        }
        let document = serde_json::to_vec(&Start { hour: candidate.to_string() }).expect("serialisable");
        output.create(&start_path(&self.topic), document.into()).await?;
        let start = read_start(output, &self.topic).await?.ok_or_else(|| ProgressError::Damaged {
            path: start_path(&self.topic),
            reason: "missing right after it was written".into(),
        })?;
        self.start = Some(start);
        Ok(start)
    }

    pub fn start(&self) -> Option<Hour> {
        self.start
    }

    pub fn closed_through(&self) -> Option<Hour> {
        self.closed_through
    }

    /// The oldest hour not closed: where late events go, and the next to close.
    pub fn oldest_open(&self) -> Option<Hour> {
        self.closed_through.map(Hour::next).or(self.start)
    }

    pub fn is_closed(&self, hour: Hour) -> bool {
        self.closed_through.is_some_and(|closed| hour <= closed)
    }

    /// Records that `hour` (the oldest open one) closed.
    pub fn closed(&mut self, hour: Hour) {
        debug_assert_eq!(Some(hour), self.oldest_open(), "hours close oldest first");
        self.closed_through = Some(hour);
    }

    /// Follows closes done by other workers.
    pub async fn refresh(&mut self, output: &Output) -> Result<(), ProgressError> {
        if self.start.is_none() {
            self.start = read_start(output, &self.topic).await?;
        }
        while let Some(next) = self.oldest_open() {
            if !self.has_marker(output, next).await? {
                break;
            }
            self.closed_through = Some(next);
        }
        Ok(())
    }

    async fn has_marker(&self, output: &Output, hour: Hour) -> Result<bool, ProgressError> {
        Ok(output.exists(&naming::in_hour(&self.topic, hour, naming::SUCCESS)).await?)
    }
}

fn start_path(topic: &str) -> String {
    format!("{topic}/_etl/start")
}

async fn read_start(output: &Output, topic: &str) -> Result<Option<Hour>, ProgressError> {
    let path = start_path(topic);
    let Some(bytes) = output.get(&path).await? else { return Ok(None) };
    let damaged = |reason: String| ProgressError::Damaged { path: path.clone(), reason };
    let start: Start = serde_json::from_slice(&bytes).map_err(|e| damaged(e.to_string()))?;
    start.hour.parse().map(Some).map_err(|e: crate::hour::BadHour| damaged(e.to_string()))
}
