//! The module's logic, behind the [`PamHandler`] trait so tests can drive it without libpam.
//!
//! [`authenticate`] parses the options, skips remote sessions, talks to the daemon and reduces
//! everything that can happen to a [`Verdict`]; [`Verdict::pam_code`] is the one place a
//! verdict becomes a PAM return code (the table in `man/pam_authnet.8`).

use std::io;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use zeroize::Zeroizing;

use authnet_ipc::{
    check_version, deadline, error_chain, read_frame, write_frame, DeadlineStream, ErrorKind,
    IpcError, Outcome, Request, Response, UnavailableReason, PROTOCOL_VERSION,
};

use crate::options::{Options, PromptMode};
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
    /// `PAM_IGNORE`: this module took no decision (`prompt=concurrent`, a password was typed
    /// and is waiting in `PAM_AUTHTOK` for the next module).
    Ignore,
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

/// The application's conversation function is missing or refused a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the PAM conversation refused the message")]
pub struct ConversationRefused;

/// libpam refused to store `PAM_AUTHTOK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("libpam refused to store the typed password as PAM_AUTHTOK")]
pub struct AuthtokRefused;

/// Ends a password prompt pending on another thread, as if the user had pressed Enter.
pub trait PromptWaker: Send {
    /// Returns whether the prompt could be ended.
    fn wake(&self) -> bool;
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
    fn info(&mut self, text: &str) -> Result<(), ConversationRefused>;
    /// Writes one line to the system log (`LOG_AUTHPRIV`).
    fn log(&mut self, level: LogLevel, msg: &str);
    /// What ends a [`PamHandler::prompt_password`] from another thread.
    type Waker: PromptWaker;
    /// A waker for the next prompt, if this application's prompt can be ended at all.
    fn prompt_waker(&mut self) -> Option<Self::Waker>;
    /// Asks for the password with echo off (`PAM_PROMPT_ECHO_OFF`); blocks until the user
    /// answers or the waker ends the prompt (then the answer is whatever was typed so far).
    fn prompt_password(&mut self, prompt: &str) -> Result<Zeroizing<String>, ConversationRefused>;
    /// Stores `token` as `PAM_AUTHTOK` for the modules after this one.
    fn set_authtok(&mut self, token: &str) -> Result<(), AuthtokRefused>;
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
    /// `prompt=concurrent`: the password was typed before the face matched; it is in
    /// `PAM_AUTHTOK` for the next module.
    PasswordTyped,
    /// A bug in this module (the face-check thread panicked).
    ModuleFault,
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
            Self::DaemonError(ErrorKind::Internal | ErrorKind::BadRequest)
            | Self::BadOptions
            | Self::ModuleFault => PamCode::ServiceErr,
            Self::PasswordTyped => PamCode::Ignore,
        }
    }
}

/// The prompt `prompt=concurrent` shows (the one `pam_unix` shows too).
pub const PASSWORD_PROMPT: &str = "Password: ";

/// Whether this process has logged that `max-tries=` is ignored.
static MAX_TRIES_LOGGED: std::sync::Once = std::sync::Once::new();

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
    if let Some(n) = call.opts.ignored_max_tries {
        // Once per process: a display manager or sshd loads the module once and authenticates
        // many times; the stale line needs saying once, not on every attempt.
        MAX_TRIES_LOGGED.call_once(|| {
            call.error(&format!(
                "max-tries={n} is ignored: the retry budget is max_tries in authnetd.toml"
            ))
        });
    }
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
        let face = FaceCheck {
            opts: self.opts.clone(),
            deadline: self.deadline,
            request: Request::Authenticate {
                user,
                service: self.pam.item(Item::Service).unwrap_or_default(),
                rhost: self.pam.item(Item::RHost),
                tty: self.pam.item(Item::Tty),
            },
        };
        match self.opts.prompt {
            PromptMode::FaceFirst => {
                let mut events = Vec::new();
                // Infos are relayed as they come: the user reads "look at the camera" while
                // the camera runs. Only this thread touches the handler.
                let verdict = face.run(None, &mut |e| match e {
                    Event::Info(text) => relay(self.pam, self.silent, &self.opts, &text),
                    other => events.push(other),
                });
                self.replay(events);
                verdict
            }
            PromptMode::Concurrent => self.run_concurrent(&face),
        }
    }

    /// `prompt=concurrent`: the password prompt on this thread, the face check on a scoped
    /// worker thread that never touches the PAM handle or the conversation.
    ///
    /// The worker's lifetime is strictly inside this call: `thread::scope` joins it before
    /// returning. A typed password ends the worker at once by shutting its socket down (the
    /// daemon sees the client go and abandons the attempt); a face match ends the prompt
    /// through the handler's [`PromptWaker`], as if the user had pressed Enter.
    fn run_concurrent(&mut self, face: &FaceCheck) -> Verdict {
        let race = Race::default();
        let waker = self.pam.prompt_waker();
        let pam = &mut *self.pam;
        let race = &race;
        let (answer, worker) = std::thread::scope(|s| {
            // The waker moves to the worker; `face` and `race` are shared by reference.
            let worker = s.spawn(move || {
                let mut events = Vec::new();
                let verdict = face.run(Some(race), &mut |e| events.push(e));
                if verdict == Verdict::Accepted {
                    let woke = race.face_accepted(waker.as_ref());
                    events.push(Event::Log(
                        LogLevel::Debug,
                        format!("face accepted while the prompt was up; prompt ended: {woke}"),
                    ));
                }
                (verdict, events)
            });
            let answer = pam.prompt_password(PASSWORD_PROMPT);
            let typed = answer.as_ref().is_ok_and(|a| !a.is_empty());
            race.prompt_done(typed);
            (answer, worker.join())
        });
        let Ok((face_verdict, events)) = worker else {
            self.error("the face-check thread panicked");
            return Verdict::ModuleFault;
        };
        self.replay(events);
        if face_verdict == Verdict::Accepted {
            // Whatever the prompt returned (nothing, or what the user had started to type
            // when the face matched) is dropped: it is not a password anybody confirmed.
            return Verdict::Accepted;
        }
        match answer {
            Ok(password) if !password.is_empty() => {
                self.debug(&format!(
                    "password typed first (face check: {face_verdict:?}); passing it on"
                ));
                match self.pam.set_authtok(&password) {
                    Ok(()) => Verdict::PasswordTyped,
                    Err(e) => {
                        self.error(&format!("{e}"));
                        face_verdict
                    }
                }
            }
            // Enter on an empty line: the user chose to wait for the face, whose verdict the
            // join above waited for.
            Ok(_) => face_verdict,
            Err(ConversationRefused) => {
                self.debug("the conversation refused the password prompt");
                face_verdict
            }
        }
    }

    /// Logs what the face check reported (debug lines only with `debug`). Infos that reach
    /// here were produced while the prompt was up and cannot be shown any more.
    fn replay(&mut self, events: Vec<Event>) {
        for event in events {
            match event {
                Event::Log(LogLevel::Error, msg) => self.error(&msg),
                Event::Log(LogLevel::Debug, msg) => self.debug(&msg),
                Event::Info(text) => self.debug(&format!("not shown during the prompt: {text}")),
            }
        }
    }
}

/// Shows a daemon `info` text unless `PAM_SILENT` or `quiet`.
fn relay<P: PamHandler>(pam: &mut P, silent: bool, opts: &Options, text: &str) {
    if silent || opts.quiet {
        return;
    }
    // Control characters (terminal escapes, NUL) never reach the user's terminal.
    let clean: String = text.chars().filter(|c| !c.is_control()).collect();
    if pam.info(&clean).is_err() && opts.debug {
        pam.log(
            LogLevel::Debug,
            "the conversation function refused an info message",
        );
    }
}

/// What the face check reports besides its verdict.
#[derive(Debug)]
enum Event {
    /// A daemon `info` text for the user.
    Info(String),
    /// A line for the system log.
    Log(LogLevel, String),
}

/// The daemon side of one call. It holds no PAM handle, so it can run on a worker thread.
struct FaceCheck {
    opts: Options,
    deadline: Instant,
    request: Request,
}

impl FaceCheck {
    /// Connects and talks to the daemon. With `race`, the connection is registered so the
    /// calling thread can cancel it.
    fn run(&self, race: Option<&Race>, sink: &mut dyn FnMut(Event)) -> Verdict {
        let debug = |sink: &mut dyn FnMut(Event), msg: String| {
            sink(Event::Log(LogLevel::Debug, msg));
        };
        let mut conn = match Conn::connect(&self.opts.socket, self.deadline) {
            Ok(conn) => conn,
            Err(e) => {
                debug(
                    sink,
                    format!("cannot connect to {}: {e}", self.opts.socket.display()),
                );
                return if e.kind() == io::ErrorKind::TimedOut {
                    Verdict::TimedOut
                } else {
                    Verdict::DaemonUnreachable
                };
            }
        };
        if let Some(race) = race {
            if !race.register(&conn.stream) {
                debug(sink, "face check cancelled before it started".into());
                return Verdict::DaemonClosed;
            }
        }
        match self.talk(&mut conn, sink) {
            Ok(verdict) => verdict,
            Err(e) => {
                let verdict = ipc_verdict(&e, conn.deadline_passed());
                if race.is_some_and(Race::cancelled) {
                    debug(sink, "face check cancelled: a password was typed".into());
                } else if verdict == Verdict::ProtocolViolation {
                    sink(Event::Log(
                        LogLevel::Error,
                        format!("protocol error from daemon: {}", error_chain(&e)),
                    ));
                } else {
                    debug(
                        sink,
                        format!("daemon connection failed: {}", error_chain(&e)),
                    );
                }
                verdict
            }
        }
    }

    /// The conversation: hello, then one authenticate request. Retrying a rejected clip is the
    /// daemon's (`max_tries` in `authnetd.toml`), so the budget is counted in one place and
    /// every rejected clip reaches the throttle.
    fn talk(&self, conn: &mut Conn, sink: &mut dyn FnMut(Event)) -> Result<Verdict, IpcError> {
        conn.send(&Request::Hello {
            protocol_version: PROTOCOL_VERSION,
        })?;
        match conn.recv()? {
            Response::Hello { protocol_version } => check_version(protocol_version)?,
            Response::Error { kind, message } => return Ok(daemon_error(sink, kind, &message)),
            other => return Ok(unexpected(sink, &other)),
        }
        conn.send(&self.request)?;
        let outcome = loop {
            match conn.recv()? {
                Response::Info { text } => sink(Event::Info(text)),
                Response::Result { outcome } => break outcome,
                Response::Error { kind, message } => return Ok(daemon_error(sink, kind, &message)),
                other => return Ok(unexpected(sink, &other)),
            }
        };
        Ok(match outcome {
            Outcome::Accept => Verdict::Accepted,
            Outcome::Reject => Verdict::Rejected,
            Outcome::Unavailable { reason } => {
                sink(Event::Log(
                    LogLevel::Debug,
                    format!("unavailable: {}", reason.describe()),
                ));
                Verdict::Unavailable(reason)
            }
        })
    }
}

/// Classifies a transport failure.
fn ipc_verdict(e: &IpcError, deadline_passed: bool) -> Verdict {
    match e {
        _ if e.is_timeout() || deadline_passed => Verdict::TimedOut,
        IpcError::Closed | IpcError::Truncated | IpcError::Io(_) => Verdict::DaemonClosed,
        IpcError::TooLarge { .. }
        | IpcError::Malformed(_)
        | IpcError::Encode(_)
        | IpcError::UnsupportedVersion { .. } => Verdict::ProtocolViolation,
    }
}

fn daemon_error(sink: &mut dyn FnMut(Event), kind: ErrorKind, message: &str) -> Verdict {
    let verdict = Verdict::DaemonError(kind);
    let level = match verdict.pam_code() {
        PamCode::ServiceErr => LogLevel::Error,
        _ => LogLevel::Debug,
    };
    sink(Event::Log(
        level,
        format!("daemon error {kind:?}: {message}"),
    ));
    verdict
}

fn unexpected(sink: &mut dyn FnMut(Event), msg: &Response) -> Verdict {
    // Only the variant name: the message could carry text not meant for the log.
    let name = format!("{msg:?}");
    let name = name.split([' ', '{', '(']).next().unwrap_or_default();
    sink(Event::Log(
        LogLevel::Error,
        format!("protocol error from daemon: unexpected {name} message"),
    ));
    Verdict::ProtocolViolation
}

/// What the prompt and the face check of `prompt=concurrent` share.
#[derive(Debug, Default)]
struct Race {
    state: Mutex<RaceState>,
}

#[derive(Debug, Default)]
struct RaceState {
    /// A password was typed: the face check must stop.
    cancelled: bool,
    /// The prompt has returned: nothing may be injected to end it any more.
    prompt_done: bool,
    /// A second handle on the worker's daemon socket, to shut it down from here.
    stream: Option<UnixStream>,
}

impl Race {
    fn lock(&self) -> std::sync::MutexGuard<'_, RaceState> {
        // A poisoned lock only means the other side panicked; the flags stay meaningful.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers the worker's connection; `false` if the face check was already cancelled.
    fn register(&self, stream: &UnixStream) -> bool {
        let mut state = self.lock();
        if state.cancelled {
            return false;
        }
        // Without a clone the worker still ends by its deadline; cancelling is faster only.
        state.stream = stream.try_clone().ok();
        true
    }

    fn cancelled(&self) -> bool {
        self.lock().cancelled
    }

    /// The prompt returned. With `typed`, cancels the face check: shutting the socket down
    /// wakes the worker's blocked read at once.
    fn prompt_done(&self, typed: bool) {
        let mut state = self.lock();
        state.prompt_done = true;
        if typed {
            state.cancelled = true;
            if let Some(stream) = state.stream.take() {
                // An error means the socket is already closed, which is the goal.
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }

    /// The face matched: ends the prompt if it is still up. Returns whether it was ended.
    /// Under the lock, so it never fires after [`Race::prompt_done`].
    fn face_accepted<W: PromptWaker>(&self, waker: Option<&W>) -> bool {
        let state = self.lock();
        !state.prompt_done && waker.is_some_and(PromptWaker::wake)
    }
}

/// A daemon connection whose every read and write ends by the call's deadline.
struct Conn {
    stream: UnixStream,
    deadline: Instant,
}

impl Conn {
    fn connect(path: &Path, deadline: Instant) -> io::Result<Self> {
        let remaining = deadline::remaining(deadline)?;
        let stream = crate::ffi::connect_unix(path, remaining)?;
        Ok(Self { stream, deadline })
    }

    fn deadline_passed(&self) -> bool {
        Instant::now() >= self.deadline
    }

    fn send(&mut self, req: &Request) -> Result<(), IpcError> {
        write_frame(&mut DeadlineStream::new(&self.stream, self.deadline), req)
    }

    fn recv(&mut self) -> Result<Response, IpcError> {
        read_frame(&mut DeadlineStream::new(&self.stream, self.deadline))
    }
}

/// Looks `name` up in a raw environment block (used by the real handler for the parent's
/// `/proc/<ppid>/environ`).
pub fn lookup_in_block(block: &[u8], name: &str) -> Option<String> {
    environ_lookup(block, name).map(|v| String::from_utf8_lossy(v).into_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    //! Every row of the result table, through a scripted PAM handler and a scripted daemon.

    use super::*;
    use std::collections::{HashMap, VecDeque};
    use std::io::{Read, Write};
    use std::os::unix::net::UnixListener;
    use std::path::PathBuf;
    use std::sync::mpsc;
    use std::thread::JoinHandle;
    use std::time::Duration;

    /// One call the logic is expected to make on the handler, in order.
    #[derive(Debug, PartialEq)]
    enum Expect {
        User(Option<&'static str>),
        Info(&'static str),
        Prompt(Answer),
        SetAuthtok(&'static str),
    }

    /// How the scripted user answers the password prompt.
    #[derive(Debug, PartialEq)]
    enum Answer {
        /// Types this and Enter after this long, unless the waker ends the prompt first
        /// (then the answer is empty).
        Typed(Duration, &'static str),
        /// The conversation refuses the prompt.
        Refused,
    }

    /// The fake's waker: ends the scripted prompt through a channel.
    struct FakeWaker(mpsc::Sender<()>);

    impl PromptWaker for FakeWaker {
        fn wake(&self) -> bool {
            self.0.send(()).is_ok()
        }
    }

    /// A PAM handler that serves fixed items/environment and checks its calls against a
    /// script; on drop it asserts that the whole script was consumed.
    struct ScriptedPam {
        items: HashMap<Item, String>,
        env: HashMap<(EnvSource, &'static str), String>,
        script: VecDeque<Expect>,
        logs: Vec<(LogLevel, String)>,
        refuse_info: bool,
        created: Instant,
        /// When the password prompt appeared.
        prompted_at: Option<Instant>,
        /// Whether the waker ended the prompt.
        woken: bool,
        wake_tx: mpsc::Sender<()>,
        wake_rx: mpsc::Receiver<()>,
    }

    impl ScriptedPam {
        fn new(script: Vec<Expect>) -> Self {
            let mut items = HashMap::new();
            items.insert(Item::Service, "sudo".to_owned());
            let (wake_tx, wake_rx) = mpsc::channel();
            Self {
                items,
                env: HashMap::new(),
                script: script.into(),
                logs: Vec::new(),
                refuse_info: false,
                created: Instant::now(),
                prompted_at: None,
                woken: false,
                wake_tx,
                wake_rx,
            }
        }

        /// A handler whose user is alice, then the calls of `then`.
        fn alice(then: impl IntoIterator<Item = Expect>) -> Self {
            Self::new(
                std::iter::once(Expect::User(Some("alice")))
                    .chain(then)
                    .collect(),
            )
        }

        fn with_item(mut self, item: Item, value: &str) -> Self {
            self.items.insert(item, value.to_owned());
            self
        }

        fn with_env(mut self, source: EnvSource, name: &'static str, value: &str) -> Self {
            self.env.insert((source, name), value.to_owned());
            self
        }

        fn next(&mut self, what: &str) -> Expect {
            self.script
                .pop_front()
                .unwrap_or_else(|| panic!("unexpected call: {what}"))
        }
    }

    impl PamHandler for ScriptedPam {
        fn user(&mut self) -> Option<String> {
            match self.next("user()") {
                Expect::User(u) => u.map(str::to_owned),
                other => panic!("user() called, expected {other:?}"),
            }
        }

        fn item(&self, item: Item) -> Option<String> {
            self.items.get(&item).cloned()
        }

        fn env(&mut self, source: EnvSource, name: &str) -> Option<String> {
            self.env
                .iter()
                .find(|((s, n), _)| *s == source && *n == name)
                .map(|(_, v)| v.clone())
        }

        fn info(&mut self, text: &str) -> Result<(), ConversationRefused> {
            match self.next(&format!("info({text:?})")) {
                Expect::Info(t) => assert_eq!(text, t),
                other => panic!("info({text:?}) called, expected {other:?}"),
            }
            if self.refuse_info {
                Err(ConversationRefused)
            } else {
                Ok(())
            }
        }

        fn log(&mut self, level: LogLevel, msg: &str) {
            self.logs.push((level, msg.to_owned()));
        }

        type Waker = FakeWaker;

        fn prompt_waker(&mut self) -> Option<FakeWaker> {
            Some(FakeWaker(self.wake_tx.clone()))
        }

        fn prompt_password(
            &mut self,
            prompt: &str,
        ) -> Result<Zeroizing<String>, ConversationRefused> {
            assert_eq!(prompt, PASSWORD_PROMPT);
            self.prompted_at = Some(Instant::now());
            match self.next("prompt_password()") {
                Expect::Prompt(Answer::Typed(after, text)) => {
                    match self.wake_rx.recv_timeout(after) {
                        Ok(()) => {
                            self.woken = true;
                            Ok(Zeroizing::new(String::new()))
                        }
                        Err(_) => Ok(Zeroizing::new(text.to_owned())),
                    }
                }
                Expect::Prompt(Answer::Refused) => Err(ConversationRefused),
                other => panic!("prompt_password() called, expected {other:?}"),
            }
        }

        fn set_authtok(&mut self, token: &str) -> Result<(), AuthtokRefused> {
            match self.next(&format!("set_authtok({token:?})")) {
                Expect::SetAuthtok(t) => assert_eq!(token, t),
                other => panic!("set_authtok called, expected {other:?}"),
            }
            Ok(())
        }
    }

    impl ScriptedPam {
        /// How long after the handler was made the prompt appeared.
        fn prompt_delay(&self) -> Duration {
            self.prompted_at.expect("prompted") - self.created
        }
    }

    impl Drop for ScriptedPam {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                assert!(
                    self.script.is_empty(),
                    "expected calls never made: {:?}",
                    self.script
                );
            }
        }
    }

    /// One step of the fake daemon.
    enum Step {
        /// Read a frame and require it to equal this request.
        Expect(Request),
        /// Send this response.
        Send(Response),
        /// Send these raw bytes.
        Raw(Vec<u8>),
        /// Do nothing for this long (the client should time out).
        Stall(Duration),
        /// Wait (at most 10 s) until the client closes the connection.
        ExpectClosed,
    }

    fn hello() -> [Step; 2] {
        [
            Step::Expect(Request::Hello {
                protocol_version: PROTOCOL_VERSION,
            }),
            Step::Send(Response::Hello {
                protocol_version: PROTOCOL_VERSION,
            }),
        ]
    }

    fn auth_request() -> Request {
        Request::Authenticate {
            user: "alice".into(),
            service: "sudo".into(),
            rhost: None,
            tty: None,
        }
    }

    /// `Send` of a result.
    fn result(outcome: Outcome) -> Step {
        Step::Send(Response::Result { outcome })
    }

    /// `Send` of an info message.
    fn info(text: &str) -> Step {
        Step::Send(Response::Info { text: text.into() })
    }

    /// A daemon that answers the hello, expects [`auth_request`], then runs `then`.
    fn auth_daemon(then: impl IntoIterator<Item = Step>) -> FakeDaemon {
        let mut steps: Vec<Step> = hello().into();
        steps.push(Step::Expect(auth_request()));
        steps.extend(then);
        FakeDaemon::start(steps)
    }

    /// A scripted daemon on a Unix socket in a temp dir. Joining returns an error if the
    /// script did not run to completion.
    struct FakeDaemon {
        _dir: tempfile::TempDir,
        socket: PathBuf,
        thread: Option<JoinHandle<Result<(), String>>>,
    }

    impl FakeDaemon {
        fn start(steps: Vec<Step>) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let socket = dir.path().join("authnetd.sock");
            let listener = UnixListener::bind(&socket).unwrap();
            let thread = std::thread::spawn(move || {
                let (mut stream, _) = listener.accept().map_err(|e| e.to_string())?;
                for step in steps {
                    match step {
                        Step::Expect(want) => {
                            let got: Request =
                                read_frame(&mut stream).map_err(|e| format!("{want:?}: {e:?}"))?;
                            if got != want {
                                return Err(format!("got {got:?}, expected {want:?}"));
                            }
                        }
                        Step::Send(resp) => {
                            write_frame(&mut stream, &resp).map_err(|e| e.to_string())?
                        }
                        Step::Raw(bytes) => stream.write_all(&bytes).map_err(|e| e.to_string())?,
                        Step::Stall(d) => std::thread::sleep(d),
                        Step::ExpectClosed => {
                            stream
                                .set_read_timeout(Some(Duration::from_secs(10)))
                                .map_err(|e| e.to_string())?;
                            let mut buf = [0u8; 64];
                            match stream.read(&mut buf) {
                                Ok(0) => {}
                                other => return Err(format!("client did not close: {other:?}")),
                            }
                        }
                    }
                }
                Ok(())
            });
            Self {
                _dir: dir,
                socket,
                thread: Some(thread),
            }
        }

        fn arg(&self) -> String {
            format!("socket={}", self.socket.display())
        }

        fn finish(mut self) {
            let result = self.thread.take().unwrap().join().unwrap();
            assert_eq!(result, Ok(()), "daemon script");
        }
    }

    /// Runs the logic against `daemon` with extra `args`.
    fn run(pam: &mut ScriptedPam, daemon: &FakeDaemon, args: &[&str]) -> PamCode {
        let socket = daemon.arg();
        let mut all = vec![socket.as_str()];
        all.extend_from_slice(args);
        authenticate(pam, &all, false)
    }

    /// The daemon answers one authenticate with `responses`; returns the module's code.
    fn one_attempt(responses: Vec<Response>) -> PamCode {
        let daemon = auth_daemon(responses.into_iter().map(Step::Send));
        let mut pam = ScriptedPam::alice([]);
        let code = run(&mut pam, &daemon, &["quiet"]);
        daemon.finish();
        code
    }

    #[test]
    fn accept_is_success_and_infos_are_relayed_in_order() {
        let daemon = auth_daemon([
            info("Look at the camera"),
            info("Mouth\u{1b}[31m your password"),
            result(Outcome::Accept),
        ]);
        let mut pam = ScriptedPam::alice([
            Expect::Info("Look at the camera"),
            // The escape character is stripped before reaching the terminal.
            Expect::Info("Mouth[31m your password"),
        ]);
        assert_eq!(run(&mut pam, &daemon, &[]), PamCode::Success);
        daemon.finish();
    }

    #[test]
    fn reject_is_auth_err() {
        assert_eq!(
            one_attempt(vec![Response::Result {
                outcome: Outcome::Reject
            }]),
            PamCode::AuthErr
        );
    }

    #[test]
    fn every_unavailable_reason_is_authinfo_unavail() {
        for reason in UnavailableReason::ALL {
            let code = one_attempt(vec![
                Response::Info {
                    text: "hidden by quiet".into(),
                },
                Response::Result {
                    outcome: Outcome::Unavailable { reason },
                },
            ]);
            assert_eq!(code, PamCode::AuthinfoUnavail, "{reason:?}");
        }
    }

    #[test]
    fn every_daemon_error_kind_has_its_code() {
        for kind in ErrorKind::ALL {
            let want = match kind {
                ErrorKind::UnknownUser | ErrorKind::InvalidUserName => PamCode::UserUnknown,
                ErrorKind::Internal | ErrorKind::BadRequest => PamCode::ServiceErr,
                ErrorKind::AuthFailed => PamCode::AuthErr,
                ErrorKind::UnsupportedVersion
                | ErrorKind::PermissionDenied
                | ErrorKind::NotEnrolled
                | ErrorKind::Busy => PamCode::AuthinfoUnavail,
            };
            let code = one_attempt(vec![Response::Error {
                kind,
                message: "x".into(),
            }]);
            assert_eq!(code, want, "{kind:?}");
        }
    }

    #[test]
    fn version_refused_by_daemon_is_authinfo_unavail() {
        let daemon = FakeDaemon::start(vec![
            Step::Expect(Request::Hello {
                protocol_version: PROTOCOL_VERSION,
            }),
            Step::Send(Response::Error {
                kind: ErrorKind::UnsupportedVersion,
                message: "speaks 2".into(),
            }),
        ]);
        let mut pam = ScriptedPam::alice([]);
        assert_eq!(run(&mut pam, &daemon, &[]), PamCode::AuthinfoUnavail);
        daemon.finish();
    }

    #[test]
    fn daemon_with_other_version_is_protocol_violation() {
        let daemon = FakeDaemon::start(vec![
            Step::Expect(Request::Hello {
                protocol_version: PROTOCOL_VERSION,
            }),
            Step::Send(Response::Hello {
                protocol_version: PROTOCOL_VERSION + 1,
            }),
        ]);
        let mut pam = ScriptedPam::alice([]);
        assert_eq!(run(&mut pam, &daemon, &[]), PamCode::AuthinfoUnavail);
        daemon.finish();
        assert!(pam
            .logs
            .iter()
            .any(|(l, m)| *l == LogLevel::Error && m.contains("protocol")));
    }

    #[test]
    fn max_tries_is_ignored_and_logged_one_request_is_sent() {
        // An old line with max-tries=3: one request, its reject is final (retrying is the
        // daemon's budget), and the log says the option is ignored, once per process (this is
        // the only test whose options carry a valid max-tries=).
        let daemon = auth_daemon([result(Outcome::Reject)]);
        let mut pam = ScriptedPam::alice([]);
        assert_eq!(run(&mut pam, &daemon, &["max-tries=3"]), PamCode::AuthErr);
        daemon.finish();
        assert!(
            pam.logs.iter().any(|(l, m)| *l == LogLevel::Error
                && m.contains("max-tries=3 is ignored")
                && m.contains("authnetd.toml")),
            "{:?}",
            pam.logs
        );
        let daemon = auth_daemon([result(Outcome::Reject)]);
        let mut pam = ScriptedPam::alice([]);
        assert_eq!(run(&mut pam, &daemon, &["max-tries=3"]), PamCode::AuthErr);
        daemon.finish();
        assert!(
            !pam.logs.iter().any(|(_, m)| m.contains("max-tries")),
            "logged again: {:?}",
            pam.logs
        );
    }

    #[test]
    fn daemon_down_is_authinfo_unavail() {
        let dir = tempfile::tempdir().unwrap();
        // ENOENT
        let absent = format!("socket={}", dir.path().join("absent.sock").display());
        let mut pam = ScriptedPam::alice([]);
        assert_eq!(
            authenticate(&mut pam, &[&absent], false),
            PamCode::AuthinfoUnavail
        );
        // ECONNREFUSED: a socket file nobody listens on.
        let stale = dir.path().join("stale.sock");
        drop(UnixListener::bind(&stale).unwrap());
        let stale = format!("socket={}", stale.display());
        let mut pam = ScriptedPam::alice([]);
        assert_eq!(
            authenticate(&mut pam, &[&stale], false),
            PamCode::AuthinfoUnavail
        );
    }

    #[test]
    fn daemon_dying_mid_call_is_authinfo_unavail() {
        // Dies right after hello (EOF before the result).
        let daemon = auth_daemon([info("Look at the camera")]);
        let mut pam = ScriptedPam::alice([Expect::Info("Look at the camera")]);
        assert_eq!(run(&mut pam, &daemon, &[]), PamCode::AuthinfoUnavail);
        daemon.finish();
        // Dies in the middle of a frame.
        let daemon = auth_daemon([Step::Raw(vec![0, 0, 0, 50, b'{'])]);
        let mut pam = ScriptedPam::alice([]);
        assert_eq!(run(&mut pam, &daemon, &[]), PamCode::AuthinfoUnavail);
        daemon.finish();
    }

    #[test]
    fn daemon_garbage_is_authinfo_unavail() {
        for raw in [
            vec![0xFF, 0xFF, 0xFF, 0xFF],
            vec![0, 0, 0, 3, b'a', b'b', b'c'],
            // Well-framed, but with a field the protocol does not have.
            [&[0u8, 0, 0, 25][..], br#"{"type":"hello","x":true}"#].concat(),
        ] {
            let daemon = FakeDaemon::start(vec![
                Step::Expect(Request::Hello {
                    protocol_version: PROTOCOL_VERSION,
                }),
                Step::Raw(raw),
            ]);
            let mut pam = ScriptedPam::alice([]);
            assert_eq!(run(&mut pam, &daemon, &[]), PamCode::AuthinfoUnavail);
            daemon.finish();
            assert!(
                pam.logs.iter().any(|(l, _)| *l == LogLevel::Error),
                "garbage is logged"
            );
        }
        // A well-formed but out-of-place message.
        let code = one_attempt(vec![Response::Done { text: "?".into() }]);
        assert_eq!(code, PamCode::AuthinfoUnavail);
    }

    #[test]
    fn silent_daemon_times_out_within_budget() {
        let daemon = auth_daemon([Step::Stall(Duration::from_secs(3))]);
        let mut pam = ScriptedPam::alice([]);
        let start = Instant::now();
        let code = run(&mut pam, &daemon, &["timeout=1", "debug"]);
        let elapsed = start.elapsed();
        assert_eq!(code, PamCode::AuthinfoUnavail);
        // The budget is 1 s; the daemon would have answered (nothing) after 3 s.
        assert!(elapsed < Duration::from_millis(2500), "took {elapsed:?}");
        assert!(
            pam.logs.iter().any(|(_, m)| m.contains("TimedOut")),
            "{:?}",
            pam.logs
        );
        daemon.finish();
    }

    #[test]
    fn dripping_daemon_cannot_stretch_the_deadline() {
        // One byte every 400 ms: each read alone is within the timeout, the sum is not.
        let daemon = auth_daemon(
            [0u8, 0, 0, 40, b'{', b'"', b't']
                .into_iter()
                .flat_map(|b| [Step::Raw(vec![b]), Step::Stall(Duration::from_millis(400))]),
        );
        let mut pam = ScriptedPam::alice([]);
        let start = Instant::now();
        assert_eq!(
            run(&mut pam, &daemon, &["timeout=1"]),
            PamCode::AuthinfoUnavail
        );
        assert!(
            start.elapsed() < Duration::from_millis(2000),
            "took {:?}",
            start.elapsed()
        );
        // The daemon's thread is left to finish on its own: its later writes fail once the
        // client has gone, which is the point.
        drop(daemon);
    }

    #[test]
    fn remote_sessions_skip_without_touching_the_daemon() {
        // No user() call is scripted and the socket does not exist: a skip must do neither.
        let nowhere = "socket=/nonexistent/authnetd.sock";
        let cases = [
            ScriptedPam::new(vec![]).with_item(Item::RHost, "192.0.2.7"),
            ScriptedPam::new(vec![]).with_env(EnvSource::Pam, "SSH_CONNECTION", "a 1 b 22"),
            ScriptedPam::new(vec![]).with_env(EnvSource::Process, "SSH_CLIENT", "a 1 22"),
            ScriptedPam::new(vec![]).with_env(EnvSource::Parent, "SSH_TTY", "/dev/pts/1"),
        ];
        for mut pam in cases {
            assert_eq!(
                authenticate(&mut pam, &[nowhere], false),
                PamCode::AuthinfoUnavail
            );
        }
    }

    #[test]
    fn local_rhost_and_empty_markers_do_not_skip() {
        for rhost in ["", "localhost", "127.0.0.1", "::1"] {
            let mut pam = ScriptedPam::alice([])
                .with_item(Item::RHost, rhost)
                .with_env(EnvSource::Process, "SSH_TTY", "");
            // It reached pam_get_user (scripted), then failed to connect.
            let code = authenticate(&mut pam, &["socket=/nonexistent/authnetd.sock"], false);
            assert_eq!(code, PamCode::AuthinfoUnavail);
        }
    }

    #[test]
    fn rhost_and_tty_are_forwarded() {
        let daemon = FakeDaemon::start(
            hello()
                .into_iter()
                .chain([
                    Step::Expect(Request::Authenticate {
                        user: "alice".into(),
                        service: "login".into(),
                        rhost: Some("localhost".into()),
                        tty: Some("tty1".into()),
                    }),
                    result(Outcome::Accept),
                ])
                .collect(),
        );
        let mut pam = ScriptedPam::alice([])
            .with_item(Item::Service, "login")
            .with_item(Item::RHost, "localhost")
            .with_item(Item::Tty, "tty1");
        assert_eq!(run(&mut pam, &daemon, &[]), PamCode::Success);
        daemon.finish();
    }

    #[test]
    fn silent_flag_and_quiet_suppress_info() {
        for (args, silent) in [(&["quiet"][..], false), (&[][..], true)] {
            let daemon = auth_daemon([info("Look at the camera"), result(Outcome::Accept)]);
            // No Info expected: a relayed info would fail the script.
            let mut pam = ScriptedPam::alice([]);
            let socket = daemon.arg();
            let mut all = vec![socket.as_str()];
            all.extend_from_slice(args);
            assert_eq!(authenticate(&mut pam, &all, silent), PamCode::Success);
            daemon.finish();
        }
    }

    #[test]
    fn refused_conversation_does_not_fail_authentication() {
        let daemon = auth_daemon([info("hi"), result(Outcome::Accept)]);
        let mut pam = ScriptedPam::alice([Expect::Info("hi")]);
        pam.refuse_info = true;
        assert_eq!(run(&mut pam, &daemon, &[]), PamCode::Success);
        daemon.finish();
    }

    #[test]
    fn bad_options_are_service_err_before_anything_else() {
        for args in [
            &["bogus"][..],
            &["timeout=0"],
            &["max-tries=99"],
            &["socket=rel"],
        ] {
            let mut pam = ScriptedPam::new(vec![]);
            assert_eq!(
                authenticate(&mut pam, args, false),
                PamCode::ServiceErr,
                "{args:?}"
            );
            assert!(
                pam.logs.iter().any(|(l, _)| *l == LogLevel::Error),
                "bad options are logged"
            );
        }
    }

    #[test]
    fn missing_user_is_user_unknown() {
        let mut pam = ScriptedPam::new(vec![Expect::User(None)]);
        let code = authenticate(&mut pam, &["socket=/nonexistent/authnetd.sock"], false);
        assert_eq!(code, PamCode::UserUnknown);
    }

    #[test]
    fn debug_logs_only_with_debug_option() {
        let mut pam = ScriptedPam::alice([]);
        authenticate(&mut pam, &["socket=/nonexistent/a.sock"], false);
        assert!(pam.logs.is_empty(), "{:?}", pam.logs);
        let mut pam = ScriptedPam::alice([]);
        authenticate(&mut pam, &["socket=/nonexistent/a.sock", "debug"], false);
        assert!(pam
            .logs
            .iter()
            .any(|(l, m)| *l == LogLevel::Debug && m.contains("DaemonUnreachable")));
    }

    /// `prompt=concurrent` against `daemon_arg` with `extra` args; the code and the call's
    /// duration.
    fn concurrent(pam: &mut ScriptedPam, daemon_arg: &str, extra: &[&str]) -> (PamCode, Duration) {
        let mut all = vec![daemon_arg, "prompt=concurrent", "debug"];
        all.extend_from_slice(extra);
        let start = Instant::now();
        let code = authenticate(pam, &all, false);
        (code, start.elapsed())
    }

    #[test]
    fn concurrent_face_wins_first() {
        // The daemon accepts at once; the user would type only after 10 s.
        let daemon = auth_daemon([info("Look at the camera"), result(Outcome::Accept)]);
        // No Info and no SetAuthtok expected: the info cannot interrupt the prompt, and the
        // empty answer of an ended prompt is not a password.
        let mut pam = ScriptedPam::alice([Expect::Prompt(Answer::Typed(
            Duration::from_secs(10),
            "secret",
        ))]);
        let (code, took) = concurrent(&mut pam, &daemon.arg(), &[]);
        assert_eq!(code, PamCode::Success);
        assert!(pam.woken, "the face match ends the prompt");
        assert!(took < Duration::from_secs(5), "took {took:?}");
        assert!(pam.prompt_delay() < Duration::from_millis(50));
        assert!(
            pam.logs
                .iter()
                .any(|(_, m)| m.contains("Look at the camera")),
            "{:?}",
            pam.logs
        );
        daemon.finish();
    }

    #[test]
    fn concurrent_password_typed_first_cancels_the_scan() {
        // The daemon never answers: only the module closing the socket ends its script.
        let daemon = auth_daemon([Step::ExpectClosed]);
        let mut pam = ScriptedPam::alice([
            Expect::Prompt(Answer::Typed(Duration::from_millis(200), "secret")),
            Expect::SetAuthtok("secret"),
        ]);
        let (code, took) = concurrent(&mut pam, &daemon.arg(), &["timeout=30"]);
        assert_eq!(code, PamCode::Ignore);
        assert!(!pam.woken);
        // Typed after 200 ms; the scan is abandoned at once, not after the 30 s budget.
        assert!(took < Duration::from_secs(2), "took {took:?}");
        assert!(pam.prompt_delay() < Duration::from_millis(50));
        daemon.finish();
    }

    #[test]
    fn concurrent_daemon_down_prompts_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let absent = format!("socket={}", dir.path().join("absent.sock").display());
        let mut pam = ScriptedPam::alice([
            Expect::Prompt(Answer::Typed(Duration::from_millis(100), "secret")),
            Expect::SetAuthtok("secret"),
        ]);
        let (code, _) = concurrent(&mut pam, &absent, &[]);
        assert_eq!(code, PamCode::Ignore);
        assert!(pam.prompt_delay() < Duration::from_millis(50));
        assert!(
            pam.logs
                .iter()
                .any(|(_, m)| m.contains("DaemonUnreachable")),
            "{:?}",
            pam.logs
        );
    }

    #[test]
    fn concurrent_daemon_slow_beyond_timeout() {
        // The 1 s budget runs out while the prompt is up; the password typed at 1.5 s still
        // goes to the next module.
        let daemon = auth_daemon([Step::Stall(Duration::from_secs(4))]);
        let mut pam = ScriptedPam::alice([
            Expect::Prompt(Answer::Typed(Duration::from_millis(1500), "secret")),
            Expect::SetAuthtok("secret"),
        ]);
        let (code, took) = concurrent(&mut pam, &daemon.arg(), &["timeout=1"]);
        assert_eq!(code, PamCode::Ignore);
        assert!(!pam.woken);
        assert!(pam.prompt_delay() < Duration::from_millis(50));
        assert!(
            took >= Duration::from_millis(1500) && took < Duration::from_secs(3),
            "took {took:?}"
        );
        assert!(
            pam.logs.iter().any(|(_, m)| m.contains("TimedOut")),
            "{:?}",
            pam.logs
        );
        drop(daemon);
    }

    #[test]
    fn concurrent_face_reject_leaves_the_prompt_to_the_user() {
        let daemon = auth_daemon([result(Outcome::Reject)]);
        let mut pam = ScriptedPam::alice([
            Expect::Prompt(Answer::Typed(Duration::from_millis(300), "secret")),
            Expect::SetAuthtok("secret"),
        ]);
        let (code, _) = concurrent(&mut pam, &daemon.arg(), &[]);
        assert_eq!(code, PamCode::Ignore);
        assert!(!pam.woken, "a reject must not end the prompt");
        daemon.finish();
    }

    #[test]
    fn concurrent_empty_answer_waits_for_the_face() {
        for (outcome, want) in [
            (Outcome::Reject, PamCode::AuthErr),
            (Outcome::Accept, PamCode::Success),
        ] {
            let daemon = auth_daemon([Step::Stall(Duration::from_millis(300)), result(outcome)]);
            // Enter on an empty line at once: no PAM_AUTHTOK, the face decides.
            let mut pam = ScriptedPam::alice([Expect::Prompt(Answer::Typed(Duration::ZERO, ""))]);
            let (code, took) = concurrent(&mut pam, &daemon.arg(), &[]);
            assert_eq!(code, want, "{outcome:?}");
            assert!(took >= Duration::from_millis(300), "took {took:?}");
            daemon.finish();
        }
    }

    #[test]
    fn concurrent_refused_prompt_falls_back_to_the_face() {
        let daemon = auth_daemon([result(Outcome::Accept)]);
        let mut pam = ScriptedPam::alice([Expect::Prompt(Answer::Refused)]);
        let (code, _) = concurrent(&mut pam, &daemon.arg(), &[]);
        assert_eq!(code, PamCode::Success);
        daemon.finish();
    }

    #[test]
    fn concurrent_skips_remote_sessions_without_prompting() {
        let mut pam = ScriptedPam::new(vec![]).with_item(Item::RHost, "192.0.2.7");
        let (code, _) = concurrent(&mut pam, "socket=/nonexistent/a.sock", &[]);
        assert_eq!(code, PamCode::AuthinfoUnavail);
    }
}
