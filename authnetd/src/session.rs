//! The daemon's state and its requests: `authenticate` / `test` (the attempt state machine),
//! `list`, `remove`, `reset_throttle` and `enroll`.
//!
//! An attempt runs: name and account checks → permission (peer uid) → remote session → lid →
//! enrolment → throttle → model load → `info` → camera queue → capture, with detection and
//! embedding of each frame *while the next is captured* → score → answer. The camera is
//! released (its clip dropped) at the end of every attempt, on cancel and on disconnect.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use authnet_core::attempt::{AttemptError, SourceKind, Utterance};
use authnet_core::features::{ExtractReport, FeatureExtractor, UtteranceFeatures};
use authnet_core::model::bank::ImpostorBank;
use authnet_core::model::file::{Expect, Owner};
use authnet_core::model::password::{self, PasswordModel, Scores, ThresholdPolicy};
use authnet_core::model::pretrained::PretrainedLstm;
use authnet_ipc::{
    is_local_rhost, ErrorKind, IpcError, ModelEntry, Outcome, Request, Response, Secret,
    UnavailableReason,
};

use crate::camera::{self, Clip, Gate};
use crate::config::{Config, Policy};
use crate::log::Logger;
use crate::server::{ClientState, Conn};
use crate::store::{self, Store};
use crate::sys::{self, Account};
use crate::throttle::{self, Verdict};

/// The text shown while the camera records.
pub const PROMPT: &str = "Mouth your password now";

/// Where ACPI reports lid states.
const LID_DIR: &str = "/proc/acpi/button/lid";

/// Everything loaded once at start and shared by all connections.
#[derive(Debug)]
pub struct Daemon {
    /// The validated configuration.
    pub cfg: Config,
    /// The logger.
    pub log: Logger,
    /// The state directory.
    pub store: Store,
    /// Detector + backbone; only used while holding `gate`.
    pipeline: Mutex<FeatureExtractor>,
    /// The camera queue.
    gate: Gate,
    /// Backbone name, sha256 and dimension, to refuse models of another pipeline.
    backbone: String,
    backbone_sha256: String,
    identity_dim: usize,
    /// Impostor bank for enrolment.
    bank: Option<ImpostorBank>,
    /// Pretrained word-model backbone that enrolment fine-tunes from.
    pretrained: Option<PretrainedLstm>,
    /// Serialises throttle read-modify-write.
    throttle_lock: Mutex<()>,
    /// Users with an attempt in flight: a second attempt for the same user is answered
    /// `camera_busy` at once, so an attacker's queued `su victim` cannot ride on the victim's
    /// own mouthed password.
    in_flight: Mutex<HashSet<String>>,
    /// Backoff of the enrolment password check.
    pub(crate) backoff: crate::pam_check::Backoff,
}

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

impl Policy {
    fn core(self) -> ThresholdPolicy {
        match self {
            Self::Fmr => ThresholdPolicy::Fmr,
            Self::Eer => ThresholdPolicy::Eer,
        }
    }
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
    /// Builds the daemon from a validated config (loads the pipeline and the bank).
    pub fn new(
        cfg: Config,
        log: Logger,
        pipeline: FeatureExtractor,
        bank: Option<ImpostorBank>,
        store: Store,
    ) -> Self {
        let m = pipeline.embedder().manifest();
        let (backbone, backbone_sha256) = (m.name.clone(), m.sha256.clone());
        let identity_dim = pipeline.embedder().dim();
        Self {
            cfg,
            log,
            store,
            pipeline: Mutex::new(pipeline),
            gate: Gate::default(),
            backbone,
            backbone_sha256,
            identity_dim,
            bank,
            pretrained: None,
            throttle_lock: Mutex::new(()),
            in_flight: Mutex::new(HashSet::new()),
            backoff: crate::pam_check::Backoff::default(),
        }
    }

    fn expect<'a>(&'a self, owner: Option<&'a Owner>) -> Expect<'a> {
        Expect {
            backbone: &self.backbone,
            backbone_sha256: &self.backbone_sha256,
            identity_dim: self.identity_dim,
            owner,
        }
    }

    /// The account a model of `acct` must be bound to: its name and current uid.
    pub(crate) fn owner_of(acct: &Account) -> Owner {
        Owner {
            user: acct.name.clone(),
            uid: acct.uid,
        }
    }

    /// Loads `acct`'s model: for this pipeline, intact (digest) and bound to this account's
    /// name and uid, so a model copied from another user's directory, or left by a deleted
    /// account whose name was reused, is refused.
    pub(crate) fn load_user_model(
        &self,
        acct: &Account,
    ) -> Result<PasswordModel, store::LoadModelError> {
        let owner = Self::owner_of(acct);
        self.store
            .load_model(&acct.name, &self.expect(Some(&owner)))
    }

    /// Answers one request. `Err` means the connection is unusable and must be closed.
    pub fn dispatch(&self, conn: &mut Conn, req: Request) -> Result<(), IpcError> {
        match req {
            Request::Hello { .. } => conn.error(ErrorKind::BadRequest, "hello was already sent"),
            Request::Cancel {} => conn.error(ErrorKind::BadRequest, "nothing to cancel"),
            Request::Authenticate {
                user,
                service,
                rhost,
                tty: _,
            } => self.authenticate(conn, &user, &service, rhost.as_deref(), false),
            Request::Test { user } => self.authenticate(conn, &user, "authnet-test", None, true),
            Request::List { user } => self.list(conn, user),
            Request::Remove {
                user,
                all,
                password,
            } => self.remove(conn, user, all, password.as_ref()),
            Request::ResetThrottle { user } => self.reset_throttle(conn, &user),
            Request::Enroll {
                user,
                password,
                clips,
                other_word_clips,
                clip_count,
            } => crate::enroll::enroll(
                self,
                conn,
                &user,
                password.as_ref(),
                &clips,
                &other_word_clips,
                clip_count,
            ),
        }
    }

    /// Resolves `user` and checks the peer may act on it. On refusal the error is already sent
    /// and `Ok(None)` returned.
    fn authorise(&self, conn: &mut Conn, user: &str) -> Result<Option<Account>, IpcError> {
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

    fn authenticate(
        &self,
        conn: &mut Conn,
        user: &str,
        service: &str,
        rhost: Option<&str>,
        test: bool,
    ) -> Result<(), IpcError> {
        let started = Instant::now();
        let Some(acct) = self.authorise(conn, user)? else {
            return Ok(());
        };
        let attempt = match self.attempt(conn, &acct, rhost) {
            Ok(a) => a,
            Err(Abort::ClientGone) => {
                self.log.info(&format!(
                    "user={} service={service} decision=abandoned reason=client_gone latency_ms={}",
                    acct.name,
                    started.elapsed().as_millis()
                ));
                return Err(IpcError::Closed);
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
        if test {
            // A score lets a peer hill-climb against the model (issue 16 item 5): root only.
            let score = if conn.peer.uid == 0 {
                attempt.scores.map(|s| s.ranked()).filter(|f| f.is_finite())
            } else {
                None
            };
            conn.send(&Response::TestResult {
                outcome: attempt.outcome,
                score,
            })
        } else {
            conn.send(&Response::Result {
                outcome: attempt.outcome,
            })
        }
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

    /// Checks the throttle; `Some(reason)` when the attempt may not run.
    fn throttled(&self, user: &str) -> Option<UnavailableReason> {
        let _g = self.throttle_lock.lock().unwrap_or_else(|p| p.into_inner());
        match throttle::check(&self.store.user_dir(user), &self.cfg.throttle) {
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
                self.log.error(&format!(
                    "user={user} throttle state unusable ({e}); failing closed"
                ));
                Some(UnavailableReason::Throttled)
            }
        }
    }

    fn record(&self, user: &str, outcome: &Outcome) {
        let _g = self.throttle_lock.lock().unwrap_or_else(|p| p.into_inner());
        let dir = self.store.user_dir(user);
        let r = match outcome {
            Outcome::Accept => throttle::record_success(&dir),
            Outcome::Reject => throttle::record_failure(&dir).map(|_| ()),
            Outcome::Unavailable { .. } => Ok(()),
        };
        if let Err(e) = r {
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
        let mut last = Attempt::unavailable(U::NoFace);
        for _ in 0..self.cfg.max_tries {
            last = self.capture_and_score(conn, user, &model, deadline)?;
            let again = matches!(
                last.outcome,
                Outcome::Reject
                    | Outcome::Unavailable {
                        reason: U::NoFace | U::TooDark
                    }
            );
            if !again || Instant::now() >= deadline {
                break;
            }
        }
        self.record(user, &last.outcome);
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
                self.log.error(&format!(
                    "camera {} unavailable: {e}",
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
                    self.log.error(&format!(
                        "camera {} failed after {} frames: {e}",
                        self.cfg.camera.source,
                        clip.delivered()
                    ));
                    return Ok(Attempt::unavailable(camera::unavailable_reason(&e)));
                }
            };
            if let Err(e) = utt.push(&frame) {
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

    fn list(&self, conn: &mut Conn, user: Option<String>) -> Result<(), IpcError> {
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

    fn remove(
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
                    self.log.error(&format!("listing models: {e}"));
                    return conn.error(ErrorKind::Internal, "cannot list the state directory");
                }
            };
            for u in &users {
                if let Err(e) = self.store.remove_model(u) {
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
        if !self.store.model_path(&user).is_file() {
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
                self.log.error(&format!("removing model of {user}: {e}"));
                conn.error(ErrorKind::Internal, "cannot remove the model")
            }
        }
    }

    fn reset_throttle(&self, conn: &mut Conn, user: &str) -> Result<(), IpcError> {
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
                self.log
                    .error(&format!("resetting throttle of {user}: {e}"));
                conn.error(ErrorKind::Internal, "cannot write the throttle state")
            }
        }
    }

    /// Extracts features of recorded clips (frame folders or video files) for enrolment, with
    /// what the detector found in each and the share of frozen frame pairs
    /// ([`crate::enroll::StaticCounter`]). `progress(done, total)` after each clip.
    ///
    /// For a non-root peer every clip is opened with the peer's own file-system credentials
    /// ([`sys::FsCreds`] on this thread; chosen over passing descriptors with SCM_RIGHTS because
    /// it also covers the frame files inside a folder and whatever FFmpeg opens itself, with no
    /// protocol change): the root daemon reads only what the peer could read, and a refusal
    /// says nothing the peer could not learn itself. Frame folders are read into memory
    /// ([`authnet_core::capture::load_dir`]: no symlinks, FIFOs or devices, bounded size)
    /// *before* the camera queue is taken; only decoding and the pipeline run under it. A video
    /// file is opened (regular file, no symlink) before the queue too, and FFmpeg reads that
    /// open file, under the peer's credentials, while the queue is held.
    ///
    /// The inner `Err` is the text for the client: generic for non-root peers (the detail is
    /// logged).
    pub(crate) fn extract_dirs(
        &self,
        peer: sys::PeerCred,
        dirs: &[PathBuf],
        progress: &mut dyn FnMut(usize, usize) -> Result<(), IpcError>,
    ) -> Result<Result<Vec<ExtractedClip>, String>, IpcError> {
        use authnet_core::capture as cap;
        /// Largest video file accepted for enrolment.
        const MAX_VIDEO_FILE: u64 = 1 << 30;
        enum Input {
            Frames(cap::LoadedDir),
            Video(std::fs::File),
        }
        let as_peer = || -> Result<Option<sys::FsCreds>, String> {
            if peer.uid == 0 {
                return Ok(None);
            }
            sys::FsCreds::assume(peer.uid, peer.gid)
                .map(Some)
                .map_err(|e| format!("cannot take the peer's credentials: {e}"))
        };
        let refuse = |i: usize, d: &std::path::Path, why: String| {
            self.log.info(&format!(
                "enrolment clip {} of uid {} refused: {}: {why}",
                i + 1,
                peer.uid,
                d.display()
            ));
            if peer.uid == 0 {
                format!("{}: {why}", d.display())
            } else {
                format!(
                    "clip {} ({}) cannot be used: it must be a frame folder or a video file \
                     that you can read",
                    i + 1,
                    d.display()
                )
            }
        };
        let mut out = Vec::with_capacity(dirs.len());
        for (i, d) in dirs.iter().enumerate() {
            let mixed = self.cfg.crop != authnet_core::vision::CropMode::Detect;
            // All file I/O a peer controls happens here, before the camera queue.
            let input = {
                let _creds = match as_peer() {
                    Ok(c) => c,
                    Err(e) => return Ok(Err(refuse(i, d, e))),
                };
                match std::fs::metadata(d) {
                    Ok(m) if m.is_dir() => cap::load_dir(d)
                        .map(|l| Input::Frames(if mixed { l.allow_mixed_sizes() } else { l }))
                        .map_err(|e| e.to_string()),
                    Ok(_) => authnet_core::fsutil::open_regular(d, MAX_VIDEO_FILE)
                        .map(|(f, _)| Input::Video(f))
                        .map_err(|e| match e {
                            authnet_core::fsutil::BoundedRead::Io(e) => e.to_string(),
                            authnet_core::fsutil::BoundedRead::TooLarge { size } => {
                                format!("{size} bytes is too large for a video")
                            }
                        }),
                    Err(e) => Err(e.to_string()),
                }
            };
            let input = match input {
                Ok(x) => x,
                Err(e) => return Ok(Err(refuse(i, d, e))),
            };
            let r = {
                let Some(_g) = self.gate.acquire_low(self.cfg.camera_wait) else {
                    return Ok(Err("the camera pipeline is busy".into()));
                };
                let mut ex = self.pipeline();
                match input {
                    Input::Frames(l) => extract_counting(&mut ex, Box::new(l)),
                    Input::Video(f) => {
                        use std::os::fd::AsRawFd;
                        let _creds = match as_peer() {
                            Ok(c) => c,
                            Err(e) => return Ok(Err(refuse(i, d, e))),
                        };
                        // FFmpeg reopens the very file checked above, never the path again.
                        let fd_path = PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()));
                        let r = cap::open_utterance(&fd_path, mixed)
                            .map_err(|e| e.to_string())
                            .and_then(|s| extract_counting(&mut ex, s));
                        drop(f);
                        r
                    }
                }
            };
            match r {
                Ok(fr) => out.push(fr),
                Err(e) => return Ok(Err(refuse(i, d, e))),
            }
            progress(i + 1, dirs.len())?;
        }
        Ok(Ok(out))
    }

    /// Waits up to `wait` for the camera queue behind every waiting login (enrolment).
    pub(crate) fn acquire_camera_low(&self, wait: Duration) -> Option<camera::GateGuard<'_>> {
        self.gate.acquire_low(wait)
    }

    /// The feature pipeline. Invariant: callers hold the camera queue,
    /// so this never waits; a poisoned lock means an earlier holder panicked, and the extractor
    /// keeps no state across clips (`begin` resets it).
    pub(crate) fn pipeline(&self) -> std::sync::MutexGuard<'_, FeatureExtractor> {
        self.pipeline.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The impostor bank, if configured.
    pub(crate) fn bank(&self) -> Option<&ImpostorBank> {
        self.bank.as_ref()
    }

    /// Sets the pretrained word-model backbone (`pretrained_model`), loaded next to the bank.
    pub fn with_pretrained(mut self, pretrained: Option<PretrainedLstm>) -> Self {
        self.pretrained = pretrained;
        self
    }

    /// The pretrained word-model backbone, if configured.
    pub(crate) fn pretrained(&self) -> Option<&PretrainedLstm> {
        self.pretrained.as_ref()
    }

    /// The backbone sha256 stamped into new models.
    pub(crate) fn backbone_sha256(&self) -> &str {
        &self.backbone_sha256
    }

    /// Authorises a user for enrolment (same rules as every per-user request).
    pub(crate) fn authorise_user(
        &self,
        conn: &mut Conn,
        user: &str,
    ) -> Result<Option<Account>, IpcError> {
        self.authorise(conn, user)
    }
}

/// One enrolment clip's features, what the detector found, and its frozen-pair share.
pub(crate) type ExtractedClip = (UtteranceFeatures, ExtractReport, f64);

/// Features of every frame of `src` (at most `MAX_FRAMES`), with the share of consecutive
/// frame pairs that are the same picture.
fn extract_counting(
    ex: &mut FeatureExtractor,
    mut src: Box<dyn authnet_core::capture::FrameSource>,
) -> Result<(UtteranceFeatures, ExtractReport, f64), String> {
    // A recorded clip is already cut to the utterance: kept whole, as
    // `authnet_core::attempt` cuts a recording.
    let mut utt = Utterance::from_source(ex, SourceKind::Recording);
    let mut statics = crate::enroll::StaticCounter::default();
    let mut n = 0;
    while let Some(f) = src.next_frame().map_err(|e| e.to_string())? {
        utt.push(&f).map_err(|e| e.to_string())?;
        statics.push(f);
        n += 1;
        if n >= authnet_core::capture::MAX_FRAMES {
            break;
        }
    }
    let captured = utt.finish().map_err(|e| e.to_string())?;
    let feats = captured.probe().map_err(|e| e.to_string())?;
    Ok((feats, captured.report, statics.share()))
}
