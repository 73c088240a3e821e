//! `ferry tail FILE... --topic T`: the file tailer. Follows each file like
//! `tail -F`, publishes every new line, and checkpoints each file's position
//! only once the lines before it are acknowledged by the cluster.

mod checkpoint;
mod follow;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args as ClapArgs;
use ferry_client::{Client, Message, PublishHandle, Publisher, PublisherSettings};
use futures::FutureExt;
use tokio::time::Instant;

use checkpoint::{Checkpoints, FilePosition};
use follow::Follower;

/// Lines published and not yet acknowledged, at most: the most a crash can
/// make the tailer send twice.
const UNACKED_LINES_MAX: usize = 100_000;
/// Lines between looks at which answers came back, within a long read.
const SETTLE_EVERY_LINES: u64 = 1000;

#[derive(Debug, ClapArgs)]
pub struct TailArgs {
    /// The files to follow (they need not exist yet).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[arg(long)]
    pub topic: String,
    /// Where the acknowledged position of each file is kept.
    #[arg(long, default_value = "ferry-tail.checkpoint.json")]
    pub checkpoint: PathBuf,
    /// How often the files are checked for new lines.
    #[arg(long, default_value = "200ms")]
    pub poll: humantime::Duration,
    /// How often the checkpoint is saved while lines are being acknowledged.
    #[arg(long, default_value = "200ms")]
    pub checkpoint_every: humantime::Duration,
    /// Exit (after publishing and checkpointing everything) once no new line
    /// appeared for this long. Default: follow until interrupted.
    #[arg(long)]
    pub exit_when_idle: Option<humantime::Duration>,
    /// Wire compression of batches: none, zstd or lz4.
    #[arg(long, default_value = "none")]
    pub compression: ferry_client::Compression,
}

/// A published line: which file, where it ends, and its answer to come.
struct Unacked {
    file: usize,
    end: FilePosition,
    answer: PublishHandle,
}

/// The lines in flight and the checkpoint they move once acknowledged.
struct Progress {
    paths: Vec<PathBuf>,
    unacked: VecDeque<Unacked>,
    checkpoints: Checkpoints,
    checkpoint_path: PathBuf,
    checkpoint_every: Duration,
    /// Positions moved since the last save, and when that was.
    dirty: bool,
    last_save: Instant,
}

impl Progress {
    /// Moves checkpoints past the lines acknowledged in order from the
    /// front; with `wait`, waits for the front line's answer first.
    async fn settle(&mut self, wait: bool) -> anyhow::Result<()> {
        if wait {
            if let Some(front) = self.unacked.front_mut() {
                (&mut front.answer).await.context("publish a line")?;
                self.advance();
            }
        }
        while let Some(front) = self.unacked.front_mut() {
            let Some(answer) = (&mut front.answer).now_or_never() else { break };
            answer.context("publish a line")?;
            self.advance();
        }
        Ok(())
    }

    fn advance(&mut self) {
        if let Some(front) = self.unacked.pop_front() {
            self.checkpoints.files.insert(self.paths[front.file].clone(), front.end);
            self.dirty = true;
        }
    }

    /// Saves the checkpoint if it moved and the last save is old enough.
    fn save_when_due(&mut self) -> anyhow::Result<()> {
        if self.dirty && self.last_save.elapsed() >= self.checkpoint_every {
            self.save()?;
        }
        Ok(())
    }

    fn save(&mut self) -> anyhow::Result<()> {
        self.checkpoints.save(&self.checkpoint_path)?;
        (self.dirty, self.last_save) = (false, Instant::now());
        Ok(())
    }
}

pub async fn run(client: &Client, args: TailArgs) -> anyhow::Result<()> {
    let checkpoints = Checkpoints::load(&args.checkpoint)?;
    let paths: Vec<PathBuf> = args.files.iter().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())).collect();
    let mut followers: Vec<Follower> =
        paths.iter().map(|path| Follower::resume(path, checkpoints.files.get(path).copied())).collect();
    let settings = PublisherSettings { compression: args.compression, ..Default::default() };
    let publisher =
        Publisher::new(client, &args.topic, settings).await.with_context(|| format!("publish to {}", args.topic))?;
    let mut progress = Progress {
        paths,
        unacked: VecDeque::new(),
        checkpoints,
        checkpoint_path: args.checkpoint.clone(),
        checkpoint_every: args.checkpoint_every.into(),
        dirty: false,
        last_save: Instant::now(),
    };

    let mut published = 0u64;
    let mut last_line = Instant::now();
    let poll: Duration = args.poll.into();
    loop {
        let mut idle = true;
        for (index, follower) in followers.iter_mut().enumerate() {
            let lines = follower.poll().with_context(|| format!("read {}", follower.path().display()))?;
            for line in lines {
                idle = false;
                let message = Message::new(line.data).attribute("file", follower.path().display().to_string());
                let answer = publisher.publish(message).await?;
                progress.unacked.push_back(Unacked { file: index, end: line.end, answer });
                published += 1;
                // Keep the checkpoint moving while a long stretch is read.
                if published.is_multiple_of(SETTLE_EVERY_LINES) {
                    progress.settle(false).await?;
                    progress.save_when_due()?;
                }
                while progress.unacked.len() >= UNACKED_LINES_MAX {
                    progress.settle(true).await?;
                }
            }
        }
        progress.settle(false).await?;
        progress.save_when_due()?;
        if !idle {
            last_line = Instant::now();
            continue;
        }
        if args.exit_when_idle.is_some_and(|idle_for| last_line.elapsed() >= idle_for.into()) {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    // Everything read is published and checkpointed before exiting.
    while !progress.unacked.is_empty() {
        progress.settle(true).await?;
    }
    progress.save()?;
    publisher.close().await;
    eprintln!("ferry tail: published {published} lines");
    Ok(())
}
