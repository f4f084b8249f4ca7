//! The account-password check that guards a non-root user's own `enroll` and `remove`: a
//! minimal PAM *client* (`pam_start` → `pam_authenticate` → `pam_acct_mgmt` → `pam_end`) on the
//! service `enroll_pam_service` (default `authnet-enroll`, shipped as
//! `etc/pam.d/authnet-enroll`). The calls into libpam and the conversation function are in
//! [`crate::sys::pam`], the crate's one FFI file; this file has no unsafe code.
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

use std::ffi::{c_int, CString};
use std::sync::mpsc;
use std::time::Duration;

use authnet_ipc::Secret;
use zeroize::Zeroizing;

use crate::sys::pam::{
    PAM_ACCT_EXPIRED, PAM_AUTHTOK_EXPIRED, PAM_AUTH_ERR, PAM_BUF_ERR, PAM_CONV_ERR,
    PAM_CRED_INSUFFICIENT, PAM_MAXTRIES, PAM_NEW_AUTHTOK_REQD, PAM_PERM_DENIED, PAM_SUCCESS,
    PAM_USER_UNKNOWN,
};

/// Longest password passed to PAM (bounds the copy a peer controls; pam_unix stops at 512).
pub const MAX_PASSWORD: usize = 512;

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
            let r = classify(crate::sys::pam::authenticate(
                &service,
                &user,
                &data.password,
            ));
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
