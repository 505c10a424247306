//! Event queries: the filters, sort and time windows of Event Management and of
//! ListAsyncEvents, read once here from either vocabulary.

use super::event::EventStatus;
use super::rules::FieldError;
use crate::clock::Millis;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventOrderBy {
    /// When the invocation was accepted (SCF's StartTime).
    #[default]
    StartTime,
    EndTime,
}

/// What to list. Time ranges are left-closed, right-open, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Empty: every status.
    pub statuses: Vec<EventStatus>,
    /// Empty: every invocation type.
    pub invoke_types: Vec<String>,
    pub request_id: Option<String>,
    /// The console's search: RequestIds that start with this (lower-case hex and `-`).
    pub request_id_prefix: Option<String>,
    /// Failed events whose error's first line (cut as top errors cut it) is this: a top
    /// error's link.
    pub error_prefix: Option<String>,
    pub start: Option<(Millis, Millis)>,
    pub end: Option<(Millis, Millis)>,
    pub order_by: EventOrderBy,
    pub ascending: bool,
}

/// A RequestId search takes at least this many first characters (one in 65,536 events).
const REQUEST_ID_PREFIX_MIN: usize = 4;

/// A RequestId, or its first characters, as typed in a search box: trimmed and lower-cased,
/// or why it cannot be one, in the user's terms.
pub fn request_id_search(raw: &str) -> Result<String, String> {
    let id = raw.trim().to_ascii_lowercase();
    if id.len() <= 36 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Ok(id);
    }
    let shown: String = id.chars().take(40).collect();
    Err(format!(
        "{shown:?} is not a RequestId or the start of one (hex digits and -, at most 36): it is left out of the filter."
    ))
}

/// How a searched RequestId (see [`request_id_search`]) filters: `(whole, prefix)`. A whole
/// RequestId is looked up; its first characters are searched for, from
/// `REQUEST_ID_PREFIX_MIN` on (shorter, the range of the index would be a large share of
/// all events); anything shorter can only be a whole one.
pub fn request_id_filter(id: &str) -> (Option<String>, Option<String>) {
    if id.is_empty() {
        (None, None)
    } else if (REQUEST_ID_PREFIX_MIN..36).contains(&id.len()) {
        (None, Some(id.to_string()))
    } else {
        (Some(id.to_string()), None)
    }
}

/// The invocation types the console offers as filters.
pub const INVOKE_TYPES: &[&str] = &["API", "CONSOLE"];

/// The API's status names: `RUNNING` covers queued events too, as SCF shows them.
pub fn statuses_from_scf(name: &str) -> Option<&'static [EventStatus]> {
    Some(match name {
        "RUNNING" => &[EventStatus::Queued, EventStatus::Running],
        "FINISHED" => &[EventStatus::Finished],
        "FAILED" => &[EventStatus::Failed],
        "ABORTED" => &[EventStatus::Aborted],
        _ => return None,
    })
}

/// The console's status names (lower case, as in its URLs).
pub fn status_from_console(name: &str) -> Option<EventStatus> {
    Some(match name {
        "queued" => EventStatus::Queued,
        "running" => EventStatus::Running,
        "finished" => EventStatus::Finished,
        "failed" => EventStatus::Failed,
        "aborted" => EventStatus::Aborted,
        _ => return None,
    })
}

pub fn console_name(status: EventStatus) -> &'static str {
    match status {
        EventStatus::Queued => "queued",
        EventStatus::Running => "running",
        EventStatus::Finished => "finished",
        EventStatus::Failed => "failed",
        EventStatus::Aborted => "aborted",
    }
}

pub const ALL_STATUSES: [EventStatus; 5] = [
    EventStatus::Queued,
    EventStatus::Running,
    EventStatus::Finished,
    EventStatus::Failed,
    EventStatus::Aborted,
];

/// `2020-12-01 08:35:00` in the given zone, SCF's format for time filters.
pub fn parse_scf_time(
    text: &str,
    tz: time::UtcOffset,
    field: &'static str,
) -> Result<Millis, FieldError> {
    const FORMAT: &[time::format_description::FormatItem<'static>] =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::PrimitiveDateTime::parse(text.trim(), FORMAT)
        .map(|t| (t.assume_offset(tz).unix_timestamp_nanos() / 1_000_000) as Millis)
        .map_err(|_| {
            FieldError::new(
                field,
                "InvalidParameterValue",
                format!("{field} must be a time like 2020-12-01 08:35:00, not {text:?}."),
            )
        })
}

/// Checks a time range: its start must come before its end.
pub fn check_range(
    from: Millis,
    to: Millis,
    field: &'static str,
) -> Result<(Millis, Millis), FieldError> {
    if from < to {
        Ok((from, to))
    } else {
        Err(FieldError::new(
            field,
            "InvalidParameterValue",
            format!("{field}: the start must come before the end."),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{TimeFormat, format_time};

    #[test]
    fn scf_times_round_trip_in_a_zone() {
        let utc = time::UtcOffset::UTC;
        let ms = parse_scf_time("2020-12-01 08:35:00", utc, "Start").unwrap();
        assert_eq!(ms, 1_606_811_700_000);
        assert_eq!(
            format_time(ms + 7, utc, TimeFormat::DateTimeMillis),
            "2020-12-01 08:35:00.007"
        );
        let cst = time::UtcOffset::from_hms(8, 0, 0).unwrap();
        assert_eq!(
            parse_scf_time("2020-12-01 16:35:00", cst, "Start").unwrap(),
            ms
        );
        assert!(parse_scf_time("yesterday", utc, "Start").is_err());
        assert!(check_range(2, 1, "StartTimeInterval").is_err());
    }

    #[test]
    fn status_vocabularies() {
        assert_eq!(statuses_from_scf("RUNNING").unwrap().len(), 2);
        assert!(statuses_from_scf("DONE").is_none());
        for s in ALL_STATUSES {
            assert_eq!(status_from_console(console_name(s)), Some(s));
        }
    }
}
