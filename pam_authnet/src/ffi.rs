//! All FFI of the module: the `pam_sm_*` entry points, libpam calls the `pam` crate does not
//! wrap (`pam_getenv`, `pam_syslog`, `pam_set_item` for `PAM_AUTHTOK`), the terminal input
//! injection that ends a `prompt=concurrent` prompt, and a Unix-socket connect with a timeout.
//!
//! Every entry point runs inside [`guarded`], which turns a panic into `PAM_SERVICE_ERR`:
//! this code runs inside sudo, login and gdm, and must never unwind into C or abort them.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::Duration;

use pam::constants::{PamFlag, PamResultCode, PAM_PROMPT_ECHO_OFF, PAM_SILENT, PAM_TEXT_INFO};
use pam::conv::Conv;
use pam::items::{RHost, Service, Tty};
use pam::module::{PamHandle, PamHooks};

use zeroize::Zeroizing;

use crate::logic::{
    self, AuthtokRefused, ConversationRefused, EnvSource, Item, LogLevel, PamCode, PamHandler,
    PromptWaker,
};
use crate::remote::MAX_ENVIRON;

// SAFETY: these declarations match <security/pam_appl.h> and <security/pam_ext.h> of
// Linux-PAM; `PamHandle` is the `pam` crate's opaque stand-in for `pam_handle_t`.
#[link(name = "pam")]
unsafe extern "C" {
    /// `const char *pam_getenv(pam_handle_t *pamh, const char *name);`
    fn pam_getenv(pamh: *mut PamHandle, name: *const c_char) -> *const c_char;
    /// `void pam_syslog(const pam_handle_t *pamh, int priority, const char *fmt, ...);`
    fn pam_syslog(pamh: *const PamHandle, priority: c_int, fmt: *const c_char, ...);
    /// `int pam_set_item(pam_handle_t *pamh, int item_type, const void *item);`
    fn pam_set_item(pamh: *mut PamHandle, item_type: c_int, item: *const c_void) -> c_int;
}

/// `PAM_AUTHTOK` from <security/_pam_types.h>.
const PAM_AUTHTOK: c_int = 6;

/// The module type handed to `pam_hooks!`, which generates the `extern "C"` entry points.
#[derive(Debug)]
pub struct AuthNet;

pam::pam_hooks!(AuthNet);

impl PamHooks for AuthNet {
    fn sm_authenticate(pamh: &mut PamHandle, args: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        guarded(|| {
            // A non-UTF-8 argument becomes an unknown option (PAM_SERVICE_ERR) via the U+FFFD.
            let args: Vec<String> = args
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut handler = RealPam {
                pamh,
                parent_environ: None,
            };
            logic::authenticate(&mut handler, &args, flags & PAM_SILENT != 0)
        })
    }

    /// Face authentication establishes no credentials.
    fn sm_setcred(_pamh: &mut PamHandle, _args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        guarded(|| PamCode::Success)
    }
}

/// Runs `f`, mapping a panic to `PAM_SERVICE_ERR`.
fn guarded(f: impl FnOnce() -> PamCode) -> PamResultCode {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(code) => to_raw(code),
        Err(payload) => {
            // Dropping a panic payload can itself panic; contain that too, then leak it.
            let _ = catch_unwind(AssertUnwindSafe(|| drop(payload))).map_err(std::mem::forget);
            PamResultCode::PAM_SERVICE_ERR
        }
    }
}

fn to_raw(code: PamCode) -> PamResultCode {
    match code {
        PamCode::Success => PamResultCode::PAM_SUCCESS,
        PamCode::AuthErr => PamResultCode::PAM_AUTH_ERR,
        PamCode::AuthinfoUnavail => PamResultCode::PAM_AUTHINFO_UNAVAIL,
        PamCode::UserUnknown => PamResultCode::PAM_USER_UNKNOWN,
        PamCode::ServiceErr => PamResultCode::PAM_SERVICE_ERR,
        PamCode::Ignore => PamResultCode::PAM_IGNORE,
    }
}

/// [`PamHandler`] over a live libpam handle.
struct RealPam<'h> {
    pamh: &'h mut PamHandle,
    /// The parent's environment block, read at most once per call.
    parent_environ: Option<Option<Vec<u8>>>,
}

impl RealPam<'_> {
    fn parent_environ(&mut self) -> Option<&[u8]> {
        self.parent_environ
            .get_or_insert_with(|| {
                let path = format!("/proc/{}/environ", std::os::unix::process::parent_id());
                let mut block = Vec::new();
                std::fs::File::open(path)
                    .and_then(|f| f.take(MAX_ENVIRON).read_to_end(&mut block))
                    .ok()
                    .map(|_| block)
            })
            .as_deref()
    }
}

fn cstr_item(s: &CStr) -> String {
    s.to_string_lossy().into_owned()
}

impl PamHandler for RealPam<'_> {
    fn user(&mut self) -> Option<String> {
        self.pamh.get_user(None).ok().filter(|u| !u.is_empty())
    }

    fn item(&self, item: Item) -> Option<String> {
        match item {
            Item::Service => self
                .pamh
                .get_item::<Service>()
                .ok()
                .flatten()
                .map(|s| cstr_item(s.0)),
            Item::RHost => self
                .pamh
                .get_item::<RHost>()
                .ok()
                .flatten()
                .map(|s| cstr_item(s.0)),
            Item::Tty => self
                .pamh
                .get_item::<Tty>()
                .ok()
                .flatten()
                .map(|s| cstr_item(s.0)),
        }
    }

    fn env(&mut self, source: EnvSource, name: &str) -> Option<String> {
        match source {
            EnvSource::Pam => {
                let name = CString::new(name).ok()?;
                // SAFETY: `self.pamh` is the live handle libpam passed to this entry point and
                // `name` is a NUL-terminated string that outlives the call. pam_getenv returns
                // NULL or a pointer into the handle's environment, valid until the handle's
                // environment changes; we copy it out before making any other PAM call.
                let value = unsafe { pam_getenv(std::ptr::from_mut(self.pamh), name.as_ptr()) };
                if value.is_null() {
                    return None;
                }
                // SAFETY: non-null, NUL-terminated, valid for this statement (see above).
                Some(cstr_item(unsafe { CStr::from_ptr(value) }))
            }
            EnvSource::Process => std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()),
            EnvSource::Parent => logic::lookup_in_block(self.parent_environ()?, name),
        }
    }

    fn info(&mut self, text: &str) -> Result<(), ConversationRefused> {
        let conv = match self.pamh.get_item::<Conv>() {
            Ok(Some(conv)) => conv,
            _ => return Err(ConversationRefused),
        };
        conv.send(PAM_TEXT_INFO, text)
            .map(|_| ())
            .map_err(|_| ConversationRefused)
    }

    type Waker = TtyWaker;

    fn prompt_waker(&mut self) -> Option<TtyWaker> {
        TtyWaker::open()
    }

    fn prompt_password(&mut self, prompt: &str) -> Result<Zeroizing<String>, ConversationRefused> {
        let conv = match self.pamh.get_item::<Conv>() {
            Ok(Some(conv)) => conv,
            _ => return Err(ConversationRefused),
        };
        match conv.send(PAM_PROMPT_ECHO_OFF, prompt) {
            Ok(Some(answer)) => Ok(Zeroizing::new(
                String::from_utf8_lossy(answer.as_bytes()).into_owned(),
            )),
            Ok(None) => Ok(Zeroizing::new(String::new())),
            Err(_) => Err(ConversationRefused),
        }
    }

    fn set_authtok(&mut self, token: &str) -> Result<(), AuthtokRefused> {
        if token.as_bytes().contains(&0) {
            return Err(AuthtokRefused);
        }
        let mut bytes = Zeroizing::new(Vec::with_capacity(token.len() + 1));
        bytes.extend_from_slice(token.as_bytes());
        bytes.push(0);
        // SAFETY: the handle is live; `bytes` is NUL-terminated (checked above: no inner NUL)
        // and valid for the call, and libpam copies string items (it strdup()s
        // PAM_AUTHTOK), so nothing keeps the pointer after `bytes` is zeroed and dropped.
        let rc = unsafe {
            pam_set_item(
                std::ptr::from_mut(self.pamh),
                PAM_AUTHTOK,
                bytes.as_ptr().cast(),
            )
        };
        if rc == PamResultCode::PAM_SUCCESS as c_int {
            Ok(())
        } else {
            Err(AuthtokRefused)
        }
    }

    fn log(&mut self, level: LogLevel, msg: &str) {
        let priority = match level {
            LogLevel::Debug => libc::LOG_DEBUG,
            LogLevel::Error => libc::LOG_ERR,
        };
        let msg = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
        // SAFETY: the handle is live; the format is a constant "%s" with exactly one
        // NUL-terminated string argument, so pam_syslog reads nothing else. pam_syslog logs
        // with LOG_AUTHPRIV and prefixes the module and service names.
        unsafe {
            pam_syslog(
                std::ptr::from_ref(&*self.pamh),
                priority,
                c"%s".as_ptr(),
                msg.as_ptr(),
            )
        };
    }
}

/// Ends a terminal password prompt by pushing a newline into the input queue of this
/// process's controlling terminal (`TIOCSTI` on `/dev/tty`), which is where `sudo`, `su` and
/// `login` read the password. The kernel allows it for the caller's own controlling
/// terminal, and with `dev.tty.legacy_tiocsti=0` to `CAP_SYS_ADMIN` only (which root-run
/// `sudo`, `su` and `login` have). When it is refused, the terminal is told to press Enter.
#[derive(Debug)]
pub struct TtyWaker {
    tty: File,
}

impl TtyWaker {
    /// The controlling terminal, or `None` (a graphical greeter, a daemon) when there is none.
    fn open() -> Option<Self> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
            .open("/dev/tty")
            .ok()
            .map(|tty| Self { tty })
    }
}

impl PromptWaker for TtyWaker {
    fn wake(&self) -> bool {
        let newline: c_char = b'\n' as c_char;
        // SAFETY: `self.tty` is an open terminal descriptor; TIOCSTI reads exactly one byte
        // from the pointer, which points at a live local. The result is checked.
        let rc = unsafe {
            libc::ioctl(
                self.tty.as_raw_fd(),
                libc::TIOCSTI,
                std::ptr::from_ref(&newline),
            )
        };
        if rc == 0 {
            return true;
        }
        // Best effort: the prompt stays until Enter; say so on the terminal itself.
        let _ = (&self.tty).write_all(b"\r\nFace recognised: press Enter.\r\n");
        false
    }
}

/// Connects to the Unix stream socket at `path`, giving up after `timeout`.
///
/// `UnixStream::connect` has no timeout, and a connect to a daemon whose backlog is full
/// blocks; Linux bounds a Unix-socket connect by `SO_SNDTIMEO`, which std cannot set before
/// connecting, so the socket is made here. A connect timeout is reported as `TimedOut`.
pub(crate) fn connect_unix(path: &Path, timeout: Duration) -> io::Result<UnixStream> {
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid (empty) value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    // Keep a trailing NUL: the path must be strictly shorter than sun_path.
    if bytes.is_empty() || bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket path unusable",
        ));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as c_char;
    }
    // SAFETY: plain syscall with constant arguments; the result is checked below.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a freshly created descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let tv = libc::timeval {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        // At least 1 µs: a zero timeval would mean "block forever".
        tv_usec: libc::suseconds_t::from(
            timeout
                .subsec_micros()
                .max(u32::from(timeout.as_secs() == 0)),
        )
        .min(999_999),
    };
    // SAFETY: `tv` is a valid timeval and its exact size is passed; `fd` is open.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            std::ptr::from_ref(&tv).cast(),
            socklen_of::<libc::timeval>(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `addr` is an initialised sockaddr_un and its exact size is passed; `fd` is open.
    let rc = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            std::ptr::from_ref(&addr).cast(),
            socklen_of::<libc::sockaddr_un>(),
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(match e.kind() {
            io::ErrorKind::WouldBlock => io::Error::from(io::ErrorKind::TimedOut),
            _ => e,
        });
    }
    Ok(UnixStream::from(fd))
}

/// `size_of::<T>()` as a `socklen_t` (both sockaddr_un and timeval are far below its range).
fn socklen_of<T>() -> libc::socklen_t {
    libc::socklen_t::try_from(std::mem::size_of::<T>()).unwrap_or(libc::socklen_t::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn guarded_maps_panics_to_service_err() {
        #[allow(clippy::panic)]
        let code = guarded(|| panic!("boom"));
        assert_eq!(code, PamResultCode::PAM_SERVICE_ERR);
        assert_eq!(guarded(|| PamCode::Success), PamResultCode::PAM_SUCCESS);
    }

    #[test]
    fn connect_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent.sock");
        let e = connect_unix(&missing, Duration::from_secs(1)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        let long = Path::new("/").join("x".repeat(200));
        assert_eq!(
            connect_unix(&long, Duration::from_secs(1))
                .unwrap_err()
                .kind(),
            io::ErrorKind::InvalidInput
        );
        // A socket file with no listener: ECONNREFUSED.
        let stale = dir.path().join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        assert_eq!(
            connect_unix(&stale, Duration::from_secs(1))
                .unwrap_err()
                .kind(),
            io::ErrorKind::ConnectionRefused
        );
    }

    #[test]
    fn connect_succeeds_to_listener() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ok.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let client = connect_unix(&path, Duration::from_millis(500)).unwrap();
        let (server, _) = listener.accept().unwrap();
        assert_eq!(
            client.peer_addr().unwrap().as_pathname(),
            server.local_addr().unwrap().as_pathname()
        );
    }
}
