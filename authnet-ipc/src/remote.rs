//! The one rule for "does this `PAM_RHOST` name this machine?", shared by `pam_authnet` (its
//! fast path) and `authnetd` (which decides).
//!
//! The rule is an *exact* set, compared after trimming ASCII whitespace and ignoring ASCII case
//! (host names are case-insensitive; addresses have no case): see [`LOCAL_HOSTS`]. Anything
//! else is remote. In particular prefixes do not count: `localhost.evil.com` is a name anyone
//! can register and `127.0.0.2` is not what login programs write for a local login, so both
//! are remote. Wrongly calling a local login remote only costs the password prompt; wrongly
//! calling a remote one local would let a local camera vouch for someone typing over SSH.

/// The `PAM_RHOST` values that mean "this machine": the empty string (no remote host), the
/// loopback names glibc's `/etc/hosts` ships (`localhost`, `localhost.localdomain`,
/// `localhost6`, `localhost6.localdomain6`, `ip6-localhost`, `ip6-loopback`) and the loopback
/// addresses `127.0.0.1`, `::1` and `::ffff:127.0.0.1` as login programs write them.
pub const LOCAL_HOSTS: [&str; 10] = [
    "",
    "localhost",
    "localhost.localdomain",
    "localhost6",
    "localhost6.localdomain6",
    "ip6-localhost",
    "ip6-loopback",
    "127.0.0.1",
    "::1",
    "::ffff:127.0.0.1",
];

/// True when `rhost` names this machine (one of [`LOCAL_HOSTS`]), so it does not make the
/// session remote.
pub fn is_local_rhost(rhost: &str) -> bool {
    let h = rhost.trim_matches(|c: char| c.is_ascii_whitespace());
    LOCAL_HOSTS.iter().any(|l| l.eq_ignore_ascii_case(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exact_set_is_local() {
        for h in LOCAL_HOSTS {
            assert!(is_local_rhost(h), "{h:?}");
        }
        for h in [
            " localhost ",
            "LOCALHOST",
            "Localhost.LocalDomain",
            "\t::1\n",
        ] {
            assert!(is_local_rhost(h), "{h:?}");
        }
    }

    #[test]
    fn prefixes_and_other_loopbacks_are_remote() {
        for h in [
            "localhost.evil.com",
            "localhost.",
            "127.0.0.2",
            "127.1",
            "127.0.0.1.evil.com",
            "::2",
            "::ffff:127.0.0.2",
            "0.0.0.0",
            "10.0.0.1",
            "example.org",
            "local host",
            "localhost\0",
        ] {
            assert!(!is_local_rhost(h), "{h:?}");
        }
    }
}
