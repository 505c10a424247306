//! Async events: the status machine, status codes, and how statuses are named in the console
//! and in the SCF API.

use super::rules::FieldError;
use crate::clock::Millis;

/// An async event's status. Stored as a small integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventStatus {
    Queued = 0,
    Running = 1,
    Finished = 2,
    Failed = 3,
    Aborted = 4,
}

impl EventStatus {
    pub fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            0 => EventStatus::Queued,
            1 => EventStatus::Running,
            2 => EventStatus::Finished,
            3 => EventStatus::Failed,
            4 => EventStatus::Aborted,
            _ => return None,
        })
    }

    pub const fn code(self) -> i64 {
        self as i64
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            EventStatus::Finished | EventStatus::Failed | EventStatus::Aborted
        )
    }

    /// The SCF API has no queued state: a waiting event is already `RUNNING` there.
    pub fn scf_name(self) -> &'static str {
        match self {
            EventStatus::Queued | EventStatus::Running => "RUNNING",
            EventStatus::Finished => "FINISHED",
            EventStatus::Failed => "FAILED",
            EventStatus::Aborted => "ABORTED",
        }
    }

    /// The console's words, as SCF's console uses them.
    pub fn label(self) -> &'static str {
        match self {
            EventStatus::Queued => "Queued",
            EventStatus::Running => "Running",
            EventStatus::Finished => "Invocation completed",
            EventStatus::Failed => "Invocation failed",
            EventStatus::Aborted => "Invocation terminated",
        }
    }

    /// Whether the status machine allows this move (see DESIGN: QUEUED → RUNNING → terminal;
    /// RUNNING → QUEUED on retry or recovery; QUEUED → ABORTED or FAILED before it ran).
    pub fn can_move_to(self, next: EventStatus) -> bool {
        use EventStatus::*;
        matches!(
            (self, next),
            (Queued, Running)
                | (Queued, Aborted)
                | (Queued, Failed)
                | (Running, Queued)
                | (Running, Finished)
                | (Running, Failed)
                | (Running, Aborted)
        )
    }
}

/// A queued event a worker has claimed; it is RUNNING from the claim on.
#[derive(Debug, Clone)]
pub struct ClaimedEvent {
    pub id: i64,
    pub request_id: String,
    pub function_id: i64,
    pub invoke_type: String,
    pub attempt: u32,
    pub traced: bool,
    pub payload: String,
    pub enqueued_at: Millis,
    pub terminate: Option<String>,
}

/// One status transition, with what the user should know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEntry {
    pub at: Millis,
    pub status: EventStatus,
    pub detail: String,
}

/// The words of an event's timeline, in one place: the engine writes them, the store keeps
/// them, the console and the API show them.
pub mod timeline {
    use super::status_code;

    /// The first entry, read from the event itself (it is not stored twice).
    pub fn queued(invoke_type: &str, by: Option<&str>, rerun_of: Option<&str>) -> String {
        let who = by.map(|b| format!(", {b}")).unwrap_or_default();
        match rerun_of {
            Some(original) => {
                format!("Queued (invoked by {invoke_type}{who}): a re-run of {original}.")
            }
            None => format!("Queued (invoked by {invoke_type}{who})."),
        }
    }

    /// `cold_load_ms`: how long a cold start took to load the code; `None` when warm.
    pub fn started(instance: &str, cold_load_ms: Option<u128>, attempt: u32) -> String {
        let how = match cold_load_ms {
            Some(ms) => format!("cold start, {ms} ms to load"),
            None => "warm".into(),
        };
        format!("Started on instance {instance} ({how}), attempt {attempt}.")
    }

    pub fn finished(ran_ms: u128) -> String {
        format!("Finished ({}) in {ran_ms} ms.", status_code::SUCCESS)
    }

    /// `error` is cut to its first line.
    pub fn retrying(delay_ms: i64, next: u32, attempts: u32, code: i64, error: &str) -> String {
        format!(
            "Retrying in {} s (attempt {next} of {attempts}) because it failed ({code}): {}",
            delay_ms / 1000,
            first_line(error)
        )
    }

    pub fn failed(code: i64, error: &str) -> String {
        format!("Failed ({code}): {}", first_line(error))
    }

    pub fn expired(waited_ms: i64, msg_ttl_s: u32) -> String {
        format!(
            "Expired: it waited {} s, longer than MsgTTL ({msg_ttl_s} s) allows ({}).",
            waited_ms / 1000,
            status_code::EXPIRED
        )
    }

    pub fn waiting_for_room(why: &str, retry_in_ms: i64) -> String {
        format!(
            "Waiting for room to run: {why}. Trying again in {} s; this does not count as a retry.",
            retry_in_ms / 1000
        )
    }

    /// A claimed event whose terminate request (noted above it, with who asked) came before
    /// its handler started.
    pub const TERMINATED_BEFORE_START: &str = "Terminated before it started (499).";

    /// An event still queued or running when its function was deleted: its error and its
    /// timeline entry.
    pub fn function_deleted() -> String {
        format!(
            "Stopped: its function was deleted ({})",
            status_code::TERMINATED
        )
    }

    /// A queued event a user terminated.
    pub fn terminated_before_start(request: &super::TerminateRequest) -> String {
        format!(
            "Terminated by {} before it started ({}){}",
            request.by,
            status_code::TERMINATED,
            because(&request.reason)
        )
    }

    /// A terminate request for a running event, noted when it is made; the end follows when
    /// the handler stops.
    pub fn termination_requested(request: &super::TerminateRequest) -> String {
        format!(
            "Termination requested by {} ({}){}",
            request.by,
            if request.graceful {
                "graceful: SIGTERM first"
            } else {
                "forced"
            },
            because(&request.reason)
        )
    }

    fn because(reason: &str) -> String {
        if reason.is_empty() {
            ".".into()
        } else {
            format!(": {reason}")
        }
    }

    pub const PUT_BACK: &str = "Put back in the queue: the server stopped before it started.";

    pub const GIVEN_BACK: &str = "Put back in the queue before it started: the worker it was claimed for was held by a longer run.";

    /// What a user's terminate did to a running handler: its status code and the event's
    /// error. A graceful terminate whose handler outlived the grace period ended with its
    /// process killed, which SCF reports as 439.
    pub fn terminated(graceful: bool, killed: bool) -> (i64, &'static str) {
        match (graceful, killed) {
            (false, _) => (
                status_code::TERMINATED,
                "Terminated by a user (forced: the instance was killed and recycled).",
            ),
            (true, false) => (
                status_code::TERMINATED,
                "Terminated by a user (graceful: SIGTERM, and the handler stopped).",
            ),
            (true, true) => (
                status_code::PROCESS_EXITED,
                "Terminated by a user (graceful: SIGTERM, but the handler did not stop within the grace period, so its process was killed).",
            ),
        }
    }

    /// The timeline entry of the same.
    pub fn terminated_entry(graceful: bool, killed: bool) -> String {
        let (code, text) = terminated(graceful, killed);
        format!("{text} ({code})")
    }

    fn first_line(text: &str) -> &str {
        text.lines().next().unwrap_or_default()
    }
}

/// Statuses are stored as their codes.
impl TryFrom<i64> for EventStatus {
    type Error = String;

    fn try_from(code: i64) -> Result<Self, String> {
        EventStatus::from_code(code).ok_or_else(|| format!("unknown event status {code}"))
    }
}

/// Status codes an event ends with, as SCF reports them.
pub mod status_code {
    pub const SUCCESS: i64 = 200;
    /// The handler raised an error.
    pub const USER_ERROR: i64 = 430;
    /// The handler ran past its timeout.
    pub const TIMEOUT: i64 = 433;
    /// The user process exited (or crashed) while running.
    pub const PROCESS_EXITED: i64 = 439;
    /// The event waited in the queue longer than MsgTTL.
    pub const EXPIRED: i64 = 410;
    /// The handler's file or function is not in the code.
    pub const HANDLER_NOT_FOUND: i64 = 437;
    /// The container could not run the function (its runtime cannot start here).
    pub const CONTAINER_EXITED: i64 = 405;
    /// Terminated by a user.
    pub const TERMINATED: i64 = 499;
}

/// Largest event payload for async invocations (SCF: 128 KB).
pub const ASYNC_PAYLOAD_MAX: usize = 128 * 1024;
/// Largest payload for synchronous invocations (SCF: 6 MB).
pub const SYNC_PAYLOAD_MAX: usize = 6 * 1024 * 1024;
/// Logs and results kept per event; the rest is cut with a visible marker.
pub const LOG_MAX_BYTES: usize = 64 * 1024;
pub const RESULT_MAX_BYTES: usize = 64 * 1024;
pub const TRUNCATED_MARK: &str = "\n… [truncated by scf-console]";

/// How and by whom an invocation was made, kept with its event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// Shown as InvokeType: `API`, `CONSOLE`.
    pub invoke_type: String,
    /// A console user's name, or `API key <SecretId>`.
    pub by: Option<String>,
    /// The RequestId of the event this one re-runs.
    pub rerun_of: Option<String>,
}

impl Origin {
    pub fn new(invoke_type: &str, by: &str) -> Origin {
        Origin {
            invoke_type: invoke_type.to_string(),
            by: (!by.is_empty()).then(|| by.to_string()),
            rerun_of: None,
        }
    }
}

/// A request to terminate an event: how, who asked, and why (shown on its timeline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminateRequest {
    pub graceful: bool,
    /// A console user's name, or `API key <SecretId>`.
    pub by: String,
    pub reason: String,
}

/// A terminate reason is one line of at most this many characters.
pub const REASON_MAX_CHARS: usize = 200;

/// Checks a terminate reason: optional, one line, at most [`REASON_MAX_CHARS`] characters.
pub fn validate_reason(raw: &str) -> Result<String, FieldError> {
    let reason = raw.trim();
    if reason.chars().count() > REASON_MAX_CHARS {
        return Err(FieldError::new(
            "Reason",
            "InvalidParameterValue.Reason",
            format!(
                "The reason has {} characters; keep it to {REASON_MAX_CHARS}.",
                reason.chars().count()
            ),
        ));
    }
    // One line on the timeline: line breaks and other control characters become spaces.
    Ok(reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect())
}

/// How an invocation was made: shown as InvokeType.
pub const INVOKE_TYPE_API: &str = "API";
pub const INVOKE_TYPE_CONSOLE: &str = "CONSOLE";

/// Checks an event payload: a JSON object (handlers receive it as their `event` argument, a
/// dict or an object, as on SCF) within the size allowed for its invocation type. An empty
/// payload from the API is the empty object, as SCF treats an omitted `ClientContext`; in the
/// console an empty editor is more likely a slip, so it is said.
pub fn validate_payload(
    payload: &str,
    asynchronous: bool,
    empty_is_object: bool,
) -> Result<String, FieldError> {
    let max = if asynchronous {
        ASYNC_PAYLOAD_MAX
    } else {
        SYNC_PAYLOAD_MAX
    };
    let invalid =
        |message: String| FieldError::new("ClientContext", "InvalidParameterValue.Param", message);
    if payload.len() > max {
        return Err(FieldError::new(
            "ClientContext",
            "InvalidParameter.RequestTooLarge",
            format!(
                "The event is {} KB; {} invocations take at most {} KB.",
                payload.len().div_ceil(1024),
                if asynchronous { "async" } else { "sync" },
                max / 1024
            ),
        ));
    }
    if payload.trim().is_empty() {
        return if empty_is_object {
            Ok("{}".into())
        } else {
            Err(invalid(
                "Enter the event to send: a JSON object, {} for an empty one.".into(),
            ))
        };
    }
    match serde_json::from_str::<serde_json::Value>(payload) {
        Ok(serde_json::Value::Object(_)) => Ok(payload.to_string()),
        Ok(other) => Err(invalid(format!(
            "The event must be a JSON object such as {{\"key\": \"value\"}}, not {}: the handler receives it as its event argument.",
            match other {
                serde_json::Value::Array(_) => "an array",
                serde_json::Value::String(_) => "a string",
                serde_json::Value::Number(_) => "a number",
                serde_json::Value::Bool(_) => "true or false",
                _ => "null",
            }
        ))),
        Err(e) => Err(invalid(format!("The event must be JSON: {e}."))),
    }
}

/// Cuts text to a byte budget on a character boundary, marking the cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{TRUNCATED_MARK}", &text[..end])
}

/// Delay before retry number `attempt` (1 = first retry): 1 s, 2 s, 4 s … capped at 60 s.
pub fn retry_backoff_ms(attempt: u32) -> i64 {
    (1000_i64 << attempt.saturating_sub(1).min(6)).min(60_000)
}

/// Whether a failed attempt is tried again: RetryNum counts the retries after the first.
pub fn retries_remain(attempt: u32, retry_num: u32) -> bool {
    attempt <= retry_num
}

/// Why a run ended without its handler's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    /// This server stopped it (graceful stop), or found it RUNNING under a server that is
    /// gone for sure (killed: its node lock is free).
    ServerStopped,
    /// The server running it stopped renewing its lease (killed, frozen, or cut off from the
    /// store), so another took it over when the lease ran out.
    LeaseExpired,
}

impl StopCause {
    fn text(self) -> &'static str {
        match self {
            StopCause::ServerStopped => "the server stopped while it ran",
            StopCause::LeaseExpired => "the server running it stopped renewing its lease",
        }
    }
}

/// What becomes of an event whose run the server stopped: killed with it, stopped at the end
/// of a graceful shutdown, or taken over from a server that is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterStop {
    /// Back to the queue for this attempt.
    Requeue { attempt: u32, detail: String },
    /// Ended: no retries remain, or a user had asked to terminate it.
    End {
        status: EventStatus,
        code: i64,
        detail: String,
    },
}

/// The one rule for runs that ended without an answer, used by the graceful stop and by lease
/// takeover alike.
pub fn after_stop(
    attempt: u32,
    retry_num: u32,
    terminate_requested: bool,
    cause: StopCause,
) -> AfterStop {
    let why = cause.text();
    if terminate_requested {
        AfterStop::End {
            status: EventStatus::Aborted,
            code: status_code::TERMINATED,
            detail: format!("Terminated by a user; {why} (499)."),
        }
    } else if retries_remain(attempt, retry_num) {
        AfterStop::Requeue {
            attempt: attempt + 1,
            detail: format!("Requeued for attempt {}: {why}.", attempt + 1),
        }
    } else {
        AfterStop::End {
            status: EventStatus::Failed,
            code: status_code::PROCESS_EXITED,
            detail: format!("Failed: {why} and no retries remain (439)."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_run_is_retried_while_retries_remain() {
        assert!(matches!(
            after_stop(1, 1, false, StopCause::ServerStopped),
            AfterStop::Requeue { attempt: 2, .. }
        ));
        assert!(matches!(
            after_stop(2, 1, false, StopCause::LeaseExpired),
            AfterStop::End { code: 439, .. }
        ));
        assert!(matches!(
            after_stop(1, 2, true, StopCause::ServerStopped),
            AfterStop::End {
                code: 499,
                status: EventStatus::Aborted,
                ..
            }
        ));
    }

    #[test]
    fn a_takeover_names_its_reason() {
        assert_eq!(
            after_stop(1, 1, false, StopCause::LeaseExpired),
            AfterStop::Requeue {
                attempt: 2,
                detail: "Requeued for attempt 2: the server running it stopped renewing its lease."
                    .into()
            }
        );
        assert_eq!(
            after_stop(1, 0, false, StopCause::ServerStopped),
            AfterStop::End {
                status: EventStatus::Failed,
                code: 439,
                detail: "Failed: the server stopped while it ran and no retries remain (439)."
                    .into()
            }
        );
    }

    #[test]
    fn the_status_machine() {
        use EventStatus::*;
        assert!(Queued.can_move_to(Running));
        assert!(Running.can_move_to(Queued), "retry or recovery");
        assert!(Queued.can_move_to(Aborted) && Queued.can_move_to(Failed));
        assert!(!Finished.can_move_to(Running));
        assert!(!Aborted.can_move_to(Finished));
        assert!(!Queued.can_move_to(Finished));
        assert_eq!(Queued.scf_name(), "RUNNING");
        assert_eq!(Queued.label(), "Queued");
        for code in 0..5 {
            assert_eq!(EventStatus::from_code(code).unwrap().code(), code);
        }
    }

    #[test]
    fn payloads() {
        assert_eq!(validate_payload(" ", true, true).unwrap(), "{}");
        assert!(
            validate_payload(" ", true, false)
                .unwrap_err()
                .message
                .contains("Enter the event")
        );
        assert!(validate_payload(r#"{"a":1}"#, true, false).is_ok());
        for (bad, says) in [
            ("[1,2]", "an array"),
            ("\"str\"", "a string"),
            ("null", "null"),
            ("3", "a number"),
        ] {
            let e = validate_payload(bad, true, true).unwrap_err();
            assert_eq!(e.code, "InvalidParameterValue.Param");
            assert!(e.message.contains(says), "{bad}: {}", e.message);
        }
        assert_eq!(
            validate_payload("{nope", true, true).unwrap_err().code,
            "InvalidParameterValue.Param"
        );
        let big = format!("{{\"k\":\"{}\"}}", "x".repeat(ASYNC_PAYLOAD_MAX));
        assert_eq!(
            validate_payload(&big, true, true).unwrap_err().code,
            "InvalidParameter.RequestTooLarge"
        );
        assert!(validate_payload(&big, false, true).is_ok());
    }

    #[test]
    fn truncation_is_marked_and_respects_characters() {
        assert_eq!(truncate("short", 10), "short");
        let cut = truncate("日本語テキスト", 7);
        assert!(cut.starts_with("日本") && cut.ends_with("[truncated by scf-console]"));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(retry_backoff_ms(1), 1000);
        assert_eq!(retry_backoff_ms(2), 2000);
        assert_eq!(retry_backoff_ms(3), 4000);
        assert_eq!(retry_backoff_ms(30), 60_000);
    }
}
