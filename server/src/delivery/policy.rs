//! `DeliveryPolicy`: a subscription's delivery settings, in the units the
//! leases work in.

use std::time::Duration;

use crate::domain::SubscriptionConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryPolicy {
    pub ack_deadline: Duration,
    pub retry_min_backoff: Duration,
    pub retry_max_backoff: Duration,
    /// Deliveries after which a message is dead-lettered rather than
    /// delivered again; `None` = never.
    pub max_delivery_attempts: Option<u32>,
}

impl DeliveryPolicy {
    pub fn of(config: &SubscriptionConfig) -> Self {
        let seconds = |s: u32| Duration::from_secs(u64::from(s));
        Self {
            ack_deadline: seconds(config.ack_deadline_seconds),
            retry_min_backoff: seconds(config.retry_min_backoff_seconds),
            retry_max_backoff: seconds(config.retry_max_backoff_seconds),
            max_delivery_attempts: (!config.dead_letter_topic.is_empty()).then_some(config.max_delivery_attempts),
        }
    }

    /// How long to wait before delivering again a message delivered
    /// `attempts` times: `min * 2^(attempts-1)`, at most `max`.
    pub fn backoff(&self, attempts: u32) -> Duration {
        if self.retry_min_backoff.is_zero() {
            return Duration::ZERO;
        }
        let doublings = attempts.saturating_sub(1).min(20);
        self.retry_min_backoff.saturating_mul(1 << doublings).min(self.retry_max_backoff)
    }

    /// Whether a message delivered `attempts` times goes to the dead-letter topic.
    pub fn exhausted(&self, attempts: u32) -> bool {
        self.max_delivery_attempts.is_some_and(|max| attempts >= max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_min_up_to_max() {
        let policy = DeliveryPolicy {
            ack_deadline: Duration::from_secs(10),
            retry_min_backoff: Duration::from_secs(2),
            retry_max_backoff: Duration::from_secs(10),
            max_delivery_attempts: None,
        };
        let waits: Vec<u64> = (1..=5).map(|a| policy.backoff(a).as_secs()).collect();
        assert_eq!(waits, vec![2, 4, 8, 10, 10]);
        assert_eq!(policy.backoff(1_000).as_secs(), 10);
    }

    #[test]
    fn no_backoff_and_no_dead_letter_by_default() {
        let policy = DeliveryPolicy::of(&SubscriptionConfig { ack_deadline_seconds: 10, ..Default::default() });
        assert_eq!(policy.backoff(3), Duration::ZERO);
        assert!(!policy.exhausted(1_000));
    }
}
