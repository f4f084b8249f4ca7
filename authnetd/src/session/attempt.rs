//! `authenticate` and `test`: the attempt state machine.
//!
//! An attempt runs: name and account checks → permission (peer uid) → remote session → lid →
//! enrolment → throttle → model load → `info` → camera queue → capture, with detection and
//! embedding of each frame *while the next is captured* → score → answer. The camera is
//! released (its clip dropped) at the end of every attempt, on cancel and on disconnect.

use super::*;

/// The text shown while the camera records.
pub const PROMPT: &str = "Mouth your password now";

/// Where ACPI reports lid states.
const LID_DIR: &str = "/proc/acpi/button/lid";

/// Marks a user's attempt as in flight until dropped.
struct InFlight<'a> {
    set: &'a Mutex<HashSet<String>>,
    user: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut set = self.set.lock().unwrap_or_else(|p| p.into_inner());
        set.remove(&self.user);
    }
}

/// The result of one attempt.
#[derive(Debug)]
struct Attempt {
    outcome: Outcome,
    scores: Option<Scores>,
    /// From the last frame captured to the decision.
    after_last_frame: Option<Duration>,
}

impl Attempt {
    fn unavailable(reason: UnavailableReason) -> Self {
        Self {
            outcome: Outcome::Unavailable { reason },
            scores: None,
            after_last_frame: None,
        }
    }
}

/// Why an attempt stopped early without an answer to send.
#[derive(Debug)]
enum Abort {
    /// The client closed the connection.
    ClientGone,
}

fn outcome_name(o: &Outcome) -> String {
    match o {
        Outcome::Accept => "accept".into(),
        Outcome::Reject => "reject".into(),
        Outcome::Unavailable { reason } => format!(
            "unavailable:{}",
            serde_json::to_value(reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        ),
    }
}

impl Daemon {
    /// `authenticate` (`test = false`) and `test`: one attempt, answered with its outcome
    /// (and, for `test` from root, the score).
    pub(super) fn authenticate(
        &self,
        conn: &mut Conn,
        user: &str,
        service: &str,
        rhost: Option<&str>,
        test: bool,
    ) -> Handled {
        let started = Instant::now();
        let acct = self.authorise(conn, user)?;
        let attempt = match self.attempt(conn, &acct, rhost) {
            Ok(a) => a,
            Err(Abort::ClientGone) => {
                self.log.info(&format!(
                    "user={} service={service} decision=abandoned reason=client_gone latency_ms={}",
                    acct.name,
                    started.elapsed().as_millis()
                ));
                return Err(IpcError::Closed.into());
            }
        };
        let reason = match attempt.outcome {
            Outcome::Unavailable { reason } => reason.describe(),
            Outcome::Accept => "match",
            Outcome::Reject => "no match",
        };
        let after = attempt
            .after_last_frame
            .map(|d| format!(" post_capture_ms={:.1}", d.as_secs_f64() * 1000.0))
            .unwrap_or_default();
        self.log.info(&format!(
            "user={} service={service} uid={} decision={} reason=\"{reason}\" latency_ms={}{after}",
            acct.name,
            conn.peer.uid,
            outcome_name(&attempt.outcome),
            started.elapsed().as_millis()
        ));
        if let Some(s) = &attempt.scores {
            self.log.debug(&format!(
                "user={} scores identity={:.4} word={:.4} liveness={:.4} fused={:.4} veto={}",
                acct.name,
                s.identity,
                s.word,
                s.liveness,
                s.fused,
                s.veto.is_some()
            ));
        }
        let answer = if test {
            // A score lets a peer hill-climb against the model (issue 16 item 5): root only.
            let score = if conn.peer.uid == 0 {
                attempt.scores.map(|s| s.ranked()).filter(|f| f.is_finite())
            } else {
                None
            };
            Response::TestResult {
                outcome: attempt.outcome,
                score,
            }
        } else {
            Response::Result {
                outcome: attempt.outcome,
            }
        };
        Ok(conn.send(&answer)?)
    }

    /// Marks `user`'s attempt in flight; `None` when one already is.
    fn begin_attempt(&self, user: &str) -> Option<InFlight<'_>> {
        let mut set = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if !set.insert(user.to_owned()) {
            return None;
        }
        Some(InFlight {
            set: &self.in_flight,
            user: user.to_owned(),
        })
    }

    /// Checks the throttle; `Some(reason)` when the attempt may not run.
    fn throttled(&self, user: &str) -> Option<UnavailableReason> {
        let _g = self.throttle_lock.lock().unwrap_or_else(|p| p.into_inner());
        match throttle::check_user(&self.store, user, &self.cfg.throttle) {
            Ok(Verdict::Allowed) => None,
            Ok(Verdict::Delayed(d)) => {
                self.log.info(&format!(
                    "user={user} throttled for {} more seconds",
                    d.as_secs()
                ));
                Some(UnavailableReason::Throttled)
            }
            Ok(Verdict::LockedOut) => {
                self.log.warn(&format!(
                    "user={user} locked out after too many failures; reset with reset_throttle"
                ));
                Some(UnavailableReason::Throttled)
            }
            Err(e) => {
                let e = crate::log::chain(&e);
                self.log.error(&format!(
                    "user={user} throttle state unusable ({e}); failing closed"
                ));
                Some(UnavailableReason::Throttled)
            }
        }
    }

    fn record(&self, user: &str, outcome: &Outcome) {
        let _g = self.throttle_lock.lock().unwrap_or_else(|p| p.into_inner());
        let r = match outcome {
            Outcome::Accept => self
                .store
                .open_user_dir(user)
                .and_then(|d| d.map_or(Ok(()), |d| throttle::record_success(&d))),
            Outcome::Reject => self
                .store
                .ensure_user_dir(user)
                .and_then(|d| throttle::record_failure(&d).map(|_| ())),
            Outcome::Unavailable { .. } => Ok(()),
        };
        if let Err(e) = r {
            let e = crate::log::chain(&e);
            self.log
                .error(&format!("user={user} cannot update throttle state: {e}"));
        }
    }

    fn attempt(
        &self,
        conn: &mut Conn,
        acct: &Account,
        rhost: Option<&str>,
    ) -> Result<Attempt, Abort> {
        use UnavailableReason as U;
        let user = acct.name.as_str();
        if self.cfg.abort_if_ssh && rhost.is_some_and(|h| !is_local_rhost(h)) {
            return Ok(Attempt::unavailable(U::RemoteSession));
        }
        if let Err(why) = self.seat_check(conn) {
            self.log.info(&format!(
                "user={user} uid={} pid={}: remote session ({why})",
                conn.peer.uid, conn.peer.pid
            ));
            return Ok(Attempt::unavailable(U::RemoteSession));
        }
        if self.cfg.abort_if_lid_closed && camera::lid_closed(std::path::Path::new(LID_DIR)) {
            return Ok(Attempt::unavailable(U::LidClosed));
        }
        let model_path = self.store.model_path(user);
        if !model_path.is_file() {
            return Ok(Attempt::unavailable(U::NotEnrolled));
        }
        if let Some(r) = self.throttled(user) {
            return Ok(Attempt::unavailable(r));
        }
        let model = match self.load_user_model(acct) {
            Ok(m) => m,
            Err(e) => {
                let e = crate::log::chain(&e);
                self.log.error(&format!(
                    "user={user} model {} unusable: {e}",
                    model_path.display()
                ));
                return Ok(Attempt::unavailable(U::ModelError));
            }
        };
        let deadline = Instant::now() + self.cfg.auth_timeout;
        let Some(_in_flight) = self.begin_attempt(user) else {
            self.log.info(&format!(
                "user={user} uid={} pid={}: another attempt for this user is in flight",
                conn.peer.uid, conn.peer.pid
            ));
            return Ok(Attempt::unavailable(U::CameraBusy));
        };
        let wait = self
            .cfg
            .camera_wait
            .min(deadline.saturating_duration_since(Instant::now()));
        let Some(_camera) = self.gate.acquire(wait) else {
            return Ok(Attempt::unavailable(U::CameraBusy));
        };
        // Another attempt for the same user may have failed while this one queued.
        if let Some(r) = self.throttled(user) {
            return Ok(Attempt::unavailable(r));
        }
        // Only now, with the camera held for this attempt alone, is the user asked to mouth:
        // a prompt sent while queued would let the user's words be captured by whichever
        // attempt holds the camera.
        if conn
            .send(&Response::Info {
                text: PROMPT.into(),
            })
            .is_err()
        {
            return Err(Abort::ClientGone);
        }
        // `max_tries` is the one retry budget (the module sends one request): clips while the
        // answer is reject, no face or too dark and time remains. Every clip's outcome reaches
        // the throttle, so retries are no way around it, and a retry runs only while the
        // throttle still allows one.
        let mut last = Attempt::unavailable(U::NoFace);
        for k in 1..=self.cfg.max_tries {
            last = self.capture_and_score(conn, user, &model, deadline)?;
            self.record(user, &last.outcome);
            let again = matches!(
                last.outcome,
                Outcome::Reject
                    | Outcome::Unavailable {
                        reason: U::NoFace | U::TooDark
                    }
            );
            if !again || k == self.cfg.max_tries || Instant::now() >= deadline {
                break;
            }
            if self.throttled(user).is_some() {
                break;
            }
        }
        Ok(last)
    }

    /// One clip: capture, with each frame detected and embedded as it arrives, then score.
    fn capture_and_score(
        &self,
        conn: &mut Conn,
        user: &str,
        model: &PasswordModel,
        deadline: Instant,
    ) -> Result<Attempt, Abort> {
        use UnavailableReason as U;
        // Invariant: only the holder of `gate` locks the pipeline, so this never waits; a
        // poisoned lock means an earlier attempt panicked, and the extractor holds no state
        // across attempts (`begin` resets it).
        let mut ex = self.pipeline.lock().unwrap_or_else(|p| p.into_inner());
        let mut clip = match Clip::open(&self.cfg.camera, ex.crop_mode()) {
            Ok(c) => c,
            Err(e) => {
                let why = crate::log::chain(&e);
                self.log.error(&format!(
                    "camera {} unavailable: {why}",
                    self.cfg.camera.source
                ));
                return Ok(Attempt::unavailable(camera::unavailable_reason(&e)));
            }
        };
        clip.keep_samples(crate::snapshot::frames_to_keep(&self.cfg));
        // The one owner of the pipeline order (`authnet_core::attempt`): the camera's kind
        // chooses the cut, so a device's clip keeps only the span where the lips move and a
        // recorded clip is scored whole.
        let mut utt = Utterance::from_source(&mut ex, self.cfg.camera.source.kind());
        let timed_out = loop {
            match conn.poll() {
                ClientState::Waiting => {}
                ClientState::Cancelled => return Ok(Attempt::unavailable(U::Cancelled)),
                ClientState::Gone => return Err(Abort::ClientGone),
            }
            let frame = match clip.next_frame(deadline) {
                Ok(Some(f)) => f,
                Ok(None) => break Instant::now() >= deadline,
                Err(e) => {
                    let why = crate::log::chain(&e);
                    self.log.error(&format!(
                        "camera {} failed after {} frames: {why}",
                        self.cfg.camera.source,
                        clip.delivered()
                    ));
                    return Ok(Attempt::unavailable(camera::unavailable_reason(&e)));
                }
            };
            if let Err(e) = utt.push(&frame) {
                let e = crate::log::chain(&e);
                self.log.error(&format!("feature extraction failed: {e}"));
                return Ok(Attempt::unavailable(U::Internal));
            }
        };
        let last_frame = Instant::now();
        if let Some(r) = clip.light_report() {
            self.log.info(&format!("user={user} camera: {r}"));
        }
        let samples = clip.take_samples();
        drop(clip); // Release the camera before the (short) scoring step.
        if timed_out {
            return Ok(Attempt::unavailable(U::Timeout));
        }
        let report = utt.report();
        let total = report.frames;
        if total == 0 || (report.faces_found as f64) < self.cfg.min_face_fraction * total as f64 {
            let reason = if report.too_dark > report.no_face {
                U::TooDark
            } else {
                U::NoFace
            };
            return Ok(Attempt::unavailable(reason));
        }
        let captured = match utt.finish() {
            Ok(c) => c,
            Err(e) => {
                let e = crate::log::chain(&e);
                self.log.error(&format!("feature extraction failed: {e}"));
                return Ok(Attempt::unavailable(U::Internal));
            }
        };
        drop(ex);
        let policy = self.cfg.threshold_policy.core();
        let decision = match captured.decide(model, policy) {
            Ok(d) => d,
            // Nothing moves like speech (a photo): a failed attempt.
            Err(AttemptError::NoUtterance(e)) => {
                self.log.info(&format!("user={user} no utterance: {e}"));
                crate::snapshot::on_reject(&self.cfg, &self.log, user, &samples);
                return Ok(Attempt {
                    outcome: Outcome::Reject,
                    scores: None,
                    after_last_frame: Some(last_frame.elapsed()),
                });
            }
            Err(AttemptError::Model(e)) => {
                self.log
                    .warn(&format!("user={user} probe not scorable: {e}"));
                return Ok(Attempt::unavailable(U::NoFace));
            }
            Err(e) => {
                let e = crate::log::chain(&e);
                self.log.error(&format!("feature extraction failed: {e}"));
                return Ok(Attempt::unavailable(U::Internal));
            }
        };
        let outcome = match decision.verdict {
            password::Verdict::Accept => Outcome::Accept,
            password::Verdict::Reject | password::Verdict::Vetoed(_) => {
                crate::snapshot::on_reject(&self.cfg, &self.log, user, &samples);
                Outcome::Reject
            }
        };
        Ok(Attempt {
            outcome,
            scores: Some(decision.scores),
            after_last_frame: Some(last_frame.elapsed()),
        })
    }
}
