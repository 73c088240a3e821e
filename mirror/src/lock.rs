//! The route's lock in the destination cluster. Several instances may run
//! for one route: the holder copies, the others stand by and take over when
//! it releases the lock (a clean stop) or stops renewing it (killed, cut off).
//!
//! Correctness never rests on the lock: the destination's producer sequences
//! store each source message once even if two instances copy at once (a
//! process paused past its lock, a clock jump between leaders). The lock
//! keeps standbys from contending for the source subscription and the
//! destination's sequences, which would only waste the link.

use std::time::Duration;

use anyhow::Context;
use ferry_client::Client;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::stopped;

/// Who contends for a lock, and for how long a grant lasts.
#[derive(Debug, Clone)]
pub struct LockSettings {
    /// The lock's name in the destination cluster; one per route.
    pub name: String,
    /// This instance's id, unique among the route's instances.
    pub holder: String,
    pub ttl: Duration,
}

impl LockSettings {
    /// Renewals, and a standby's asks, come this often: a holder misses two
    /// before its lock runs out.
    fn ask_every(&self) -> Duration {
        self.ttl / 3
    }
}

/// The lock while this instance holds it: renewed in the background until
/// released or dropped.
pub struct HeldLock {
    destination: Client,
    settings: LockSettings,
    /// Why the lock was lost, once it is.
    lost: oneshot::Receiver<String>,
    renewing: JoinHandle<()>,
}

/// Waits until this instance holds the lock; `None` if `stop` turned true
/// first. Standing by, it asks again every third of the lock's time to live.
pub async fn acquire(
    destination: &Client,
    settings: &LockSettings,
    stop: &mut watch::Receiver<bool>,
) -> anyhow::Result<Option<HeldLock>> {
    let mut standing_by_for = None;
    loop {
        let asked = Instant::now();
        let grant = destination
            .acquire_lock(&settings.name, &settings.holder, settings.ttl)
            .await
            .with_context(|| format!("acquire the route's lock {}", settings.name))?;
        if grant.granted {
            tracing::info!(lock = %settings.name, epoch = grant.lock.epoch, "holding the route's lock: copying");
            let (lost_tx, lost) = oneshot::channel();
            let renewing = tokio::spawn(renew(destination.clone(), settings.clone(), asked + settings.ttl, lost_tx));
            return Ok(Some(HeldLock { destination: destination.clone(), settings: settings.clone(), lost, renewing }));
        }
        if standing_by_for.as_ref() != Some(&grant.lock.holder) {
            tracing::info!(
                lock = %settings.name,
                holder = %grant.lock.holder,
                epoch = grant.lock.epoch,
                "standing by: another instance holds the route's lock"
            );
            standing_by_for = Some(grant.lock.holder);
        }
        tokio::select! {
            () = stopped(stop) => return Ok(None),
            () = tokio::time::sleep(settings.ask_every()) => {}
        }
    }
}

impl HeldLock {
    /// Resolves when the lock is lost, with the reason.
    pub async fn lost(&mut self) -> String {
        (&mut self.lost).await.unwrap_or_else(|_| "the renewing task ended".into())
    }

    /// Gives the lock up at once, so a standby need not wait for it to run out.
    pub async fn release(self) {
        self.renewing.abort();
        match self.destination.release_lock(&self.settings.name, &self.settings.holder).await {
            Ok(_) => tracing::info!(lock = %self.settings.name, "released the route's lock"),
            Err(e) => tracing::warn!(lock = %self.settings.name, error = %e, "releasing the route's lock failed"),
        }
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        self.renewing.abort();
    }
}

/// Renews the lock until a renewal is turned down or fails to arrive before
/// the lock runs out (`valid_until`: when this instance last asked, plus
/// the time to live), then reports why on `lost`.
async fn renew(destination: Client, settings: LockSettings, mut valid_until: Instant, lost: oneshot::Sender<String>) {
    let reason = loop {
        tokio::time::sleep(settings.ask_every()).await;
        let asked = Instant::now();
        let renewal = destination.acquire_lock(&settings.name, &settings.holder, settings.ttl);
        match tokio::time::timeout_at(valid_until, renewal).await {
            Ok(Ok(grant)) if grant.granted => valid_until = asked + settings.ttl,
            Ok(Ok(grant)) => break format!("instance {} holds it now (epoch {})", grant.lock.holder, grant.lock.epoch),
            // The client retried for its budget: try again while the lock lasts.
            Ok(Err(e)) if Instant::now() < valid_until => {
                tracing::warn!(lock = %settings.name, error = %e, "renewing the route's lock failed; retrying");
            }
            Ok(Err(e)) => break format!("it ran out while renewals failed: {e}"),
            Err(_) => break "it ran out before the destination answered a renewal".into(),
        }
    };
    let _ = lost.send(reason);
}
