//! Per-user failed-attempt throttling (NIST SP 800-63B 5.2.2), persisted in
//! `<state>/<user>/throttle.json` so that a restart does not clear it.
//!
//! After `failures_before_delay` consecutive failures, each attempt must wait `base_delay`
//! after the last failure, doubling with each further failure; after `lockout_after` the face
//! path stays off until root sends `reset_throttle`. A success resets the count. Only
//! rejections count as failures: an attempt that saw no face compared nothing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::ThrottleConfig;
use authnet_core::fsutil::Dir;

use crate::store::{self, Store, StoreError};

/// File name inside the user's state directory.
pub const FILE: &str = "throttle.json";

/// What is stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleState {
    /// Failures since the last success or reset.
    pub consecutive_failures: u32,
    /// Unix time of the last failure, in seconds.
    pub last_failure: u64,
}

/// Whether an attempt may run now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead.
    Allowed,
    /// Wait this long.
    Delayed(Duration),
    /// Disabled until an administrator resets it.
    LockedOut,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl ThrottleState {
    /// The verdict at unix time `now`.
    pub fn check(&self, cfg: &ThrottleConfig, now: u64) -> Verdict {
        let n = self.consecutive_failures;
        if n >= cfg.lockout_after {
            return Verdict::LockedOut;
        }
        if n < cfg.failures_before_delay {
            return Verdict::Allowed;
        }
        let doublings = (n - cfg.failures_before_delay).min(30);
        let delay = cfg.base_delay.as_secs().saturating_mul(1u64 << doublings);
        let until = self.last_failure.saturating_add(delay);
        if now >= until {
            Verdict::Allowed
        } else {
            Verdict::Delayed(Duration::from_secs(until - now))
        }
    }
}

/// The largest throttle file read (it is a few dozen bytes of JSON).
const MAX_FILE_BYTES: u64 = 4096;

/// Reads the state of the user whose directory is `dir`, opened relative to the state
/// directory ([`Store::open_user_dir`]); no file: no failures. A file that exists but cannot be
/// read or parsed, or is a symlink, is an error: the caller must fail closed.
pub fn load(dir: &Dir) -> Result<ThrottleState, StoreError> {
    match store::read_file(dir, FILE, MAX_FILE_BYTES)? {
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt {
            path: dir.path().join(FILE),
            why: source.to_string(),
        }),
        None => Ok(ThrottleState::default()),
    }
}

/// Writes the state atomically inside the user's directory (never through a symlink).
pub fn save(dir: &Dir, st: &ThrottleState) -> Result<(), StoreError> {
    let path = dir.path().join(FILE);
    let bytes = serde_json::to_vec(st).map_err(|e| StoreError::Corrupt {
        path: path.clone(),
        why: e.to_string(),
    })?;
    dir.write_atomic(FILE, &bytes)
        .map_err(|source| StoreError::Io { path, source })
}

/// Records a failure now.
pub fn record_failure(dir: &Dir) -> Result<ThrottleState, StoreError> {
    let mut st = load(dir).unwrap_or(ThrottleState {
        // A corrupt file was already counted as a lockout by the check; keep failing closed.
        consecutive_failures: u32::MAX / 2,
        last_failure: 0,
    });
    st.consecutive_failures = st.consecutive_failures.saturating_add(1);
    st.last_failure = now();
    save(dir, &st)?;
    Ok(st)
}

/// Records a success (clears the count).
pub fn record_success(dir: &Dir) -> Result<(), StoreError> {
    match load(dir) {
        Ok(st) if st == ThrottleState::default() => Ok(()),
        _ => save(dir, &ThrottleState::default()),
    }
}

/// The verdict for the user whose directory is `dir`, now. A corrupt file locks out.
///
/// A last failure in the future means the wall clock was stepped back (or the file was
/// written on a machine whose clock ran ahead). It is moved to now and saved, so the step
/// costs at most one full delay instead of stretching it by the size of the step; the count,
/// and so the lockout, never depends on the clock. Stepping the clock forward, which lifts a
/// delay early, takes root.
pub fn check(dir: &Dir, cfg: &ThrottleConfig) -> Result<Verdict, StoreError> {
    let mut st = load(dir)?;
    let now = now();
    if st.last_failure > now {
        st.last_failure = now;
        save(dir, &st)?;
    }
    Ok(st.check(cfg, now))
}

/// The verdict for `user` now: no user directory, no failures. A directory that cannot be
/// opened (a symlink planted in its place) is an error: the caller must fail closed.
pub fn check_user(store: &Store, user: &str, cfg: &ThrottleConfig) -> Result<Verdict, StoreError> {
    match store.open_user_dir(user)? {
        Some(d) => check(&d, cfg),
        None => Ok(Verdict::Allowed),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn cfg() -> ThrottleConfig {
        ThrottleConfig {
            failures_before_delay: 5,
            base_delay: Duration::from_secs(30),
            lockout_after: 100,
        }
    }

    #[test]
    fn delay_starts_after_five_and_doubles() {
        let at = |n, last, now| {
            ThrottleState {
                consecutive_failures: n,
                last_failure: last,
            }
            .check(&cfg(), now)
        };
        assert_eq!(at(4, 1000, 1000), Verdict::Allowed);
        assert_eq!(at(5, 1000, 1000), Verdict::Delayed(Duration::from_secs(30)));
        assert_eq!(at(5, 1000, 1030), Verdict::Allowed);
        assert_eq!(at(6, 1000, 1000), Verdict::Delayed(Duration::from_secs(60)));
        assert_eq!(at(7, 1000, 1100), Verdict::Delayed(Duration::from_secs(20)));
        assert_eq!(at(100, 0, u64::MAX), Verdict::LockedOut);
        // Huge counts do not overflow.
        assert!(matches!(at(99, u64::MAX - 1, 0), Verdict::Delayed(_)));
    }

    #[test]
    fn persisted_and_reset_by_success() {
        let t = tempfile::tempdir().unwrap();
        let d = Dir::open(t.path()).unwrap();
        for _ in 0..5 {
            record_failure(&d).unwrap();
        }
        assert!(matches!(check(&d, &cfg()).unwrap(), Verdict::Delayed(_)));
        record_success(&d).unwrap();
        assert_eq!(check(&d, &cfg()).unwrap(), Verdict::Allowed);
    }

    #[test]
    fn a_clock_stepped_back_costs_one_delay_not_the_step() {
        let t = tempfile::tempdir().unwrap();
        let d = Dir::open(t.path()).unwrap();
        // Six failures "a year from now": the clock has since been stepped back a year.
        let year = 365 * 86_400;
        let st = ThrottleState {
            consecutive_failures: 6,
            last_failure: now() + year,
        };
        save(&d, &st).unwrap();
        match check(&d, &cfg()).unwrap() {
            Verdict::Delayed(w) => assert!(w <= Duration::from_secs(60), "{w:?}"),
            v => panic!("a backward step must not lift the delay: {v:?}"),
        }
        let stored = load(&d).unwrap();
        assert_eq!(
            stored.consecutive_failures, 6,
            "the count survives the step"
        );
        assert!(stored.last_failure <= now());
        // A lockout does not depend on the clock at all.
        save(
            &d,
            &ThrottleState {
                consecutive_failures: 100,
                last_failure: 0,
            },
        )
        .unwrap();
        assert_eq!(check(&d, &cfg()).unwrap(), Verdict::LockedOut);
    }

    #[test]
    fn corrupt_file_is_an_error_not_a_pass() {
        let t = tempfile::tempdir().unwrap();
        let d = Dir::open(t.path()).unwrap();
        std::fs::write(t.path().join(FILE), b"{garbage").unwrap();
        assert!(check(&d, &cfg()).is_err());
        let st = record_failure(&d).unwrap();
        assert_eq!(st.check(&cfg(), now()), Verdict::LockedOut);
    }

    #[test]
    fn a_user_without_a_directory_has_no_failures_and_a_linked_one_fails_closed() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(&t.path().join("state")).unwrap();
        assert_eq!(
            check_user(&store, "alice", &cfg()).unwrap(),
            Verdict::Allowed
        );
        let victim = t.path().join("victim");
        std::fs::create_dir(&victim).unwrap();
        std::os::unix::fs::symlink(&victim, store.user_dir("mallory")).unwrap();
        assert!(check_user(&store, "mallory", &cfg()).is_err());
    }
}
