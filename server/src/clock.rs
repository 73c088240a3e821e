//! The server's one source of time.
//!
//! Wall-clock time stamps publishes and drives retention; monotonic time runs
//! leases and backoff, so a wall clock step never expires or extends a lease.
//! Everything that waits for time waits through [`Clock::sleep_until`], so a
//! [`ManualClock`] moves the whole server — deadlines, backoff, retention —
//! without anyone sleeping.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::time::Instant;

pub type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

pub trait Clock: Send + Sync + Debug + 'static {
    /// Microseconds since the Unix epoch.
    fn wall_us(&self) -> i64;
    /// A monotonic instant for deadlines.
    fn monotonic(&self) -> Instant;
    /// Resolves once `monotonic()` has reached `deadline`.
    fn sleep_until(&self, deadline: Instant) -> Sleep<'_>;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn wall_us(&self) -> i64 {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        i64::try_from(since_epoch.as_micros()).unwrap_or(i64::MAX)
    }

    fn monotonic(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep<'_> {
        Box::pin(tokio::time::sleep_until(deadline))
    }
}

/// A clock that moves only when told to. Both its wall and monotonic time
/// start from the real ones and then advance together.
#[derive(Debug)]
pub struct ManualClock {
    origin: Instant,
    wall_us: AtomicI64,
    /// Monotonic microseconds since `origin`; sleepers watch it.
    elapsed_us: watch::Sender<i64>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new(SystemClock.wall_us())
    }
}

impl ManualClock {
    pub fn new(wall_us: i64) -> Self {
        Self { origin: Instant::now(), wall_us: AtomicI64::new(wall_us), elapsed_us: watch::channel(0).0 }
    }

    /// Moves both clocks forward and wakes every sleeper whose time has come.
    pub fn advance(&self, by: Duration) {
        let micros = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        self.wall_us.fetch_add(micros, Ordering::SeqCst);
        self.elapsed_us.send_modify(|elapsed| *elapsed = elapsed.saturating_add(micros));
    }

    /// Sets the wall clock alone, as a clock step would (monotonic time is unaffected).
    pub fn set_wall_us(&self, wall_us: i64) {
        self.wall_us.store(wall_us, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn wall_us(&self) -> i64 {
        self.wall_us.load(Ordering::SeqCst)
    }

    fn monotonic(&self) -> Instant {
        let elapsed = (*self.elapsed_us.borrow()).max(0) as u64;
        self.origin + Duration::from_micros(elapsed)
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep<'_> {
        let mut elapsed = self.elapsed_us.subscribe();
        Box::pin(async move {
            while self.monotonic() < deadline {
                if elapsed.changed().await.is_err() {
                    // The clock is gone; nothing will ever wake us.
                    std::future::pending::<()>().await;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_sleeper_wakes_only_when_the_clock_passes_its_deadline() {
        let clock = std::sync::Arc::new(ManualClock::new(0));
        let deadline = clock.monotonic() + Duration::from_secs(10);
        let sleeper = {
            let clock = std::sync::Arc::clone(&clock);
            tokio::spawn(async move { clock.sleep_until(deadline).await })
        };
        clock.advance(Duration::from_secs(9));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(5), sleeper).await.expect("woke").expect("task");
        assert_eq!(clock.wall_us(), 10_000_000);
    }
}
