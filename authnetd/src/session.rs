//! The daemon's state, and dispatch: each request goes to the handler of its job.
//!
//! - [`access`]: who may ask what (peer uid, account, seat); every handler authorises there;
//! - [`attempt`]: `authenticate` and `test`;
//! - [`admin`]: `list`, `remove`, `reset_throttle`;
//! - [`recorded`]: features of recorded enrolment clips; enrolment itself is
//!   [`crate::enroll`] (recorded and live clips, quality checks, commit).

mod access;
mod admin;
mod attempt;
mod recorded;
mod refusal;

pub use attempt::PROMPT;
pub(crate) use refusal::{Handled, Refusal, Stop};

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use authnet_core::attempt::{AttemptError, SourceKind, Utterance};
use authnet_core::features::{ExtractReport, FeatureExtractor, FeatureLayout, UtteranceFeatures};
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
    /// The layout of the pipeline's features, to refuse models of another layout or version.
    layout: FeatureLayout,
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

impl Policy {
    /// The core's threshold policy of the same name.
    pub(crate) fn core(self) -> ThresholdPolicy {
        match self {
            Self::Fmr => ThresholdPolicy::Fmr,
            Self::Eer => ThresholdPolicy::Eer,
        }
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
        let (backbone, backbone_sha256) = (m.name.clone(), m.embeddings_sha256().to_owned());
        let identity_dim = pipeline.embedder().dim();
        let layout = pipeline.produced_layout();
        Self {
            cfg,
            log,
            store,
            pipeline: Mutex::new(pipeline),
            gate: Gate::default(),
            backbone,
            backbone_sha256,
            identity_dim,
            layout,
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
            layout: Some(self.layout),
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
    ///
    /// The one place where a handler's [`Refusal`] becomes an `error` response.
    pub fn dispatch(&self, conn: &mut Conn, req: Request) -> Result<(), IpcError> {
        match self.handle(conn, req) {
            Ok(()) => Ok(()),
            Err(Stop::Refused(r)) => r.send(conn, &self.log),
            Err(Stop::Conn(e)) => Err(e),
        }
    }

    /// Request → handler.
    fn handle(&self, conn: &mut Conn, req: Request) -> Handled {
        match req {
            Request::Hello { .. } => Err(Refusal::bad_request("hello was already sent").into()),
            Request::Cancel {} => Err(Refusal::bad_request("nothing to cancel").into()),
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
                other_word_labels,
                clip_count,
            } => crate::enroll::enroll(
                self,
                conn,
                &user,
                password.as_ref(),
                &clips,
                &other_word_clips,
                other_word_labels.as_deref(),
                clip_count,
            ),
        }
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
}
