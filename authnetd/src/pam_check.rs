//! The account-password check that guards a non-root user's own `enroll` and `remove`: a
//! minimal PAM *client* (`pam_start` → `pam_authenticate` → `pam_acct_mgmt` → `pam_end`) on the
//! service `enroll_pam_service` (default `authnet-enroll`, shipped as
//! `etc/pam.d/authnet-enroll`). This is the daemon's only PAM code and, besides [`crate::sys`],
//! its only unsafe code.
//!
//! The conversation answers every `PAM_PROMPT_ECHO_OFF` prompt with the password and refuses
//! `PAM_PROMPT_ECHO_ON` (nothing but the password may be asked for: a module wanting a user
//! name or an OTP is a misconfiguration, and answering it with the password would leak it).
//! The password lives in zeroized buffers only; PAM frees the reply copy itself (Linux-PAM
//! modules overwrite replies before freeing them).
//!
//! The check runs on its own thread and is abandoned after a timeout, since a module may block
//! (LDAP, a dead NSS server); the thread then finishes, or not, on its own and holds nothing but
//! its copy of the password, wiped when it returns.

#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::mpsc;
use std::time::Duration;

use authnet_ipc::Secret;
use zeroize::Zeroizing;

const PAM_SUCCESS: c_int = 0;
const PAM_BUF_ERR: c_int = 5;
const PAM_PERM_DENIED: c_int = 6;
const PAM_AUTH_ERR: c_int = 7;
const PAM_CRED_INSUFFICIENT: c_int = 8;
const PAM_USER_UNKNOWN: c_int = 10;
const PAM_MAXTRIES: c_int = 11;
const PAM_NEW_AUTHTOK_REQD: c_int = 12;
const PAM_ACCT_EXPIRED: c_int = 13;
const PAM_CONV_ERR: c_int = 19;
const PAM_AUTHTOK_EXPIRED: c_int = 27;

const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;

const PAM_SILENT: c_int = 0x8000;
const PAM_DISALLOW_NULL_AUTHTOK: c_int = 0x0001;

/// Longest password passed to PAM (bounds the copy a peer controls; pam_unix stops at 512).
pub const MAX_PASSWORD: usize = 512;

/// `struct pam_message` (Linux-PAM, `<security/_pam_types.h>`).
#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

/// `struct pam_response`.
#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

type ConvFn = unsafe extern "C" fn(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int;

/// `struct pam_conv`.
#[repr(C)]
struct PamConv {
    conv: ConvFn,
    appdata_ptr: *mut c_void,
}

/// Opaque `pam_handle_t`.
#[repr(C)]
struct PamHandle {
    _private: [u8; 0],
}

#[link(name = "pam")]
extern "C" {
    fn pam_start(
        service_name: *const c_char,
        user: *const c_char,
        pam_conversation: *const PamConv,
        pamh: *mut *mut PamHandle,
    ) -> c_int;
    fn pam_authenticate(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_acct_mgmt(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_end(pamh: *mut PamHandle, pam_status: c_int) -> c_int;
}

/// Why the password was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PamCheckError {
    /// PAM said no: wrong password, unknown, locked or expired account (`auth_failed`).
    #[error("PAM refused the password or the account (code {0})")]
    Denied(i32),
    /// The password cannot be passed to PAM (NUL byte, too long) (`auth_failed`).
    #[error("the password cannot be checked: {0}")]
    Unusable(&'static str),
    /// PAM failed in a way that says nothing about the password (`internal`).
    #[error("PAM failed (code {0})")]
    Failed(i32),
    /// The check took longer than its budget (`internal`).
    #[error("the password check timed out after {0:?}")]
    TimedOut(Duration),
}

impl PamCheckError {
    /// True when the answer is about the password or account, not about PAM itself.
    pub fn is_denial(&self) -> bool {
        matches!(self, Self::Denied(_) | Self::Unusable(_))
    }
}

fn classify(code: c_int) -> Result<(), PamCheckError> {
    match code {
        PAM_SUCCESS => Ok(()),
        PAM_AUTH_ERR
        | PAM_PERM_DENIED
        | PAM_CRED_INSUFFICIENT
        | PAM_USER_UNKNOWN
        | PAM_MAXTRIES
        | PAM_NEW_AUTHTOK_REQD
        | PAM_ACCT_EXPIRED
        | PAM_AUTHTOK_EXPIRED => Err(PamCheckError::Denied(code)),
        other => Err(PamCheckError::Failed(other)),
    }
}

/// What the conversation answers with.
struct ConvData {
    /// The password and its terminating NUL (no NUL inside).
    password: Zeroizing<Vec<u8>>,
}

impl ConvData {
    fn new(password: &str) -> Result<Self, PamCheckError> {
        if password.as_bytes().contains(&0) {
            return Err(PamCheckError::Unusable("it contains a NUL byte"));
        }
        let mut v = Zeroizing::new(Vec::with_capacity(password.len() + 1));
        v.extend_from_slice(password.as_bytes());
        v.push(0);
        Ok(Self { password: v })
    }
}

/// Copies `bytes` (a NUL-terminated string) into a `malloc`ed buffer that PAM will `free`.
fn malloc_cstr(bytes: &[u8]) -> *mut c_char {
    // SAFETY: malloc of a non-zero size; a null result is handled by the caller.
    let p = unsafe { libc::malloc(bytes.len()) }.cast::<c_char>();
    if !p.is_null() {
        // SAFETY: `p` points to `bytes.len()` freshly allocated bytes that cannot overlap
        // `bytes`.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr().cast(), p, bytes.len()) };
    }
    p
}

/// Frees the first `n` replies of `r` (wiping them) and `r` itself.
///
/// # Safety
/// `r` is a `calloc`ed array of at least `n` responses whose `resp` are null or `malloc`ed
/// NUL-terminated strings.
unsafe fn free_replies(r: *mut PamResponse, n: usize) {
    for i in 0..n {
        // SAFETY: `i < n` is within the array (caller's contract).
        let item = unsafe { &mut *r.add(i) };
        if !item.resp.is_null() {
            // SAFETY: `resp` is a NUL-terminated malloc'ed string (caller's contract); it is
            // wiped over its length and freed once.
            unsafe {
                let len = libc::strlen(item.resp);
                std::ptr::write_bytes(item.resp, 0, len);
                libc::free(item.resp.cast());
            }
            item.resp = std::ptr::null_mut();
        }
    }
    // SAFETY: `r` came from calloc (caller's contract) and is freed once.
    unsafe { libc::free(r.cast()) };
}

/// The conversation function.
///
/// # Safety
/// Called by libpam with `num_msg` messages in `msg` (Linux-PAM layout: an array of pointers),
/// a writable `resp` and the `appdata_ptr` given to `pam_start`, which points to a live
/// [`ConvData`].
unsafe extern "C" fn conversation(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int {
    // Never unwind into C. Nothing below panics, but the guard costs nothing.
    let r = std::panic::catch_unwind(|| {
        // SAFETY: forwarded from this function's own contract.
        unsafe { converse(num_msg, msg, resp, appdata_ptr) }
    });
    r.unwrap_or(PAM_CONV_ERR)
}

/// The body of [`conversation`].
///
/// # Safety
/// As [`conversation`].
unsafe fn converse(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int {
    // PAM_MAX_NUM_MSG is 32.
    if num_msg <= 0 || num_msg > 32 || msg.is_null() || resp.is_null() || appdata_ptr.is_null() {
        return PAM_CONV_ERR;
    }
    let n = num_msg as usize;
    // SAFETY: `appdata_ptr` is the `&ConvData` passed to pam_start, alive for the whole
    // PAM transaction (see `check_blocking`).
    let data = unsafe { &*appdata_ptr.cast::<ConvData>() };
    // SAFETY: calloc of `n` zeroed responses; null is handled.
    let replies =
        unsafe { libc::calloc(n, std::mem::size_of::<PamResponse>()) }.cast::<PamResponse>();
    if replies.is_null() {
        return PAM_BUF_ERR;
    }
    for i in 0..n {
        // SAFETY: libpam passes `num_msg` valid message pointers.
        let m = unsafe { *msg.add(i) };
        if m.is_null() {
            // SAFETY: `replies` is our calloc'ed array of `n`, filled up to `i`.
            unsafe { free_replies(replies, n) };
            return PAM_CONV_ERR;
        }
        // SAFETY: a non-null message pointer from libpam points to a valid pam_message.
        let style = unsafe { (*m).msg_style };
        match style {
            PAM_PROMPT_ECHO_OFF => {
                let p = malloc_cstr(&data.password);
                if p.is_null() {
                    // SAFETY: as above.
                    unsafe { free_replies(replies, n) };
                    return PAM_BUF_ERR;
                }
                // SAFETY: `i < n`, inside our array.
                unsafe { (*replies.add(i)).resp = p };
            }
            PAM_PROMPT_ECHO_ON => {
                // SAFETY: as above.
                unsafe { free_replies(replies, n) };
                return PAM_CONV_ERR;
            }
            // PAM_ERROR_MSG, PAM_TEXT_INFO and others: nobody reads them; a null reply is fine.
            _ => {}
        }
    }
    // SAFETY: `resp` is writable (libpam's contract); libpam now owns `replies`.
    unsafe { *resp = replies };
    PAM_SUCCESS
}

/// One blocking PAM transaction on the calling thread.
fn check_blocking(service: &CString, user: &CString, data: &ConvData) -> Result<(), PamCheckError> {
    let conv = PamConv {
        conv: conversation,
        appdata_ptr: (data as *const ConvData).cast_mut().cast(),
    };
    let mut pamh: *mut PamHandle = std::ptr::null_mut();
    // SAFETY: the strings are NUL-terminated and, like `conv` and `data`, outlive the
    // transaction, which ends with pam_end below on every path; `pamh` is writable.
    let rc = unsafe { pam_start(service.as_ptr(), user.as_ptr(), &conv, &mut pamh) };
    if rc != PAM_SUCCESS || pamh.is_null() {
        return Err(PamCheckError::Failed(rc));
    }
    let flags = PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK;
    // SAFETY: `pamh` is the live handle pam_start returned.
    let mut rc = unsafe { pam_authenticate(pamh, flags) };
    if rc == PAM_SUCCESS {
        // SAFETY: as above.
        rc = unsafe { pam_acct_mgmt(pamh, flags) };
    }
    // SAFETY: ends the transaction begun above, exactly once; `pamh` is not used after.
    unsafe { pam_end(pamh, rc) };
    classify(rc)
}

/// Checks `password` for `user` through the PAM service `service`, giving up after `timeout`.
pub fn check_password(
    service: &str,
    user: &str,
    password: &Secret,
    timeout: Duration,
) -> Result<(), PamCheckError> {
    let pw = password.expose();
    if pw.len() > MAX_PASSWORD {
        return Err(PamCheckError::Unusable("longer than 512 bytes"));
    }
    let data = ConvData::new(pw)?;
    let service = CString::new(service).map_err(|_| PamCheckError::Failed(PAM_CONV_ERR))?;
    let user = CString::new(user).map_err(|_| PamCheckError::Unusable("bad user name"))?;
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("pam-check".into())
        .spawn(move || {
            let r = check_blocking(&service, &user, &data);
            drop(data); // Wiped now, whether or not anyone still waits.
            let _ = tx.send(r);
        });
    if spawned.is_err() {
        return Err(PamCheckError::Failed(PAM_BUF_ERR));
    }
    match rx.recv_timeout(timeout) {
        Ok(r) => r,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(PamCheckError::TimedOut(timeout)),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(PamCheckError::Failed(PAM_CONV_ERR)),
    }
}

/// First delay after a wrong password; it doubles with each further consecutive failure.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);

/// Longest delay between two password checks after failures.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Per-peer-uid and per-target-user backoff of the enrolment password check: after `n ≥ 2`
/// consecutive wrong passwords a key (the peer's uid, and the account) may be checked again
/// only [`BACKOFF_BASE`] × 2^(n-2) (at most [`BACKOFF_MAX`]) after the last failure (one typo
/// costs nothing beyond PAM's own delay), and only
/// one check per key runs at a time, so opening many connections does not multiply the
/// guessing rate. A right password clears both keys. Refusals are immediate and never reach
/// PAM. Kept in memory: a daemon restart forgets it, while pam_faillock in the service keeps
/// its own persistent tally.
#[derive(Debug, Default)]
pub struct Backoff {
    state: std::sync::Mutex<std::collections::HashMap<Key, Entry>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Uid(u32),
    User(String),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last: std::time::Instant,
    busy: bool,
}

/// Why a check may not run now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Another check for the same peer uid or account is running.
    Busy,
    /// Too soon after a failure: this much longer.
    For(Duration),
}

impl Backoff {
    fn delay(failures: u32) -> Duration {
        if failures < 2 {
            return Duration::ZERO;
        }
        BACKOFF_BASE
            .saturating_mul(1u32 << (failures - 2).min(16))
            .min(BACKOFF_MAX)
    }

    fn keys(uid: u32, user: &str) -> [Key; 2] {
        [Key::Uid(uid), Key::User(user.to_owned())]
    }

    /// Reserves a check of `user`'s password by peer `uid`; on `Ok`, [`Backoff::end`] must
    /// follow.
    pub fn begin(&self, uid: u32, user: &str) -> Result<(), Wait> {
        let now = std::time::Instant::now();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let keys = Self::keys(uid, user);
        for k in &keys {
            if let Some(e) = st.get(k) {
                if e.busy {
                    return Err(Wait::Busy);
                }
                let ready = e.last + Self::delay(e.failures);
                if ready > now {
                    return Err(Wait::For(ready - now));
                }
            }
        }
        for k in keys {
            st.entry(k)
                .or_insert(Entry {
                    failures: 0,
                    last: now,
                    busy: false,
                })
                .busy = true;
        }
        Ok(())
    }

    /// Ends a check begun with [`Backoff::begin`]: `Some(true)` right password, `Some(false)`
    /// wrong, `None` no verdict (PAM failed or timed out).
    pub fn end(&self, uid: u32, user: &str, verdict: Option<bool>) {
        let now = std::time::Instant::now();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for k in Self::keys(uid, user) {
            match verdict {
                Some(true) => {
                    st.remove(&k);
                }
                v => {
                    if let Some(e) = st.get_mut(&k) {
                        e.busy = false;
                        if v == Some(false) {
                            e.failures = e.failures.saturating_add(1);
                            e.last = now;
                        }
                        if e.failures == 0 {
                            st.remove(&k);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn codes_split_into_denials_and_failures() {
        assert_eq!(classify(PAM_SUCCESS), Ok(()));
        for c in [
            PAM_AUTH_ERR,
            PAM_USER_UNKNOWN,
            PAM_ACCT_EXPIRED,
            PAM_MAXTRIES,
        ] {
            assert!(classify(c).unwrap_err().is_denial(), "{c}");
        }
        // PAM_SYSTEM_ERR, PAM_ABORT, PAM_CONV_ERR say nothing about the password.
        for c in [4, 26, PAM_CONV_ERR] {
            assert!(!classify(c).unwrap_err().is_denial(), "{c}");
        }
    }

    #[test]
    fn unusable_passwords_are_refused_before_pam() {
        let nul = Secret::new("a\0b".into());
        let r = check_password("authnet-enroll", "nobody", &nul, Duration::from_secs(1));
        assert_eq!(r, Err(PamCheckError::Unusable("it contains a NUL byte")));
        let long = Secret::new("x".repeat(MAX_PASSWORD + 1));
        let r = check_password("authnet-enroll", "nobody", &long, Duration::from_secs(1));
        assert!(r.unwrap_err().is_denial());
    }

    #[test]
    fn the_conversation_answers_only_hidden_prompts() {
        let data = ConvData::new("s3cret").unwrap();
        let prompt = CString::new("Password: ").unwrap();
        let hidden = PamMessage {
            msg_style: PAM_PROMPT_ECHO_OFF,
            msg: prompt.as_ptr(),
        };
        let info = PamMessage {
            msg_style: 4,
            msg: prompt.as_ptr(),
        };
        let mut msgs = [&hidden as *const PamMessage, &info as *const PamMessage];
        let mut resp: *mut PamResponse = std::ptr::null_mut();
        let app = (&data as *const ConvData).cast_mut().cast();
        // SAFETY: a valid message array, a writable reply pointer and live appdata.
        let rc = unsafe { conversation(2, msgs.as_mut_ptr(), &mut resp, app) };
        assert_eq!(rc, PAM_SUCCESS);
        // SAFETY: the conversation returned a calloc'ed array of 2 replies.
        unsafe {
            let first = std::ffi::CStr::from_ptr((*resp).resp);
            assert_eq!(first.to_str().unwrap(), "s3cret");
            assert!((*resp.add(1)).resp.is_null());
            free_replies(resp, 2);
        }
        let echo = PamMessage {
            msg_style: PAM_PROMPT_ECHO_ON,
            msg: prompt.as_ptr(),
        };
        let mut msgs = [&echo as *const PamMessage];
        let mut resp: *mut PamResponse = std::ptr::null_mut();
        // SAFETY: as above.
        let rc = unsafe { conversation(1, msgs.as_mut_ptr(), &mut resp, app) };
        assert_eq!(rc, PAM_CONV_ERR);
        assert!(resp.is_null());
    }

    #[test]
    fn backoff_doubles_per_uid_and_per_user_and_allows_one_check_at_a_time() {
        let b = Backoff::default();
        b.begin(1000, "alice").unwrap();
        assert_eq!(b.begin(1000, "alice"), Err(Wait::Busy));
        assert_eq!(b.begin(1000, "bob"), Err(Wait::Busy), "same uid");
        assert_eq!(b.begin(1001, "alice"), Err(Wait::Busy), "same user");
        b.end(1000, "alice", Some(false));
        // One typo is free.
        b.begin(1000, "alice").unwrap();
        b.end(1000, "alice", Some(false));
        assert!(matches!(b.begin(1000, "alice"), Err(Wait::For(d)) if d <= BACKOFF_BASE));
        assert!(b.begin(1002, "carol").is_ok(), "others are not affected");
        b.end(1002, "carol", Some(true));
        assert_eq!(Backoff::delay(1), Duration::ZERO);
        assert_eq!(Backoff::delay(2), BACKOFF_BASE);
        assert_eq!(Backoff::delay(5), BACKOFF_BASE * 8);
        assert_eq!(Backoff::delay(40), BACKOFF_MAX);
        std::thread::sleep(BACKOFF_BASE);
        b.begin(1000, "alice").unwrap();
        b.end(1000, "alice", Some(true));
        b.begin(1000, "alice").unwrap();
        b.end(1000, "alice", None);
        b.begin(1000, "alice").unwrap();
    }
}
