//! Time, injectable: the system clock in production, a hand-moved clock in tests, so that
//! retention and time-to-live rules can be tested without waiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use time::format_description::FormatItem;
use time::{OffsetDateTime, UtcOffset};

/// Milliseconds since the Unix epoch: how the store keeps every timestamp.
pub type Millis = i64;

#[derive(Clone, Debug)]
pub enum Clock {
    System,
    /// A clock that only moves when told to.
    Manual(Arc<AtomicI64>),
}

impl Clock {
    pub fn manual(start: Millis) -> Self {
        Clock::Manual(Arc::new(AtomicI64::new(start)))
    }

    pub fn now_millis(&self) -> Millis {
        match self {
            Clock::System => (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64,
            Clock::Manual(t) => t.load(Ordering::SeqCst),
        }
    }

    /// Moves a manual clock forward; the system clock cannot be moved.
    pub fn advance(&self, by: std::time::Duration) {
        match self {
            Clock::System => panic!("the system clock cannot be advanced"),
            Clock::Manual(t) => {
                t.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
            }
        }
    }
}

/// The ways the product writes a time; [`format_time`] writes each in a given zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeFormat {
    /// `2020-12-01 08:35:00`: the console's times, and SCF's `AddTime` and `ModTime`.
    DateTime,
    /// `2020-12-01 08:35:00.007`: SCF's event times.
    DateTimeMillis,
    /// `2020-12-01T08:35:00Z`: `<time datetime>` attributes.
    Rfc3339,
    /// `2020-12-01T08:35:00.007Z`: the console's event exports.
    Rfc3339Millis,
    /// `2020-12-01`: the date of a TC3 credential scope.
    Date,
}

/// `ms` written in `format`, in `zone`. A time outside the calendar the `time` crate can hold
/// (no stored timestamp is) writes as the empty string rather than failing a page or an answer.
pub fn format_time(ms: Millis, zone: UtcOffset, format: TimeFormat) -> String {
    use time::macros::format_description as fd;
    let description: &[FormatItem<'static>] = match format {
        TimeFormat::DateTime => fd!("[year]-[month]-[day] [hour]:[minute]:[second]"),
        TimeFormat::DateTimeMillis => {
            fd!("[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:3]")
        }
        TimeFormat::Rfc3339 => fd!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        TimeFormat::Rfc3339Millis => {
            fd!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]")
        }
        TimeFormat::Date => fd!("[year]-[month]-[day]"),
    };
    let Some(local) = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .map(|t| t.to_offset(zone))
    else {
        return String::new();
    };
    let Ok(mut text) = local.format(description) else {
        return String::new();
    };
    if matches!(format, TimeFormat::Rfc3339 | TimeFormat::Rfc3339Millis) {
        text.push_str(&rfc3339_offset(zone));
    }
    text
}

fn rfc3339_offset(zone: UtcOffset) -> String {
    if zone.is_utc() {
        return "Z".into();
    }
    let (h, m, _) = zone.as_hms();
    let sign = if zone.is_negative() { '-' } else { '+' };
    format!("{sign}{:02}:{:02}", h.unsigned_abs(), m.unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = Clock::manual(1_000);
        assert_eq!(c.now_millis(), 1_000);
        c.advance(std::time::Duration::from_secs(2));
        assert_eq!(c.now_millis(), 3_000);
    }

    #[test]
    fn formats() {
        use TimeFormat::*;
        let utc = UtcOffset::UTC;
        let t = 1_606_811_700_007;
        assert_eq!(format_time(t, utc, DateTime), "2020-12-01 08:35:00");
        assert_eq!(
            format_time(t, utc, DateTimeMillis),
            "2020-12-01 08:35:00.007"
        );
        assert_eq!(format_time(t, utc, Rfc3339), "2020-12-01T08:35:00Z");
        assert_eq!(
            format_time(t, utc, Rfc3339Millis),
            "2020-12-01T08:35:00.007Z"
        );
        assert_eq!(format_time(t, utc, Date), "2020-12-01");
        let cst = UtcOffset::from_hms(8, 0, 0).unwrap();
        assert_eq!(format_time(t, cst, DateTime), "2020-12-01 16:35:00");
        assert_eq!(format_time(t, cst, Rfc3339), "2020-12-01T16:35:00+08:00");
        let nst = UtcOffset::from_hms(-3, -30, 0).unwrap();
        assert_eq!(format_time(t, nst, Rfc3339), "2020-12-01T05:05:00-03:30");
        assert_eq!(format_time(i64::MAX, utc, DateTime), "");
    }
}
