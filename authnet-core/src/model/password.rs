//! The per-user password model: "this person, mouthing this password, live".
//!
//! A probe utterance gets three scores:
//! - **identity**: cosine of its mean identity embedding with the user's enrolled template. It
//!   needs no training on impostors, so it generalises to people never seen.
//! - **word**: a per-user classifier of the mouth-feature sequence (what the lips do over `T`
//!   timesteps), trained on the user's clips against same-person other words, the impostor bank,
//!   and negatives derived from the user's own clips (frozen, reversed, shuffled). Either a
//!   weighted ridge classifier on the flattened sequence ([`WordModelKind::Linear`]), the
//!   stacked LSTM ([`WordModelKind::Lstm`], the paper's model), or both averaged.
//! - **liveness**: mouth motion energy (mean frame-to-frame change of the mouth descriptor). A
//!   photo held up to the camera (a frozen frame) has none; below a floor taken from the user's
//!   own clips it **vetoes** the attempt whatever the other scores say.
//!
//! Identity and word scores are standardised by their genuine distribution on out-of-fold
//! validation data (`z = (s - mean) / std`) and fused by `min`, so an attempt must look genuine
//! on *both* gates: a different person fails the identity gate, the same person saying another
//! word fails the word gate. The ROC of the fused score on out-of-fold validation data sets the
//! EER and the target-FMR thresholds; the test data is never used.

use std::path::Path;
use std::time::Instant;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::bank::ImpostorBank;
use super::file::{
    self, Expect, ModelFileError, ModelMeta, NamedTensor, Thresholds, TrainingStats,
};
use super::lstm::{LstmConfig, LstmError, SeqClassifier, Sequence, TrainConfig};
use crate::features::{cosine, l2_normalise, UtteranceFeatures};
use crate::metrics::{self, MetricsError};
use crate::rng::SplitMix64;
use crate::sequence::{assemble, resample, PadPolicy, DEFAULT_TIMESTEPS};

/// Penalty subtracted from the fused score when the liveness check vetoes: far below any
/// threshold, but finite so it serialises.
pub const LIVENESS_VETO: f64 = 1000.0;
/// Fewest frames a probe must have to be scored (motion needs two).
pub const MIN_FRAMES: usize = 2;
/// Fewest positive clips an enrolment accepts.
pub const MIN_POSITIVES: usize = 3;

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
}

impl std::str::FromStr for WordModelKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "linear" => Ok(Self::Linear),
            "lstm" => Ok(Self::Lstm),
            "ensemble" => Ok(Self::Ensemble),
            o => Err(format!(
                "unknown word model {o:?} (expected linear, lstm or ensemble)"
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

/// The three scores of a probe and their fusion.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Cosine of the probe's mean identity embedding with the template.
    pub identity: f64,
    /// Raw word-classifier output.
    pub word: f64,
    /// Mouth motion energy.
    pub liveness: f64,
    /// `min(z_identity, z_word)`, minus [`LIVENESS_VETO`] when liveness vetoes.
    pub fused: f64,
    /// Whether the liveness check vetoed.
    pub liveness_veto: bool,
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
    /// Cross-validation folds for calibration (capped by the number of positive clips).
    pub folds: usize,
    /// Seed for every random choice.
    pub seed: u64,
    /// Target false-match rate for the FMR threshold.
    pub target_fmr: f64,
    /// Ridge penalties tried; the one with the lowest out-of-fold EER wins.
    pub ridge_lambdas: Vec<f64>,
    /// Liveness floor as a fraction of the least-moving enrolment clip's motion.
    pub liveness_fraction: f64,
    /// At most this many impostor-bank negatives are used (seeded sample).
    pub max_bank_negatives: usize,
    /// Average a DTW template score (distance to the enrolled clips) into the word gate.
    pub dtw: bool,
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
            folds: 5,
            seed: 0,
            target_fmr: 1e-3,
            ridge_lambdas: vec![1.0, 10.0, 100.0],
            liveness_fraction: 0.25,
            max_bank_negatives: 400,
            dtw: true,
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

/// Genuine-score statistics of one gate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GateStats {
    /// Mean of the genuine validation scores.
    pub mean: f64,
    /// Their standard deviation (floored).
    pub std: f64,
}

impl GateStats {
    fn from_scores(s: &[f64], floor: f64) -> Self {
        let n = s.len().max(1) as f64;
        let mean = s.iter().sum::<f64>() / n;
        let var = s.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        Self {
            mean,
            std: var.sqrt().max(floor),
        }
    }
    fn z(&self, s: f64) -> f64 {
        (s - self.mean) / self.std
    }
}

/// Everything besides the tensors, stored in the model file's `config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredConfig {
    /// Word classifier kind.
    pub word_model: WordModelKind,
    /// LSTM architecture, when used.
    pub lstm: Option<LstmConfig>,
    /// Ridge penalty chosen by validation, when used.
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
}

/// A trained ridge classifier: `w . x + b`.
#[derive(Debug, Clone, PartialEq)]
struct Ridge {
    w: Vec<f32>,
    b: f32,
}

impl Ridge {
    fn score(&self, x: &[f32]) -> f64 {
        x.iter()
            .zip(&self.w)
            .map(|(a, b)| (*a as f64) * (*b as f64))
            .sum::<f64>()
            + self.b as f64
    }
}

/// A trained per-user password model.
#[derive(Debug)]
pub struct PasswordModel {
    meta: ModelMeta,
    cfg: StoredConfig,
    template: Vec<f32>,
    ridge: Option<Ridge>,
    lstm: Option<SeqClassifier>,
    /// Enrolled mouth sequences (`T x mouth_dim` each) for the DTW score; empty when unused.
    dtw_templates: Vec<Vec<Vec<f32>>>,
}

// ---------------------------------------------------------------------------------------------
// Feature views
// ---------------------------------------------------------------------------------------------

/// Mouth motion energy: mean L2 change of the mouth descriptor between consecutive frames.
pub fn motion_energy(u: &UtteranceFeatures) -> f64 {
    if u.frames.len() < 2 {
        return 0.0;
    }
    let s: f64 = u
        .frames
        .windows(2)
        .map(|w| {
            w[0].mouth
                .iter()
                .zip(&w[1].mouth)
                .map(|(a, b)| ((a - b) as f64).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .sum();
    s / (u.frames.len() - 1) as f64
}

/// The flattened `T x mouth_dim` input of the ridge word model.
fn word_input(u: &UtteranceFeatures, t: usize, pad: PadPolicy) -> Vec<f32> {
    assemble(&u.mouth_seq(), t, pad)
        .into_iter()
        .flatten()
        .collect()
}

/// The `T x (mouth_dim + identity_dim)` input of the LSTM.
fn lstm_input(u: &UtteranceFeatures, t: usize, pad: PadPolicy) -> Sequence {
    let rows: Vec<Vec<f32>> = u
        .frames
        .iter()
        .map(|f| f.mouth.iter().chain(&f.identity).copied().collect())
        .collect();
    assemble(&rows, t, pad)
}

/// A temporally jittered copy (the augmentation enrolment oversamples with): a random
/// sub-span covering at least 80 % of the clip, resampled to 85–115 % of its length.
pub fn jitter_copy(u: &UtteranceFeatures, rng: &mut SplitMix64) -> UtteranceFeatures {
    let n = u.frames.len();
    let mut out = u.clone();
    if n < 4 {
        return out;
    }
    let cut = (n as f32 * 0.2) as usize;
    let start = rng.below(cut / 2 + 1);
    let end = n - rng.below(cut - cut / 2 + 1);
    let span = &u.frames[start..end.max(start + 2)];
    // Also vary the speaking rate: resample the span to 85–115 % of its length.
    let len = ((span.len() as f32) * (0.85 + 0.3 * rng.next_f32()))
        .round()
        .max(2.0) as usize;
    let ids = resample(
        &span.iter().map(|f| f.identity.clone()).collect::<Vec<_>>(),
        len,
    );
    let ms = resample(
        &span.iter().map(|f| f.mouth.clone()).collect::<Vec<_>>(),
        len,
    );
    out.frames = ids
        .into_iter()
        .zip(ms)
        .map(|(identity, mouth)| crate::features::FrameFeatures { identity, mouth })
        .collect();
    out
}

fn reversed(u: &UtteranceFeatures) -> UtteranceFeatures {
    let mut o = u.clone();
    o.frames.reverse();
    o
}

fn shuffled(u: &UtteranceFeatures, rng: &mut SplitMix64) -> UtteranceFeatures {
    let mut o = u.clone();
    rng.shuffle(&mut o.frames);
    o
}

fn template_of(pos: &[&UtteranceFeatures]) -> Vec<f32> {
    let dim = pos.first().map(|u| u.identity_dim).unwrap_or(0);
    let mut t = vec![0.0f32; dim];
    for u in pos {
        for (a, b) in t.iter_mut().zip(u.mean_identity()) {
            *a += b;
        }
    }
    l2_normalise(&mut t);
    t
}

// ---------------------------------------------------------------------------------------------
// Ridge (weighted, solved in the dual so that cross-validation reuses one Gram matrix)
// ---------------------------------------------------------------------------------------------

/// `X X^T + 1` (the constant models the bias), via candle's matmul.
fn gram(x: &[Vec<f32>]) -> Result<Vec<Vec<f64>>, PasswordError> {
    let n = x.len();
    let d = x.first().map(|r| r.len()).unwrap_or(0);
    let flat: Vec<f32> = x.iter().flatten().copied().collect();
    let t = Tensor::from_vec(flat, (n, d), &Device::Cpu)?;
    let g = t.matmul(&t.t()?)?.to_vec2::<f32>()?;
    Ok(g.into_iter()
        .map(|r| r.into_iter().map(|v| v as f64 + 1.0).collect())
        .collect())
}

/// Solves `(K_SS + lambda * diag(1/c)) alpha = y` for the index subset `s` (Cholesky).
fn ridge_dual(
    k: &[Vec<f64>],
    s: &[usize],
    y: &[f64],
    c: &[f64],
    lambda: f64,
) -> Result<Vec<f64>, PasswordError> {
    let n = s.len();
    let mut a = vec![0.0f64; n * n];
    for (i, &si) in s.iter().enumerate() {
        for (j, &sj) in s.iter().enumerate() {
            a[i * n + j] = k[si][sj];
        }
        a[i * n + i] += lambda / c[si];
    }
    // In-place Cholesky: a = L L^T.
    for j in 0..n {
        let mut d = a[j * n + j];
        for k2 in 0..j {
            d -= a[j * n + k2] * a[j * n + k2];
        }
        if d <= 0.0 || !d.is_finite() {
            return Err(PasswordError::Singular);
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut v = a[i * n + j];
            for k2 in 0..j {
                v -= a[i * n + k2] * a[j * n + k2];
            }
            a[i * n + j] = v / d;
        }
    }
    let mut z: Vec<f64> = s.iter().map(|&i| y[i]).collect();
    for i in 0..n {
        let mut v = z[i];
        for k2 in 0..i {
            v -= a[i * n + k2] * z[k2];
        }
        z[i] = v / a[i * n + i];
    }
    for i in (0..n).rev() {
        let mut v = z[i];
        for k2 in i + 1..n {
            v -= a[k2 * n + i] * z[k2];
        }
        z[i] = v / a[i * n + i];
    }
    Ok(z)
}

/// Dual scores of items `q` given the solution `alpha` on subset `s`.
fn dual_scores(k: &[Vec<f64>], s: &[usize], alpha: &[f64], q: &[usize]) -> Vec<f64> {
    q.iter()
        .map(|&i| s.iter().zip(alpha).map(|(&j, a)| a * k[i][j]).sum())
        .collect()
}

fn primal(x: &[Vec<f32>], s: &[usize], alpha: &[f64]) -> Ridge {
    let d = x.first().map(|r| r.len()).unwrap_or(0);
    let mut w = vec![0.0f64; d];
    let mut b = 0.0;
    for (&i, a) in s.iter().zip(alpha) {
        for (wj, xj) in w.iter_mut().zip(&x[i]) {
            *wj += a * *xj as f64;
        }
        b += a;
    }
    Ridge {
        w: w.into_iter().map(|v| v as f32).collect(),
        b: b as f32,
    }
}

// ---------------------------------------------------------------------------------------------
// Enrolment
// ---------------------------------------------------------------------------------------------

/// The clips an enrolment learns from.
#[derive(Debug, Clone, Copy)]
pub struct EnrollInput<'a> {
    /// The user mouthing the password.
    pub positives: &'a [UtteranceFeatures],
    /// The user mouthing other words.
    pub other_words: &'a [UtteranceFeatures],
    /// Other people (optional).
    pub bank: Option<&'a ImpostorBank>,
}

/// Kinds of training item, for fold assignment and reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    /// Copy `copy` of positive clip `clip` (copy 0 is the clip itself).
    Pos { clip: usize, copy: usize },
    /// A negative; `from_clip` is the positive it was derived from, if any (then it shares its
    /// fold). `calibrate` is false for the reversed and shuffled clips: they teach the word
    /// model that order matters, but no attacker presents them, so they do not set thresholds.
    Neg {
        from_clip: Option<usize>,
        group: usize,
        calibrate: bool,
    },
}

struct TrainSet {
    items: Vec<Item>,
    feats: Vec<UtteranceFeatures>,
}

fn build_train_set(input: &EnrollInput, cfg: &EnrollConfig, rng: &mut SplitMix64) -> TrainSet {
    let np = input.positives.len();
    let copies = (cfg.oversample_to / np.max(1)).max(1);
    let mut items = Vec::new();
    let mut feats = Vec::new();
    for (clip, u) in input.positives.iter().enumerate() {
        for copy in 0..copies {
            items.push(Item::Pos { clip, copy });
            feats.push(if copy == 0 {
                u.clone()
            } else {
                jitter_copy(u, rng)
            });
        }
        // Derived negatives: a photo (frozen frame), the clip backwards, the frames shuffled.
        for (d, calibrate) in [
            (u.frozen(), true),
            (reversed(u), false),
            (shuffled(u, rng), false),
        ] {
            items.push(Item::Neg {
                from_clip: Some(clip),
                group: 0,
                calibrate,
            });
            feats.push(d);
        }
    }
    let mut g = 0;
    for u in input.other_words {
        items.push(Item::Neg {
            from_clip: None,
            group: g,
            calibrate: true,
        });
        feats.push(u.clone());
        g += 1;
    }
    if let Some(bank) = input.bank {
        let mut idx: Vec<usize> = (0..bank.entries.len()).collect();
        rng.shuffle(&mut idx);
        idx.truncate(cfg.max_bank_negatives);
        idx.sort_unstable();
        for i in idx {
            if bank.entries[i].features.frames.len() >= MIN_FRAMES {
                items.push(Item::Neg {
                    from_clip: None,
                    group: g,
                    calibrate: true,
                });
                feats.push(bank.entries[i].features.clone());
                g += 1;
            }
        }
    }
    TrainSet { items, feats }
}

/// Per-item raw scores of one (fold) model.
struct GateScores {
    identity: f64,
    word: f64,
    dtw: f64,
    liveness: f64,
}

/// Dynamic-time-warping distance between two mouth sequences (Euclidean frame cost, path
/// length normalised), so clips spoken at different speeds still align.
fn dtw(a: &[Vec<f32>], b: &[Vec<f32>]) -> f64 {
    let (n, m) = (a.len(), b.len());
    if n == 0 || m == 0 {
        return f64::INFINITY;
    }
    let cost = |i: usize, j: usize| -> f64 {
        a[i].iter()
            .zip(&b[j])
            .map(|(x, y)| ((x - y) as f64).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let mut prev = vec![f64::INFINITY; m + 1];
    let mut cur = vec![f64::INFINITY; m + 1];
    prev[0] = 0.0;
    for i in 1..=n {
        cur[0] = f64::INFINITY;
        for j in 1..=m {
            cur[j] = cost(i - 1, j - 1) + prev[j - 1].min(prev[j]).min(cur[j - 1]);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[m] / (n + m) as f64
}

/// DTW template score: minus the mean of the two smallest distances to the enrolled clips.
fn dtw_score(probe: &[Vec<f32>], templates: &[Vec<Vec<f32>>]) -> f64 {
    let mut d: Vec<f64> = templates.iter().map(|t| dtw(probe, t)).collect();
    d.sort_by(|x, y| x.total_cmp(y));
    let k = d.len().clamp(1, 2);
    -d.iter().take(k).sum::<f64>() / k as f64
}

/// The mouth sequence a DTW template stores (resampled to `t` steps).
fn dtw_seq(u: &UtteranceFeatures, t: usize) -> Vec<Vec<f32>> {
    resample(&u.mouth_seq(), t)
}

fn lstm_config(cfg: &EnrollConfig, dim: usize) -> LstmConfig {
    match cfg.lstm {
        LstmPreset::Compact => LstmConfig::compact(dim),
        LstmPreset::Paper => LstmConfig::paper(dim),
    }
}

/// Trains the LSTM on `train` items, early-stopping on a deterministic sixth of them.
fn train_lstm(
    set: &TrainSet,
    xs: &[Sequence],
    train: &[usize],
    cfg: &EnrollConfig,
    seed: u64,
) -> Result<SeqClassifier, PasswordError> {
    let dim = xs
        .first()
        .and_then(|s| s.first())
        .map(|r| r.len())
        .unwrap_or(0);
    let mut model = SeqClassifier::new(lstm_config(cfg, dim), seed)?;
    // Validation: every item whose clip/group id is 5 mod 6, so copies of one clip stay together.
    let is_val = |i: usize| match set.items[i] {
        Item::Pos { clip, .. } => clip % 6 == 5,
        Item::Neg {
            from_clip: Some(c), ..
        } => c % 6 == 5,
        Item::Neg { group, .. } => group % 6 == 5,
    };
    let (mut tx, mut ty, mut vx, mut vy) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for &i in train {
        let y = if matches!(set.items[i], Item::Pos { .. }) {
            1.0
        } else {
            0.0
        };
        if is_val(i) {
            vx.push(xs[i].clone());
            vy.push(y);
        } else {
            tx.push(xs[i].clone());
            ty.push(y);
        }
    }
    let w = super::lstm::balanced_weights(&ty);
    let val =
        (!vy.is_empty() && vy.iter().any(|y| *y > 0.5)).then_some((vx.as_slice(), vy.as_slice()));
    let mut tc = cfg.train.clone();
    tc.seed = seed;
    model.train(&tx, &ty, Some(&w), val, &tc)?;
    Ok(model)
}

/// Maps an LSTM logit to about the ridge output's scale (+-1).
fn lstm_word(logit: f32) -> f64 {
    (logit as f64 / 2.0).tanh()
}

fn combine_word(kind: WordModelKind, ridge: Option<f64>, lstm: Option<f64>) -> f64 {
    match (kind, ridge, lstm) {
        (WordModelKind::Ensemble, Some(r), Some(l)) => (r + l) / 2.0,
        (_, Some(r), _) => r,
        (_, _, Some(l)) => l,
        _ => 0.0,
    }
}

/// Enrols a user: trains the word model(s), calibrates the gates and thresholds by k-fold
/// cross-validation over the enrolment clips, then trains the final model on everything.
/// `progress(stage, done, total)` is called as work proceeds.
pub fn enroll(
    input: &EnrollInput,
    cfg: &EnrollConfig,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<(PasswordModel, EnrollReport), PasswordError> {
    let started = Instant::now();
    let positives: Vec<&UtteranceFeatures> = input
        .positives
        .iter()
        .filter(|u| u.frames.len() >= MIN_FRAMES)
        .collect();
    if positives.len() < MIN_POSITIVES {
        return Err(PasswordError::TooFewPositives(positives.len()));
    }
    let first = positives[0];
    let (backbone, id_dim, m_dim) = (first.backbone.clone(), first.identity_dim, first.mouth_dim);
    let check = |u: &UtteranceFeatures| -> Result<(), PasswordError> {
        if u.backbone != backbone || u.identity_dim != id_dim || u.mouth_dim != m_dim {
            return Err(PasswordError::FeatureMismatch {
                expected: format!("{backbone} {id_dim}+{m_dim}"),
                found: format!("{} {}+{}", u.backbone, u.identity_dim, u.mouth_dim),
            });
        }
        Ok(())
    };
    input
        .positives
        .iter()
        .chain(input.other_words)
        .try_for_each(check)?;
    if let Some(b) = input.bank {
        if b.backbone != backbone || b.identity_dim != id_dim || b.mouth_dim != m_dim {
            return Err(PasswordError::FeatureMismatch {
                expected: format!("{backbone} {id_dim}+{m_dim}"),
                found: format!("bank of {} {}+{}", b.backbone, b.identity_dim, b.mouth_dim),
            });
        }
    }
    let pos_owned: Vec<UtteranceFeatures> = positives.iter().map(|u| (*u).clone()).collect();
    let others: Vec<UtteranceFeatures> = input
        .other_words
        .iter()
        .filter(|u| u.frames.len() >= MIN_FRAMES)
        .cloned()
        .collect();
    let filtered = EnrollInput {
        positives: &pos_owned,
        other_words: &others,
        bank: input.bank,
    };
    let mut rng = SplitMix64::new(cfg.seed ^ 0xA17E_0001);
    let set = build_train_set(&filtered, cfg, &mut rng);
    if !set.items.iter().any(|i| {
        matches!(
            i,
            Item::Neg {
                from_clip: None,
                ..
            }
        )
    }) && others.is_empty()
        && input.bank.is_none()
    {
        return Err(PasswordError::NoNegatives);
    }
    let (t, pad) = (cfg.timesteps, cfg.pad);
    let n = set.items.len();
    let y: Vec<f64> = set
        .items
        .iter()
        .map(|i| {
            if matches!(i, Item::Pos { .. }) {
                1.0
            } else {
                -1.0
            }
        })
        .collect();
    let npos = y.iter().filter(|v| **v > 0.0).count() as f64;
    let nneg = n as f64 - npos;
    let c: Vec<f64> = y
        .iter()
        .map(|v| {
            if *v > 0.0 {
                n as f64 / (2.0 * npos)
            } else {
                n as f64 / (2.0 * nneg)
            }
        })
        .collect();

    let use_ridge = cfg.word_model != WordModelKind::Lstm;
    let use_lstm = cfg.word_model != WordModelKind::Linear;
    progress("features", 0, 1);
    let xw: Vec<Vec<f32>> = if use_ridge {
        set.feats.iter().map(|u| word_input(u, t, pad)).collect()
    } else {
        Vec::new()
    };
    let xl: Vec<Sequence> = if use_lstm {
        set.feats.iter().map(|u| lstm_input(u, t, pad)).collect()
    } else {
        Vec::new()
    };
    let k = if use_ridge { gram(&xw)? } else { Vec::new() };
    let live: Vec<f64> = set.feats.iter().map(motion_energy).collect();
    let ident: Vec<Vec<f32>> = set.feats.iter().map(|u| u.mean_identity()).collect();
    progress("features", 1, 1);

    // Fold of each item: positives by clip, derived negatives with their clip, others by group.
    let np = pos_owned.len();
    let folds = cfg.folds.clamp(2, np);
    let mut clip_fold: Vec<usize> = (0..np).map(|i| i % folds).collect();
    rng.shuffle(&mut clip_fold);
    let fold_of = |i: usize| match set.items[i] {
        Item::Pos { clip, .. }
        | Item::Neg {
            from_clip: Some(clip),
            ..
        } => clip_fold[clip],
        Item::Neg { group, .. } => group % folds,
    };
    // Held-out items scored per fold: jittered copies are training-only.
    let is_eval = |i: usize| match set.items[i] {
        Item::Pos { copy, .. } => copy == 0,
        Item::Neg { calibrate, .. } => calibrate,
    };

    // Choose the ridge penalty by out-of-fold EER of the word score alone.
    let mut lambda = None;
    if use_ridge {
        let mut best: Option<(f64, f64)> = None;
        for &lam in &cfg.ridge_lambdas {
            let mut gs = Vec::new();
            let mut is_ = Vec::new();
            for f in 0..folds {
                let tr: Vec<usize> = (0..n).filter(|&i| fold_of(i) != f).collect();
                let te: Vec<usize> = (0..n).filter(|&i| fold_of(i) == f && is_eval(i)).collect();
                let a = ridge_dual(&k, &tr, &y, &c, lam)?;
                for (i, s) in te.iter().zip(dual_scores(&k, &tr, &a, &te)) {
                    if y[*i] > 0.0 {
                        gs.push(s)
                    } else {
                        is_.push(s)
                    }
                }
            }
            let e = metrics::eer(&gs, &is_)?.eer;
            if best.is_none_or(|(be, _)| e < be - 1e-12) {
                best = Some((e, lam));
            }
        }
        lambda = best.map(|(_, l)| l);
    }

    // Out-of-fold gate scores.
    let mut oof: Vec<Option<GateScores>> = (0..n).map(|_| None).collect();
    for f in 0..folds {
        progress("calibrating", f, folds + 1);
        let tr: Vec<usize> = (0..n).filter(|&i| fold_of(i) != f).collect();
        let te: Vec<usize> = (0..n).filter(|&i| fold_of(i) == f && is_eval(i)).collect();
        let tr_pos: Vec<&UtteranceFeatures> = (0..np)
            .filter(|&c2| clip_fold[c2] != f)
            .map(|c2| &pos_owned[c2])
            .collect();
        let tmpl = template_of(&tr_pos);
        let dtw_t: Vec<Vec<Vec<f32>>> = tr_pos.iter().map(|u| dtw_seq(u, t)).collect();
        let ridge_s = match lambda {
            Some(lam) => {
                let a = ridge_dual(&k, &tr, &y, &c, lam)?;
                Some(dual_scores(&k, &tr, &a, &te))
            }
            None => None,
        };
        let lstm_s = if use_lstm {
            let m = train_lstm(&set, &xl, &tr, cfg, cfg.seed.wrapping_add(f as u64 + 1))?;
            let q: Vec<Sequence> = te.iter().map(|&i| xl[i].clone()).collect();
            Some(m.logits(&q)?)
        } else {
            None
        };
        for (j, &i) in te.iter().enumerate() {
            let word = combine_word(
                cfg.word_model,
                ridge_s.as_ref().map(|v| v[j]),
                lstm_s.as_ref().map(|v| lstm_word(v[j])),
            );
            oof[i] = Some(GateScores {
                identity: cosine(&ident[i], &tmpl) as f64,
                word,
                dtw: if cfg.dtw {
                    dtw_score(&dtw_seq(&set.feats[i], t), &dtw_t)
                } else {
                    0.0
                },
                liveness: live[i],
            });
        }
    }
    progress("calibrating", folds, folds + 1);

    // Gate statistics from out-of-fold genuine scores, liveness floor from the positives.
    let gen: Vec<&GateScores> = (0..n)
        .filter(|&i| y[i] > 0.0)
        .filter_map(|i| oof[i].as_ref())
        .collect();
    let id_stats =
        GateStats::from_scores(&gen.iter().map(|g| g.identity).collect::<Vec<_>>(), 0.02);
    let word_stats = GateStats::from_scores(&gen.iter().map(|g| g.word).collect::<Vec<_>>(), 0.05);
    let min_live = pos_owned
        .iter()
        .map(motion_energy)
        .fold(f64::INFINITY, f64::min);
    let liveness_floor = cfg.liveness_fraction * min_live;
    let stored = StoredConfig {
        word_model: cfg.word_model,
        lstm: use_lstm.then(|| lstm_config(cfg, m_dim + id_dim)),
        ridge_lambda: lambda,
        identity: id_stats,
        word: word_stats,
        liveness_floor,
        dtw: cfg
            .dtw
            .then(|| GateStats::from_scores(&gen.iter().map(|g| g.dtw).collect::<Vec<_>>(), 0.01)),
    };
    let fused_oof = |st: &StoredConfig| {
        let (mut g_f, mut i_f) = (Vec::new(), Vec::new());
        for i in 0..n {
            if let Some(s) = &oof[i] {
                let fused = fuse(st, s.identity, s.word, s.dtw, s.liveness).0;
                if y[i] > 0.0 {
                    g_f.push(fused)
                } else {
                    i_f.push(fused)
                }
            }
        }
        (g_f, i_f)
    };
    // Whether the DTW score helps is decided per user on the out-of-fold data, never on tests.
    let mut stored = stored;
    if stored.dtw.is_some() {
        let without = StoredConfig {
            dtw: None,
            ..stored.clone()
        };
        let (g1, i1) = fused_oof(&stored);
        let (g0, i0) = fused_oof(&without);
        if metrics::eer(&g0, &i0)?.eer <= metrics::eer(&g1, &i1)?.eer {
            stored = without;
        }
    }
    let (g_f, i_f) = fused_oof(&stored);
    let eer = metrics::eer(&g_f, &i_f)?;
    let fmr_t = metrics::threshold_at_fmr(&g_f, &i_f, cfg.target_fmr)?;
    // The FMR threshold must not be laxer than the EER one.
    let thresholds = Thresholds {
        eer: eer.threshold,
        fmr: fmr_t.max(eer.threshold),
        target_fmr: cfg.target_fmr,
    };
    let live_imp: Vec<f64> = i_f
        .iter()
        .copied()
        .filter(|v| *v > -LIVENESS_VETO / 2.0)
        .collect();
    let genuine_mean = g_f.iter().sum::<f64>() / g_f.len().max(1) as f64;
    let impostor_mean = live_imp.iter().sum::<f64>() / live_imp.len().max(1) as f64;

    // Final model on everything.
    let all: Vec<usize> = (0..n).collect();
    let ridge = match lambda {
        Some(lam) => Some(primal(&xw, &all, &ridge_dual(&k, &all, &y, &c, lam)?)),
        None => None,
    };
    let lstm = if use_lstm {
        Some(train_lstm(&set, &xl, &all, cfg, cfg.seed)?)
    } else {
        None
    };
    progress("calibrating", folds + 1, folds + 1);
    let train_seconds = started.elapsed().as_secs_f64();
    let meta = ModelMeta {
        format_version: file::FORMAT_VERSION,
        backbone,
        backbone_sha256: String::new(),
        identity_dim: id_dim,
        mouth_dim: m_dim,
        timesteps: t,
        pad_policy: pad,
        thresholds,
        training: TrainingStats {
            positives: np,
            negatives: (nneg as usize),
            epochs: cfg.train.max_epochs,
            validation_eer: eer.eer,
            genuine_mean,
            impostor_mean,
            train_seconds,
        },
        created: file::rfc3339_utc(std::time::SystemTime::now()),
        config: serde_json::to_value(&stored)
            .map_err(|_| PasswordError::Invalid("config not serialisable"))?,
    };
    let stored_dtw = stored.dtw.is_some();
    let model = PasswordModel {
        meta,
        cfg: stored,
        template: template_of(&positives),
        ridge,
        lstm,
        dtw_templates: if stored_dtw {
            positives.iter().map(|u| dtw_seq(u, t)).collect()
        } else {
            Vec::new()
        },
    };
    let report = EnrollReport {
        validation_eer: eer.eer,
        genuine_mean,
        impostor_mean,
        margin: genuine_mean - impostor_mean,
        train_seconds,
    };
    Ok((model, report))
}

/// Fuses gate scores: `(fused, vetoed)`.
fn fuse(cfg: &StoredConfig, identity: f64, word: f64, dtw: f64, liveness: f64) -> (f64, bool) {
    let zw = match &cfg.dtw {
        Some(d) => (cfg.word.z(word) + d.z(dtw)) / 2.0,
        None => cfg.word.z(word),
    };
    let z = cfg.identity.z(identity).min(zw);
    let veto = liveness < cfg.liveness_floor;
    (if veto { z - LIVENESS_VETO } else { z }, veto)
}

impl PasswordModel {
    /// Stamps the backbone's sha256 (enrolment only knows the features, not the model file).
    pub fn set_backbone_sha256(&mut self, sha: &str) {
        self.meta.backbone_sha256 = sha.to_string();
    }

    /// The metadata.
    pub fn meta(&self) -> &ModelMeta {
        &self.meta
    }

    /// The stored fusion configuration.
    pub fn stored_config(&self) -> &StoredConfig {
        &self.cfg
    }

    /// The threshold of a policy.
    pub fn threshold(&self, policy: ThresholdPolicy) -> f64 {
        match policy {
            ThresholdPolicy::Eer => self.meta.thresholds.eer,
            ThresholdPolicy::Fmr => self.meta.thresholds.fmr,
        }
    }

    /// Whether scores pass the policy's threshold (a liveness veto never passes).
    pub fn accepts(&self, s: &Scores, policy: ThresholdPolicy) -> bool {
        !s.liveness_veto && s.fused.is_finite() && s.fused >= self.threshold(policy)
    }

    /// Scores a probe utterance.
    pub fn score(&self, probe: &UtteranceFeatures) -> Result<Scores, PasswordError> {
        if probe.backbone != self.meta.backbone
            || probe.identity_dim != self.meta.identity_dim
            || probe.mouth_dim != self.meta.mouth_dim
        {
            return Err(PasswordError::FeatureMismatch {
                expected: format!(
                    "{} {}+{}",
                    self.meta.backbone, self.meta.identity_dim, self.meta.mouth_dim
                ),
                found: format!(
                    "{} {}+{}",
                    probe.backbone, probe.identity_dim, probe.mouth_dim
                ),
            });
        }
        if probe.frames.len() < MIN_FRAMES {
            return Err(PasswordError::TooFewFrames(probe.frames.len()));
        }
        let (t, pad) = (self.meta.timesteps, self.meta.pad_policy);
        let identity = cosine(&probe.mean_identity(), &self.template) as f64;
        let r = self
            .ridge
            .as_ref()
            .map(|r| r.score(&word_input(probe, t, pad)));
        let l = match &self.lstm {
            Some(m) => Some(lstm_word(m.logits(&[lstm_input(probe, t, pad)])?[0])),
            None => None,
        };
        let word = combine_word(self.cfg.word_model, r, l);
        let dtw = if self.dtw_templates.is_empty() {
            0.0
        } else {
            dtw_score(&dtw_seq(probe, t), &self.dtw_templates)
        };
        let liveness = motion_energy(probe);
        let (fused, liveness_veto) = fuse(&self.cfg, identity, word, dtw, liveness);
        Ok(Scores {
            identity,
            word,
            liveness,
            fused,
            liveness_veto,
        })
    }

    /// The weights as named tensors.
    fn tensors(&self) -> Vec<NamedTensor> {
        let mut v = vec![NamedTensor::new(
            "template",
            vec![self.template.len()],
            self.template.clone(),
        )];
        if let Some(r) = &self.ridge {
            v.push(NamedTensor::new("ridge.w", vec![r.w.len()], r.w.clone()));
            v.push(NamedTensor::new("ridge.b", vec![1], vec![r.b]));
        }
        if let Some(m) = &self.lstm {
            for (name, shape, data) in m.tensors() {
                v.push(NamedTensor::new(format!("lstm/{name}"), shape, data));
            }
        }
        if !self.dtw_templates.is_empty() {
            let (n, t) = (self.dtw_templates.len(), self.meta.timesteps);
            let data: Vec<f32> = self
                .dtw_templates
                .iter()
                .flatten()
                .flatten()
                .copied()
                .collect();
            v.push(NamedTensor::new(
                "dtw.templates",
                vec![n, t, self.meta.mouth_dim],
                data,
            ));
        }
        v
    }

    /// Writes the model file atomically.
    pub fn save(&self, path: &Path) -> Result<(), PasswordError> {
        Ok(file::save_model(path, &self.meta, &self.tensors())?)
    }

    /// Loads and validates a model file against the pipeline in use.
    pub fn load(path: &Path, expect: &Expect) -> Result<Self, PasswordError> {
        let (meta, tensors) = file::load_model(path, expect)?;
        Self::from_parts(meta, tensors)
    }

    fn from_parts(meta: ModelMeta, tensors: Vec<NamedTensor>) -> Result<Self, PasswordError> {
        let cfg: StoredConfig = serde_json::from_value(meta.config.clone())
            .map_err(|_| PasswordError::Invalid("config does not match this version's schema"))?;
        let get = |name: &str| tensors.iter().find(|t| t.name == name);
        let template = get("template")
            .ok_or(PasswordError::Invalid("no template tensor"))?
            .data
            .clone();
        if template.len() != meta.identity_dim {
            return Err(PasswordError::Invalid(
                "template length differs from identity_dim",
            ));
        }
        let wants_ridge = cfg.word_model != WordModelKind::Lstm;
        let ridge = if wants_ridge {
            let w = get("ridge.w")
                .ok_or(PasswordError::Invalid("no ridge.w tensor"))?
                .data
                .clone();
            let b = get("ridge.b")
                .and_then(|t| t.data.first().copied())
                .ok_or(PasswordError::Invalid("no ridge.b tensor"))?;
            if w.len() != meta.timesteps * meta.mouth_dim {
                return Err(PasswordError::Invalid(
                    "ridge.w length differs from timesteps x mouth_dim",
                ));
            }
            Some(Ridge { w, b })
        } else {
            None
        };
        let lstm = if cfg.word_model != WordModelKind::Linear {
            let lc = cfg
                .lstm
                .clone()
                .ok_or(PasswordError::Invalid("no LSTM configuration"))?;
            if lc.input_dim != meta.identity_dim + meta.mouth_dim {
                return Err(PasswordError::Invalid(
                    "LSTM input_dim differs from the feature dims",
                ));
            }
            let ts: Vec<(String, Vec<usize>, Vec<f32>)> = tensors
                .iter()
                .filter_map(|t| {
                    t.name
                        .strip_prefix("lstm/")
                        .map(|n| (n.to_string(), t.shape.clone(), t.data.clone()))
                })
                .collect();
            Some(SeqClassifier::from_tensors(lc, &ts)?)
        } else {
            None
        };
        for s in [
            cfg.identity.mean,
            cfg.identity.std,
            cfg.word.mean,
            cfg.word.std,
            cfg.liveness_floor,
        ] {
            if !s.is_finite() {
                return Err(PasswordError::Invalid("non-finite gate statistics"));
            }
        }
        if cfg.identity.std <= 0.0 || cfg.word.std <= 0.0 {
            return Err(PasswordError::Invalid(
                "gate standard deviation must be positive",
            ));
        }
        let dtw_templates = match &cfg.dtw {
            Some(d) => {
                if !(d.mean.is_finite() && d.std.is_finite() && d.std > 0.0) {
                    return Err(PasswordError::Invalid("invalid DTW statistics"));
                }
                let t = get("dtw.templates")
                    .ok_or(PasswordError::Invalid("no dtw.templates tensor"))?;
                let (ts, md) = (meta.timesteps, meta.mouth_dim);
                if t.shape.len() != 3 || t.shape[1] != ts || t.shape[2] != md || t.shape[0] == 0 {
                    return Err(PasswordError::Invalid(
                        "dtw.templates shape differs from timesteps x mouth_dim",
                    ));
                }
                t.data
                    .chunks(ts * md)
                    .map(|c| c.chunks(md).map(|r| r.to_vec()).collect())
                    .collect()
            }
            None => Vec::new(),
        };
        Ok(Self {
            meta,
            cfg,
            template,
            ridge,
            lstm,
            dtw_templates,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::FrameFeatures;

    /// A synthetic utterance: identity direction per person, mouth trajectory per word.
    fn utt(person: u64, word: u64, inst: u64, frozen: bool) -> UtteranceFeatures {
        let mut r = SplitMix64::new(person * 1000 + word * 10 + inst);
        let n = 12 + r.below(5);
        let mut pid = SplitMix64::new(person);
        let base: Vec<f32> = (0..16).map(|_| pid.normal()).collect();
        let mut wr = SplitMix64::new(9999 + word);
        let traj: Vec<f32> = (0..8).map(|_| wr.normal()).collect();
        let frames = (0..n)
            .map(|f| {
                let ph = if frozen { 0.5 } else { f as f32 / n as f32 };
                let mut identity: Vec<f32> = base.iter().map(|b| b + 0.15 * r.normal()).collect();
                l2_normalise(&mut identity);
                let mut mouth: Vec<f32> = traj
                    .iter()
                    .enumerate()
                    .map(|(k, a)| {
                        (a * (ph * 6.0 + k as f32).sin()) + 0.1 * r.normal() + (person as f32 * 0.1)
                    })
                    .collect();
                l2_normalise(&mut mouth);
                FrameFeatures { identity, mouth }
            })
            .collect();
        UtteranceFeatures {
            backbone: "t".into(),
            identity_dim: 16,
            mouth_dim: 8,
            frames,
            frames_read: n,
        }
    }

    fn small_cfg() -> EnrollConfig {
        EnrollConfig {
            oversample_to: 30,
            ..Default::default()
        }
    }

    #[test]
    fn enrol_separates_word_person_and_photo() {
        let pos: Vec<_> = (0..7).map(|i| utt(1, 1, i, false)).collect();
        let other: Vec<_> = (2..6)
            .flat_map(|w| (0..3).map(move |i| utt(1, w, i, false)))
            .collect();
        let mut bank = ImpostorBank::new("t", &"0".repeat(64), 16, 8);
        for p in 10..14 {
            for w in 1..4 {
                bank.entries.push(super::super::bank::BankEntry {
                    speaker: format!("P{p}"),
                    word: format!("{w}"),
                    instance: "1".into(),
                    features: utt(p, w, 0, false),
                });
            }
        }
        let input = EnrollInput {
            positives: &pos,
            other_words: &other,
            bank: Some(&bank),
        };
        let mut calls = 0;
        let (m, rep) = enroll(&input, &small_cfg(), &mut |_, _, _| calls += 1).unwrap();
        assert!(calls > 0);
        assert!(rep.validation_eer < 0.2, "{rep:?}");
        let pol = ThresholdPolicy::Eer;
        let genuine: Vec<_> = (20..24)
            .map(|i| m.score(&utt(1, 1, i, false)).unwrap())
            .collect();
        let accepted = genuine.iter().filter(|s| m.accepts(s, pol)).count();
        assert!(accepted >= 3, "{genuine:?} thr {}", m.threshold(pol));
        let frozen = m.score(&utt(1, 1, 20, false).frozen()).unwrap();
        assert!(frozen.liveness_veto && !m.accepts(&frozen, pol));
        let other_person = m.score(&utt(50, 1, 1, false)).unwrap();
        assert!(!m.accepts(&other_person, pol), "{other_person:?}");
        // Round trip through the file format.
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.safetensors");
        let mut m = m;
        m.set_backbone_sha256(&"a".repeat(64));
        m.save(&p).unwrap();
        let sha = "a".repeat(64);
        let back = PasswordModel::load(
            &p,
            &Expect {
                backbone: "t",
                backbone_sha256: &sha,
                identity_dim: 16,
            },
        )
        .unwrap();
        let probe = utt(1, 1, 30, false);
        assert_eq!(back.score(&probe).unwrap(), m.score(&probe).unwrap());
        assert!(PasswordModel::load(
            &p,
            &Expect {
                backbone: "other",
                backbone_sha256: &sha,
                identity_dim: 16
            }
        )
        .is_err());
    }

    #[test]
    fn refuses_too_few_positives_and_bad_probes() {
        let pos: Vec<_> = (0..2).map(|i| utt(1, 1, i, false)).collect();
        let other: Vec<_> = (0..3).map(|i| utt(1, 2, i, false)).collect();
        let input = EnrollInput {
            positives: &pos,
            other_words: &other,
            bank: None,
        };
        assert!(matches!(
            enroll(&input, &small_cfg(), &mut |_, _, _| {}),
            Err(PasswordError::TooFewPositives(2))
        ));
    }

    #[test]
    fn enrol_is_deterministic() {
        let pos: Vec<_> = (0..5).map(|i| utt(3, 1, i, false)).collect();
        let other: Vec<_> = (0..6).map(|i| utt(3, 2 + i % 3, i, false)).collect();
        let input = EnrollInput {
            positives: &pos,
            other_words: &other,
            bank: None,
        };
        let (a, _) = enroll(&input, &small_cfg(), &mut |_, _, _| {}).unwrap();
        let (b, _) = enroll(&input, &small_cfg(), &mut |_, _, _| {}).unwrap();
        let p = utt(3, 1, 40, false);
        assert_eq!(a.score(&p).unwrap(), b.score(&p).unwrap());
        assert_eq!(a.meta().thresholds, b.meta().thresholds);
    }

    #[test]
    fn motion_energy_of_frozen_is_zero() {
        let u = utt(1, 1, 1, false);
        assert!(motion_energy(&u) > 0.0);
        assert_eq!(motion_energy(&u.frozen()), 0.0);
    }
}
