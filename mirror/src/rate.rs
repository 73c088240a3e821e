//! A route's rate limit on the link: bytes per second, as a token bucket
//! that lets a batch go into debt rather than split it.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct RateLimit {
    per_second: f64,
    /// Bytes that may go now; below zero, the debt the last batch ran up.
    available: f64,
    refilled_at: Instant,
}

impl RateLimit {
    /// At most `per_second` bytes a second over time; a burst of one second's
    /// worth after an idle spell.
    pub fn new(per_second: u64, now: Instant) -> Self {
        let per_second = per_second as f64;
        Self { per_second, available: per_second, refilled_at: now }
    }

    /// Takes `bytes` if the bucket is not in debt, else says when it will be
    /// out of it. A batch larger than the bucket still goes (whole), and the
    /// next waits for the debt to be paid.
    pub fn admit(&mut self, bytes: u64, now: Instant) -> Result<(), Instant> {
        let elapsed = now.saturating_duration_since(self.refilled_at).as_secs_f64();
        self.available = (self.available + elapsed * self.per_second).min(self.per_second);
        self.refilled_at = now;
        if self.available < 0.0 {
            return Err(now + Duration::from_secs_f64(-self.available / self.per_second));
        }
        self.available -= bytes as f64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_time_no_more_than_the_rate_goes_and_a_large_batch_is_not_split() {
        let start = Instant::now();
        let mut limit = RateLimit::new(1000, start);
        assert_eq!(limit.admit(600, start), Ok(()));
        assert_eq!(limit.admit(600, start), Ok(()), "the burst allowance goes into debt by 200");
        assert_eq!(limit.admit(1, start), Err(start + Duration::from_millis(200)));
        // Ten seconds of batches of 500 bytes: about 10,000 bytes go, plus the burst.
        let (mut sent, mut now) = (0u64, start + Duration::from_millis(200));
        while now < start + Duration::from_secs(10) {
            match limit.admit(500, now) {
                Ok(()) => sent += 500,
                Err(at) => now = at,
            }
        }
        assert!((9_000..=11_000).contains(&sent), "{sent} bytes in 10 s at 1,000 bytes/s");
    }
}
