//! Time, injectable: the system clock in production, a hand-moved clock in tests, so that
//! retention and time-to-live rules can be tested without waiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use time::OffsetDateTime;

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

/// `2026-11-29 10:48:25` in UTC: the console's absolute time format.
pub fn format_utc(ms: Millis) -> String {
    const FORMAT: &[time::format_description::FormatItem<'static>] =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(FORMAT).ok())
        .unwrap_or_default()
}

/// `2026-11-29T10:48:25Z`: for `<time datetime>` attributes.
pub fn format_rfc3339(ms: Millis) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.replace_nanosecond(0).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
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
        assert_eq!(format_utc(1_606_811_700_000), "2020-12-01 08:35:00");
        assert_eq!(format_rfc3339(1_606_811_700_123), "2020-12-01T08:35:00Z");
    }
}
