//! Who may ask what: the peer's uid against the account named (root may ask about anyone),
//! and whether the peer's logind session may use the camera. Every handler authorises here.

use super::*;

impl Daemon {
    /// Resolves `user` and checks the peer may act on it: the one authorisation rule of every
    /// per-user request (attempt, test, list, remove, reset, enrolment). On refusal the error
    /// is already sent and `Ok(None)` returned.
    pub(crate) fn authorise(
        &self,
        conn: &mut Conn,
        user: &str,
    ) -> Result<Option<Account>, IpcError> {
        if !store::valid_user_name(user) {
            conn.error(ErrorKind::InvalidUserName, "not a valid user name")?;
            return Ok(None);
        }
        let acct = match sys::account_by_name(user) {
            Ok(Some(a)) => a,
            Ok(None) => {
                conn.error(ErrorKind::UnknownUser, format!("no such user: {user}"))?;
                return Ok(None);
            }
            Err(e) => {
                let e = crate::log::chain(&e);
                self.log
                    .error(&format!("passwd lookup of {user} failed: {e}"));
                conn.error(ErrorKind::Internal, "passwd lookup failed")?;
                return Ok(None);
            }
        };
        if conn.peer.uid != 0 && conn.peer.uid != acct.uid {
            self.log.warn(&format!(
                "uid {} (pid {}) asked about user {user}: permission denied",
                conn.peer.uid, conn.peer.pid
            ));
            conn.error(
                ErrorKind::PermissionDenied,
                "only root may ask about another user",
            )?;
            return Ok(None);
        }
        Ok(Some(acct))
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
