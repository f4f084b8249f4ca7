//! Settings: what enrolment is asked to do ([`EnrollConfig`]), what it reports
//! ([`EnrollReport`]), and what the model file stores besides the tensors ([`StoredConfig`]).

use serde::{Deserialize, Serialize};

use super::gate::GateStats;
use crate::model::lstm::{LstmConfig, TrainConfig};
use crate::sequence::{PadPolicy, DEFAULT_TIMESTEPS};

/// Which threshold is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ThresholdPolicy {
    /// The equal-error-rate point (the paper's).
    Eer,
    /// The threshold meeting the target false-match rate (default 1/1000, NIST SP 800-63B).
    #[default]
    Fmr,
}

impl std::str::FromStr for ThresholdPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "eer" => Ok(Self::Eer),
            "fmr" => Ok(Self::Fmr),
            o => Err(format!(
                "unknown threshold policy {o:?} (expected eer or fmr)"
            )),
        }
    }
}

impl std::fmt::Display for ThresholdPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Eer => "eer",
            Self::Fmr => "fmr",
        })
    }
}

/// How enrolment places the FMR-policy threshold on the out-of-fold scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FmrRule {
    /// Just above the highest out-of-fold impostor score the target FMR allows, and never
    /// laxer than the EER threshold. With a few hundred out-of-fold impostors and a target of
    /// 1/1000 this is the highest impostor or the lowest genuine score, whichever is higher:
    /// one clip decides it.
    Empirical,
    /// From Gaussian fits to the genuine out-of-fold scores and to those of the user saying
    /// other words (the impostors that pass, else the bank's): [`GAUSSIAN_FMR_POSITION`] of
    /// the way from the genuine mean to the point equally many standard deviations from both
    /// means. Means and deviations move less from one clip to the next than a maximum does.
    /// Chosen for the default target of 1/1000 (see [`GAUSSIAN_FMR_POSITION`]); enrolment
    /// with another target uses [`FmrRule::Empirical`].
    #[default]
    Gaussian,
}

impl std::str::FromStr for FmrRule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "empirical" => Ok(Self::Empirical),
            "gaussian" => Ok(Self::Gaussian),
            o => Err(format!(
                "unknown FMR rule {o:?} (expected gaussian or empirical)"
            )),
        }
    }
}

/// The default [`EnrollConfig::target_fmr`] (1/1000, NIST SP 800-63B), the one
/// [`FmrRule::Gaussian`] was chosen for.
pub const DEFAULT_TARGET_FMR: f64 = 1e-3;

/// Where [`FmrRule::Gaussian`] puts the threshold, from the genuine mean (0) to the point
/// equally many standard deviations from both means (1). Chosen on leave-one-speaker-out
/// runs inside each seed's training speakers (`scripts/threshold-rules.py`, `meet0.70`):
/// the one position whose test FMR and FNMR were both below the empirical rule's with the
/// grouped folds and with per-clip folds.
pub const GAUSSIAN_FMR_POSITION: f64 = 0.6;

/// The word classifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WordModelKind {
    /// Weighted ridge classifier on the flattened `T x mouth` sequence.
    #[default]
    Linear,
    /// The stacked LSTM on `T x (mouth + identity)`.
    Lstm,
    /// The mean of both.
    Ensemble,
    /// Weighted ridge classifier on the top LSTM state `h_T` of a pretrained backbone, kept
    /// frozen: the backbone's head fine-tuned in closed form. Needs a pretrained LSTM
    /// ([`super::enroll_with`]); the backbone is stored in the user's model.
    Encoded,
}

impl WordModelKind {
    /// The name `authnetd.toml` and the command lines use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Linear => "linear",
            Self::Lstm => "lstm",
            Self::Ensemble => "ensemble",
            Self::Encoded => "encoded",
        }
    }

    /// Whether enrolment reads a pretrained LSTM backbone for this word model: `lstm` and
    /// `ensemble` fine-tune from one, `encoded` needs one, the ridge reads none.
    pub fn reads_pretrained(self) -> bool {
        self != Self::Linear
    }
}

impl std::str::FromStr for WordModelKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "linear" => Ok(Self::Linear),
            "lstm" => Ok(Self::Lstm),
            "ensemble" => Ok(Self::Ensemble),
            "encoded" => Ok(Self::Encoded),
            o => Err(format!(
                "unknown word model {o:?} (expected linear, lstm, ensemble or encoded)"
            )),
        }
    }
}

/// LSTM architecture preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LstmPreset {
    /// Projection + one small layer ([`LstmConfig::compact`]).
    #[default]
    Compact,
    /// The paper's 4-layer stack ([`LstmConfig::paper`]).
    Paper,
}

impl LstmPreset {
    /// The architecture of this preset for `input_dim` features per timestep.
    pub fn config(self, input_dim: usize) -> LstmConfig {
        match self {
            Self::Compact => LstmConfig::compact(input_dim),
            Self::Paper => LstmConfig::paper(input_dim),
        }
    }
}

impl std::str::FromStr for LstmPreset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "compact" => Ok(Self::Compact),
            "paper" => Ok(Self::Paper),
            o => Err(format!(
                "unknown LSTM preset {o:?} (expected compact or paper)"
            )),
        }
    }
}

/// Triangular temporal smoothing of the ridge word model's input, in steps either side
/// ([`EnrollConfig::word_smoothing`]). Chosen on the 15 leave-one-speaker-out runs inside the
/// seeds' training speakers (mouth crops, FMR policy; 0, 1, 2 and 3 tried): 1 missed the
/// fewest genuine clips (FNMR 0.106 against 0.116 unsmoothed) at the same FMR (0.0014).
pub const DEFAULT_WORD_SMOOTHING: usize = 1;
/// The ridge penalties enrolment tries ([`EnrollConfig::ridge_lambdas`]), absolute
/// ([`EnrollConfig::ridge_relative`] off); each user keeps the one with the lowest out-of-fold
/// EER. On the 15 leave-one-speaker-out runs inside the seeds' training speakers (mouth crops)
/// one penalty of 0.08 relative to the input's mean squared norm did better (FMR 0.0011 at FNMR
/// 0.104 against 0.0014 / 0.106), but the face path, which has no such protocol, did worse at
/// its operating point overall (README, "The ridge penalty"), so the
/// daemon keeps this search.
pub const DEFAULT_RIDGE_LAMBDAS: [f64; 3] = [1.0, 10.0, 100.0];
/// Nuisance whitening of the ridge word model's input ([`EnrollConfig::word_whitening`]): the
/// identity's share of the penalty next to the covariance of repetitions of one word by one
/// speaker. Chosen on the 15 leave-one-speaker-out runs inside the seeds' training speakers
/// (mouth crops, FMR policy; 0.03, 0.1, 0.3 and 1 tried): 0.1 missed the fewest genuine clips
/// (FNMR 0.087 against 0.106 unwhitened) at a lower FMR (0.0012 against 0.0014).
pub const DEFAULT_WORD_WHITENING: f64 = 0.1;
/// The ridge penalty of a whitened word model ([`EnrollConfig::whitened_ridge`]), relative to
/// the whitened input's mean squared norm. On the same 15 runs, with whitening 0.1: 0.16 gave
/// FMR 0.0011 at FNMR 0.079, against 0.0012 / 0.087 for the per-user search of
/// [`DEFAULT_RIDGE_LAMBDAS`] (0.04, 0.08, 0.32 and 0.64 tried too; README, "Whitening").
pub const DEFAULT_WHITENED_RIDGE: f64 = 0.16;
/// The share of a clip's frames the ridge word model's trimmed views cut
/// ([`EnrollConfig::word_view_trim`]). Chosen on the 15 leave-one-speaker-out runs inside the
/// seeds' training speakers (mouth crops, FMR policy; off, 0.05, 0.1 and 0.2 tried): 0.1
/// missed 82 genuine clips of 1260 against 100 without views, for 226 false matches against
/// 209 (FMR 0.0013 / FNMR 0.065 against 0.0011 / 0.079; at a matched FMR of 0.001, FNMR 0.075
/// against 0.082; README, "Scoring a clip by its best trimmed view").
pub const DEFAULT_WORD_VIEW_TRIM: f64 = 0.1;
/// The largest view trim enrolment accepts and a model file may carry.
pub const MAX_WORD_VIEW_TRIM: f64 = 0.25;

/// Refuses a view trim that is not a finite number in `0..=MAX_WORD_VIEW_TRIM`, on enrolment
/// and on load.
pub(crate) fn check_view_trim(share: f64) -> Result<(), super::PasswordError> {
    if !(share.is_finite() && (0.0..=MAX_WORD_VIEW_TRIM).contains(&share)) {
        return Err(super::PasswordError::Invalid(
            "word_view_trim must be a number from 0 to MAX_WORD_VIEW_TRIM",
        ));
    }
    Ok(())
}

/// The largest smoothing radius enrolment accepts and a model file may carry.
pub const MAX_WORD_SMOOTHING: usize = 5;

/// Refuses a smoothing radius above [`MAX_WORD_SMOOTHING`], on enrolment and on load.
pub(crate) fn check_word_smoothing(radius: usize) -> Result<(), super::PasswordError> {
    if radius > MAX_WORD_SMOOTHING {
        return Err(super::PasswordError::Invalid(
            "word_smoothing is larger than MAX_WORD_SMOOTHING",
        ));
    }
    Ok(())
}

/// Refuses a whitening share or a whitened ridge penalty that is not a finite number of the
/// right sign (a share of 0 is off; a penalty must be positive).
pub(crate) fn check_whitening(share: f64, ridge: Option<f64>) -> Result<(), super::PasswordError> {
    if !(share.is_finite() && share >= 0.0) {
        return Err(super::PasswordError::Invalid(
            "word_whitening must be a finite number, 0 or more",
        ));
    }
    if ridge.is_some_and(|l| !(l.is_finite() && l > 0.0)) {
        return Err(super::PasswordError::Invalid(
            "whitened_ridge must be a positive, finite penalty",
        ));
    }
    Ok(())
}

/// Refuses an empty list of ridge penalties or one that is not a positive number: enrolment
/// would otherwise train no word model at all.
pub(crate) fn check_ridge_lambdas(lambdas: &[f64]) -> Result<(), super::PasswordError> {
    if lambdas.is_empty() || lambdas.iter().any(|l| !(l.is_finite() && *l > 0.0)) {
        return Err(super::PasswordError::Invalid(
            "ridge_lambdas must hold at least one positive, finite penalty",
        ));
    }
    Ok(())
}

/// Enrolment settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EnrollConfig {
    /// Timesteps `T`.
    pub timesteps: usize,
    /// Padding policy.
    pub pad: PadPolicy,
    /// Positives are oversampled (with temporal jitter) to this many sequences (paper: 110).
    pub oversample_to: usize,
    /// Word classifier.
    pub word_model: WordModelKind,
    /// LSTM preset when the word model uses it.
    pub lstm: LstmPreset,
    /// LSTM training settings (paper defaults).
    pub train: TrainConfig,
    /// LSTM training settings when fine-tuning a pretrained backbone
    /// ([`super::enroll_with`]).
    pub fine_tune: TrainConfig,
    /// Cross-validation folds for calibration (capped by the number of positive clips).
    pub folds: usize,
    /// Seed for every random choice.
    pub seed: u64,
    /// Target false-match rate for the FMR threshold.
    pub target_fmr: f64,
    /// Ridge penalties tried; the one with the lowest out-of-fold EER wins
    /// ([`DEFAULT_RIDGE_LAMBDAS`]).
    pub ridge_lambdas: Vec<f64>,
    /// The penalties are in units of the mean squared norm of the word model's input rows
    /// (the Gram matrix's mean diagonal), so one penalty regularises the same whatever the
    /// features' scale; off (the default): absolute.
    pub ridge_relative: bool,
    /// Liveness floor as a fraction of the least-moving enrolment clip's motion.
    pub liveness_fraction: f64,
    /// At most this many impostor-bank negatives are used (seeded sample).
    pub max_bank_negatives: usize,
    /// Average a DTW template score (distance to the enrolled clips) into the word gate.
    pub dtw: bool,
    /// Cross-validation holds out every clip of one other word (when labelled) and every bank
    /// clip of one speaker together, so the out-of-fold impostor scores, and the thresholds
    /// set on them, come from words and people the fold's model never saw, as at test time.
    /// Off: each such clip is held out alone.
    pub group_folds: bool,
    /// When the out-of-fold genuine and impostor scores are separated, put the EER threshold
    /// (and so the floor of the FMR threshold) in the middle of the gap instead of at the
    /// lowest genuine score, which rejects about one in `positives + 1` new genuine clips.
    pub gap_midpoint: bool,
    /// The word and DTW gates are standardised by the gap between their genuine and the
    /// user's other words' out-of-fold scores ([`super::GateStats::from_separation`]) instead of
    /// by the spread of the genuine scores alone. Off by default: on the training speakers'
    /// mouth crops it lowered both FMR and FNMR at the deployed threshold, but on the face
    /// path it raised the EER in 4 of 6 runs (README, "Scaling the word gates").
    pub separation_scale: bool,
    /// How the FMR-policy threshold is placed ([`FmrRule`]).
    pub fmr_rule: FmrRule,
    /// The ridge word model reads its input smoothed over this many timesteps either side
    /// (`views::smooth_time`; 0: unsmoothed; at most [`MAX_WORD_SMOOTHING`]).
    pub word_smoothing: usize,
    /// Nuisance whitening of the ridge word model's input (`gate::whiten`): the penalty is
    /// the per-frame covariance of repetitions of one word by one speaker (the impostor bank
    /// by speaker and word, the user's password clips, and the user's labelled other words),
    /// plus this much of the identity ([`DEFAULT_WORD_WHITENING`]). 0: off (a plain ridge).
    /// With too few repetitions (fewer than 200 residual frames: no bank with several clips
    /// of a word per speaker, and unlabelled other words) there is no whitener and the ridge
    /// is the plain one.
    pub word_whitening: f64,
    /// When the word model's input is whitened, the ridge is fitted with this one penalty,
    /// relative to the whitened input's mean squared norm, instead of searching
    /// `ridge_lambdas` ([`DEFAULT_WHITENED_RIDGE`]); `None`: the search, as unwhitened.
    pub whitened_ridge: Option<f64>,
    /// The ridge word model scores a clip as the best of its trimmed views
    /// (`views::trimmed_views`: the whole clip, and the clip less this share of its frames at
    /// the start, at the end, and half at each end), in calibration and at login alike, so a
    /// password mouthed a little late or cut short by the camera still lines up
    /// ([`DEFAULT_WORD_VIEW_TRIM`]). 0: the whole clip only. Not applied to the LSTM or to
    /// the encoded word model.
    pub word_view_trim: f64,
}

impl Default for EnrollConfig {
    fn default() -> Self {
        Self {
            timesteps: DEFAULT_TIMESTEPS,
            pad: PadPolicy::default(),
            oversample_to: 110,
            word_model: WordModelKind::default(),
            lstm: LstmPreset::default(),
            train: TrainConfig::default(),
            fine_tune: TrainConfig::default(),
            folds: 5,
            seed: 0,
            target_fmr: DEFAULT_TARGET_FMR,
            ridge_lambdas: DEFAULT_RIDGE_LAMBDAS.to_vec(),
            ridge_relative: false,
            liveness_fraction: 0.25,
            max_bank_negatives: 400,
            dtw: true,
            group_folds: true,
            gap_midpoint: false,
            separation_scale: false,
            fmr_rule: FmrRule::default(),
            word_smoothing: DEFAULT_WORD_SMOOTHING,
            word_whitening: DEFAULT_WORD_WHITENING,
            whitened_ridge: Some(DEFAULT_WHITENED_RIDGE),
            word_view_trim: DEFAULT_WORD_VIEW_TRIM,
        }
    }
}

/// What enrolment hands to the enrolling user.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EnrollReport {
    /// EER of the fused score on out-of-fold validation data.
    pub validation_eer: f64,
    /// Mean fused validation score of genuine clips.
    pub genuine_mean: f64,
    /// Mean fused validation score of impostor clips (liveness vetoes excluded).
    pub impostor_mean: f64,
    /// `genuine_mean - impostor_mean`.
    pub margin: f64,
    /// Wall-clock training time.
    pub train_seconds: f64,
}

/// Everything besides the tensors, stored in the model file's `config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StoredConfig {
    /// Word classifier kind.
    pub word_model: WordModelKind,
    /// LSTM architecture, when used.
    pub lstm: Option<LstmConfig>,
    /// The ridge penalty the word model was fitted with (absolute), when used.
    pub ridge_lambda: Option<f64>,
    /// Identity gate statistics.
    pub identity: GateStats,
    /// Word gate statistics.
    pub word: GateStats,
    /// Liveness veto floor.
    pub liveness_floor: f64,
    /// Statistics of the DTW template score, when the word gate averages it in.
    #[serde(default)]
    pub dtw: Option<GateStats>,
    /// Lip-opening veto floor (mesh feature layout only).
    #[serde(default)]
    pub lip_opening_floor: Option<f64>,
    /// Temporal smoothing radius of the ridge's input; absent in files written before it
    /// existed, which were trained unsmoothed (0).
    #[serde(default)]
    pub word_smoothing: Option<usize>,
    /// The whitening share the ridge was fitted with, when its input was whitened (the stored
    /// weights are mapped back to the unwhitened input, so scoring does not read it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub word_whitening: Option<f64>,
    /// The trimmed views' share ([`EnrollConfig::word_view_trim`]) the word gate was
    /// calibrated with, and scores with; absent when it scores the whole clip only (files
    /// written before views existed, and enrolments with 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub word_view_trim: Option<f64>,
}
