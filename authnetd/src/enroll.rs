//! `enroll` from recorded clips (`authnet-enroll --from`): authorisation (root, or the account
//! itself with its login password checked through PAM, see [`crate::pam_check`]), features of
//! each utterance directory, the quality checks of every clip ([`check_clip`],
//! [`same_person`]), [`password::enroll()`], then an atomic replacement of the model.
//!
//! For a non-root peer the daemon reads the clips with the peer's own file-system credentials
//! (see [`Daemon::extract_dirs`]), so it reads nothing the peer could not, and the model it
//! gets is its own.
//!
//! With no clips named, [`live`] records them with the camera instead, applying the same
//! quality checks to each clip as it is captured, and both paths end in [`train_and_commit`].

use std::path::PathBuf;
use std::time::Duration;

use authnet_core::capture::Frame;
use authnet_core::features::{cosine, l2_normalise, ExtractReport, UtteranceFeatures};
use authnet_core::model::password::{
    self, motion_energy, EnrollConfig, EnrollInput, PasswordModel, MIN_FRAMES, MIN_POSITIVES,
};
use authnet_ipc::{EnrollSummary, ErrorKind, IpcError, Response, Secret};

use crate::pam_check::{self, PamCheckError};
use crate::server::Conn;
use crate::session::{Daemon, Handled, Refusal};
use crate::sys::Account;

pub mod live;

/// Most clips one enrolment may name (bounds work a request can cause).
pub const MAX_CLIPS: usize = 200;

/// Share of a clip's frames that must hold a face.
pub const MIN_FACE_SHARE: f64 = 0.9;

/// Share of a clip's face frames that may have a low face-presence score (mesh feature layout,
/// [`authnet_core::features::PRESENCE_QUALITY`]); above it the face is mostly a poor view
/// (turned away, half out of frame, blurred) and the clip is refused.
pub const MAX_LOW_PRESENCE_SHARE: f64 = 0.5;

/// Longest usable clip in frames (15 s at 30 fps; a password is mouthed in a few seconds).
pub const MAX_CLIP_FRAMES: usize = 450;

/// Mouth motion energy (mean L2 step of the unit-norm mouth descriptor) under which a clip
/// counts as "no lip movement". Frozen face crops score 0 and MIRACL-VC1 utterances 0.4 to 1.
/// With `crop = "detect"` the tracker's box moves a little even on identical frames, which
/// alone gives a frozen full frame about 0.4, so the floor cannot separate those: the pixel
/// test ([`MAX_STATIC_SHARE`]) catches them instead.
pub const MIN_MOTION: f64 = 0.02;

/// Mean absolute difference per byte (0-255) under which two consecutive frames count as the
/// same picture (re-encoding noise of a copied frame stays far below 1).
pub const STATIC_PIXEL_DIFF: f64 = 0.5;

/// Share of consecutive frame pairs that may be the same picture; above it the clip is a
/// frozen frame, "no lip movement".
pub const MAX_STATIC_SHARE: f64 = 0.8;

/// Cosine of a clip's mean identity to the mean of the other clips under which it counts as
/// another person. Same-speaker MIRACL-VC1 clips (F01, `crop = "detect"`) score 0.89 to 0.99,
/// other words of the same speaker included; the floor is set well below, since it only has
/// to catch a different face, not judge a close one.
pub const MIN_SAME_PERSON: f32 = 0.5;

/// Budget of the PAM password check (pam_faildelay alone costs 2 s on a wrong password).
pub const PAM_TIMEOUT: Duration = Duration::from_secs(30);

/// Name of the staged model in the user directory, renamed over the model to commit it.
const STAGED_MODEL: &str = ".model.safetensors.new";

/// Why a clip is not used.
#[derive(Debug, Clone, PartialEq)]
pub enum Flaw {
    /// Too few frames hold a face.
    NoFace {
        /// Share of frames with a face.
        share: f64,
    },
    /// The mouth does not move.
    NoMotion {
        /// Its motion energy.
        energy: f64,
    },
    /// Most face frames have a low face-presence score (mesh feature layout).
    LowPresence {
        /// Share of the face frames with a low score.
        share: f64,
    },
    /// Fewer than [`MIN_FRAMES`] frames with a face.
    TooShort(usize),
    /// More than [`MAX_CLIP_FRAMES`] frames.
    TooLong(usize),
    /// The face differs from the other clips' face.
    OtherPerson {
        /// Cosine to the mean identity of the other clips.
        cosine: f32,
    },
}

impl Flaw {
    /// A short reason code for the log.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoFace { .. } => "no_face",
            Self::LowPresence { .. } => "low_presence",
            Self::NoMotion { .. } => "no_motion",
            Self::TooShort(_) => "too_short",
            Self::TooLong(_) => "too_long",
            Self::OtherPerson { .. } => "other_person",
        }
    }
}

impl std::fmt::Display for Flaw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoFace { share } => write!(
                f,
                "no face found: move closer (a face in {:.0} % of the frames, {:.0} % needed)",
                share * 100.0,
                MIN_FACE_SHARE * 100.0
            ),
            Self::NoMotion { .. } => f.write_str("no lip movement detected"),
            Self::LowPresence { share } => write!(
                f,
                "the face is not clearly visible: face the camera in good light (a poor view \
                 in {:.0} % of the frames, at most {:.0} % allowed)",
                share * 100.0,
                MAX_LOW_PRESENCE_SHARE * 100.0
            ),
            Self::TooShort(n) => write!(
                f,
                "too short: {n} frames with a face, at least {MIN_FRAMES} needed"
            ),
            Self::TooLong(n) => write!(
                f,
                "too long: {n} frames, at most {MAX_CLIP_FRAMES} (mouth the password once)"
            ),
            Self::OtherPerson { .. } => {
                f.write_str("this clip does not look like the same person as the others")
            }
        }
    }
}

/// Counts, one frame at a time, the consecutive frame pairs that show the same picture (mean
/// absolute difference per byte under [`STATIC_PIXEL_DIFF`]). Keeps only the previous frame.
#[derive(Default)]
pub struct StaticCounter {
    prev: Option<Frame>,
    pairs: usize,
    same: usize,
}

impl std::fmt::Debug for StaticCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "StaticCounter({} of {} pairs same)",
            self.same, self.pairs
        )
    }
}

impl StaticCounter {
    /// Adds the next frame of the clip.
    pub fn push(&mut self, f: Frame) {
        if let Some(p) = &self.prev {
            self.pairs += 1;
            if p.width == f.width && p.height == f.height {
                let diff: u64 = p
                    .rgb
                    .iter()
                    .zip(&f.rgb)
                    .map(|(a, b)| u64::from(a.abs_diff(*b)))
                    .sum();
                if (diff as f64) < STATIC_PIXEL_DIFF * f.rgb.len() as f64 {
                    self.same += 1;
                }
            }
        }
        self.prev = Some(f);
    }

    /// Share of the pairs seen so far that were the same picture; 0 with fewer than two frames.
    pub fn share(&self) -> f64 {
        if self.pairs == 0 {
            0.0
        } else {
            self.same as f64 / self.pairs as f64
        }
    }
}

/// Share of consecutive frame pairs of the utterance directory `dir` that show the same
/// picture (see [`StaticCounter`]); 0 when unreadable (its features were read already, so that
/// only happens if it changed meanwhile). The daemon counts it while decoding instead
/// ([`StaticCounter`] in [`Daemon::extract_dirs`]); this is the reference for its tests.
#[cfg(test)]
pub fn static_share(dir: &std::path::Path) -> f64 {
    let Ok(mut src) = authnet_core::capture::open_utterance(dir, true) else {
        return 0.0;
    };
    let mut counter = StaticCounter::default();
    for _ in 0..=MAX_CLIP_FRAMES {
        let Ok(Some(f)) = src.next_frame() else { break };
        counter.push(f);
    }
    counter.share()
}

/// The per-clip checks: a face in at least [`MIN_FACE_SHARE`] of the frames, at most
/// [`MAX_LOW_PRESENCE_SHARE`] of them a poor view (mesh layout), a length in
/// range, and lip motion: at most [`MAX_STATIC_SHARE`] of the frame pairs the same picture
/// (`static_share`) and a mouth motion energy of at least [`MIN_MOTION`].
pub fn check_clip(f: &UtteranceFeatures, r: &ExtractReport, static_share: f64) -> Result<(), Flaw> {
    if r.frames > MAX_CLIP_FRAMES {
        return Err(Flaw::TooLong(r.frames));
    }
    let share = if r.frames == 0 {
        0.0
    } else {
        r.faces_found as f64 / r.frames as f64
    };
    if share < MIN_FACE_SHARE {
        return Err(Flaw::NoFace { share });
    }
    let low = r.low_presence_share();
    if low > MAX_LOW_PRESENCE_SHARE {
        return Err(Flaw::LowPresence { share: low });
    }
    if f.frames.len() < MIN_FRAMES {
        return Err(Flaw::TooShort(f.frames.len()));
    }
    let energy = motion_energy(f);
    // NaN (no motion computable) fails too.
    if energy.is_nan() || energy < MIN_MOTION || static_share > MAX_STATIC_SHARE {
        return Err(Flaw::NoMotion { energy });
    }
    Ok(())
}

/// Mean of the clips' mean identities, L2-normalised.
pub(crate) fn mean_identity<'a>(
    clips: impl Iterator<Item = &'a UtteranceFeatures>,
) -> Option<Vec<f32>> {
    let mut m: Option<Vec<f32>> = None;
    for c in clips {
        let v = c.mean_identity();
        match &mut m {
            None => m = Some(v),
            Some(m) => m.iter_mut().zip(&v).for_each(|(a, b)| *a += b),
        }
    }
    m.map(|mut m| {
        l2_normalise(&mut m);
        m
    })
}

/// The consistency check: for each clip, the cosine of its mean identity to the mean identity
/// of the *other* clips, when there are at least two others (with fewer, no majority says
/// which face is the user's). `None` where not judged.
pub fn same_person(clips: &[&UtteranceFeatures]) -> Vec<Option<f32>> {
    if clips.len() < 3 {
        return vec![None; clips.len()];
    }
    (0..clips.len())
        .map(|i| {
            let rest = mean_identity(
                clips
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .map(|(_, c)| *c),
            )?;
            Some(cosine(&clips[i].mean_identity(), &rest))
        })
        .collect()
}

fn paths(v: &[String]) -> Result<Vec<PathBuf>, String> {
    v.iter()
        .map(|s| {
            let p = PathBuf::from(s);
            if p.is_absolute() {
                Ok(p)
            } else {
                Err(format!("clip path {s:?} is not absolute"))
            }
        })
        .collect()
}

/// For a non-root peer acting on its own account (already authorised): checks `password`
/// through the PAM service `enroll_pam_service`. Root passes without one. `Ok` when it may go
/// on; the refusal otherwise. The password is never logged.
pub(crate) fn password_ok(
    d: &Daemon,
    conn: &Conn,
    acct: &Account,
    password: Option<&Secret>,
    action: &str,
) -> Result<(), Refusal> {
    if conn.peer.uid == 0 {
        return Ok(());
    }
    let Some(pw) = password else {
        return Err(Refusal::peer(
            ErrorKind::AuthFailed,
            format!("your login password is needed to {action} your face password"),
        ));
    };
    let user = acct.name.as_str();
    let service = d.cfg.enroll_pam_service.as_str();
    let uid = conn.peer.uid;
    if let Err(w) = d.backoff.begin(uid, user) {
        d.log.warn(&format!(
            "user={user} uid={uid} password check for {action} refused: {}",
            match w {
                pam_check::Wait::Busy => "another check is running".to_string(),
                pam_check::Wait::For(t) => format!("backoff, {:.1} s left", t.as_secs_f64()),
            }
        ));
        return Err(Refusal::peer(
            ErrorKind::AuthFailed,
            match w {
                pam_check::Wait::Busy => "another password check for you is running".to_string(),
                pam_check::Wait::For(t) => format!(
                    "too many wrong passwords; try again in {} s",
                    t.as_secs() + 1
                ),
            },
        ));
    }
    let checked = pam_check::check_password(service, user, pw, PAM_TIMEOUT);
    d.backoff.end(
        uid,
        user,
        match &checked {
            Ok(()) => Some(true),
            Err(e) if e.is_denial() => Some(false),
            Err(_) => None,
        },
    );
    match checked {
        Ok(()) => {
            d.log.info(&format!(
                "user={user} uid={} password accepted by PAM service {service} for {action}",
                conn.peer.uid
            ));
            Ok(())
        }
        Err(e) => {
            let why = crate::log::chain(&e);
            d.log.warn(&format!(
                "user={user} uid={} password check for {action} failed: {why}",
                conn.peer.uid
            ));
            // Already logged above (at warn: a wrong password is the peer's, not the daemon's).
            Err(if e.is_denial() {
                Refusal::peer(
                    ErrorKind::AuthFailed,
                    format!("the login password of {user} was not accepted"),
                )
            } else if matches!(e, PamCheckError::TimedOut(_)) {
                Refusal::peer(ErrorKind::Internal, "the password check timed out")
            } else {
                Refusal::peer(ErrorKind::Internal, "the password could not be checked")
            })
        }
    }
}

/// What [`screen`] kept of a list of clips.
struct Screened {
    /// The clips that passed the checks, in order.
    usable: Vec<UtteranceFeatures>,
    /// Why each other clip was rejected.
    reasons: Vec<String>,
    /// The index, in the screened list, of each of `usable`.
    kept: Vec<usize>,
}

/// Runs the quality checks over extracted clips, reports each rejected one to the client (an
/// `info` line) and the log, and returns what it kept ([`Screened`]). `kind` names the clips
/// in messages.
fn screen(
    d: &Daemon,
    conn: &mut Conn,
    user: &str,
    kind: &str,
    dirs: &[PathBuf],
    clips: Vec<(UtteranceFeatures, ExtractReport, f64)>,
    reference: Option<&[f32]>,
) -> Result<Screened, IpcError> {
    // The frozen-frame share was counted while the clip was decoded (with the peer's rights),
    // so the clip is never read again here.
    let statics: Vec<f64> = clips.iter().map(|c| c.2).collect();
    let clips: Vec<(UtteranceFeatures, ExtractReport)> =
        clips.into_iter().map(|(f, r, _)| (f, r)).collect();
    let mut verdicts: Vec<Result<(), Flaw>> = clips
        .iter()
        .zip(&statics)
        .map(|((f, r), st)| check_clip(f, r, *st))
        .collect();
    // Consistency among the clips that passed the per-clip checks, or against `reference`.
    let passed: Vec<usize> = (0..clips.len()).filter(|&i| verdicts[i].is_ok()).collect();
    let cos: Vec<Option<f32>> = match reference {
        Some(r) => passed
            .iter()
            .map(|&i| Some(cosine(&clips[i].0.mean_identity(), r)))
            .collect(),
        None => same_person(&passed.iter().map(|&i| &clips[i].0).collect::<Vec<_>>()),
    };
    let mut cosines = vec![None; clips.len()];
    for (&i, c) in passed.iter().zip(&cos) {
        cosines[i] = *c;
        if let Some(c) = *c {
            if c.is_nan() || c < MIN_SAME_PERSON {
                verdicts[i] = Err(Flaw::OtherPerson { cosine: c });
            }
        }
    }
    let mut usable = Vec::new();
    let mut kept = Vec::new();
    let mut reasons = Vec::new();
    for (i, ((f, r), v)) in clips.into_iter().zip(verdicts).enumerate() {
        let stats = format!(
            "frames={} faces={} motion={:.4} static={:.2}",
            r.frames,
            r.faces_found,
            motion_energy(&f),
            statics.get(i).copied().unwrap_or_default()
        );
        match v {
            Ok(()) => {
                let cos = cosines[i].map(|c| format!(" cosine={c:.3}"));
                d.log.debug(&format!(
                    "user={user} {kind} clip {} ok {stats}{}",
                    i + 1,
                    cos.unwrap_or_default()
                ));
                usable.push(f);
                kept.push(i);
            }
            Err(flaw) => {
                let cos = match &flaw {
                    Flaw::OtherPerson { cosine } => format!(" cosine={cosine:.3}"),
                    _ => String::new(),
                };
                d.log.info(&format!(
                    "user={user} {kind} clip {} rejected reason={} {stats}{cos}",
                    i + 1,
                    flaw.code()
                ));
                let text = format!(
                    "{kind} clip {} ({}) rejected: {flaw}",
                    i + 1,
                    dirs.get(i)
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                );
                conn.send(&Response::Info { text })?;
                reasons.push(format!("{kind} clip {}: {flaw}", i + 1));
            }
        }
    }
    Ok(Screened {
        usable,
        reasons,
        kept,
    })
}

/// Commits `model` as `user`'s: saved (atomically, fsynced) under a staging name in the user's
/// directory, then renamed over the model and the directory fsynced. A crash at any point
/// leaves either the old model or the new one, never a partial file; a staged file left by a
/// crash is overwritten by the next enrolment and never loaded.
fn commit_model(d: &Daemon, user: &str, model: &PasswordModel) -> Result<(), String> {
    let dir = d
        .store
        .ensure_user_dir(user)
        .map_err(|e| crate::log::chain(&e))?;
    let bytes = model.to_bytes().map_err(|e| crate::log::chain(&e))?;
    dir.write_atomic(STAGED_MODEL, &bytes)
        .map_err(|e| format!("{}: {e}", dir.path().join(STAGED_MODEL).display()))?;
    pause_before_commit(d, user);
    dir.rename(STAGED_MODEL, crate::store::MODEL_FILE)
        .map_err(|e| format!("{}: {e}", d.store.model_path(user).display()))
}

/// Test hook, compiled into debug builds only: with `AUTHNETD_TEST_PAUSE_BEFORE_COMMIT=SECS`
/// the daemon logs and sleeps between staging and committing a model, so the crash-safety test
/// can SIGKILL it inside the write window.
#[cfg(debug_assertions)]
fn pause_before_commit(d: &Daemon, user: &str) {
    let secs = std::env::var("AUTHNETD_TEST_PAUSE_BEFORE_COMMIT")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0 && *s < 600.0);
    if let Some(s) = secs {
        d.log.warn(&format!(
            "user={user} test hook: model staged, pausing {s} s before commit"
        ));
        std::thread::sleep(Duration::from_secs_f64(s));
    }
}

#[cfg(not(debug_assertions))]
fn pause_before_commit(_: &Daemon, _: &str) {}

/// Longest word label of an other-word clip, in bytes.
pub const MAX_LABEL_BYTES: usize = 64;

/// The other-word clips' labels if there is one per clip (`""`: not known) and each is at
/// most [`MAX_LABEL_BYTES`] without control characters; empty when none is known.
fn check_labels(labels: Option<&[String]>, clips: usize) -> Result<Vec<String>, String> {
    let Some(labels) = labels else {
        return Ok(Vec::new());
    };
    if labels.len() != clips {
        return Err(format!(
            "{} other-word labels for {clips} other-word clips: give one per clip (\"\" when \
             the word is not known)",
            labels.len()
        ));
    }
    if let Some(l) = labels
        .iter()
        .find(|l| l.len() > MAX_LABEL_BYTES || l.chars().any(char::is_control))
    {
        let shown: String = l.chars().filter(|c| !c.is_control()).take(20).collect();
        return Err(format!(
            "other-word label {shown:?}... is not a word of at most {MAX_LABEL_BYTES} bytes \
             without control characters"
        ));
    }
    if labels.iter().all(String::is_empty) {
        return Ok(Vec::new());
    }
    Ok(labels.to_vec())
}

/// Handles `enroll`: from the recorded `clips`, or from the camera ([`live::enroll`], which
/// records `clip_count` clips) when there are none. `other_word_labels` names the word of each
/// of `other_word_clips`, when the client knows it.
#[allow(clippy::too_many_arguments)]
pub fn enroll(
    d: &Daemon,
    conn: &mut Conn,
    user: &str,
    password: Option<&Secret>,
    clips: &[String],
    other_word_clips: &[String],
    other_word_labels: Option<&[String]>,
    clip_count: u32,
) -> Handled {
    let acct = d.authorise(conn, user)?;
    let labels =
        check_labels(other_word_labels, other_word_clips.len()).map_err(Refusal::bad_request)?;
    if clips.is_empty() {
        if !other_word_clips.is_empty() {
            return Err(Refusal::bad_request(
                "other-word clips need recorded password clips too; a live enrolment records both",
            )
            .into());
        }
        return live::enroll(d, conn, &acct, password, clip_count);
    }
    if clips.len() + other_word_clips.len() > MAX_CLIPS {
        return Err(
            Refusal::bad_request(format!("at most {MAX_CLIPS} clips per enrolment")).into(),
        );
    }
    let pos = paths(clips).map_err(Refusal::bad_request)?;
    let neg = paths(other_word_clips).map_err(Refusal::bad_request)?;
    password_ok(d, conn, &acct, password, "enrol")?;
    let total = pos.len() + neg.len();
    let mut done_before = 0usize;
    let send_progress = |conn: &mut Conn, done: usize| {
        conn.send(&Response::Progress {
            stage: "features".into(),
            done: done as u32,
            total: total as u32,
            text: format!("features of clip {done} of {total}"),
        })
    };
    let peer = conn.peer;
    let positives = d.extract_dirs(peer, &pos, &mut |i, _| send_progress(conn, i))?;
    done_before += pos.len();
    let others = d.extract_dirs(peer, &neg, &mut |i, _| send_progress(conn, done_before + i))?;
    let Screened {
        usable: positives,
        reasons: mut rejected,
        ..
    } = screen(d, conn, user, "password", &pos, positives, None)?;
    if positives.len() < MIN_POSITIVES {
        d.log.warn(&format!(
            "user={user} enrolment refused: {} of {} password clips usable",
            positives.len(),
            pos.len()
        ));
        return Err(Refusal::bad_request(format!(
            "only {} of {} password clips passed the quality checks, at least {MIN_POSITIVES} \
             are needed ({})",
            positives.len(),
            pos.len(),
            rejected.join("; ")
        ))
        .into());
    }
    let reference = mean_identity(positives.iter());
    let Screened {
        usable: others,
        reasons: r,
        kept,
    } = screen(
        d,
        conn,
        user,
        "other-word",
        &neg,
        others,
        reference.as_deref(),
    )?;
    rejected.extend(r);
    // The labels of the clips the checks kept; without labels each clip is held out alone.
    let labels: Vec<String> = if labels.is_empty() {
        Vec::new()
    } else {
        kept.iter()
            .map(|&i| labels.get(i).cloned().unwrap_or_default())
            .collect()
    };
    train_and_commit(
        d,
        conn,
        &acct,
        &positives,
        &others,
        &labels,
        rejected.len(),
        "recorded clips",
    )
}

/// Trains `acct`'s model from the screened clips with [`password::enroll()`] (streaming its
/// progress), commits it ([`commit_model`]) and answers `enrolled`. Shared by enrolment from
/// recorded clips and from the camera ([`live`]); `other_labels` names the word of each of
/// `others` (empty when unknown), `rejected` counts the clips the quality checks refused,
/// `source` says where the clips came from (for the log).
#[allow(clippy::too_many_arguments)]
pub(crate) fn train_and_commit(
    d: &Daemon,
    conn: &mut Conn,
    acct: &Account,
    positives: &[UtteranceFeatures],
    others: &[UtteranceFeatures],
    other_labels: &[String],
    rejected: usize,
    source: &str,
) -> Handled {
    let user = acct.name.as_str();
    // `linear` reads no backbone, even if a test or a future caller handed the daemon one.
    let pretrained = d
        .pretrained()
        .filter(|_| d.cfg.word_model.reads_pretrained());
    let cfg = EnrollConfig {
        target_fmr: d.cfg.target_fmr,
        word_model: d.cfg.word_model,
        ..EnrollConfig::default()
    };
    let input = EnrollInput {
        positives,
        other_words: others,
        other_word_labels: other_labels,
        bank: d.bank(),
    };
    let mut client_gone = false;
    let mut progress = |stage: &str, done: usize, total: usize| {
        if client_gone {
            return;
        }
        let r = conn.send(&Response::Progress {
            stage: stage.into(),
            done: done as u32,
            total: total as u32,
            text: format!("{stage} {done}/{total}"),
        });
        client_gone = r.is_err();
    };
    let trained = password::enroll_with(&input, pretrained, &cfg, &mut progress);
    if client_gone {
        d.log
            .info(&format!("user={user} enrolment abandoned by the client"));
        return Err(IpcError::Closed.into());
    }
    let (mut model, report) = match trained {
        Ok(t) => t,
        Err(e) => {
            // The clips' fault, not the daemon's: the peer reads why.
            let e = crate::log::chain(&e);
            d.log.warn(&format!("user={user} enrolment failed: {e}"));
            return Err(Refusal::bad_request(format!("enrolment failed: {e}")).into());
        }
    };
    model.set_backbone_sha256(d.backbone_sha256());
    model.set_owner(Daemon::owner_of(acct));
    commit_model(d, &acct.name, &model).map_err(|e| {
        Refusal::internal_text(
            "cannot save the model",
            format!("user={user} cannot save the model: {e}"),
        )
    })?;
    let policy = d.cfg.threshold_policy;
    d.log.info(&format!(
        "user={user} enrolled by uid {} from {} {source} ({} other-word, {} labelled, \
         {rejected} rejected), validation_eer={:.4}",
        conn.peer.uid,
        positives.len(),
        others.len(),
        other_labels.iter().filter(|l| !l.is_empty()).count(),
        report.validation_eer
    ));
    Ok(conn.send(&Response::Enrolled {
        summary: EnrollSummary {
            validation_eer: report.validation_eer,
            genuine_mean: report.genuine_mean,
            impostor_mean: report.impostor_mean,
            margin: report.margin,
            threshold_policy: policy.name().into(),
            threshold: model.threshold(policy.core()),
            clips: positives.len() as u32,
        },
    })?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use authnet_core::features::FrameFeatures;

    #[test]
    fn other_word_labels_are_one_per_clip_and_short() {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(check_labels(None, 3).unwrap(), Vec::<String>::new());
        assert_eq!(
            check_labels(Some(&v(&["river", "", "river"])), 3).unwrap(),
            v(&["river", "", "river"])
        );
        // Labels that name nothing are no labels.
        assert!(check_labels(Some(&v(&["", ""])), 2).unwrap().is_empty());
        assert!(check_labels(Some(&[]), 0).unwrap().is_empty());
        let e = check_labels(Some(&v(&["river"])), 2).unwrap_err();
        assert!(
            e.contains("1 other-word labels for 2 other-word clips"),
            "{e}"
        );
        let long = "w".repeat(MAX_LABEL_BYTES + 1);
        assert!(check_labels(Some(&v(&[&long])), 1).is_err());
        assert!(check_labels(Some(&v(&["riv\ner"])), 1).is_err());
        assert!(check_labels(Some(&v(&[&"w".repeat(MAX_LABEL_BYTES)])), 1).is_ok());
    }

    fn utt(ids: &[[f32; 2]], mouths: &[[f32; 2]]) -> UtteranceFeatures {
        UtteranceFeatures {
            backbone: "t".into(),
            identity_dim: 2,
            mouth_dim: 2,
            frames: ids
                .iter()
                .zip(mouths)
                .map(|(i, m)| FrameFeatures {
                    identity: i.to_vec(),
                    mouth: m.to_vec(),
                })
                .collect(),
            frames_read: ids.len(),
        }
    }

    fn report(frames: usize, faces: usize) -> ExtractReport {
        ExtractReport {
            frames,
            faces_found: faces,
            no_face: frames - faces,
            too_dark: 0,
            low_presence: 0,
        }
    }

    #[test]
    fn per_clip_checks_name_the_first_flaw() {
        let moving = utt(&[[1.0, 0.0]; 3], &[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]);
        assert_eq!(check_clip(&moving, &report(3, 3), 0.0), Ok(()));
        let e = check_clip(&moving, &report(3, 3), 1.0).unwrap_err();
        assert_eq!(e.to_string(), "no lip movement detected");
        let frozen = utt(&[[1.0, 0.0]; 3], &[[1.0, 0.0]; 3]);
        let e = check_clip(&frozen, &report(3, 3), 0.0).unwrap_err();
        assert_eq!(e.to_string(), "no lip movement detected");
        let e = check_clip(&moving, &report(4, 3), 0.0).unwrap_err();
        assert!(
            e.to_string().starts_with("no face found: move closer"),
            "{e}"
        );
        let e = check_clip(&moving, &report(0, 0), 0.0).unwrap_err();
        assert_eq!(e.code(), "no_face");
        // Mesh layout: most face frames with a low face-presence score.
        let mut poor = report(3, 3);
        poor.low_presence = 2;
        let e = check_clip(&moving, &poor, 0.0).unwrap_err();
        assert_eq!(e.code(), "low_presence");
        assert!(e.to_string().contains("not clearly visible"), "{e}");
        poor.low_presence = 1;
        assert_eq!(check_clip(&moving, &poor, 0.0), Ok(()));
        let one = utt(&[[1.0, 0.0]], &[[1.0, 0.0]]);
        assert_eq!(check_clip(&one, &report(1, 1), 0.0), Err(Flaw::TooShort(1)));
        let e = check_clip(
            &moving,
            &report(MAX_CLIP_FRAMES + 1, MAX_CLIP_FRAMES + 1),
            0.0,
        );
        assert_eq!(e, Err(Flaw::TooLong(MAX_CLIP_FRAMES + 1)));
    }

    #[test]
    fn copied_frames_are_static_and_changing_ones_are_not() {
        use authnet_core::image::{Rgb, RgbImage};
        let d = tempfile::tempdir().unwrap();
        let (frozen, moving) = (d.path().join("frozen"), d.path().join("moving"));
        std::fs::create_dir_all(&frozen).unwrap();
        std::fs::create_dir_all(&moving).unwrap();
        for i in 0..5u8 {
            let img = RgbImage::from_pixel(32, 32, Rgb([100; 3]));
            img.save(frozen.join(format!("color_{i:03}.png"))).unwrap();
            let img =
                RgbImage::from_fn(32, 32, |x, _| Rgb([(x as u8 * 8).wrapping_add(i * 40); 3]));
            img.save(moving.join(format!("color_{i:03}.png"))).unwrap();
        }
        assert_eq!(static_share(&frozen), 1.0);
        assert_eq!(static_share(&moving), 0.0);
        assert_eq!(static_share(&d.path().join("missing")), 0.0);
    }

    #[test]
    fn the_odd_face_out_is_found() {
        let m = [[1.0, 0.0], [0.0, 1.0]];
        let a = utt(&[[1.0, 0.0]; 2], &m);
        let b = utt(&[[0.9, 0.1]; 2], &m);
        let c = utt(&[[0.95, 0.05]; 2], &m);
        let x = utt(&[[0.0, 1.0]; 2], &m);
        let cos = same_person(&[&a, &b, &c, &x]);
        for c in &cos[..3] {
            assert!(c.unwrap() > MIN_SAME_PERSON, "{cos:?}");
        }
        assert!(cos[3].unwrap() < MIN_SAME_PERSON, "{cos:?}");
        assert_eq!(same_person(&[&a, &x]), vec![None, None]);
    }
}
