//! Where a peer process sits: its logind session, read from files (no D-Bus).
//!
//! The peer pid comes from `SO_PEERCRED`. Its audit session id is `/proc/<pid>/sessionid`
//! (`4294967295` when unset); logind keeps one `key=value` file per session under
//! `sessions_dir` (by default `/run/systemd/sessions/<id>`) with `REMOTE=`, `SEAT=` and `TYPE=`
//! among its keys. A process belongs to no session when its id is unset or has no file.
//!
//! [`decide`] turns that into a verdict (see authnetd(8), "Sessions and seats"):
//!
//! * no session information at all (the directory is missing or holds no session, as on a
//!   machine without logind): the config key `without_logind` decides (`allow` by default:
//!   there are no seats to check, and the `PAM_RHOST` rule still applies);
//! * a session that is remote (`REMOTE=1`) or not on the camera's seat (`camera_seat`,
//!   `seat0` by default): refused;
//! * no session while logind runs: refused for non-root peers; for root peers (login programs:
//!   `login` and display managers authenticate *before* pam_systemd opens the session) refused
//!   only when the process runs in a user's slice (`/proc/<pid>/cgroup` under `user.slice`,
//!   e.g. a `systemd-run --user su victim`), since no login program runs there.

use std::path::Path;

/// `/proc/<pid>/sessionid` when the process has no audit session.
const NO_SESSION_ID: u32 = u32::MAX;

/// Largest session file read (logind writes a few hundred bytes).
const MAX_SESSION_FILE: u64 = 64 * 1024;

/// What the config says to do without any session information.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WithoutLogind {
    /// Allow (only the `PAM_RHOST` rule applies).
    Allow,
    /// Refuse as a remote session.
    Refuse,
}

/// The fields of a logind session file that matter here.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionInfo {
    /// The session id (the file name).
    pub id: String,
    /// `REMOTE=1`.
    pub remote: bool,
    /// `SEAT=`, empty for sessions without a seat (SSH, cron).
    pub seat: String,
    /// `TYPE=` (`tty`, `x11`, `wayland`, `unspecified`).
    pub kind: String,
}

/// Where the peer process sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// No session information on this machine (no logind).
    NoLogind,
    /// The process is in no session; `user_slice` when its cgroup is in a user's slice.
    NoSession {
        /// Runs under `user.slice`.
        user_slice: bool,
    },
    /// The process's session.
    Session(SessionInfo),
}

/// Parses a logind session file.
pub fn parse_session(id: &str, text: &str) -> SessionInfo {
    let mut s = SessionInfo {
        id: id.into(),
        ..SessionInfo::default()
    };
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k.trim() {
            "REMOTE" => s.remote = matches!(v.trim(), "1" | "yes" | "true"),
            "SEAT" => s.seat = v.trim().into(),
            "TYPE" => s.kind = v.trim().into(),
            _ => {}
        }
    }
    s
}

fn has_sessions(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .any(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        })
        .unwrap_or(false)
}

/// Where process `pid` sits, reading `/proc` under `proc_root` (normally `/proc`) and session
/// files under `sessions_dir`.
pub fn place_of(pid: i32, proc_root: &Path, sessions_dir: &Path) -> Place {
    if !has_sessions(sessions_dir) {
        return Place::NoLogind;
    }
    let pdir = proc_root.join(pid.to_string());
    let user_slice = std::fs::read_to_string(pdir.join("cgroup"))
        .map(|c| c.lines().any(|l| l.contains("/user.slice/")))
        .unwrap_or(false);
    let id = std::fs::read_to_string(pdir.join("sessionid"))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|&id| id != NO_SESSION_ID);
    let Some(id) = id else {
        return Place::NoSession { user_slice };
    };
    let id = id.to_string();
    match authnet_core::fsutil::read_bounded(&sessions_dir.join(&id), MAX_SESSION_FILE) {
        Ok(bytes) => Place::Session(parse_session(&id, &String::from_utf8_lossy(&bytes))),
        Err(_) => Place::NoSession { user_slice },
    }
}

/// `Ok(())` when a peer at `place` may use the camera; `Err(why)` (for the log) when its
/// session counts as remote.
pub fn decide(
    place: &Place,
    peer_uid: u32,
    camera_seat: &str,
    without: WithoutLogind,
) -> Result<(), String> {
    match place {
        Place::NoLogind => match without {
            WithoutLogind::Allow => Ok(()),
            WithoutLogind::Refuse => {
                Err("no logind session information (without_logind = refuse)".into())
            }
        },
        Place::Session(s) if s.remote => Err(format!("session {} is remote", s.id)),
        Place::Session(s) if s.seat != camera_seat => Err(format!(
            "session {} is on seat {:?}, not the camera's seat {camera_seat:?}",
            s.id, s.seat
        )),
        Place::Session(_) => Ok(()),
        Place::NoSession { user_slice: true } => {
            Err("the process runs in a user's slice outside any session".into())
        }
        Place::NoSession { user_slice: false } if peer_uid == 0 => Ok(()),
        Place::NoSession { .. } => Err("the process is in no logind session".into()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn fake(pid: i32, sid: &str, cgroup: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("proc").join(pid.to_string());
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("sessionid"), sid).unwrap();
        std::fs::write(p.join("cgroup"), cgroup).unwrap();
        std::fs::create_dir_all(d.path().join("sessions")).unwrap();
        d
    }

    #[test]
    fn session_files_parse() {
        let s = parse_session("3", "# comment\nUID=1000\nREMOTE=1\nSEAT=seat0\nTYPE=tty\n");
        assert!(s.remote);
        assert_eq!((s.seat.as_str(), s.kind.as_str()), ("seat0", "tty"));
        let s = parse_session("4", "REMOTE=0\nTYPE=x11\n");
        assert!(!s.remote && s.seat.is_empty());
    }

    #[test]
    fn places_and_verdicts() {
        let d = fake(7, "5\n", "0::/user.slice/user-1000.slice/session-5.scope\n");
        let (proc_, sess) = (d.path().join("proc"), d.path().join("sessions"));
        assert_eq!(place_of(7, &proc_, &sess), Place::NoLogind);
        assert!(decide(&Place::NoLogind, 1000, "seat0", WithoutLogind::Allow).is_ok());
        assert!(decide(&Place::NoLogind, 0, "seat0", WithoutLogind::Refuse).is_err());
        std::fs::write(sess.join("9"), "REMOTE=0\nSEAT=seat0\n").unwrap();
        // Session 5 has no file: in no session, and in a user's slice.
        let p = place_of(7, &proc_, &sess);
        assert_eq!(p, Place::NoSession { user_slice: true });
        assert!(decide(&p, 0, "seat0", WithoutLogind::Allow).is_err());
        std::fs::write(sess.join("5"), "REMOTE=1\nSEAT=\nTYPE=tty\n").unwrap();
        let p = place_of(7, &proc_, &sess);
        assert!(decide(&p, 0, "seat0", WithoutLogind::Allow).is_err());
        std::fs::write(sess.join("5"), "REMOTE=0\nSEAT=seat1\n").unwrap();
        let p = place_of(7, &proc_, &sess);
        assert!(decide(&p, 0, "seat0", WithoutLogind::Allow).is_err());
        std::fs::write(sess.join("5"), "REMOTE=0\nSEAT=seat0\n").unwrap();
        let p = place_of(7, &proc_, &sess);
        assert!(decide(&p, 1000, "seat0", WithoutLogind::Refuse).is_ok());
    }

    #[test]
    fn login_programs_before_their_session() {
        let d = fake(8, "4294967295", "0::/system.slice/getty@tty1.service\n");
        let (proc_, sess) = (d.path().join("proc"), d.path().join("sessions"));
        std::fs::write(sess.join("9"), "REMOTE=0\nSEAT=seat0\n").unwrap();
        let p = place_of(8, &proc_, &sess);
        assert_eq!(p, Place::NoSession { user_slice: false });
        assert!(decide(&p, 0, "seat0", WithoutLogind::Allow).is_ok());
        assert!(decide(&p, 1000, "seat0", WithoutLogind::Allow).is_err());
    }
}
