//! The module's logic, behind the [`PamHandler`] trait so tests can drive it without libpam.
//!
//! [`authenticate`] parses the options, skips remote sessions, talks to the daemon and reduces
//! everything that can happen to a [`Verdict`]; [`Verdict::pam_code`] is the one place a
//! verdict becomes a PAM return code (the table in `man/pam_authnet.8`).

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use authnet_ipc::{
    check_version, read_frame, write_frame, ErrorKind, IpcError, Outcome, Request, Response,
    UnavailableReason, PROTOCOL_VERSION,
};

use crate::options::Options;
use crate::remote::{environ_lookup, is_local_rhost, SSH_MARKERS};

/// The PAM return codes this module produces (a subset of `PamResultCode`, but `Copy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PamCode {
    /// `PAM_SUCCESS`
    Success,
    /// `PAM_AUTH_ERR`
    AuthErr,
    /// `PAM_AUTHINFO_UNAVAIL`: biometrics cannot apply; the password prompt should follow.
    AuthinfoUnavail,
    /// `PAM_USER_UNKNOWN`
    UserUnknown,
    /// `PAM_SERVICE_ERR`: misconfiguration or an internal failure.
    ServiceErr,
}

/// PAM string items the logic reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Item {
    /// `PAM_SERVICE`
    Service,
    /// `PAM_RHOST`
    RHost,
    /// `PAM_TTY`
    Tty,
}

/// Where an environment variable is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EnvSource {
    /// The PAM environment (`pam_getenv`).
    Pam,
    /// This process's environment.
    Process,
    /// The parent process's environment (`/proc/<ppid>/environ`), which survives sudo's
    /// `env_reset`.
    Parent,
}

/// Log severities. `Debug` lines are emitted only with the `debug` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Decisions and reason codes, with `debug` only.
    Debug,
    /// Misconfiguration and daemon misbehaviour, always.
    Error,
}

/// What the logic needs from libpam. The real implementation lives in `ffi.rs`; tests use a
/// scripted fake.
pub trait PamHandler {
    /// The user being authenticated (`pam_get_user`), or `None` if it cannot be obtained.
    fn user(&mut self) -> Option<String>;
    /// A PAM string item, if set.
    fn item(&self, item: Item) -> Option<String>;
    /// An environment variable from `source`, if set.
    fn env(&mut self, source: EnvSource, name: &str) -> Option<String>;
    /// Shows `text` to the user as `PAM_TEXT_INFO`. Failure is reported but not fatal.
    fn info(&mut self, text: &str) -> Result<(), ()>;
    /// Writes one line to the system log (`LOG_AUTHPRIV`).
    fn log(&mut self, level: LogLevel, msg: &str);
}

/// Everything one call can end in. Each variant maps to exactly one PAM code in
/// [`Verdict::pam_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The daemon accepted the face and mouthed password.
    Accepted,
    /// The daemon rejected them on every try.
    Rejected,
    /// The daemon could not decide, or the module skipped a remote session itself.
    Unavailable(UnavailableReason),
    /// The socket could not be connected (absent, refused, permission, timeout).
    DaemonUnreachable,
    /// The daemon closed the connection or reset it mid-call.
    DaemonClosed,
    /// The overall `timeout=` budget ran out.
    TimedOut,
    /// The daemon sent garbage, an oversized frame, an unexpected message or another
    /// protocol version.
    ProtocolViolation,
    /// The daemon answered with a typed error.
    DaemonError(ErrorKind),
    /// The module arguments are invalid.
    BadOptions,
    /// `pam_get_user` failed.
    NoUser,
}

impl Verdict {
    /// The PAM result table. Anything that means "biometrics cannot apply right now" is
    /// `PAM_AUTHINFO_UNAVAIL`, so the stack moves on to the password at once; that includes a
    /// daemon speaking garbage, which is the daemon's fault rather than the configuration's.
    pub fn pam_code(&self) -> PamCode {
        match self {
            Self::Accepted => PamCode::Success,
            Self::Rejected | Self::DaemonError(ErrorKind::AuthFailed) => PamCode::AuthErr,
            Self::Unavailable(_)
            | Self::DaemonUnreachable
            | Self::DaemonClosed
            | Self::TimedOut
            | Self::ProtocolViolation
            | Self::DaemonError(
                ErrorKind::UnsupportedVersion
                | ErrorKind::PermissionDenied
                | ErrorKind::NotEnrolled
                | ErrorKind::Busy,
            ) => PamCode::AuthinfoUnavail,
            Self::DaemonError(ErrorKind::UnknownUser | ErrorKind::InvalidUserName)
            | Self::NoUser => PamCode::UserUnknown,
            Self::DaemonError(ErrorKind::Internal | ErrorKind::BadRequest) | Self::BadOptions => {
                PamCode::ServiceErr
            }
        }
    }
}

/// `pam_sm_authenticate`: `args` are the module arguments, `silent` is `PAM_SILENT`.
pub fn authenticate<P: PamHandler>(pam: &mut P, args: &[&str], silent: bool) -> PamCode {
    let opts = match Options::parse(args.iter().copied()) {
        Ok(opts) => opts,
        Err(e) => {
            pam.log(LogLevel::Error, &format!("bad module arguments: {e}"));
            return Verdict::BadOptions.pam_code();
        }
    };
    let mut call = Call {
        pam,
        opts,
        silent,
        deadline: Instant::now(),
    };
    call.deadline += call.opts.timeout;
    let verdict = call.run();
    let code = verdict.pam_code();
    call.debug(&format!("verdict {verdict:?} -> {code:?}"));
    code
}

/// One `pam_sm_authenticate` invocation.
struct Call<'p, P: PamHandler> {
    pam: &'p mut P,
    opts: Options,
    silent: bool,
    deadline: Instant,
}

impl<P: PamHandler> Call<'_, P> {
    fn debug(&mut self, msg: &str) {
        if self.opts.debug {
            self.pam.log(LogLevel::Debug, msg);
        }
    }

    fn error(&mut self, msg: &str) {
        self.pam.log(LogLevel::Error, msg);
    }

    /// Which marker, if any, makes this a remote session.
    fn remote_marker(&mut self) -> Option<String> {
        if let Some(rhost) = self.pam.item(Item::RHost) {
            if !is_local_rhost(&rhost) {
                return Some(format!("PAM_RHOST={rhost}"));
            }
        }
        for source in [EnvSource::Pam, EnvSource::Process, EnvSource::Parent] {
            for name in SSH_MARKERS {
                if self.pam.env(source, name).is_some_and(|v| !v.is_empty()) {
                    return Some(format!("{name} in {source:?} environment"));
                }
            }
        }
        None
    }

    fn run(&mut self) -> Verdict {
        if let Some(marker) = self.remote_marker() {
            self.debug(&format!("remote session ({marker}); skipping"));
            return Verdict::Unavailable(UnavailableReason::RemoteSession);
        }
        let Some(user) = self.pam.user() else {
            self.error("cannot get the user name");
            return Verdict::NoUser;
        };
        let mut conn = match Conn::connect(&self.opts.socket, self.deadline) {
            Ok(conn) => conn,
            Err(e) => {
                self.debug(&format!(
                    "cannot connect to {}: {e}",
                    self.opts.socket.display()
                ));
                return if e.kind() == io::ErrorKind::TimedOut {
                    Verdict::TimedOut
                } else {
                    Verdict::DaemonUnreachable
                };
            }
        };
        match self.talk(&mut conn, user) {
            Ok(verdict) => verdict,
            Err(e) => {
                let verdict = self.ipc_verdict(&e, conn.deadline_passed());
                if verdict == Verdict::ProtocolViolation {
                    self.error(&format!("protocol error from daemon: {}", error_chain(&e)));
                } else {
                    self.debug(&format!("daemon connection failed: {}", error_chain(&e)));
                }
                verdict
            }
        }
    }

    /// Classifies a transport failure.
    fn ipc_verdict(&self, e: &IpcError, deadline_passed: bool) -> Verdict {
        match e {
            _ if e.is_timeout() || deadline_passed => Verdict::TimedOut,
            IpcError::Closed | IpcError::Truncated | IpcError::Io(_) => Verdict::DaemonClosed,
            IpcError::TooLarge { .. }
            | IpcError::Malformed(_)
            | IpcError::Encode(_)
            | IpcError::UnsupportedVersion { .. } => Verdict::ProtocolViolation,
        }
    }

    /// The conversation: hello, then up to `max_tries` authenticate requests.
    fn talk(&mut self, conn: &mut Conn, user: String) -> Result<Verdict, IpcError> {
        conn.send(&Request::Hello {
            protocol_version: PROTOCOL_VERSION,
        })?;
        match conn.recv()? {
            Response::Hello { protocol_version } => check_version(protocol_version)?,
            Response::Error { kind, message } => return Ok(self.daemon_error(kind, &message)),
            other => return Ok(self.unexpected(&other)),
        }
        let request = Request::Authenticate {
            user,
            service: self.pam.item(Item::Service).unwrap_or_default(),
            rhost: self.pam.item(Item::RHost),
            tty: self.pam.item(Item::Tty),
        };
        let mut tries = 0;
        loop {
            tries += 1;
            conn.send(&request)?;
            let outcome = loop {
                match conn.recv()? {
                    Response::Info { text } => self.relay(&text),
                    Response::Result { outcome } => break outcome,
                    Response::Error { kind, message } => {
                        return Ok(self.daemon_error(kind, &message))
                    }
                    other => return Ok(self.unexpected(&other)),
                }
            };
            match outcome {
                Outcome::Accept => return Ok(Verdict::Accepted),
                Outcome::Reject if tries < self.opts.max_tries => {
                    self.debug(&format!("rejected on try {tries}; trying again"));
                }
                Outcome::Reject => return Ok(Verdict::Rejected),
                Outcome::Unavailable { reason } => {
                    self.debug(&format!("unavailable: {}", reason.describe()));
                    return Ok(Verdict::Unavailable(reason));
                }
            }
        }
    }

    fn daemon_error(&mut self, kind: ErrorKind, message: &str) -> Verdict {
        let verdict = Verdict::DaemonError(kind);
        match verdict.pam_code() {
            PamCode::ServiceErr => self.error(&format!("daemon error {kind:?}: {message}")),
            _ => self.debug(&format!("daemon error {kind:?}: {message}")),
        }
        verdict
    }

    fn unexpected(&mut self, msg: &Response) -> Verdict {
        // Only the variant name: the message could carry text not meant for the log.
        let name = format!("{msg:?}");
        let name = name.split([' ', '{', '(']).next().unwrap_or_default();
        self.error(&format!(
            "protocol error from daemon: unexpected {name} message"
        ));
        Verdict::ProtocolViolation
    }

    /// Shows a daemon `info` text unless `PAM_SILENT` or `quiet`.
    fn relay(&mut self, text: &str) {
        if self.silent || self.opts.quiet {
            return;
        }
        // Control characters (terminal escapes, NUL) never reach the user's terminal.
        let clean: String = text.chars().filter(|c| !c.is_control()).collect();
        if self.pam.info(&clean).is_err() {
            self.debug("the conversation function refused an info message");
        }
    }
}

/// `e` and its sources, joined with ": ".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// A daemon connection whose every read and write ends by the call's deadline.
struct Conn {
    stream: UnixStream,
    deadline: Instant,
}

impl Conn {
    fn connect(path: &Path, deadline: Instant) -> io::Result<Self> {
        let remaining = remaining(deadline)?;
        let stream = crate::ffi::connect_unix(path, remaining)?;
        Ok(Self { stream, deadline })
    }

    fn deadline_passed(&self) -> bool {
        Instant::now() >= self.deadline
    }

    fn send(&mut self, req: &Request) -> Result<(), IpcError> {
        write_frame(&mut DeadlineIo(self), req)
    }

    fn recv(&mut self) -> Result<Response, IpcError> {
        read_frame(&mut DeadlineIo(self))
    }
}

/// Time left before `deadline`, or a `TimedOut` error.
fn remaining(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(io::Error::from(io::ErrorKind::TimedOut))
    } else {
        Ok(left)
    }
}

/// Re-arms the socket timeout before every `read`/`write` syscall, so a daemon that drips
/// bytes cannot stretch the call past its deadline.
struct DeadlineIo<'c>(&'c mut Conn);

impl Read for DeadlineIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = remaining(self.0.deadline)?;
        self.0.stream.set_read_timeout(Some(left))?;
        self.0.stream.read(buf)
    }
}

impl Write for DeadlineIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = remaining(self.0.deadline)?;
        self.0.stream.set_write_timeout(Some(left))?;
        self.0.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.stream.flush()
    }
}

/// Looks `name` up in a raw environment block (used by the real handler for the parent's
/// `/proc/<ppid>/environ`).
pub fn lookup_in_block(block: &[u8], name: &str) -> Option<String> {
    environ_lookup(block, name).map(|v| String::from_utf8_lossy(v).into_owned())
}
