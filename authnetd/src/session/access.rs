//! Who may ask what: the peer's uid against the account named (root may ask about anyone),
//! and whether the peer's logind session may use the camera. Every handler authorises here.

use super::*;

impl Daemon {
    /// Resolves `user` and checks the peer may act on it: the one authorisation rule of every
    /// per-user request (attempt, test, list, remove, reset, enrolment).
    pub(crate) fn authorise(&self, conn: &Conn, user: &str) -> Result<Account, Refusal> {
        if !store::valid_user_name(user) {
            return Err(Refusal::peer(
                ErrorKind::InvalidUserName,
                "not a valid user name",
            ));
        }
        let acct = match sys::account_by_name(user) {
            Ok(Some(a)) => a,
            Ok(None) => {
                return Err(Refusal::peer(
                    ErrorKind::UnknownUser,
                    format!("no such user: {user}"),
                ))
            }
            Err(e) => {
                return Err(Refusal::internal(
                    "passwd lookup failed",
                    format_args!("passwd lookup of {user} failed"),
                    &e,
                ))
            }
        };
        if conn.peer.uid != 0 && conn.peer.uid != acct.uid {
            self.log.warn(&format!(
                "uid {} (pid {}) asked about user {user}: permission denied",
                conn.peer.uid, conn.peer.pid
            ));
            return Err(Refusal::denied("only root may ask about another user"));
        }
        Ok(acct)
    }

    /// Whether the peer's logind session may use the camera ([`crate::seat::decide`]);
    /// `Err(why)` for the log when it counts as remote. Off with `abort_if_ssh = false`.
    pub(crate) fn seat_check(&self, conn: &Conn) -> Result<(), String> {
        if !self.cfg.abort_if_ssh {
            return Ok(());
        }
        let place = crate::seat::place_of(
            conn.peer.pid,
            std::path::Path::new("/proc"),
            &self.cfg.sessions_dir,
        );
        crate::seat::decide(
            &place,
            conn.peer.uid,
            &self.cfg.camera_seat,
            self.cfg.without_logind,
        )
    }
}
