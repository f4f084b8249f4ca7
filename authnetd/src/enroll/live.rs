//! Live-camera enrolment (`enroll` with no clips named): the daemon records the clips itself.
//!
//! It takes the camera queue for each recording (prompt, countdown and clip) at low priority,
//! so a login waiting for the camera goes first, between two clips, and lets go of it (the
//! guard is dropped) after each recording and on every exit: success, refusal, a camera
//! failure, a cancel and a client that disconnects. The time it holds the camera, summed over
//! its recordings, is capped by `enroll_camera_limit`; past it the enrolment fails with
//! `busy`. A non-root peer must sit in a local session on the camera's seat
//! ([`crate::seat`]). Training needs no camera: a login need not wait for the model fit.
//!
//! For each of the N password clips, then `enroll_other_word_rounds` (default
//! [`DEFAULT_OTHER_WORD_ROUNDS`]) rounds of the [`OTHER_WORDS`] (river, window, orange, pencil,
//! river, ...):
//!
//! 1. `info` "Mouth your password now (k/N)" (or "Now mouth: river (1/8)");
//! 2. a countdown, `info` "3", "2", "1", one every [`COUNTDOWN_STEP`];
//! 3. one clip from [`Clip::open`]: frames until its end or `camera.clip_seconds` (plus
//!    [`CAPTURE_SLACK`] for the camera to start), each detected and embedded as it arrives;
//! 4. the quality checks of recorded clips ([`check_clip`]: face share, length, lip motion and
//!    the frozen-frame pixel test), and for password clips the consistency of the face with the
//!    earlier clips ([`MIN_SAME_PERSON`], once two earlier clips say whose face it is). A failed
//!    clip is explained in an `info` line and retaken, at most [`MAX_RETAKES`] times.
//!
//! The countdown also orders the `dir:` camera of tests and demos: it re-reads its `current`
//! file when the clip opens, which is after the countdown, so a driver that switches the clip
//! when it sees the prompt has [`COUNTDOWN_STEP`] × 3 to do so.

use std::time::{Duration, Instant};

use authnet_core::attempt::Utterance;
use authnet_core::features::{cosine, UtteranceFeatures};
use authnet_core::model::password::{motion_energy, MIN_POSITIVES};
use authnet_ipc::{ErrorKind, IpcError, Response, Secret};

use super::{
    check_clip, mean_identity, password_ok, train_and_commit, Flaw, StaticCounter, MIN_SAME_PERSON,
};
use crate::camera::Clip;
use crate::server::{ClientState, Conn};
use crate::session::{Daemon, Handled, Refusal, PROMPT};
use crate::sys::Account;

/// Password clips recorded when the request asks for 0.
pub const DEFAULT_CLIPS: usize = 7;

/// Most password clips one live enrolment records (bounds how long it holds the camera).
pub const MAX_LIVE_CLIPS: usize = 20;

/// Retakes allowed per clip before the enrolment fails.
pub const MAX_RETAKES: usize = 3;

/// The other words mouthed as same-person negatives, in order.
pub const OTHER_WORDS: [&str; 4] = ["river", "window", "orange", "pencil"];

/// How many times each of the [`OTHER_WORDS`] is mouthed by default, in rounds
/// (`enroll_other_word_rounds`, 1 to [`MAX_OTHER_WORD_ROUNDS`]). The clips go to
/// enrolment labelled with their word, so cross-validation holds out a word's clips together
/// and the word model learns from the user's own repetitions which changes of the mouth are
/// not the word (`EnrollConfig::word_whitening`). Chosen with the number of words on the 15
/// leave-one-speaker-out runs inside the evaluation's training speakers (README, "How many
/// other words a live enrolment records"): with one unlabelled clip of each of 3 words the
/// user's other words passed 705 times in 12600 trials at the deployed threshold; with 2
/// labelled clips of each of 4, 404, and as few genuine clips were missed.
pub const DEFAULT_OTHER_WORD_ROUNDS: usize = 2;

/// Most rounds of the other words `enroll_other_word_rounds` may ask for.
pub const MAX_OTHER_WORD_ROUNDS: usize = 5;

/// The countdown sent before each recording.
const COUNTDOWN: [&str; 3] = ["3", "2", "1"];

/// Pause after each countdown step: short, so that a whole enrolment stays near a minute.
pub const COUNTDOWN_STEP: Duration = Duration::from_millis(300);

/// How often the client is polled (cancel, disconnect) during the countdown.
const POLL_STEP: Duration = Duration::from_millis(50);

/// Time a camera may take to deliver its first frame, on top of `camera.clip_seconds`.
pub const CAPTURE_SLACK: Duration = Duration::from_secs(2);

/// How one recording ended.
#[derive(Debug)]
enum Take {
    /// A clip that passed the checks.
    Good(UtteranceFeatures),
    /// A clip that failed them: retake.
    Flawed(Flaw),
    /// The camera or the pipeline failed: the enrolment stops with this refusal.
    Failed(Refusal),
    /// The client sent `cancel` (or another request).
    Cancelled,
}

/// What is being recorded, for prompts, messages and the log.
#[derive(Debug, Clone, Copy)]
enum Kind<'a> {
    /// Password clip `k` of `n`.
    Password { k: usize, n: usize },
    /// Other word `word`, number `j` of `m`.
    Other { word: &'a str, j: usize, m: usize },
}

impl Kind<'_> {
    fn prompt(self) -> String {
        match self {
            Self::Password { k, n } => format!("{PROMPT} ({k}/{n})"),
            Self::Other { word, j, m } => format!("Now mouth: {word} ({j}/{m})"),
        }
    }

    fn label(self) -> String {
        match self {
            Self::Password { k, n } => format!("password clip {k}/{n}"),
            Self::Other { word, j, m } => format!("other-word clip {j}/{m} ({word})"),
        }
    }
}

/// Handles `enroll` without clips for the authorised account `acct`: `clip_count` password
/// clips (0 means [`DEFAULT_CLIPS`]), then the [`OTHER_WORDS`], then training.
pub fn enroll(
    d: &Daemon,
    conn: &mut Conn,
    acct: &Account,
    password: Option<&Secret>,
    clip_count: u32,
) -> Handled {
    let user = acct.name.as_str();
    let n = match clip_count {
        0 => DEFAULT_CLIPS,
        c => c as usize,
    };
    if !(MIN_POSITIVES..=MAX_LIVE_CLIPS).contains(&n) {
        return Err(Refusal::bad_request(format!(
            "a live enrolment records {MIN_POSITIVES} to {MAX_LIVE_CLIPS} clips, not {n}"
        ))
        .into());
    }
    if conn.peer.uid != 0 {
        if let Err(why) = d.seat_check(conn) {
            d.log.info(&format!(
                "user={user} uid={} pid={}: live enrolment refused, remote session ({why})",
                conn.peer.uid, conn.peer.pid
            ));
            return Err(Refusal::denied(
                "the camera can only be used from a local session on its seat",
            )
            .into());
        }
    }
    password_ok(d, conn, acct, password, "enrol")?;
    let mut held = Duration::ZERO;
    let rounds = d.cfg.enroll_other_word_rounds;
    let m = OTHER_WORDS.len() * rounds;
    d.log.info(&format!(
        "user={user} live enrolment by uid {}: {n} password clips, {} other words {rounds} times \
         each",
        conn.peer.uid,
        OTHER_WORDS.len(),
    ));
    conn.send(&Response::Info {
        text: format!(
            "Look at the camera. You will mouth your password {n} times, then {} other words \
             {rounds} times each, each after a countdown.",
            OTHER_WORDS.len(),
        ),
    })?;
    let mut rejected = 0usize;
    let mut positives = Vec::with_capacity(n);
    for k in 1..=n {
        let kind = Kind::Password { k, n };
        let f = record(
            d,
            conn,
            user,
            kind,
            Some(&positives),
            &mut rejected,
            &mut held,
        )?;
        positives.push(f);
    }
    let mut others = Vec::with_capacity(m);
    let mut labels = Vec::with_capacity(m);
    for (j, word) in other_word_order(rounds).enumerate() {
        let kind = Kind::Other { word, j: j + 1, m };
        others.push(record(d, conn, user, kind, None, &mut rejected, &mut held)?);
        labels.push(word.to_string());
    }
    d.log.info(&format!(
        "user={user} live enrolment held the camera {:.1} s",
        held.as_secs_f64()
    ));
    conn.send(&Response::Info {
        text: "Recording done; training your model.".into(),
    })?;
    train_and_commit(
        d,
        conn,
        acct,
        &positives,
        &others,
        &labels,
        rejected,
        "camera clips",
    )
}

/// The other words in the order they are prompted: `rounds` rounds of [`OTHER_WORDS`], so the
/// repetitions of one word are spread over the recording.
fn other_word_order(rounds: usize) -> impl Iterator<Item = &'static str> {
    (0..rounds).flat_map(|_| OTHER_WORDS)
}

/// Records one clip of `kind`, retaking it while it fails the checks (at most [`MAX_RETAKES`]
/// times). `earlier`: the password clips kept so far, for the consistency check (`None` for
/// other words). Each recording takes the camera queue at low priority and adds the time it
/// held it to `held`. `Err` when the enrolment ends here.
fn record(
    d: &Daemon,
    conn: &mut Conn,
    user: &str,
    kind: Kind<'_>,
    earlier: Option<&[UtteranceFeatures]>,
    rejected: &mut usize,
    held: &mut Duration,
) -> Handled<UtteranceFeatures> {
    for attempt in 0..=MAX_RETAKES {
        let left = d.cfg.enroll_camera_limit.saturating_sub(*held);
        if left.is_zero() {
            d.log.warn(&format!(
                "user={user} live enrolment stopped: it held the camera {:.1} s, the limit",
                held.as_secs_f64()
            ));
            return Err(Refusal::peer(
                ErrorKind::Busy,
                format!(
                    "the enrolment used the camera for its limit of {:.0} s; start again",
                    d.cfg.enroll_camera_limit.as_secs_f64()
                ),
            )
            .into());
        }
        let Some(camera) = d.acquire_camera_low(d.cfg.camera_wait) else {
            d.log
                .info(&format!("user={user} live enrolment stopped: camera busy"));
            return Err(
                Refusal::peer(ErrorKind::Busy, "the camera is in use; try again shortly").into(),
            );
        };
        let since = Instant::now();
        let budget_end = since + left;
        let take = (|| {
            conn.send(&Response::Info {
                text: kind.prompt(),
            })?;
            if countdown(conn)? {
                capture(d, conn, user, kind, earlier, budget_end)
            } else {
                Ok(Take::Cancelled)
            }
        })();
        *held += since.elapsed();
        drop(camera);
        let take = take?;
        match take {
            Take::Good(f) => {
                conn.send(&Response::Info {
                    text: format!("Recorded {}.", kind.label()),
                })?;
                return Ok(f);
            }
            Take::Flawed(flaw) => {
                *rejected += 1;
                if attempt == MAX_RETAKES {
                    d.log.warn(&format!(
                        "user={user} live enrolment failed: {} rejected {} times",
                        kind.label(),
                        MAX_RETAKES + 1
                    ));
                    return Err(Refusal::bad_request(format!(
                        "{} failed the quality checks {} times, last: {flaw}",
                        kind.label(),
                        MAX_RETAKES + 1
                    ))
                    .into());
                }
                conn.send(&Response::Info {
                    text: format!(
                        "{} rejected: {flaw}. Again (retake {} of {MAX_RETAKES}).",
                        kind.label(),
                        attempt + 1
                    ),
                })?;
            }
            Take::Failed(why) => return Err(why.into()),
            Take::Cancelled => {
                d.log.info(&format!("user={user} live enrolment cancelled"));
                return Err(Refusal::bad_request("enrolment cancelled").into());
            }
        }
    }
    // The loop returns on its last attempt (`attempt == MAX_RETAKES`) in every arm.
    Err(Refusal::internal_text("enrolment failed", "live enrolment: retakes exhausted").into())
}

fn extraction_failed(e: &dyn std::error::Error) -> Refusal {
    Refusal::internal("feature extraction failed", "feature extraction failed", e)
}

/// Sends the countdown, pausing [`COUNTDOWN_STEP`] after each step. `Ok(false)` if the client
/// cancelled; `Err` if it left.
fn countdown(conn: &mut Conn) -> Result<bool, IpcError> {
    for step in COUNTDOWN {
        conn.send(&Response::Info { text: step.into() })?;
        let until = Instant::now() + COUNTDOWN_STEP;
        loop {
            match conn.poll() {
                ClientState::Waiting => {}
                ClientState::Cancelled => return Ok(false),
                ClientState::Gone => return Err(IpcError::Closed),
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(POLL_STEP));
        }
    }
    Ok(true)
}

/// One clip from the camera, with features extracted as frames arrive, then checked.
fn capture(
    d: &Daemon,
    conn: &mut Conn,
    user: &str,
    kind: Kind<'_>,
    earlier: Option<&[UtteranceFeatures]>,
    budget_end: Instant,
) -> Result<Take, IpcError> {
    let mut ex = d.pipeline();
    let mut clip = match Clip::open(&d.cfg.camera, ex.crop_mode()) {
        Ok(c) => c,
        Err(e) => {
            return Ok(Take::Failed(Refusal::internal(
                "the camera could not be opened",
                format_args!("camera {} unavailable", d.cfg.camera.source),
                &e,
            )))
        }
    };
    let deadline = (Instant::now() + d.cfg.camera.clip + CAPTURE_SLACK).min(budget_end);
    // The owner of the pipeline order is `authnet_core::attempt`: the camera's kind chooses
    // the cut, as on the attempt path, so the model learns from the span it will later score.
    let mut utt = Utterance::from_source(&mut ex, d.cfg.camera.source.kind());
    let mut statics = StaticCounter::default();
    loop {
        match conn.poll() {
            ClientState::Waiting => {}
            ClientState::Cancelled => return Ok(Take::Cancelled),
            ClientState::Gone => return Err(IpcError::Closed),
        }
        let frame = match clip.next_frame(deadline) {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                return Ok(Take::Failed(Refusal::internal(
                    "the camera failed while recording",
                    format_args!(
                        "camera {} failed after {} frames",
                        d.cfg.camera.source,
                        clip.delivered()
                    ),
                    &e,
                )))
            }
        };
        if let Err(e) = utt.push(&frame) {
            return Ok(Take::Failed(extraction_failed(&e)));
        }
        statics.push(frame);
    }
    drop(clip); // Release the device between clips.
    let captured = match utt.finish() {
        Ok(c) => c,
        Err(e) => return Ok(Take::Failed(extraction_failed(&e))),
    };
    drop(ex);
    let r = captured.report;
    let motion = motion_energy(&captured.features);
    let stats = format!(
        "frames={} faces={} motion={motion:.4} static={:.2}",
        r.frames,
        r.faces_found,
        statics.share()
    );
    let mut verdict = check_clip(&captured.features, &r, statics.share());
    // Then the cut, for a clip that passed: a device's clip keeps the span where the lips
    // move; a clip with no such span is a retake, as a photo is refused on the attempt path.
    let f = if verdict.is_err() {
        captured.features
    } else {
        match captured.probe() {
            Ok(cut) => cut,
            Err(e) => {
                d.log.info(&format!(
                    "user={user} live {} no utterance: {e}",
                    kind.label()
                ));
                verdict = Err(Flaw::NoMotion { energy: motion });
                captured.features
            }
        }
    };
    let mut cos = None;
    if let (Ok(()), Some(earlier)) = (&verdict, earlier) {
        // As for recorded clips, a face is judged once two others say whose it is.
        if earlier.len() >= 2 {
            if let Some(m) = mean_identity(earlier.iter()) {
                let c = cosine(&f.mean_identity(), &m);
                cos = Some(c);
                if c.is_nan() || c < MIN_SAME_PERSON {
                    verdict = Err(Flaw::OtherPerson { cosine: c });
                }
            }
        }
    }
    let cos = cos.map(|c| format!(" cosine={c:.3}")).unwrap_or_default();
    match verdict {
        Ok(()) => {
            d.log.debug(&format!(
                "user={user} live {} ok {stats}{cos}",
                kind.label()
            ));
            Ok(Take::Good(f))
        }
        Err(flaw) => {
            d.log.info(&format!(
                "user={user} live {} rejected reason={} {stats}{cos}",
                kind.label(),
                flaw.code()
            ));
            Ok(Take::Flawed(flaw))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_name_the_clip_and_its_number() {
        let k = Kind::Password { k: 3, n: 7 };
        assert_eq!(k.prompt(), "Mouth your password now (3/7)");
        assert_eq!(k.label(), "password clip 3/7");
        let o = Kind::Other {
            word: "river",
            j: 1,
            m: 3,
        };
        assert_eq!(o.prompt(), "Now mouth: river (1/3)");
        assert_eq!(o.label(), "other-word clip 1/3 (river)");
    }

    #[test]
    fn other_words_come_in_rounds() {
        for rounds in 1..=MAX_OTHER_WORD_ROUNDS {
            let order: Vec<&str> = other_word_order(rounds).collect();
            assert_eq!(order.len(), OTHER_WORDS.len() * rounds);
            assert_eq!(order[..OTHER_WORDS.len()], OTHER_WORDS);
            for w in OTHER_WORDS {
                assert_eq!(order.iter().filter(|x| **x == w).count(), rounds);
            }
        }
        let order: Vec<&str> = other_word_order(DEFAULT_OTHER_WORD_ROUNDS).collect();
        assert_eq!(order[..5], ["river", "window", "orange", "pencil", "river"]);
    }

    #[test]
    fn bounds_are_consistent() {
        assert!((MIN_POSITIVES..=MAX_LIVE_CLIPS).contains(&DEFAULT_CLIPS));
        // The whole countdown stays well under a second per clip.
        assert!(COUNTDOWN_STEP * COUNTDOWN.len() as u32 <= Duration::from_secs(1));
    }
}
