//! The server's one source of time.
//!
//! Wall-clock time stamps publishes; monotonic time runs leases, so a wall
//! clock step never expires or extends a lease. Tests substitute
//! [`ManualClock`] to move both without sleeping.

use std::fmt::Debug;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

pub trait Clock: Send + Sync + Debug + 'static {
    /// Microseconds since the Unix epoch.
    fn wall_us(&self) -> i64;
    /// A monotonic instant for deadlines.
    fn monotonic(&self) -> Instant;
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
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock {
    origin: Instant,
    wall_us: AtomicI64,
    elapsed_us: AtomicI64,
}

impl ManualClock {
    pub fn new(wall_us: i64) -> Self {
        Self { origin: Instant::now(), wall_us: AtomicI64::new(wall_us), elapsed_us: AtomicI64::new(0) }
    }

    /// Moves both clocks forward.
    pub fn advance(&self, by: Duration) {
        let micros = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        self.wall_us.fetch_add(micros, Ordering::SeqCst);
        self.elapsed_us.fetch_add(micros, Ordering::SeqCst);
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
        let elapsed = self.elapsed_us.load(Ordering::SeqCst).max(0) as u64;
        self.origin + Duration::from_micros(elapsed)
    }
}
