//! `Hour`: one hour of UTC time, the unit the ETL buckets events by.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};

const MICROS_PER_HOUR: i64 = 3_600_000_000;

/// Hours since the Unix epoch, UTC. Ordered, so hours close oldest first by
/// sorting them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hour(i64);

impl Hour {
    /// The hour a publish time (microseconds since the epoch) falls in.
    pub fn of_micros(micros: i64) -> Self {
        Self(micros.div_euclid(MICROS_PER_HOUR))
    }

    pub fn of(time: SystemTime) -> Self {
        Self::of_micros(micros(time))
    }

    pub fn start_micros(self) -> i64 {
        self.0 * MICROS_PER_HOUR
    }

    /// The first microsecond of the next hour.
    pub fn end_micros(self) -> i64 {
        self.next().start_micros()
    }

    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }

    pub fn previous(self) -> Self {
        Self(self.0 - 1)
    }

    /// An hour halfway between two (for binary searches).
    pub fn between(low: Self, high: Self) -> Self {
        Self(low.0 + (high.0 - low.0) / 2)
    }

    /// The bucket's directory under a topic: `dt=YYYY-MM-DD/hr=HH`.
    pub fn dir(self) -> String {
        let start = self.date_time();
        format!("dt={}/hr={}", start.format("%Y-%m-%d"), start.format("%H"))
    }

    fn date_time(self) -> NaiveDateTime {
        DateTime::from_timestamp(self.0 * 3600, 0).expect("an hour within chrono's range").naive_utc()
    }
}

/// `YYYY-MM-DDTHH`, as `ferry-etl verify` takes it.
impl fmt::Display for Hour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.date_time().format("%Y-%m-%dT%H"))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not an hour: expected YYYY-MM-DDTHH or dt=YYYY-MM-DD/hr=HH (UTC)")]
pub struct BadHour {
    text: String,
}

/// Reads `YYYY-MM-DDTHH` or a bucket directory `dt=YYYY-MM-DD/hr=HH`.
impl FromStr for Hour {
    type Err = BadHour;

    fn from_str(text: &str) -> Result<Self, BadHour> {
        let bad = || BadHour { text: text.to_owned() };
        let (date, hour) = match text.strip_prefix("dt=") {
            Some(rest) => rest.split_once("/hr=").ok_or_else(bad)?,
            None => text.split_once('T').ok_or_else(bad)?,
        };
        let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| bad())?;
        let hour: u32 = hour.trim_end_matches('/').parse().map_err(|_| bad())?;
        let time = NaiveTime::from_hms_opt(hour, 0, 0).ok_or_else(bad)?;
        Ok(Self(date.and_time(time).and_utc().timestamp().div_euclid(3600)))
    }
}

/// Microseconds since the epoch (negative before it).
pub fn micros(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_micros()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

/// A duration in microseconds, saturating.
pub fn duration_micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

pub fn time_of_micros(micros: i64) -> SystemTime {
    match u64::try_from(micros) {
        Ok(after) => UNIX_EPOCH + Duration::from_micros(after),
        Err(_) => UNIX_EPOCH - Duration::from_micros(micros.unsigned_abs()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publish_time_falls_in_its_utc_hour() {
        // 2026-11-22T13:59:59.999999Z and the next microsecond.
        let last = 1_795_355_999_999_999;
        assert_eq!(Hour::of_micros(last).to_string(), "2026-11-22T13");
        assert_eq!(Hour::of_micros(last + 1).to_string(), "2026-11-22T14");
        assert_eq!(Hour::of_micros(last).end_micros(), last + 1);
        assert_eq!(Hour::of_micros(last).dir(), "dt=2026-11-22/hr=13");
    }

    #[test]
    fn hours_before_the_epoch_round_down() {
        assert_eq!(Hour::of_micros(-1).to_string(), "1969-12-31T23");
    }

    #[test]
    fn both_spellings_parse_back() {
        let hour: Hour = "2026-11-22T13".parse().expect("hour");
        assert_eq!(hour, "dt=2026-11-22/hr=13".parse().expect("dir"));
        assert_eq!(hour.to_string(), "2026-11-22T13");
        assert_eq!(hour.next().dir(), "dt=2026-11-22/hr=14");
        for bad in ["2026-11-22", "2026-11-22T24", "dt=2026-13-01/hr=00", "yesterday"] {
            let error = bad.parse::<Hour>().expect_err(bad);
            assert!(error.to_string().contains("YYYY-MM-DDTHH"), "{error}");
        }
    }

    #[test]
    fn micros_round_trip_through_system_time() {
        for us in [-5_000_001, 0, 1_795_355_999_999_999] {
            assert_eq!(micros(time_of_micros(us)), us);
        }
    }
}
