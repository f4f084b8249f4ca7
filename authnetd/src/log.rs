//! Logging to syslog (`LOG_AUTHPRIV`), or to stderr with `--log-stderr` (and as a fallback when
//! no syslog socket exists). Only decisions, reason codes, latencies and errors are logged;
//! scores only at debug level; frames and features never.
//!
//! Messages carry strings a peer chose (user and service names, paths, error texts), so every
//! control character (newline included) and Unicode line separator is written as a `\xNN` or
//! `\u{NNNN}` escape ([`escape`]): a peer cannot forge a line. A connection thread runs inside
//! [`with_peer`], and what it logs for a non-root uid is rate-limited per uid
//! ([`MAX_LINES_PER_UID`] per [`RATE_WINDOW`]); the lines dropped are counted and reported
//! once the window has passed.

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines one non-root uid may cause per [`RATE_WINDOW`].
pub const MAX_LINES_PER_UID: u32 = 60;

/// The rate-limit window.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);

thread_local! {
    /// The uid of the peer this thread serves, if any.
    static PEER_UID: Cell<Option<u32>> = const { Cell::new(None) };
}

/// Runs `f` with this thread's log lines attributed to peer `uid` (for the rate limit).
pub fn with_peer<T>(uid: u32, f: impl FnOnce() -> T) -> T {
    let old = PEER_UID.with(|c| c.replace(Some(uid)));
    let r = f();
    PEER_UID.with(|c| c.set(old));
    r
}

/// `msg` with every control character and line separator escaped.
pub fn escape(msg: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{85}');
    if !msg.chars().any(bad) {
        return msg.into();
    }
    let mut out = String::with_capacity(msg.len() + 8);
    for c in msg.chars() {
        if !bad(c) {
            out.push(c);
        } else if (c as u32) < 0x100 {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:04x}}}", c as u32);
        }
    }
    out.into()
}

/// Per-uid line counts of the current window.
#[derive(Debug)]
struct Bucket {
    since: Instant,
    lines: u32,
    dropped: u64,
}

use syslog::{Facility, Formatter3164, LoggerBackend};

/// Message severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Failures that need an administrator.
    Error,
    /// Suspicious or degraded situations.
    Warning,
    /// Decisions.
    Info,
    /// Scores and internals (only with `--debug`).
    Debug,
}

enum Sink {
    Syslog(syslog::Logger<LoggerBackend, Formatter3164>),
    Stderr,
}

/// `e` and its causes, each once, for the log ([`authnet_ipc::error_chain`]).
pub use authnet_ipc::error_chain as chain;

/// The daemon's logger; cheap to share behind an `Arc`.
pub struct Logger {
    sink: Mutex<Sink>,
    debug: bool,
    buckets: Mutex<HashMap<u32, Bucket>>,
}

impl std::fmt::Debug for Logger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logger")
            .field("debug", &self.debug)
            .finish()
    }
}

impl Logger {
    /// Syslog unless `stderr` is set or syslog cannot be reached.
    pub fn new(stderr: bool, debug: bool) -> Self {
        let sink = if stderr {
            Sink::Stderr
        } else {
            let fmt = Formatter3164 {
                facility: Facility::LOG_AUTHPRIV,
                hostname: None,
                process: "authnetd".into(),
                pid: std::process::id(),
            };
            match syslog::unix(fmt) {
                Ok(l) => Sink::Syslog(l),
                Err(e) => {
                    eprintln!("authnetd: syslog unavailable ({e}); logging to stderr");
                    Sink::Stderr
                }
            }
        };
        Self {
            sink: Mutex::new(sink),
            debug,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a line caused by non-root peer `uid` may be written now; also returns the count
    /// of lines dropped in the window that just ended, to be reported.
    fn admit(&self, uid: u32) -> (bool, u64) {
        let now = Instant::now();
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        // Forget idle uids so the map stays small.
        if b.len() > 4096 {
            b.retain(|_, v| now.duration_since(v.since) < RATE_WINDOW);
        }
        let e = b.entry(uid).or_insert(Bucket {
            since: now,
            lines: 0,
            dropped: 0,
        });
        let mut reported = 0;
        if now.duration_since(e.since) >= RATE_WINDOW {
            reported = e.dropped;
            *e = Bucket {
                since: now,
                lines: 0,
                dropped: 0,
            };
        }
        if e.lines >= MAX_LINES_PER_UID {
            e.dropped += 1;
            return (false, reported);
        }
        e.lines += 1;
        (true, reported)
    }

    /// Logs `msg` at `level`, escaped ([`escape`]) and, on a connection of a non-root peer,
    /// rate-limited.
    pub fn log(&self, level: Level, msg: &str) {
        if level == Level::Debug && !self.debug {
            return;
        }
        if let Some(uid) = PEER_UID.with(Cell::get).filter(|&u| u != 0) {
            let (ok, dropped) = self.admit(uid);
            if dropped > 0 {
                self.write(
                    Level::Warning,
                    &format!("uid {uid}: {dropped} log lines suppressed (rate limit)"),
                );
            }
            if !ok {
                return;
            }
        }
        self.write(level, &escape(msg));
    }

    fn write(&self, level: Level, msg: &str) {
        // A poisoned lock only means another thread panicked mid-log; the sink is still usable.
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        let failed = match &mut *sink {
            Sink::Syslog(l) => match level {
                Level::Error => l.err(msg),
                Level::Warning => l.warning(msg),
                Level::Info => l.info(msg),
                Level::Debug => l.debug(msg),
            }
            .is_err(),
            Sink::Stderr => true,
        };
        if failed {
            let tag = match level {
                Level::Error => "error",
                Level::Warning => "warning",
                Level::Info => "info",
                Level::Debug => "debug",
            };
            let _ = writeln!(std::io::stderr().lock(), "authnetd[{tag}]: {msg}");
        }
    }

    /// [`Level::Error`].
    pub fn error(&self, msg: &str) {
        self.log(Level::Error, msg);
    }
    /// [`Level::Warning`].
    pub fn warn(&self, msg: &str) {
        self.log(Level::Warning, msg);
    }
    /// [`Level::Info`].
    pub fn info(&self, msg: &str) {
        self.log(Level::Info, msg);
    }
    /// [`Level::Debug`].
    pub fn debug(&self, msg: &str) {
        self.log(Level::Debug, msg);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape("plain text"), "plain text");
        assert_eq!(
            escape("sudo\nauthnetd[info]: user=root decision=accept"),
            "sudo\\x0aauthnetd[info]: user=root decision=accept"
        );
        assert_eq!(escape("a\rb\x1b[31m\u{7f}"), "a\\x0db\\x1b[31m\\x7f");
        assert_eq!(escape("x\u{2028}y"), "x\\u{2028}y");
        assert_eq!(escape("naïve"), "naïve");
    }

    #[test]
    fn a_non_root_uid_is_rate_limited() {
        let l = Logger::new(true, false);
        for _ in 0..MAX_LINES_PER_UID {
            assert!(l.admit(1000).0);
        }
        assert!(!l.admit(1000).0);
        assert!(l.admit(1001).0, "another uid has its own budget");
    }
}
