//! Who is running the tool, and which user names are acceptable.
//!
//! The default `--user` is the account of the real uid, looked up with `getpwuid_r`.
//! `$SUDO_USER` is deliberately ignored: it is set by whoever ran the tool and proves nothing;
//! the daemon decides authorization from the socket peer's credentials anyway.

#![allow(unsafe_code)]

use std::ffi::CStr;

/// Why a user name was refused: the daemon's own rule ([`authnet_ipc::check_user_name`]),
/// checked here only for a clearer message before connecting.
pub fn check_user_name(name: &str) -> Result<(), String> {
    authnet_ipc::check_user_name(name).map_err(|e| e.to_string())
}

/// A clap value parser: a valid account name (a bad one is a usage error, exit status 2).
pub fn parse_user(s: &str) -> Result<String, String> {
    check_user_name(s).map(|()| s.to_owned())
}

/// Whether the effective uid is root (what the daemon sees through `SO_PEERCRED`).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The name of the real uid's account, else `$USER`.
pub fn invoking_user() -> Option<String> {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    name_of_uid(uid).or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
}

fn name_of_uid(uid: libc::uid_t) -> Option<String> {
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: an all-zero `passwd` is a valid value (null pointers, zero ids); it is only
        // read after getpwuid_r filled it in.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut out: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call: `pw` and `out` are live locals, and
        // `buf` is writable for `buf.len()` bytes.
        let rc =
            unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut out) };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || out.is_null() || pw.pw_name.is_null() {
            return None;
        }
        // SAFETY: on success `pw.pw_name` points to a NUL-terminated string inside `buf`,
        // which outlives this borrow.
        let name = unsafe { CStr::from_ptr(pw.pw_name) };
        return name.to_str().ok().map(str::to_owned);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_names() {
        for n in [
            "root",
            "nobody",
            "a",
            "alice.b",
            "x_y-z",
            "machine$",
            &"a".repeat(authnet_ipc::MAX_USER_NAME),
        ] {
            assert_eq!(check_user_name(n), Ok(()), "{n}");
        }
    }

    #[test]
    fn bad_names() {
        for n in [
            "",
            "$",
            "../x",
            "a/b",
            "a\0b",
            ".hidden",
            "-rf",
            "sp ace",
            "é",
            &"a".repeat(authnet_ipc::MAX_USER_NAME + 1),
        ] {
            assert!(check_user_name(n).is_err(), "{n:?}");
        }
    }

    #[test]
    fn root_is_uid_zero() {
        assert_eq!(name_of_uid(0).as_deref(), Some("root"));
    }
}
