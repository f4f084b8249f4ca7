//! Who is running the tool, and which user names are acceptable.
//!
//! The default `--user` is the account of the real uid, looked up with `getpwuid_r` (through
//! `nix`). `$SUDO_USER` is deliberately ignored: it is set by whoever ran the tool and proves
//! nothing; the daemon decides authorization from the socket peer's credentials anyway.

use nix::unistd::{geteuid, getuid, Uid, User};

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
    geteuid().is_root()
}

/// The name of the real uid's account, else `$USER`.
pub fn invoking_user() -> Option<String> {
    name_of_uid(getuid()).or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
}

/// The account name of `uid`, if the passwd database has one (a lookup error counts as none).
fn name_of_uid(uid: Uid) -> Option<String> {
    User::from_uid(uid).ok().flatten().map(|u| u.name)
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
        assert_eq!(name_of_uid(Uid::from_raw(0)).as_deref(), Some("root"));
    }
}
