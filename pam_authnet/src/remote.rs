//! Remote-session detection: a local camera cannot vouch for someone typing over SSH.
//!
//! These are pure functions over strings and environment blocks; the caller gathers the
//! inputs (PAM items, `pam_getenv`, the process environment, `/proc/<ppid>/environ`).

/// Environment variables whose presence (non-empty) marks an SSH session.
pub const SSH_MARKERS: [&str; 3] = ["SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY"];

/// Largest `/proc/<ppid>/environ` read: environments beyond 1 MiB are not legitimate, and the
/// read must stay bounded inside a login prompt.
pub const MAX_ENVIRON: u64 = 1024 * 1024;

/// True when `PAM_RHOST` names this machine (or is empty): the one rule of
/// [`authnet_ipc::remote`], which the daemon applies too.
pub use authnet_ipc::is_local_rhost;

/// Looks `name` up in a NUL-separated `NAME=value` block (the `/proc/<pid>/environ` format) and
/// returns the value, if present.
pub fn environ_lookup<'a>(block: &'a [u8], name: &str) -> Option<&'a [u8]> {
    block.split(|b| *b == 0).find_map(|entry| {
        let rest = entry.strip_prefix(name.as_bytes())?;
        rest.strip_prefix(b"=")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_hosts() {
        for h in ["", "localhost", "127.0.0.1", "::1", " localhost "] {
            assert!(is_local_rhost(h), "{h:?}");
        }
        for h in [
            "example.com",
            "10.0.0.2",
            "127.0.0.2",
            "::2",
            "localhost.evil.com",
        ] {
            assert!(!is_local_rhost(h), "{h:?}");
        }
    }

    #[test]
    fn environ_parsing() {
        let block = b"HOME=/root\0SSH_CONNECTION=1.2.3.4 5 6.7.8.9 22\0SSH_TTYX=no\0EMPTY=\0";
        assert_eq!(
            environ_lookup(block, "SSH_CONNECTION"),
            Some(&b"1.2.3.4 5 6.7.8.9 22"[..])
        );
        assert_eq!(
            environ_lookup(block, "SSH_TTY"),
            None,
            "prefix of another name"
        );
        assert_eq!(environ_lookup(block, "EMPTY"), Some(&b""[..]));
        assert_eq!(environ_lookup(block, "HOME"), Some(&b"/root"[..]));
        assert_eq!(environ_lookup(b"", "HOME"), None);
        assert_eq!(environ_lookup(b"NOEQUALS\0", "NOEQUALS"), None);
    }
}
