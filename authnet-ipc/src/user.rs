//! The one rule for account names in requests, shared by the daemon (which enforces it before
//! any file is touched) and the clients (which use it for a clearer message up front).
//!
//! A name is 1 to [`MAX_USER_NAME`] bytes of `[A-Za-z0-9._-]`, plus an optional trailing `$`
//! (Samba machine accounts), and does not start with `-` or `.`. So it is always a single,
//! harmless path component under the state directory (no `/`, `..`, NUL, control characters
//! or non-ASCII look-alikes), and it is a name: a purely numeric name is looked up as a name,
//! never taken for a uid.

/// Longest accepted account name, in bytes. Linux's `LOGIN_NAME_MAX` is 256 and useradd's
/// default limit 32; directory services (LDAP, SSSD) can hand out names longer than 32.
pub const MAX_USER_NAME: usize = 64;

/// Why a name is not an acceptable account name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserNameError {
    /// The empty string (or a lone `$`).
    #[error("a user name cannot be empty")]
    Empty,
    /// Over [`MAX_USER_NAME`] bytes.
    #[error("a user name is at most {MAX_USER_NAME} bytes, this one is {0}")]
    TooLong(usize),
    /// Starts with `-` or `.`.
    #[error("a user name cannot start with '-' or '.'")]
    BadStart,
    /// Holds a character outside `[A-Za-z0-9._-]`.
    #[error("a user name may hold only letters, digits, '_', '-' and '.', not {0:?}")]
    BadChar(char),
}

/// Checks `name` against the rule above.
pub fn check_user_name(name: &str) -> Result<(), UserNameError> {
    let body = name.strip_suffix('$').unwrap_or(name);
    if body.is_empty() {
        return Err(UserNameError::Empty);
    }
    if name.len() > MAX_USER_NAME {
        return Err(UserNameError::TooLong(name.len()));
    }
    if body.starts_with(['-', '.']) {
        return Err(UserNameError::BadStart);
    }
    if let Some(c) = body
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(UserNameError::BadChar(c));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn accounts_pass() {
        for ok in [
            "root",
            "nobody",
            "a",
            "alice.b",
            "x_y-z",
            "HOST$",
            "u1",
            "0",
            "65534",
            &"a".repeat(MAX_USER_NAME),
        ] {
            assert_eq!(check_user_name(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn hostile_names_fail_with_the_reason() {
        use UserNameError as E;
        for (bad, why) in [
            ("", E::Empty),
            ("$", E::Empty),
            ("..", E::BadStart),
            (".", E::BadStart),
            (".hidden", E::BadStart),
            ("-rf", E::BadStart),
            ("../x", E::BadStart),
            ("a/b", E::BadChar('/')),
            ("a\0b", E::BadChar('\0')),
            ("a\nb", E::BadChar('\n')),
            ("sp ace", E::BadChar(' ')),
            ("é", E::BadChar('é')),
            ("a$b", E::BadChar('$')),
        ] {
            assert_eq!(check_user_name(bad), Err(why), "{bad:?}");
        }
        assert_eq!(check_user_name(&"x".repeat(300)), Err(E::TooLong(300)));
    }
}
