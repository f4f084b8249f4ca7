//! The per-user password model: "this person, mouthing this password, live".
//!
//! A probe utterance is scored by the model's [`gate`]s:
//! - **identity** ([`gate::identity`]): cosine of its mean identity embedding with the user's
//!   enrolled template;
//! - **word** ([`gate::word`]): a per-user classifier of the mouth-feature sequence, with the
//!   **DTW** template score ([`gate::dtw`]) averaged in for users it helps;
//! - **liveness** ([`gate::liveness`]): mouth motion energy; below a floor taken from the
//!   user's own clips it **vetoes** the attempt ([`Veto::NoMotion`]) whatever the other scores
//!   say.
//!
//! Identity and word scores are standardised by their genuine distribution on out-of-fold
//! validation data and fused by `min` ([`decision`]), so an attempt must look genuine on *both*
//! gates. The ROC of the fused score on out-of-fold validation data sets the EER and the
//! target-FMR thresholds ([`calibrate`]); the test data is never used.
//!
//! Files by job: [`config`] (settings and the stored configuration), [`train_set`] (the
//! training items and folds), [`views`] (feature views), [`ridge`] (the ridge solver),
//! [`gate`] (the gates and their registry), [`calibrate`], [`enroll`](mod@enroll),
//! [`decision`], and here the model itself with its file format.

pub mod calibrate;
pub mod config;
pub mod decision;
pub mod enroll;
pub mod gate;
pub mod ridge;
pub mod train_set;
pub mod views;

use std::path::Path;

pub use calibrate::OofScores;
pub use config::{
    EnrollConfig, EnrollReport, FmrRule, LstmPreset, StoredConfig, ThresholdPolicy, WordModelKind,
    DEFAULT_RIDGE_LAMBDAS, DEFAULT_TARGET_FMR, DEFAULT_WHITENED_RIDGE, DEFAULT_WORD_SMOOTHING,
    DEFAULT_WORD_VIEW_TRIM, DEFAULT_WORD_WHITENING, GAUSSIAN_FMR_POSITION, MAX_WORD_SMOOTHING,
    MAX_WORD_VIEW_TRIM,
};
pub use decision::{Decision, GateScore, Scores, Verdict, Veto, VETO_RANK_OFFSET};
pub use enroll::{enroll, enroll_traced, enroll_with};
pub use gate::{Gate, GateStats};
pub use train_set::{EnrollInput, NegSource};
pub use views::{jitter_copy, motion_energy};

use super::file::{self, Expect, ModelFileError, ModelMeta, NamedTensor};
use super::lstm::LstmError;
use crate::features::UtteranceFeatures;
use crate::metrics::MetricsError;
use gate::{Stored, REGISTRY};

/// Fewest frames a probe must have to be scored (motion needs two).
pub const MIN_FRAMES: usize = 2;
/// Fewest positive clips an enrolment accepts.
pub const MIN_POSITIVES: usize = 3;

/// Errors of the password model.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The model file.
    #[error(transparent)]
    File(#[from] ModelFileError),
    /// The LSTM.
    #[error(transparent)]
    Lstm(#[from] LstmError),
    /// Candle tensor maths.
    #[error("tensor computation failed: {0}")]
    Tensor(#[from] candle_core::Error),
    /// Threshold computation.
    #[error("cannot calibrate thresholds: {0}")]
    Metrics(#[from] MetricsError),
    /// Not enough positive clips.
    #[error("enrolment needs at least {MIN_POSITIVES} usable clips of the password, got {0}")]
    TooFewPositives(usize),
    /// No negatives at all.
    #[error("enrolment needs negative clips (other words or an impostor bank)")]
    NoNegatives,
    /// The probe has too few frames with a face.
    #[error("the utterance has {0} usable frames, at least {MIN_FRAMES} are needed")]
    TooFewFrames(usize),
    /// Features of another backbone or dimension.
    #[error("features are {found} but the model expects {expected}")]
    FeatureMismatch {
        /// What the model expects.
        expected: String,
        /// What was given.
        found: String,
    },
    /// The stored configuration or tensors are inconsistent.
    #[error("invalid model contents: {0}")]
    Invalid(&'static str),
    /// The ridge system could not be solved.
    #[error("ridge system is not positive definite")]
    Singular,
}

/// `backbone identity_dim+mouth_dim (layout)`, as errors name a kind of features: the mouth
/// length says which feature layout made them ([`crate::features::FeatureLayout`]), so a
/// model enrolled in one layout and a daemon in the other is named as such.
pub(crate) fn feature_kind(backbone: &str, identity_dim: usize, mouth_dim: usize) -> String {
    match crate::features::FeatureLayout::of_mouth_dim(mouth_dim) {
        Some(l) => format!("{backbone} {identity_dim}+{mouth_dim} ({l} feature layout)"),
        None => format!("{backbone} {identity_dim}+{mouth_dim}"),
    }
}

/// A trained per-user password model.
#[derive(Debug)]
pub struct PasswordModel {
    meta: ModelMeta,
    cfg: StoredConfig,
    /// The gates, in registry (fusion) order.
    gates: Vec<Box<dyn Gate>>,
}

impl PasswordModel {
    /// Stamps the backbone's sha256 (enrolment only knows the features, not the model file).
    pub fn set_backbone_sha256(&mut self, sha: &str) {
        self.meta.backbone_sha256 = sha.to_string();
    }

    /// Binds the model to the account it is enrolled for (the daemon does this before saving;
    /// see [`file::Owner`]).
    pub fn set_owner(&mut self, owner: file::Owner) {
        self.meta.owner = Some(owner);
    }

    /// The metadata.
    pub fn meta(&self) -> &ModelMeta {
        &self.meta
    }

    /// The stored fusion configuration.
    pub fn stored_config(&self) -> &StoredConfig {
        &self.cfg
    }

    /// The gates, in fusion order.
    pub fn gates(&self) -> impl Iterator<Item = &dyn Gate> {
        self.gates.iter().map(|g| g.as_ref())
    }

    /// The threshold of a policy.
    pub fn threshold(&self, policy: ThresholdPolicy) -> f64 {
        match policy {
            ThresholdPolicy::Eer => self.meta.thresholds.eer,
            ThresholdPolicy::Fmr => self.meta.thresholds.fmr,
        }
    }

    /// Whether scores pass the policy's threshold (a veto never passes).
    pub fn accepts(&self, s: &Scores, policy: ThresholdPolicy) -> bool {
        s.passes(self.threshold(policy))
    }

    /// Refuses probes of another feature kind or too short to score.
    fn check_probe(&self, probe: &UtteranceFeatures) -> Result<(), PasswordError> {
        let m = &self.meta;
        if (&probe.backbone, probe.identity_dim, probe.mouth_dim)
            != (&m.backbone, m.identity_dim, m.mouth_dim)
        {
            return Err(PasswordError::FeatureMismatch {
                expected: feature_kind(&m.backbone, m.identity_dim, m.mouth_dim),
                found: feature_kind(&probe.backbone, probe.identity_dim, probe.mouth_dim),
            });
        }
        if probe.frames.len() < MIN_FRAMES {
            return Err(PasswordError::TooFewFrames(probe.frames.len()));
        }
        Ok(())
    }

    /// Every gate's raw score and the fusion.
    fn score_gates(
        &self,
        probe: &UtteranceFeatures,
    ) -> Result<(Scores, Vec<GateScore>), PasswordError> {
        self.check_probe(probe)?;
        let raws = self
            .gates
            .iter()
            .map(|g| g.score(probe))
            .collect::<Result<Vec<f64>, _>>()?;
        let (fused, veto) = decision::fuse(self.gates().zip(raws.iter().copied()));
        let raw_of = |name: &str| {
            self.gates
                .iter()
                .zip(&raws)
                .find(|(g, _)| g.name() == name)
                .map(|(_, r)| *r)
                .unwrap_or(f64::NAN)
        };
        let scores = Scores {
            identity: raw_of("identity"),
            word: raw_of("word"),
            liveness: raw_of("liveness"),
            fused,
            veto,
        };
        let per_gate = self
            .gates
            .iter()
            .zip(&raws)
            .map(|(g, &raw)| GateScore {
                gate: g.name(),
                raw,
                z: g.z(raw),
            })
            .collect();
        Ok((scores, per_gate))
    }

    /// Scores a probe utterance.
    pub fn score(&self, probe: &UtteranceFeatures) -> Result<Scores, PasswordError> {
        Ok(self.score_gates(probe)?.0)
    }

    /// Scores a probe and decides it under `policy`.
    pub fn decide(
        &self,
        probe: &UtteranceFeatures,
        policy: ThresholdPolicy,
    ) -> Result<Decision, PasswordError> {
        let (scores, gates) = self.score_gates(probe)?;
        Ok(Decision::new(scores, gates, self.threshold(policy)))
    }

    /// Writes the model file atomically.
    pub fn save(&self, path: &Path) -> Result<(), PasswordError> {
        Ok(file::save_model(path, &self.meta, &self.tensors())?)
    }

    /// The model file image [`save`](Self::save) writes, for callers that write it themselves
    /// (the daemon, relative to the user's directory descriptor).
    pub fn to_bytes(&self) -> Result<Vec<u8>, PasswordError> {
        Ok(file::model_to_bytes(&self.meta, &self.tensors())?)
    }

    fn tensors(&self) -> Vec<NamedTensor> {
        self.gates
            .iter()
            .flat_map(|g| g.tensors(&self.meta))
            .collect()
    }

    /// Loads and validates a model file against the pipeline in use.
    pub fn load(path: &Path, expect: &Expect) -> Result<Self, PasswordError> {
        let (meta, tensors) = file::load_model(path, expect)?;
        Self::from_parts(meta, tensors)
    }

    /// Parses and checks a model file image read by the caller, with the same checks as
    /// [`load`](Self::load).
    pub fn from_bytes(bytes: &[u8], expect: &Expect) -> Result<Self, PasswordError> {
        let (meta, tensors) = file::model_from_bytes(bytes, expect)?;
        Self::from_parts(meta, tensors)
    }

    fn from_parts(meta: ModelMeta, tensors: Vec<NamedTensor>) -> Result<Self, PasswordError> {
        let cfg: StoredConfig = serde_json::from_value(meta.config.clone())
            .map_err(|_| PasswordError::Invalid("config does not match this version's schema"))?;
        let stored = Stored {
            cfg: &cfg,
            meta: &meta,
            tensors: &tensors,
        };
        let mut gates = Vec::new();
        for r in REGISTRY {
            if let Some(g) = (r.load)(&stored)? {
                gates.push(g);
            }
        }
        Ok(Self { meta, cfg, gates })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::model::bank::{BankEntry, ImpostorBank};
    use crate::model::synthetic::Speech;

    /// A synthetic utterance: identity direction per person, mouth trajectory per word.
    /// A bank of `people` (speakers `P<n>`), words 1 to 3 each, one clip per word.
    pub(super) fn bank_of(people: std::ops::Range<u64>) -> ImpostorBank {
        let mut bank = ImpostorBank::new("t", &"0".repeat(64), 16, 8);
        for p in people {
            for w in 1..4 {
                bank.entries.push(BankEntry {
                    speaker: format!("P{p}"),
                    word: format!("{w}"),
                    instance: "1".into(),
                    features: utt(p, w, 0),
                });
            }
        }
        bank
    }

    pub(super) fn utt(person: u64, word: u64, inst: u64) -> UtteranceFeatures {
        Speech {
            identity_dim: 16,
            mouth_dim: 8,
            min_frames: 12,
            frame_spread: 5,
            word_seed: 9999,
            identity_noise: 0.15,
            speaker_mouth_offset: 0.1,
        }
        .utterance(person, word, inst)
    }

    /// Speaker 1's word 1 seven times, and words 2 to 5 three times each with their labels.
    fn seven_clips_and_four_labelled_words(
    ) -> (Vec<UtteranceFeatures>, Vec<UtteranceFeatures>, Vec<String>) {
        let pos = (0..7).map(|i| utt(1, 1, i)).collect();
        let other = (2..6)
            .flat_map(|w| (0..3).map(move |i| utt(1, w, i)))
            .collect();
        let labels = (2..6)
            .flat_map(|w| (0..3).map(move |_| format!("{w}")))
            .collect();
        (pos, other, labels)
    }

    fn small_cfg() -> EnrollConfig {
        EnrollConfig {
            oversample_to: 30,
            ..Default::default()
        }
    }

    #[test]
    fn enrol_separates_word_person_and_photo() {
        let pos: Vec<_> = (0..7).map(|i| utt(1, 1, i)).collect();
        let other: Vec<_> = (2..6)
            .flat_map(|w| (0..3).map(move |i| utt(1, w, i)))
            .collect();
        let bank = bank_of(10..14);
        let input = EnrollInput {
            positives: &pos,
            other_words: &other,
            other_word_labels: &[],
            bank: Some(&bank),
        };
        let mut calls = 0;
        let (m, rep) = enroll(&input, &small_cfg(), &mut |_, _, _| calls += 1).unwrap();
        assert!(calls > 0);
        assert!(rep.validation_eer < 0.2, "{rep:?}");
        let pol = ThresholdPolicy::Eer;
        let genuine: Vec<_> = (20..24).map(|i| m.score(&utt(1, 1, i)).unwrap()).collect();
        let accepted = genuine.iter().filter(|s| m.accepts(s, pol)).count();
        assert!(accepted >= 3, "{genuine:?} thr {}", m.threshold(pol));
        let frozen = m.score(&utt(1, 1, 20).frozen()).unwrap();
        assert!(matches!(frozen.veto, Some(Veto::NoMotion { .. })) && !m.accepts(&frozen, pol));
        let d = m.decide(&utt(1, 1, 20).frozen(), pol).unwrap();
        assert!(
            matches!(d.verdict, Verdict::Vetoed(Veto::NoMotion { .. })),
            "{d:?}"
        );
        assert!(!d.accepted());
        let other_person = m.score(&utt(50, 1, 1)).unwrap();
        assert!(!m.accepts(&other_person, pol), "{other_person:?}");
        // Round trip through the file format.
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.safetensors");
        let mut m = m;
        m.set_backbone_sha256(&"a".repeat(64));
        m.save(&p).unwrap();
        let sha = "a".repeat(64);
        let back = PasswordModel::load(&p, &Expect::backbone("t", &sha, 16)).unwrap();
        let probe = utt(1, 1, 30);
        assert_eq!(back.score(&probe).unwrap(), m.score(&probe).unwrap());
        assert!(PasswordModel::load(&p, &Expect::backbone("other", &sha, 16)).is_err());
    }

    /// Speaker 1's word 1 seven times, words 2 to 4 once each, and a bank of three people.
    fn seven_clips_three_words_and_a_bank(
    ) -> (Vec<UtteranceFeatures>, Vec<UtteranceFeatures>, ImpostorBank) {
        let pos = (0..7).map(|i| utt(1, 1, i)).collect();
        let other = (2..5).map(|w| utt(1, w, 0)).collect();
        (pos, other, bank_of(10..13))
    }

    /// Enrolment input of password clips, unlabelled other words and a bank.
    fn unlabelled_input<'a>(
        pos: &'a [UtteranceFeatures],
        other: &'a [UtteranceFeatures],
        bank: &'a ImpostorBank,
    ) -> EnrollInput<'a> {
        EnrollInput {
            positives: pos,
            other_words: other,
            other_word_labels: &[],
            bank: Some(bank),
        }
    }

    /// `m` reloaded with its stored config's `key` set to `v`, or removed when `None`.
    fn with_stored(
        m: &PasswordModel,
        key: &str,
        v: Option<serde_json::Value>,
    ) -> Result<PasswordModel, PasswordError> {
        let mut meta = m.meta.clone();
        let obj = meta.config.as_object_mut().unwrap();
        match v {
            Some(v) => obj.insert(key.into(), v),
            None => obj.remove(key),
        };
        PasswordModel::from_parts(meta, m.tensors())
    }

    #[test]
    fn word_view_trim_is_stored_bounded_and_absent_means_the_whole_clip() {
        let (pos, other, bank) = seven_clips_three_words_and_a_bank();
        let input = unlabelled_input(&pos, &other, &bank);
        let (m, _) = enroll(&input, &small_cfg(), &mut |_, _, _| {}).unwrap();
        assert_eq!(
            m.stored_config().word_view_trim,
            Some(DEFAULT_WORD_VIEW_TRIM)
        );
        let probe = utt(1, 1, 30);
        let with = |v| with_stored(&m, "word_view_trim", v);
        let same = with(Some(serde_json::json!(DEFAULT_WORD_VIEW_TRIM))).unwrap();
        assert_eq!(same.score(&probe).unwrap(), m.score(&probe).unwrap());
        // A file written before views existed scores the whole clip only: never higher than
        // the best of the views, which include the whole clip.
        let old = with(None).unwrap();
        assert_eq!(old.stored_config().word_view_trim, None);
        let (w_old, w_new) = (
            old.score(&probe).unwrap().word,
            m.score(&probe).unwrap().word,
        );
        assert!(w_old <= w_new, "{w_old} > {w_new}");
        // The best view beats the whole clip on some clip of the probe's word.
        assert!((20..30).any(|i| {
            let u = utt(1, 1, i);
            old.score(&u).unwrap().word < m.score(&u).unwrap().word
        }));
        // Out of bounds or not a number: refused, on load and on enrolment.
        for bad in [
            serde_json::json!(MAX_WORD_VIEW_TRIM + 0.01),
            serde_json::json!(-0.1),
        ] {
            assert!(matches!(with(Some(bad)), Err(PasswordError::Invalid(_))));
        }
        for bad in [MAX_WORD_VIEW_TRIM + 0.01, f64::NAN, -0.1] {
            let cfg = EnrollConfig {
                word_view_trim: bad,
                ..small_cfg()
            };
            assert!(matches!(
                enroll(&input, &cfg, &mut |_, _, _| {}),
                Err(PasswordError::Invalid(_))
            ));
        }
        // 0 stores nothing, as before views existed, and still decides.
        let cfg = EnrollConfig {
            word_view_trim: 0.0,
            ..small_cfg()
        };
        let (m0, _) = enroll(&input, &cfg, &mut |_, _, _| {}).unwrap();
        assert_eq!(m0.stored_config().word_view_trim, None);
        assert!(m0.accepts(&m0.score(&pos[0]).unwrap(), ThresholdPolicy::Fmr));
        assert!(!m0.accepts(&m0.score(&utt(11, 1, 0)).unwrap(), ThresholdPolicy::Fmr));
    }

    #[test]
    fn word_smoothing_is_stored_bounded_and_absent_means_unsmoothed() {
        let (pos, other, bank) = seven_clips_three_words_and_a_bank();
        let input = unlabelled_input(&pos, &other, &bank);
        let (m, _) = enroll(&input, &small_cfg(), &mut |_, _, _| {}).unwrap();
        assert_eq!(
            m.stored_config().word_smoothing,
            Some(DEFAULT_WORD_SMOOTHING)
        );
        let probe = utt(1, 1, 30);
        let with = |v| with_stored(&m, "word_smoothing", v);
        // The stored radius is the one scoring uses: the same file scores the same.
        let same = with(Some(serde_json::json!(DEFAULT_WORD_SMOOTHING))).unwrap();
        assert_eq!(same.score(&probe).unwrap(), m.score(&probe).unwrap());
        // A file written before smoothing existed was trained unsmoothed, and is read so.
        let old = with(None).unwrap();
        assert_eq!(old.stored_config().word_smoothing, None);
        assert_ne!(
            old.score(&probe).unwrap().word,
            m.score(&probe).unwrap().word
        );
        // A radius beyond the bound is refused, on load and on enrolment.
        let big = serde_json::json!(MAX_WORD_SMOOTHING + 1);
        assert!(matches!(with(Some(big)), Err(PasswordError::Invalid(_))));
        let cfg = EnrollConfig {
            word_smoothing: MAX_WORD_SMOOTHING + 1,
            ..small_cfg()
        };
        assert!(matches!(
            enroll(&input, &cfg, &mut |_, _, _| {}),
            Err(PasswordError::Invalid(_))
        ));
        // Unsmoothed enrolment stores 0 and still decides.
        let cfg = EnrollConfig {
            word_smoothing: 0,
            ..small_cfg()
        };
        let (m0, _) = enroll(&input, &cfg, &mut |_, _, _| {}).unwrap();
        assert_eq!(m0.stored_config().word_smoothing, Some(0));
        assert!(m0.accepts(&m0.score(&pos[0]).unwrap(), ThresholdPolicy::Fmr));
        assert!(!m0.accepts(&m0.score(&utt(11, 1, 0)).unwrap(), ThresholdPolicy::Fmr));
    }

    #[test]
    fn ridge_penalties_are_positive_and_one_relative_penalty_enrols() {
        let (pos, other, bank) = seven_clips_three_words_and_a_bank();
        let input = EnrollInput {
            positives: &pos,
            other_words: &other,
            other_word_labels: &[],
            bank: Some(&bank),
        };
        assert_eq!(small_cfg().ridge_lambdas, DEFAULT_RIDGE_LAMBDAS.to_vec());
        // No penalty would train no word model: refused before any training.
        for bad in [
            vec![],
            vec![0.0],
            vec![3.0, -1.0],
            vec![f64::NAN],
            vec![f64::INFINITY],
        ] {
            let cfg = EnrollConfig {
                ridge_lambdas: bad.clone(),
                ..small_cfg()
            };
            assert!(
                matches!(
                    enroll(&input, &cfg, &mut |_, _, _| {}),
                    Err(PasswordError::Invalid(_))
                ),
                "{bad:?}"
            );
        }
        // One penalty relative to the input's scale (no search) enrols and decides.
        let cfg = EnrollConfig {
            ridge_lambdas: vec![0.08],
            ridge_relative: true,
            ..small_cfg()
        };
        let (m, _) = enroll(&input, &cfg, &mut |_, _, _| {}).unwrap();
        assert!(m.accepts(&m.score(&pos[0]).unwrap(), ThresholdPolicy::Fmr));
        assert!(!m.accepts(&m.score(&utt(11, 1, 0)).unwrap(), ThresholdPolicy::Fmr));
    }

    #[test]
    fn word_whitening_needs_repetitions_and_still_decides() {
        let (pos, other, labels) = seven_clips_and_four_labelled_words();
        let whitened = EnrollConfig {
            word_whitening: 0.1,
            ..small_cfg()
        };
        let probe = utt(1, 1, 30);
        // Labelled other words repeat (4 words, 3 clips each): the whitener is learnt, the
        // weights change, and the model still tells the password from other words, other
        // people and a photo.
        let labelled = EnrollInput {
            positives: &pos,
            other_words: &other,
            other_word_labels: &labels,
            bank: None,
        };
        let plain_cfg = EnrollConfig {
            word_whitening: 0.0,
            ..small_cfg()
        };
        let (plain, _) = enroll(&labelled, &plain_cfg, &mut |_, _, _| {}).unwrap();
        let (m, _) = enroll(&labelled, &whitened, &mut |_, _, _| {}).unwrap();
        assert_ne!(
            m.score(&probe).unwrap().word,
            plain.score(&probe).unwrap().word
        );
        assert!(m.accepts(&m.score(&probe).unwrap(), ThresholdPolicy::Fmr));
        for impostor in [utt(1, 7, 0), utt(11, 1, 0), probe.frozen()] {
            assert!(!m.accepts(&m.score(&impostor).unwrap(), ThresholdPolicy::Fmr));
        }
        // The stored weights are in the original feature space: the file scores the same.
        let back = PasswordModel::from_parts(m.meta.clone(), m.tensors()).unwrap();
        assert_eq!(back.score(&probe).unwrap(), m.score(&probe).unwrap());
        // Unlabelled other words and a bank of one clip per (speaker, word) repeat nothing:
        // no whitener, the same model as without the setting.
        let (pos, other, bank) = seven_clips_three_words_and_a_bank();
        let unlabelled = EnrollInput {
            positives: &pos,
            other_words: &other,
            other_word_labels: &[],
            bank: Some(&bank),
        };
        let off = EnrollConfig {
            word_whitening: 0.0,
            ..small_cfg()
        };
        let (a, _) = enroll(&unlabelled, &off, &mut |_, _, _| {}).unwrap();
        let (b, _) = enroll(&unlabelled, &whitened, &mut |_, _, _| {}).unwrap();
        assert_eq!(a.score(&probe).unwrap(), b.score(&probe).unwrap());
        assert_eq!(b.stored_config().word_whitening, None);
        assert_eq!(m.stored_config().word_whitening, Some(0.1));
        // A share or penalty that is not a number of the right sign is refused.
        for (share, ridge) in [
            (-0.1, None),
            (f64::NAN, None),
            (0.1, Some(0.0)),
            (0.1, Some(-1.0)),
        ] {
            let cfg = EnrollConfig {
                word_whitening: share,
                whitened_ridge: ridge,
                ..small_cfg()
            };
            assert!(
                matches!(
                    enroll(&labelled, &cfg, &mut |_, _, _| {}),
                    Err(PasswordError::Invalid(_))
                ),
                "{share} {ridge:?}"
            );
        }
    }

    #[test]
    fn refuses_too_few_positives_and_bad_probes() {
        let pos: Vec<_> = (0..2).map(|i| utt(1, 1, i)).collect();
        let other: Vec<_> = (0..3).map(|i| utt(1, 2, i)).collect();
        let input = EnrollInput {
            positives: &pos,
            other_words: &other,
            other_word_labels: &[],
            bank: None,
        };
        assert!(matches!(
            enroll(&input, &small_cfg(), &mut |_, _, _| {}),
            Err(PasswordError::TooFewPositives(2))
        ));
    }

    #[test]
    fn refuses_other_word_labels_of_another_length() {
        let pos: Vec<_> = (0..5).map(|i| utt(3, 1, i)).collect();
        let other: Vec<_> = (0..6).map(|i| utt(3, 2 + i % 3, i)).collect();
        let labels = vec!["2".to_string(); 5];
        let input = EnrollInput {
            positives: &pos,
            other_words: &other,
            other_word_labels: &labels,
            bank: None,
        };
        assert!(matches!(
            enroll(&input, &small_cfg(), &mut |_, _, _| {}),
            Err(PasswordError::Invalid(_))
        ));
    }

    #[test]
    fn gap_midpoint_lowers_a_separated_threshold_and_the_gaussian_rule_moves_only_the_fmr_one() {
        let (pos, other, labels) = seven_clips_and_four_labelled_words();
        let input = EnrollInput {
            positives: &pos,
            other_words: &other,
            other_word_labels: &labels,
            bank: None,
        };
        // The empirical FMR rule, whose floor is the EER threshold.
        let empirical = EnrollConfig {
            fmr_rule: FmrRule::Empirical,
            ..small_cfg()
        };
        let (lowest, rep) = enroll(&input, &empirical, &mut |_, _, _| {}).unwrap();
        assert_eq!(rep.validation_eer, 0.0, "the synthetic words separate");
        let cfg = EnrollConfig {
            gap_midpoint: true,
            ..empirical.clone()
        };
        let (mid, _) = enroll(&input, &cfg, &mut |_, _, _| {}).unwrap();
        let (lo, md) = (lowest.meta().thresholds, mid.meta().thresholds);
        assert!(md.eer < lo.eer, "{lo:?} {md:?}");
        assert!(md.fmr < lo.fmr && md.fmr >= md.eer, "{lo:?} {md:?}");
        // The default Gaussian rule places the FMR threshold elsewhere, and it moves only
        // the FMR threshold.
        let (gauss, _) = enroll(&input, &small_cfg(), &mut |_, _, _| {}).unwrap();
        let gt = gauss.meta().thresholds;
        assert_eq!(gt.eer, lo.eer);
        assert_ne!(gt.fmr, lo.fmr);
        // Under every rule, every other-word clip the model was trained on stays rejected
        // and every password clip is accepted.
        // At another target the Gaussian rule gives way to the empirical one.
        let at = |fmr_rule| EnrollConfig {
            target_fmr: 0.01,
            fmr_rule,
            ..small_cfg()
        };
        let (g01, _) = enroll(&input, &at(FmrRule::Gaussian), &mut |_, _, _| {}).unwrap();
        let (e01, _) = enroll(&input, &at(FmrRule::Empirical), &mut |_, _, _| {}).unwrap();
        assert_eq!(g01.meta().thresholds, e01.meta().thresholds);
        for m in [&mid, &gauss] {
            for u in &other {
                assert!(!m.accepts(&m.score(u).unwrap(), ThresholdPolicy::Fmr));
            }
            for u in &pos {
                assert!(m.accepts(&m.score(u).unwrap(), ThresholdPolicy::Fmr));
            }
        }
    }

    #[test]
    fn separation_scale_rescales_only_the_word_group_and_still_decides() {
        let (pos, other, labels) = seven_clips_and_four_labelled_words();
        let input = EnrollInput {
            positives: &pos,
            other_words: &other,
            other_word_labels: &labels,
            bank: Some(&bank_of(10..13)),
        };
        let (spread, _) = enroll(&input, &small_cfg(), &mut |_, _, _| {}).unwrap();
        let cfg = EnrollConfig {
            separation_scale: true,
            ..small_cfg()
        };
        let (sep, _) = enroll(&input, &cfg, &mut |_, _, _| {}).unwrap();
        let (a, b) = (spread.stored_config(), sep.stored_config());
        // The same models, so the same genuine means; the word gate's scale is now the gap
        // to the other words, not the genuine spread, and the identity gate is untouched.
        assert_eq!(a.word.mean, b.word.mean);
        assert_ne!(a.word.std, b.word.std);
        assert_eq!(a.identity, b.identity);
        // The other words' mean raw word score sits SEPARATION_Z units below.
        let raw: Vec<f64> = other.iter().map(|u| sep.score(u).unwrap().word).collect();
        let mean = raw.iter().sum::<f64>() / raw.len() as f64;
        assert!(b.word.z(mean) < -1.0, "{:?} {mean}", b.word);
        for u in &other {
            assert!(!sep.accepts(&sep.score(u).unwrap(), ThresholdPolicy::Fmr));
        }
        for u in &pos {
            assert!(sep.accepts(&sep.score(u).unwrap(), ThresholdPolicy::Fmr));
        }
        assert!(!sep.accepts(&sep.score(&utt(11, 1, 0)).unwrap(), ThresholdPolicy::Fmr));
    }

    #[test]
    fn enrol_is_deterministic() {
        let pos: Vec<_> = (0..5).map(|i| utt(3, 1, i)).collect();
        let other: Vec<_> = (0..6).map(|i| utt(3, 2 + i % 3, i)).collect();
        let input = EnrollInput {
            positives: &pos,
            other_words: &other,
            other_word_labels: &[],
            bank: None,
        };
        let (a, _) = enroll(&input, &small_cfg(), &mut |_, _, _| {}).unwrap();
        let (b, _) = enroll(&input, &small_cfg(), &mut |_, _, _| {}).unwrap();
        let p = utt(3, 1, 40);
        assert_eq!(a.score(&p).unwrap(), b.score(&p).unwrap());
        assert_eq!(a.meta().thresholds, b.meta().thresholds);
    }

    #[test]
    fn motion_energy_of_frozen_is_zero() {
        let u = utt(1, 1, 1);
        assert!(motion_energy(&u) > 0.0);
        assert_eq!(motion_energy(&u.frozen()), 0.0);
    }
}
