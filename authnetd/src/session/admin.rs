//! `list`, `remove` and `reset_throttle`.

use super::*;

impl Daemon {
    /// `list`: the peer's own model, or (root) one user's or every enrolled user's.
    pub(super) fn list(&self, conn: &mut Conn, user: Option<String>) -> Result<(), IpcError> {
        // Each listed account with its uid, which its model must be bound to.
        let accounts: Vec<Account> = match user {
            Some(u) => match self.authorise(conn, &u)? {
                Some(a) => vec![a],
                None => return Ok(()),
            },
            None if conn.peer.uid == 0 => match self.store.enrolled_users() {
                Ok(v) => v
                    .into_iter()
                    .filter_map(|u| match sys::account_by_name(&u) {
                        Ok(Some(a)) => Some(a),
                        _ => {
                            self.log.warn(&format!(
                                "user={u} has a model in the state directory but no account; ignored"
                            ));
                            None
                        }
                    })
                    .collect(),
                Err(e) => {
                    let e = crate::log::chain(&e);
                    self.log.error(&format!("listing models: {e}"));
                    return conn.error(ErrorKind::Internal, "cannot list the state directory");
                }
            },
            None => match sys::account_by_uid(conn.peer.uid) {
                Ok(Some(a)) => vec![a],
                _ => return conn.error(ErrorKind::UnknownUser, "your uid has no account"),
            },
        };
        let mut entries = Vec::new();
        for acct in accounts {
            let p = self.store.model_path(&acct.name);
            if !p.is_file() {
                continue;
            }
            match self.load_user_model(&acct) {
                Ok(m) => entries.push(ModelEntry {
                    created: m.meta().created.clone(),
                    backbone: m.meta().backbone.clone(),
                    threshold_policy: self.cfg.threshold_policy.name().into(),
                    user: acct.name,
                }),
                Err(e) => self.log.warn(&format!(
                    "user={} model {} unusable: {e}",
                    acct.name,
                    p.display()
                )),
            }
        }
        conn.send(&Response::Models { entries })
    }

    /// `remove`: deletes a model (a non-root peer's own, after its password).
    pub(super) fn remove(
        &self,
        conn: &mut Conn,
        user: Option<String>,
        all: bool,
        password: Option<&Secret>,
    ) -> Result<(), IpcError> {
        if all {
            if conn.peer.uid != 0 {
                return conn.error(
                    ErrorKind::PermissionDenied,
                    "only root may remove every model",
                );
            }
            let users = match self.store.enrolled_users() {
                Ok(v) => v,
                Err(e) => {
                    let e = crate::log::chain(&e);
                    self.log.error(&format!("listing models: {e}"));
                    return conn.error(ErrorKind::Internal, "cannot list the state directory");
                }
            };
            for u in &users {
                if let Err(e) = self.store.remove_model(u) {
                    let e = crate::log::chain(&e);
                    self.log.error(&format!("removing model of {u}: {e}"));
                    return conn.error(ErrorKind::Internal, "cannot remove a model");
                }
                self.log
                    .info(&format!("user={u} model removed by uid {}", conn.peer.uid));
            }
            return conn.send(&Response::Done {
                text: format!("removed {} models", users.len()),
            });
        }
        let user = match user {
            Some(u) => u,
            None => match sys::account_by_uid(conn.peer.uid) {
                Ok(Some(a)) if conn.peer.uid != 0 => a.name,
                _ => return conn.error(ErrorKind::BadRequest, "name a user or set all"),
            },
        };
        let Some(acct) = self.authorise(conn, &user)? else {
            return Ok(());
        };
        if !self.store.has_model(&user) {
            return conn.error(ErrorKind::NotEnrolled, format!("{user} has no model"));
        }
        if !crate::enroll::password_ok(self, conn, &acct, password, "remove")? {
            return Ok(());
        }
        match self.store.remove_model(&user) {
            Ok(true) => {
                self.log.info(&format!(
                    "user={user} model removed by uid {}",
                    conn.peer.uid
                ));
                conn.send(&Response::Done {
                    text: format!("removed the model of {user}"),
                })
            }
            Ok(false) => conn.error(ErrorKind::NotEnrolled, format!("{user} has no model")),
            Err(e) => {
                let e = crate::log::chain(&e);
                self.log.error(&format!("removing model of {user}: {e}"));
                conn.error(ErrorKind::Internal, "cannot remove the model")
            }
        }
    }

    /// `reset_throttle` (root only): clears a user's failures.
    pub(super) fn reset_throttle(&self, conn: &mut Conn, user: &str) -> Result<(), IpcError> {
        if conn.peer.uid != 0 {
            return conn.error(
                ErrorKind::PermissionDenied,
                "only root may reset the throttle",
            );
        }
        if self.authorise(conn, user)?.is_none() {
            return Ok(());
        }
        let _g = self.throttle_lock.lock().unwrap_or_else(|p| p.into_inner());
        let r = self
            .store
            .ensure_user_dir(user)
            .and_then(|d| throttle::save(d.path(), &throttle::ThrottleState::default()));
        match r {
            Ok(()) => {
                self.log
                    .info(&format!("user={user} throttle reset by root"));
                conn.send(&Response::Done {
                    text: format!("throttle of {user} reset"),
                })
            }
            Err(e) => {
                let e = crate::log::chain(&e);
                self.log
                    .error(&format!("resetting throttle of {user}: {e}"));
                conn.error(ErrorKind::Internal, "cannot write the throttle state")
            }
        }
    }
}
