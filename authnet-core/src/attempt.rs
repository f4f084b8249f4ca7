//! One utterance, from frames to a decision: the single owner of the pipeline order that the
//! daemon's attempt path, both enrolment paths (recorded and live) and `authnet-eval` follow.
//!
//! ```text
//! frames --push--> features (detect, mouth, backbone) --finish--> Captured
//!        --probe--> trimmed by the source's TrimPolicy --decide--> Decision
//! ```
//!
//! - [`Utterance`] takes frames one at a time, so the caller keeps its own loop (cancellation,
//!   deadlines, camera pacing) and features are computed while the camera still records.
//!   [`record`] drives a whole [`FrameSource`] for callers without such a loop.
//! - [`Captured`] is the utterance as extracted, with what happened to each frame
//!   ([`ExtractReport`], [`Captured::face_fraction`]).
//! - [`Captured::probe`] applies the [`TrimPolicy`], which the [`SourceKind`] chooses: a live
//!   camera records from before the user starts until the clip ends, so only the span where the
//!   lips move is kept (`segment::trim`) and a clip where nothing moves is refused
//!   ([`AttemptError::NoUtterance`]); a recorded clip is already cut to the utterance and is
//!   kept whole.
//! - [`Captured::decide`] scores the probe with the user's model and decides under a threshold
//!   policy, returning a [`Decision`] with its explicit [`crate::model::password::Veto`].

use crate::capture::{CaptureError, Frame, FrameSource};
use crate::features::{
    ExtractReport, FeatureError, FeatureExtractor, Incremental, UtteranceFeatures,
};
use crate::model::password::{Decision, PasswordError, PasswordModel, ThresholdPolicy};
use crate::segment::{self, SegmentConfig, SegmentError};
use crate::vision::DetectOutcome;

/// Where the frames of an utterance come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A live camera: the clip holds still frames before and after the utterance.
    Camera,
    /// A recording (frame directory, video file, synthetic frames): already the utterance.
    Recording,
}

/// How a captured utterance is cut before scoring.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TrimPolicy {
    /// Keep only the span where the lips move ([`segment::trim`]).
    Utterance(SegmentConfig),
    /// Keep every frame.
    Whole,
}

impl TrimPolicy {
    /// The policy for a kind of source: cameras trim with the default segmentation, recordings
    /// are kept whole.
    pub fn for_source(kind: SourceKind) -> Self {
        match kind {
            SourceKind::Camera => Self::Utterance(SegmentConfig::default()),
            SourceKind::Recording => Self::Whole,
        }
    }
}

/// Errors between frames and decision.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    /// The source failed.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// Feature extraction failed.
    #[error(transparent)]
    Features(#[from] FeatureError),
    /// Nothing in the clip moves like an utterance (a photo, or nobody spoke).
    #[error("no utterance in the clip: {0}")]
    NoUtterance(#[source] SegmentError),
    /// The model refused the probe (another feature kind, too few frames).
    #[error(transparent)]
    Model(#[from] PasswordError),
}

/// An utterance being captured frame by frame.
#[derive(Debug)]
pub struct Utterance<'a> {
    inc: Incremental<'a>,
    trim: TrimPolicy,
}

impl<'a> Utterance<'a> {
    /// Starts an utterance on `ex`, to be cut by `trim`.
    pub fn begin(ex: &'a mut FeatureExtractor, trim: TrimPolicy) -> Self {
        Self {
            inc: ex.begin(),
            trim,
        }
    }

    /// Starts an utterance from a kind of source ([`TrimPolicy::for_source`]).
    pub fn from_source(ex: &'a mut FeatureExtractor, kind: SourceKind) -> Self {
        Self::begin(ex, TrimPolicy::for_source(kind))
    }

    /// Processes one frame; the outcome says whether it had a face.
    pub fn push(&mut self, frame: &Frame) -> Result<DetectOutcome, AttemptError> {
        Ok(self.inc.push(frame)?)
    }

    /// What happened to the frames so far.
    pub fn report(&self) -> ExtractReport {
        self.inc.report()
    }

    /// Embeds what is left and returns the captured utterance.
    pub fn finish(self) -> Result<Captured, AttemptError> {
        let (features, report) = self.inc.finish()?;
        Ok(Captured {
            features,
            report,
            trim: self.trim,
        })
    }
}

/// Reads `src` to its end (at most `max_frames` frames) into an utterance.
pub fn record(
    ex: &mut FeatureExtractor,
    src: &mut dyn FrameSource,
    kind: SourceKind,
    max_frames: usize,
) -> Result<Captured, AttemptError> {
    let mut u = Utterance::from_source(ex, kind);
    let mut n = 0;
    while n < max_frames {
        let Some(frame) = src.next_frame()? else {
            break;
        };
        u.push(&frame)?;
        n += 1;
    }
    u.finish()
}

/// A captured utterance, as extracted (not yet trimmed).
#[derive(Debug, Clone, PartialEq)]
pub struct Captured {
    /// The features of every frame with a face.
    pub features: UtteranceFeatures,
    /// What happened to each frame.
    pub report: ExtractReport,
    trim: TrimPolicy,
}

impl Captured {
    /// The share of frames read that had a face (0 when none were read).
    pub fn face_fraction(&self) -> f64 {
        if self.report.frames == 0 {
            0.0
        } else {
            self.report.faces_found as f64 / self.report.frames as f64
        }
    }

    /// Whether more frames were too dark than had no face (the likelier cause of a failure).
    pub fn mostly_dark(&self) -> bool {
        self.report.too_dark > self.report.no_face
    }

    /// The trim policy in force.
    pub fn trim_policy(&self) -> TrimPolicy {
        self.trim
    }

    /// The probe the model scores: the features cut by the trim policy.
    pub fn probe(&self) -> Result<UtteranceFeatures, AttemptError> {
        match &self.trim {
            TrimPolicy::Whole => Ok(self.features.clone()),
            TrimPolicy::Utterance(cfg) => segment::trim(&self.features, cfg)
                .map(|(t, _)| t)
                .map_err(AttemptError::NoUtterance),
        }
    }

    /// The probe, consuming the capture: as [`Self::probe`], without copying a clip that is kept
    /// whole.
    pub fn into_probe(self) -> Result<UtteranceFeatures, AttemptError> {
        match self.trim {
            TrimPolicy::Whole => Ok(self.features),
            TrimPolicy::Utterance(_) => self.probe(),
        }
    }

    /// Scores the probe with `model` and decides it under `policy`.
    pub fn decide(
        &self,
        model: &PasswordModel,
        policy: ThresholdPolicy,
    ) -> Result<Decision, AttemptError> {
        match &self.trim {
            // Scored in place: a whole clip is its own probe.
            TrimPolicy::Whole => Ok(model.decide(&self.features, policy)?),
            TrimPolicy::Utterance(_) => Ok(model.decide(&self.probe()?, policy)?),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::capture::{DirSource, SyntheticSource};
    use crate::testdata;
    use crate::vision::CropMode;

    fn extractor() -> FeatureExtractor {
        FeatureExtractor::from_config(&testdata::repo_pipeline(CropMode::None))
            .expect("the repository's models and vendored ONNX Runtime load")
    }

    #[test]
    fn synthetic_recording_is_kept_whole_and_counts_frames() {
        let mut ex = extractor();
        let mut src = SyntheticSource::new(96, 96, 9, 7);
        let c = record(&mut ex, &mut src, SourceKind::Recording, usize::MAX).unwrap();
        assert_eq!(c.report.frames, 9);
        assert_eq!(
            c.report.faces_found, 9,
            "pass-through crops: every bright frame"
        );
        assert_eq!(c.face_fraction(), 1.0);
        assert_eq!(c.trim_policy(), TrimPolicy::Whole);
        let p = c.probe().unwrap();
        assert_eq!(p, c.features);
        assert_eq!(p.frames.len(), 9);
        // The owner is the same pipeline as pushing frames by hand.
        let mut src = SyntheticSource::new(96, 96, 9, 7);
        let frames = crate::capture::read_all(&mut src).unwrap();
        let mut inc = ex.begin();
        for f in &frames {
            inc.push(f).unwrap();
        }
        assert_eq!(inc.finish().unwrap().0, c.features);
    }

    #[test]
    fn max_frames_bounds_the_recording_and_dark_frames_are_reported() {
        let mut ex = extractor();
        let mut src = SyntheticSource::new(64, 64, 20, 1);
        let c = record(&mut ex, &mut src, SourceKind::Recording, 5).unwrap();
        assert_eq!(c.report.frames, 5);
        let mut dark = SyntheticSource::new(64, 64, 4, 1).with_brightness(0.02);
        let c = record(&mut ex, &mut dark, SourceKind::Recording, usize::MAX).unwrap();
        assert_eq!(c.report.too_dark, 4);
        assert_eq!(c.face_fraction(), 0.0);
        assert!(c.mostly_dark());
    }

    #[test]
    fn a_camera_refuses_a_frozen_clip_a_recording_does_not() {
        let mut ex = extractor();
        let mut frozen = SyntheticSource::new(96, 96, 12, 3).frozen();
        let cam = record(&mut ex, &mut frozen, SourceKind::Camera, usize::MAX).unwrap();
        assert!(matches!(cam.probe(), Err(AttemptError::NoUtterance(_))));
        let mut frozen = SyntheticSource::new(96, 96, 12, 3).frozen();
        let rec = record(&mut ex, &mut frozen, SourceKind::Recording, usize::MAX).unwrap();
        assert_eq!(rec.probe().unwrap().frames.len(), 12);
    }

    #[test]
    fn a_camera_trims_the_still_frames_around_a_real_utterance() {
        // A MIRACL-VC1 utterance with its first frame repeated before and its last after, as a
        // camera records it: the probe drops the padding and keeps the utterance.
        let dir = testdata::utterance("faces", "F02", 1, 1).expect("MIRACL-VC1 data present");
        let frames = DirSource::open(&dir)
            .unwrap()
            .allow_mixed_sizes()
            .read_all()
            .unwrap();
        let n = frames.len();
        let mut ex = extractor();
        let mut u = Utterance::from_source(&mut ex, SourceKind::Camera);
        let (first, last) = (frames[0].clone(), frames[n - 1].clone());
        for f in std::iter::repeat_n(&first, 10)
            .chain(&frames)
            .chain(std::iter::repeat_n(&last, 10))
        {
            u.push(f).unwrap();
        }
        let c = u.finish().unwrap();
        assert_eq!(c.report.frames, n + 20);
        let probe = c.probe().unwrap();
        let kept = probe.frames.len();
        assert!(
            kept <= n + 4 && kept >= n / 2,
            "kept {kept} of {} frames ({n} spoken)",
            n + 20
        );
        assert_eq!(probe.frames_read, n + 20);
    }
}
