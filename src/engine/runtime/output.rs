//! What an instance writes, read in bounded memory. A handler controls how much it prints and
//! how long its lines are, so nothing here buffers more than a fixed amount per instance: logs
//! are split into lines by us, a line is cut at the log cap, the log is cut at the cap as it
//! arrives (the rest is read and thrown away so the handler never blocks on a full pipe), and
//! output printed between events is read and dropped rather than kept for the next event.

use crate::domain::event::{LOG_MAX_BYTES, TRUNCATED_MARK};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::Notify;

/// The bootstrap prints this on a line of its own when an invocation begins; everything before
/// it since the last end was printed while the instance sat idle.
pub const START_OF_INVOCATION: &str = "\u{1e}SCF-INVOCATION-START\u{1e}";
/// Printed when the handler's output for an invocation (or for loading the code) is complete.
pub const END_OF_INVOCATION: &str = "\u{1e}SCF-INVOCATION-END\u{1e}";

/// How much is read from a pipe at a time.
const CHUNK: usize = 16 * 1024;

/// The largest answer line taken from the bootstrap. Results and errors are cut to 64 KB when
/// recorded, so an answer this large is already far past anything kept; beyond it the event
/// fails instead of the server allocating whatever the handler returned.
pub const ANSWER_MAX_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Loading the code: its output belongs to the first invocation.
    Loading,
    Idle,
    Running,
}

struct Collected {
    phase: Phase,
    text: String,
    /// Something was dropped because of the cap; the mark is added once, when taken.
    cut: bool,
    /// Load logs wait in `text` for the first invocation.
    carry: bool,
    /// End markers seen (loading counts as one).
    ended: u64,
    /// Our own notes made before the bootstrap marked the invocation's start.
    notes: Vec<String>,
    /// The pipe is closed: the process and all its children are gone.
    closed: bool,
}

impl Collected {
    /// A new instance's output: what loading prints comes first.
    fn new() -> Self {
        Collected {
            phase: Phase::Loading,
            text: String::new(),
            cut: false,
            carry: false,
            ended: 0,
            notes: Vec::new(),
            closed: false,
        }
    }

    fn push(&mut self, line: &str, line_cut: bool) {
        if line.is_empty() && self.text.is_empty() {
            return;
        }
        let room = LOG_MAX_BYTES.saturating_sub(self.text.len());
        if line.len() < room {
            self.text.push_str(line);
            self.text.push('\n');
            self.cut |= line_cut;
        } else {
            let mut end = room;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            self.text.push_str(&line[..end]);
            self.cut = true;
        }
    }

    fn line(&mut self, bytes: &[u8], line_cut: bool) -> bool {
        if bytes == START_OF_INVOCATION.as_bytes() {
            if !std::mem::take(&mut self.carry) {
                self.text.clear();
                self.cut = false;
            }
            self.phase = Phase::Running;
            for note in std::mem::take(&mut self.notes) {
                self.push(&note, false);
            }
            return false;
        }
        if bytes == END_OF_INVOCATION.as_bytes() {
            if self.phase == Phase::Loading {
                self.carry = true;
            }
            self.phase = Phase::Idle;
            self.ended += 1;
            return true;
        }
        if self.phase != Phase::Idle {
            self.push(&String::from_utf8_lossy(bytes), line_cut);
        }
        false
    }
}

/// Splits a byte stream into lines, keeping at most `max` bytes of the current line.
struct Lines {
    partial: Vec<u8>,
    max: usize,
    cut: bool,
}

impl Lines {
    fn new(max: usize) -> Self {
        Lines {
            partial: Vec::new(),
            max,
            cut: false,
        }
    }

    fn feed(&mut self, mut bytes: &[u8], mut each: impl FnMut(&[u8], bool)) {
        while !bytes.is_empty() {
            let (piece, rest, complete) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..i], &bytes[i + 1..], true),
                None => (bytes, &[][..], false),
            };
            let room = self.max.saturating_sub(self.partial.len());
            if piece.len() > room {
                self.cut = true;
            }
            self.partial
                .extend_from_slice(&piece[..piece.len().min(room)]);
            if complete {
                each(&self.partial, self.cut);
                self.partial.clear();
                // One long line must not keep its buffer for the instance's whole life.
                self.partial.shrink_to(CHUNK);
                self.cut = false;
            }
            bytes = rest;
        }
    }

    fn finish(&mut self, each: impl FnOnce(&[u8], bool)) {
        if !self.partial.is_empty() {
            each(&self.partial, self.cut);
            self.partial.clear();
        }
    }
}

/// The instance's stdout and stderr, read by a task of its own for as long as the pipe is open.
pub struct Logs {
    state: Arc<Mutex<Collected>>,
    changed: Arc<Notify>,
}

impl Logs {
    pub fn read(pipe: pipe::Receiver) -> Logs {
        let state = Arc::new(Mutex::new(Collected::new()));
        let changed = Arc::new(Notify::new());
        tokio::spawn(read_logs(pipe, Arc::clone(&state), Arc::clone(&changed)));
        Logs { state, changed }
    }

    /// Waits until `ends` end markers were seen or the pipe closed, at most `limit`; answers
    /// whether the markers arrived.
    pub async fn wait_ended(&self, ends: u64, limit: Duration) -> bool {
        self.wait(limit, |c| c.ended >= ends).await;
        self.state.lock().expect("log lock").ended >= ends
    }

    /// Waits until the pipe closes, at most `limit`.
    pub async fn wait_closed(&self, limit: Duration) {
        self.wait(limit, |c| c.closed).await;
    }

    async fn wait(&self, limit: Duration, done: impl Fn(&Collected) -> bool) {
        let _ = tokio::time::timeout(limit, async {
            loop {
                let notified = self.changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if done(&self.state.lock().expect("log lock")) {
                    return;
                }
                notified.await;
            }
        })
        .await;
    }

    /// The invocation's log so far, cut at the cap with the mark, and forgotten.
    pub fn take(&self) -> String {
        let mut c = self.state.lock().expect("log lock");
        for note in std::mem::take(&mut c.notes) {
            c.push(&note, false);
        }
        let text = std::mem::take(&mut c.text);
        let cut = std::mem::take(&mut c.cut);
        let text = text.trim_end_matches('\n');
        if cut {
            format!("{text}{TRUNCATED_MARK}")
        } else {
            text.to_string()
        }
    }

    /// A handle on what the current invocation has printed so far, for its live view.
    pub fn live(&self) -> LiveLogs {
        LiveLogs(Arc::clone(&self.state))
    }

    /// Adds a line of our own (a platform note) to the invocation's log.
    pub fn note(&self, line: &str) {
        let mut c = self.state.lock().expect("log lock");
        if c.phase == Phase::Running {
            c.push(line, false);
        } else {
            c.notes.push(line.to_string());
        }
    }
}

/// What a running invocation has printed so far (capped like its log), read while it runs.
#[derive(Clone)]
pub struct LiveLogs(Arc<Mutex<Collected>>);

impl LiveLogs {
    /// The output so far: empty before the invocation's start marker, since until then the
    /// text is what loading printed or what was left from idling.
    pub fn snapshot(&self) -> String {
        let c = self.0.lock().expect("log lock");
        if c.phase != Phase::Running {
            return String::new();
        }
        let mut text = c.text.trim_end_matches('\n').to_string();
        for note in &c.notes {
            text.push('\n');
            text.push_str(note);
        }
        if c.cut {
            text.push_str(TRUNCATED_MARK);
        }
        text
    }
}

async fn read_logs(mut pipe: pipe::Receiver, state: Arc<Mutex<Collected>>, changed: Arc<Notify>) {
    let mut chunk = vec![0u8; CHUNK];
    // A line longer than the whole log could hold is cut here: keeping more is pointless.
    let mut lines = Lines::new(LOG_MAX_BYTES + 1);
    loop {
        let n = match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut ended = false;
        {
            let mut c = state.lock().expect("log lock");
            lines.feed(&chunk[..n], |line, cut| ended |= c.line(line, cut));
        }
        if ended {
            changed.notify_waiters();
        }
    }
    let mut c = state.lock().expect("log lock");
    lines.finish(|line, cut| {
        c.line(line, cut);
    });
    c.closed = true;
    drop(c);
    changed.notify_waiters();
}

/// What the answer pipe gave.
#[derive(Debug, PartialEq, Eq)]
pub enum AnswerLine {
    Line(Vec<u8>),
    /// Longer than [`ANSWER_MAX_BYTES`] without a newline.
    TooLong,
    /// The pipe closed (the process is gone).
    Closed,
}

/// What can be read from the answer pipe without waiting.
#[derive(Debug, PartialEq, Eq)]
pub enum Now {
    Ready(AnswerLine),
    /// Part of an answer is here: the bootstrap is writing it, the handler has returned.
    Partial,
    Nothing,
}

/// The bootstrap's answers (fd 4), one JSON line each, read in chunks.
pub struct Answers {
    pipe: pipe::Receiver,
    buf: Vec<u8>,
    /// How much of `buf` is known to hold no newline.
    scanned: usize,
    chunk: Vec<u8>,
    max: usize,
}

impl Answers {
    pub fn new(pipe: pipe::Receiver) -> Answers {
        Answers::with_max(pipe, ANSWER_MAX_BYTES)
    }

    fn with_max(pipe: pipe::Receiver, max: usize) -> Answers {
        Answers {
            pipe,
            buf: Vec::new(),
            scanned: 0,
            chunk: vec![0u8; CHUNK],
            max,
        }
    }

    fn take_line(&mut self) -> Option<AnswerLine> {
        if let Some(i) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
            let end = self.scanned + i;
            let mut line: Vec<u8> = self.buf.drain(..=end).collect();
            line.pop();
            // A large answer must not keep its buffer while the instance sits idle.
            self.buf.shrink_to(CHUNK);
            self.scanned = 0;
            return Some(AnswerLine::Line(line));
        }
        self.scanned = self.buf.len();
        (self.buf.len() > self.max).then_some(AnswerLine::TooLong)
    }

    /// The next answer line. Cancel-safe: bytes read stay in the buffer for the next call.
    pub async fn next(&mut self) -> AnswerLine {
        loop {
            if let Some(line) = self.take_line() {
                return line;
            }
            match self.pipe.read(&mut self.chunk).await {
                Ok(0) | Err(_) => return AnswerLine::Closed,
                Ok(n) => self.buf.extend_from_slice(&self.chunk[..n]),
            }
        }
    }

    /// Reads what the pipe holds right now, straight from the descriptor: the reactor may not
    /// have seen it yet (it has not run while the server was frozen).
    pub fn now(&mut self) -> Now {
        loop {
            if let Some(line) = self.take_line() {
                return Now::Ready(line);
            }
            // SAFETY: reading into our own buffer from a descriptor this struct owns; the pipe
            // is non-blocking, so this never waits.
            let n = unsafe {
                libc::read(
                    self.pipe.as_raw_fd(),
                    self.chunk.as_mut_ptr() as *mut libc::c_void,
                    self.chunk.len(),
                )
            };
            match n {
                0 => return Now::Ready(AnswerLine::Closed),
                n if n > 0 => self.buf.extend_from_slice(&self.chunk[..n as usize]),
                _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
                _ if self.buf.is_empty() => return Now::Nothing,
                _ => return Now::Partial,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(chunks: &[&[u8]]) -> (Vec<(String, bool)>, Lines) {
        let mut lines = Lines::new(8);
        let mut out = Vec::new();
        for c in chunks {
            lines.feed(c, |l, cut| {
                out.push((String::from_utf8_lossy(l).into_owned(), cut))
            });
        }
        (out, lines)
    }

    #[test]
    fn lines_are_split_across_chunks_and_cut_at_the_cap() {
        let (out, mut lines) = collect(&[b"ab", b"c\nde", b"f\n0123456789abc\nlast"]);
        assert_eq!(
            out,
            vec![
                ("abc".into(), false),
                ("def".into(), false),
                ("01234567".into(), true)
            ]
        );
        let mut rest = None;
        lines.finish(|l, cut| rest = Some((l.to_vec(), cut)));
        assert_eq!(rest, Some((b"last".to_vec(), false)));
    }

    #[test]
    fn idle_output_is_dropped_and_load_output_goes_to_the_first_invocation() {
        let mut c = Collected::new();
        c.line(b"imported", false);
        assert!(c.line(END_OF_INVOCATION.as_bytes(), false));
        c.line(b"printed while idle", false);
        c.line(START_OF_INVOCATION.as_bytes(), false);
        c.line(b"first", false);
        c.line(END_OF_INVOCATION.as_bytes(), false);
        assert_eq!(c.text, "imported\nfirst\n");
        c.line(b"background thread", false);
        c.line(START_OF_INVOCATION.as_bytes(), false);
        c.line(b"second", false);
        assert_eq!(c.text, "second\n");
        assert_eq!(c.ended, 2);
    }

    #[test]
    fn the_log_is_cut_once_at_the_cap() {
        let mut c = Collected::new();
        c.line(START_OF_INVOCATION.as_bytes(), false);
        let line = "é".repeat(LOG_MAX_BYTES / 4);
        for _ in 0..5 {
            c.line(line.as_bytes(), false);
        }
        assert!(c.cut);
        assert!(c.text.len() <= LOG_MAX_BYTES);
        let logs = Logs {
            state: Arc::new(Mutex::new(c)),
            changed: Arc::new(Notify::new()),
        };
        let text = logs.take();
        assert_eq!(text.matches(TRUNCATED_MARK).count(), 1);
        assert!(text.ends_with(TRUNCATED_MARK));
    }

    fn pipe_pair() -> (pipe::Receiver, std::fs::File) {
        let (r, w) = super::super::pipe_pair().unwrap();
        (pipe::Receiver::from_owned_fd(r).unwrap(), w.into())
    }

    #[tokio::test]
    async fn answers_are_read_in_chunks_and_a_huge_one_is_refused() {
        use std::io::Write;
        let (r, mut w) = pipe_pair();
        let mut answers = Answers::with_max(r, 100);
        w.write_all(b"{\"ok\":true}\n{\"ok\":").unwrap();
        assert_eq!(
            answers.next().await,
            AnswerLine::Line(b"{\"ok\":true}".to_vec())
        );
        assert_eq!(answers.now(), Now::Partial);
        w.write_all(&[b'x'; 200]).unwrap();
        assert_eq!(answers.next().await, AnswerLine::TooLong);
    }

    #[tokio::test]
    async fn an_answer_already_in_the_pipe_is_seen_without_the_reactor() {
        use std::io::Write;
        let (r, mut w) = pipe_pair();
        let mut answers = Answers::new(r);
        assert_eq!(answers.now(), Now::Nothing);
        w.write_all(b"{\"ok\":true}\n").unwrap();
        assert_eq!(
            answers.now(),
            Now::Ready(AnswerLine::Line(b"{\"ok\":true}".to_vec()))
        );
        drop(w);
        assert_eq!(answers.now(), Now::Ready(AnswerLine::Closed));
    }
}
