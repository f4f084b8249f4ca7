//! Logging to syslog (`LOG_AUTHPRIV`), or to stderr with `--log-stderr` (and as a fallback when
//! no syslog socket exists). Only decisions, reason codes, latencies and errors are logged;
//! scores only at debug level; frames and features never.

use std::io::Write;
use std::sync::Mutex;

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

/// The daemon's logger; cheap to share behind an `Arc`.
pub struct Logger {
    sink: Mutex<Sink>,
    debug: bool,
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
        }
    }

    /// Logs `msg` at `level`.
    pub fn log(&self, level: Level, msg: &str) {
        if level == Level::Debug && !self.debug {
            return;
        }
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
