//! Hour boundaries of a partition: the first offset published in each hour,
//! kept for a week even after the messages themselves are deleted (acked by
//! every subscription, or trimmed), so "which offsets did hour H hold" can
//! still be answered — a mirror's gap check counts a source hour so.

pub const HOUR_US: i64 = 3_600 * 1_000_000;
/// Hours of boundaries a partition keeps: a week and one.
pub const HOUR_STARTS_KEPT: i64 = 7 * 24 + 1;

/// The start of the hour holding `us`.
pub fn hour_of(us: i64) -> i64 {
    us.div_euclid(HOUR_US) * HOUR_US
}

/// The start of the first hour at or after `us`.
pub fn hour_at_or_after(us: i64) -> i64 {
    let hour = hour_of(us);
    if hour == us {
        hour
    } else {
        hour.saturating_add(HOUR_US)
    }
}
