//! `list`, `remove` and `reset_throttle`.

use super::*;

impl Daemon {
    /// `list`: the peer's own model, or (root) one user's or every enrolled user's.
    pub(super) fn list(&self, conn: &mut Conn, user: Option<String>) -> Handled {
        // Each listed account with its uid, which its model must be bound to.
        let accounts: Vec<Account> = match user {
            Some(u) => vec![self.authorise(conn, &u)?],
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
                    return Err(
                        Refusal::internal("cannot list the state directory", "listing models", &e)
                            .into(),
                    )
                }
            },
            None => match sys::account_by_uid(conn.peer.uid) {
                Ok(Some(a)) => vec![a],
                _ => {
                    return Err(
                        Refusal::peer(ErrorKind::UnknownUser, "your uid has no account").into(),
                    )
                }
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
        Ok(conn.send(&Response::Models { entries })?)
    }

    /// `remove`: deletes a model (a non-root peer's own, after its password).
    pub(super) fn remove(
        &self,
        conn: &mut Conn,
        user: Option<String>,
        all: bool,
        password: Option<&Secret>,
    ) -> Handled {
        if all {
            if conn.peer.uid != 0 {
                return Err(Refusal::denied("only root may remove every model").into());
            }
            let users = self.store.enrolled_users().map_err(|e| {
                Refusal::internal("cannot list the state directory", "listing models", &e)
            })?;
            for u in &users {
                self.store.remove_model(u).map_err(|e| {
                    Refusal::internal(
                        "cannot remove a model",
                        format_args!("removing model of {u}"),
                        &e,
                    )
                })?;
                self.log
                    .info(&format!("user={u} model removed by uid {}", conn.peer.uid));
            }
            return Ok(conn.send(&Response::Done {
                text: format!("removed {} models", users.len()),
            })?);
        }
        let user = match user {
            Some(u) => u,
            None => match sys::account_by_uid(conn.peer.uid) {
                Ok(Some(a)) if conn.peer.uid != 0 => a.name,
                _ => return Err(Refusal::bad_request("name a user or set all").into()),
            },
        };
        let acct = self.authorise(conn, &user)?;
        let not_enrolled = || Refusal::peer(ErrorKind::NotEnrolled, format!("{user} has no model"));
        if !self.store.has_model(&user) {
            return Err(not_enrolled().into());
        }
        crate::enroll::password_ok(self, conn, &acct, password, "remove")?;
        match self.store.remove_model(&user) {
            Ok(true) => {
                self.log.info(&format!(
                    "user={user} model removed by uid {}",
                    conn.peer.uid
                ));
                Ok(conn.send(&Response::Done {
                    text: format!("removed the model of {user}"),
                })?)
            }
            Ok(false) => Err(not_enrolled().into()),
            Err(e) => Err(Refusal::internal(
                "cannot remove the model",
                format_args!("removing model of {user}"),
                &e,
            )
            .into()),
        }
    }

    /// `reset_throttle` (root only): clears a user's failures.
    pub(super) fn reset_throttle(&self, conn: &mut Conn, user: &str) -> Handled {
        if conn.peer.uid != 0 {
            return Err(Refusal::denied("only root may reset the throttle").into());
        }
        self.authorise(conn, user)?;
        let _g = self.throttle_lock.lock().unwrap_or_else(|p| p.into_inner());
        let r = self
            .store
            .ensure_user_dir(user)
            .and_then(|d| throttle::save(&d, &throttle::ThrottleState::default()));
        r.map_err(|e| {
            Refusal::internal(
                "cannot write the throttle state",
                format_args!("resetting throttle of {user}"),
                &e,
            )
        })?;
        self.log
            .info(&format!("user={user} throttle reset by root"));
        Ok(conn.send(&Response::Done {
            text: format!("throttle of {user} reset"),
        })?)
    }
}
