//! `authnet-eval run`: the paper's protocol on a MIRACL-VC1-shaped dataset.
//!
//! Speakers are split into *training* speakers and *unseen* speakers (never in training; the
//! "different person" impostors). Of every training speaker, `--heldout-words` words are kept
//! out of training (the "same person, different word" impostors). Every other (speaker, word)
//! pair is a target: its model is enrolled from 70 % of its clips, with the speaker's other
//! training words as same-person negatives and the other training speakers' training words as
//! the impostor bank; it is tested on its remaining 30 % (clips training never saw), the
//! speaker's held-out words, the unseen speakers, and the frozen-frame version of every held-out
//! positive. Thresholds come from enrolment-side cross-validation only.
//!
//! `--paper-split` reproduces the paper's leaky split instead: the 10 clips are oversampled to
//! 110 *before* the 70:30 split, so test positives repeat (jittered copies of) training clips.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use rayon::prelude::*;
use serde::Serialize;

use authnet_core::features::{
    FeatureCache, FeatureExtractor, FeatureLayout, PipelineConfig, UtteranceFeatures,
};
use authnet_core::metrics::{self, ImpostorKind};
use authnet_core::model::bank::{walk_utterances, BankEntry, ImpostorBank};
use authnet_core::model::password::{
    enroll_traced, EnrollConfig, EnrollInput, FmrRule, LstmPreset, OofScores, ThresholdPolicy,
    WordModelKind,
};
use authnet_core::model::pretrained::{pretrain, LabelledClip, PretrainConfig, PretrainedLstm};
use authnet_core::rng::SplitMix64;
use authnet_core::vision::CropMode;

/// Arguments of `run`.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Dataset root holding `<SPK>/words/<WW>/<II>/<frames>`.
    #[arg(long)]
    pub dataset: PathBuf,
    /// face (detector or pass-through crops) or lips (mouth crops).
    #[arg(long)]
    pub modality: Modality,
    /// auto (per speaker: detect if faces are found, else pass-through), detect, none.
    #[arg(long, default_value = "auto")]
    pub crop: CropArg,
    /// Speakers to use (default: all).
    #[arg(long, value_delimiter = ',')]
    pub speakers: Vec<String>,
    /// Speakers never seen in training (default: half, chosen by seed).
    #[arg(long, value_delimiter = ',')]
    pub unseen_speakers: Vec<String>,
    /// Words per training speaker kept out of training.
    #[arg(long, default_value_t = 3)]
    pub heldout_words: usize,
    /// Seed for every random choice.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads for targets (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Only the first N targets (for quick runs and tests).
    #[arg(long)]
    pub max_targets: Option<usize>,
    /// Word model: linear (ridge), lstm (from scratch), ensemble (ridge + scratch LSTM),
    /// pretrained (LSTM pretrained inside the run on training speakers only, then fine-tuned
    /// per target) or pretrained-ensemble (ridge + fine-tuned LSTM).
    #[arg(long, value_enum, default_value = "linear")]
    pub word_model: WordModelArg,
    /// LSTM preset when the word model uses it: compact or paper.
    #[arg(long, default_value = "compact")]
    pub lstm: String,
    /// Threshold policy reported: fmr or eer.
    #[arg(long, default_value = "eer")]
    pub threshold_policy: ThresholdPolicy,
    /// Reproduce the paper's leaky oversample-then-split protocol.
    #[arg(long)]
    pub paper_split: bool,
    /// How clips are brought to 20 timesteps: interpolate, pad_edge or pad_zero.
    #[arg(long, default_value = "interpolate")]
    pub pad: authnet_core::sequence::PadPolicy,
    /// Feature cache directory.
    #[arg(long, default_value = ".cache/features")]
    pub cache: PathBuf,
    /// Mesh layout only: the blocks of the mouth vector the models see (descriptor = mouth
    /// descriptor of the lip-placed crop, shape = aligned lip points, velocity = their
    /// frame-to-frame change); the others are zeroed. For choosing the combination by the
    /// enrolment-side validation EER (`validation_eer_mean`), never by the test figures.
    #[arg(
        long,
        value_delimiter = ',',
        default_values_t = [MeshBlock::Descriptor, MeshBlock::Shape, MeshBlock::Velocity]
    )]
    pub mesh_blocks: Vec<MeshBlock>,
    /// Mesh layout only: factors applied to the lip-contour and velocity blocks on top of the
    /// built-in gains (`LIP_SHAPE_GAIN`, `LIP_VELOCITY_GAIN`), as `SHAPE,VELOCITY`. Like
    /// `--mesh-blocks`, for choosing the gains by the enrolment-side validation EER.
    #[arg(long, value_delimiter = ',', default_values_t = [1.0f32, 1.0])]
    pub mesh_gain_scale: Vec<f32>,
    /// Cross-validation inside each enrolment holds out a whole other word and a whole bank
    /// speaker together (`true`), or each of their clips alone (`false`, the old folds).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub group_folds: bool,
    /// When a target's out-of-fold scores are separated, its EER threshold (the floor of the
    /// FMR threshold) is the middle of the gap, not the lowest genuine score.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    pub gap_midpoint: bool,
    /// Standardise the word and DTW gates by the gap between the genuine and the user's
    /// other words' out-of-fold scores (`EnrollConfig::separation_scale`).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    pub separation_scale: bool,
    /// Triangular temporal smoothing of the ridge word model's input, in timesteps either
    /// side (`EnrollConfig::word_smoothing`; 0: none).
    #[arg(long, default_value_t = authnet_core::model::password::DEFAULT_WORD_SMOOTHING)]
    pub word_smoothing: usize,
    /// The ridge word model scores a clip as the best of the whole clip and the clip less this
    /// share of its frames at the start, at the end, and half at each end
    /// (`EnrollConfig::word_view_trim`; 0: the whole clip only; at most 0.25).
    #[arg(long, default_value_t = authnet_core::model::password::DEFAULT_WORD_VIEW_TRIM)]
    pub word_view_trim: f64,
    /// The ridge penalties each enrolment tries, comma-separated; with more than one, each
    /// target keeps the one with the lowest out-of-fold EER (`EnrollConfig::ridge_lambdas`).
    #[arg(long, value_delimiter = ',', default_values_t = authnet_core::model::password::DEFAULT_RIDGE_LAMBDAS)]
    pub ridge_lambdas: Vec<f64>,
    /// The ridge penalties are in units of the mean squared norm of the word model's input
    /// (`true`) or absolute (`false`) (`EnrollConfig::ridge_relative`).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    pub ridge_relative: bool,
    /// Nuisance whitening of the ridge word model's input: the identity's share of the
    /// penalty next to the covariance of repetitions of one word by one speaker
    /// (`EnrollConfig::word_whitening`; 0: off).
    #[arg(long, default_value_t = authnet_core::model::password::DEFAULT_WORD_WHITENING)]
    pub word_whitening: f64,
    /// The one ridge penalty of a whitened word model, relative to its input's mean squared
    /// norm (`EnrollConfig::whitened_ridge`); 0: search `--ridge-lambdas` as unwhitened.
    #[arg(long, default_value_t = authnet_core::model::password::DEFAULT_WHITENED_RIDGE)]
    pub whitened_ridge: f64,
    /// How each target's FMR-policy threshold is placed: gaussian (fits to the out-of-fold
    /// genuine and other-word scores) or empirical (just above the highest out-of-fold
    /// impostor the target FMR allows).
    #[arg(long, default_value = "gaussian")]
    pub fmr_rule: FmrRule,
    /// Each enrolment sees only the first N of the user's other training words (by name;
    /// default: all of them), as a live enrolment records a few (`authnetd`: 4 words, 2 clips
    /// each).
    #[arg(long, value_name = "N")]
    pub other_words: Option<usize>,
    /// ... and only the first R clips of each (by instance; default: all).
    #[arg(long, value_name = "R")]
    pub other_word_clips: Option<usize>,
    /// The other words' clips carry their word (`true`, as a live enrolment's do) or no label
    /// (`false`, as the clips of `authnet-enroll --other-word`): unlabelled clips are held out
    /// one by one and form no repetition group for the word model's whitening.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub other_word_labels: bool,
    /// JSON report.
    #[arg(long)]
    pub report: PathBuf,
    /// Also write every target's scores as JSON: the fused out-of-fold scores its thresholds
    /// were placed on (by negative source), its deployed thresholds, and its ranked test
    /// scores (by impostor kind). For studying threshold rules offline.
    #[arg(long)]
    pub dump_scores: Option<PathBuf>,
    /// Markdown report (the paper's tables with our figures beside them).
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Directory for PNG plots.
    #[arg(long)]
    pub plots: Option<PathBuf>,
}

/// `--word-model`: the word classifier, and whether its LSTM starts from a backbone pretrained
/// inside the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WordModelArg {
    /// Ridge classifier.
    Linear,
    /// LSTM from scratch.
    Lstm,
    /// Ridge + LSTM from scratch.
    Ensemble,
    /// LSTM fine-tuned from a backbone pretrained on the run's training speakers.
    Pretrained,
    /// Ridge + fine-tuned LSTM.
    PretrainedEnsemble,
    /// Ridge on the frozen pretrained backbone's encoding (the head fine-tuned in closed form).
    PretrainedHead,
}

impl WordModelArg {
    /// The enrolment's word model kind.
    fn kind(self) -> WordModelKind {
        match self {
            Self::Linear => WordModelKind::Linear,
            Self::Lstm | Self::Pretrained => WordModelKind::Lstm,
            Self::Ensemble | Self::PretrainedEnsemble => WordModelKind::Ensemble,
            Self::PretrainedHead => WordModelKind::Encoded,
        }
    }

    /// Whether the LSTM is pretrained.
    fn pretrained(self) -> bool {
        matches!(
            self,
            Self::Pretrained | Self::PretrainedEnsemble | Self::PretrainedHead
        )
    }
}

/// Dataset modality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    /// Face frames or crops.
    Face,
    /// Mouth crops.
    Lips,
}

/// A block of the mesh layout's mouth vector (`--mesh-blocks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MeshBlock {
    /// Mouth descriptor of the lip-placed crop.
    Descriptor,
    /// Aligned lip-contour points.
    Shape,
    /// Their frame-to-frame velocities.
    Velocity,
}

impl std::fmt::Display for MeshBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Descriptor => "descriptor",
            Self::Shape => "shape",
            Self::Velocity => "velocity",
        })
    }
}

/// Zeroes the blocks of mesh-layout mouth vectors not in `keep` and scales the contour and
/// velocity blocks by `scale` (other layouts untouched).
fn keep_mesh_blocks(u: &mut UtteranceFeatures, keep: &[MeshBlock], scale: &[f32]) {
    use authnet_core::features::{LIP_POINTS, MESH_MOUTH_DIM};
    use authnet_core::vision::mouth::MOUTH_DIM;
    if u.mouth_dim != MESH_MOUTH_DIM {
        return;
    }
    let blocks = [
        (MeshBlock::Descriptor, 0..MOUTH_DIM),
        (MeshBlock::Shape, MOUTH_DIM..MOUTH_DIM + 2 * LIP_POINTS),
        (
            MeshBlock::Velocity,
            MOUTH_DIM + 2 * LIP_POINTS..MESH_MOUTH_DIM,
        ),
    ];
    for (b, range) in blocks {
        let k = match (keep.contains(&b), b) {
            (false, _) => 0.0,
            (true, MeshBlock::Descriptor) => 1.0,
            (true, MeshBlock::Shape) => scale.first().copied().unwrap_or(1.0),
            (true, MeshBlock::Velocity) => scale.get(1).copied().unwrap_or(1.0),
        };
        for f in &mut u.frames {
            let block = &mut f.mouth[range.clone()];
            // Zeroed, not multiplied by 0: +0.0 whatever the sign (or finiteness) of a value.
            if k == 0.0 {
                block.fill(0.0);
            } else if k != 1.0 {
                block.iter_mut().for_each(|v| *v *= k);
            }
        }
    }
}

/// `--crop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CropArg {
    /// Decide per speaker.
    Auto,
    /// Face detector.
    Detect,
    /// Frames are crops.
    None,
}

type Key = (String, String, String); // speaker, word, instance

/// Scores of one target.
#[derive(Debug, Default, Clone)]
struct TargetResult {
    /// (fused - threshold, identity cosine, word z) of genuine test clips.
    genuine: Vec<(f64, f64, f64)>,
    /// The same for impostors, with their kind.
    impostor: Vec<(f64, f64, f64, ImpostorKind)>,
    train_seconds: f64,
    score_ms: Vec<f64>,
    validation_eer: f64,
    speaker: String,
    word: String,
    /// Ranked fused scores (vetoes below every live score) of genuine test clips and of
    /// non-photo impostors, and the model's deployed thresholds.
    genuine_ranked: Vec<f64>,
    impostor_ranked: Vec<f64>,
    threshold_eer: f64,
    threshold_fmr: f64,
    /// The fused out-of-fold scores the thresholds were placed on.
    oof: OofScores,
    /// Every gate's standardised score (or veto margin), in fusion order ([`Self::gate_names`]),
    /// for each entry of `genuine_ranked` and of `impostor_ranked`.
    genuine_gates: Vec<Vec<f64>>,
    impostor_gates: Vec<Vec<f64>>,
    gate_names: Vec<&'static str>,
}

/// One target in `--dump-scores`.
#[derive(Serialize)]
struct DumpedTarget<'a> {
    speaker: &'a str,
    word: &'a str,
    threshold_eer: f64,
    threshold_fmr: f64,
    oof: &'a OofScores,
    test_genuine: &'a [f64],
    test_impostor: Vec<(f64, ImpostorKind)>,
    /// The gates' names, and their standardised scores per test clip (in the order above).
    gates: &'a [&'static str],
    test_genuine_gates: &'a [Vec<f64>],
    test_impostor_gates: &'a [Vec<f64>],
}

fn dump_scores(path: &Path, results: &[TargetResult]) -> anyhow::Result<()> {
    let rows: Vec<DumpedTarget> = results
        .iter()
        .map(|r| DumpedTarget {
            speaker: &r.speaker,
            word: &r.word,
            threshold_eer: r.threshold_eer,
            threshold_fmr: r.threshold_fmr,
            oof: &r.oof,
            test_genuine: &r.genuine_ranked,
            // `impostor_ranked` holds the non-photo impostors of `impostor`, in its order.
            test_impostor: r
                .impostor_ranked
                .iter()
                .copied()
                .zip(
                    r.impostor
                        .iter()
                        .map(|x| x.3)
                        .filter(|k| *k != ImpostorKind::FrozenFrame),
                )
                .collect(),
            gates: &r.gate_names,
            test_genuine_gates: &r.genuine_gates,
            test_impostor_gates: &r.impostor_gates,
        })
        .collect();
    write_json(path, &rows)
}

/// The JSON report.
#[derive(Debug, Serialize)]
pub struct Report {
    targets: usize,
    eer: f64,
    auc: f64,
    accuracy: f64,
    sensitivity: f64,
    specificity: f64,
    far: f64,
    frr: f64,
    threshold_policy: ThresholdPolicy,
    fmr_at_threshold: f64,
    fnmr_at_threshold: f64,
    specificity_by_impostor: metrics::SpecificityByKind,
    photo_attack_accept_rate: f64,
    face_only_baseline: EerAuc,
    motion_only: EerAuc,
    train_seconds_mean: f64,
    score_ms_mean: f64,
    backbone: String,
    layout: FeatureLayout,
    mesh_blocks: Vec<MeshBlock>,
    mesh_gain_scale: Vec<f32>,
    seed: u64,
    modality: Modality,
    paper_split: bool,
    pad: authnet_core::sequence::PadPolicy,
    word_model: WordModelKind,
    group_folds: bool,
    gap_midpoint: bool,
    separation_scale: bool,
    word_smoothing: usize,
    word_view_trim: f64,
    ridge_lambdas: Vec<f64>,
    ridge_relative: bool,
    word_whitening: f64,
    whitened_ridge: f64,
    fmr_rule: FmrRule,
    other_words: Option<usize>,
    other_word_clips: Option<usize>,
    other_word_labels: bool,
    speakers: Vec<String>,
    unseen_speakers: Vec<String>,
    heldout_words: BTreeMap<String, Vec<String>>,
    genuine_trials: usize,
    impostor_trials: usize,
    validation_eer_mean: f64,
    confusion: Confusion,
    /// `--word-model` as given.
    word_model_arg: WordModelArg,
    /// Pretraining inside the run (one backbone per training speaker), when used.
    pretraining: Vec<PretrainRun>,
    /// Test FMR and FNMR, pooled over targets, at each target's deployed threshold of each
    /// policy (photo attacks excluded, as from the EER).
    at_deployed_threshold: PolicyRates,
    /// Per target: validation EER (inside the enrolment) beside test EER and rates.
    per_target: Vec<TargetSummary>,
    /// Diagnostic, not deployable (it reads the test scores): the best pooled test FNMR at
    /// pooled test FMR <= 1/1000 with one offset added to every target's deployed threshold.
    oracle_not_deployable: Oracle,
}

/// What an oracle threshold (chosen on the test scores themselves) could reach.
#[derive(Debug, Serialize)]
struct Oracle {
    /// The pooled FMR the oracle keeps to.
    target_fmr: f64,
    /// One offset on every target's FMR-policy threshold: the offset and the test rates there.
    offset_on_fmr_thresholds: f64,
    at_offset: Rates,
    /// Each target's own threshold, chosen jointly so that the pooled FMR holds and the
    /// fewest genuine clips are missed: the best any per-target threshold rule could do on
    /// these scores.
    per_target_thresholds: Rates,
}

/// The fewest genuine clips missed over all targets, and the false matches spent, when every
/// target `(genuine, impostor)` gets its own threshold and at most `budget` impostors may be
/// accepted in total (a knapsack over targets, exact).
fn per_target_oracle(targets: &[(&[f64], &[f64])], budget: usize) -> (usize, usize) {
    const NONE: usize = usize::MAX;
    // best[b]: fewest misses with at most b false matches so far, and those false matches.
    let mut best: Vec<(usize, usize)> = vec![(0, 0); budget + 1];
    for (g, i) in targets {
        let mut desc = i.to_vec();
        desc.sort_by(|a, b| b.total_cmp(a));
        // Misses when c impostors may pass: genuine not above the (c+1)-th highest impostor.
        let misses = |c: usize| match desc.get(c) {
            Some(&s) => g.iter().filter(|x| **x <= s).count(),
            None => 0,
        };
        let m: Vec<usize> = (0..=budget.min(desc.len())).map(misses).collect();
        let mut next = vec![(NONE, 0); budget + 1];
        for b in 0..=budget {
            for (c, mc) in m.iter().enumerate().take(b + 1) {
                let (pm, pf) = best[b - c];
                if pm != NONE && pm + mc < next[b].0 {
                    next[b] = (pm + mc, pf + c);
                }
            }
        }
        best = next;
    }
    best[budget]
}

/// FMR / FNMR at the deployed thresholds of both policies.
#[derive(Debug, Serialize)]
struct PolicyRates {
    eer: Rates,
    fmr: Rates,
}

#[derive(Debug, Serialize)]
struct Rates {
    fmr: f64,
    fnmr: f64,
}

#[derive(Debug, Serialize)]
struct TargetSummary {
    speaker: String,
    word: String,
    validation_eer: f64,
    test_eer: f64,
    at_deployed_threshold: PolicyRates,
}

/// One pretraining inside the run.
#[derive(Debug, Clone, Serialize)]
struct PretrainRun {
    /// The training speaker whose targets fine-tune from it.
    for_speaker: String,
    /// What it was trained on.
    scope: &'static str,
    speakers: Vec<String>,
    classes: usize,
    train_sequences: usize,
    val_sequences: usize,
    val_accuracy: Option<f32>,
    epochs_run: usize,
    seconds: f64,
}

/// FMR / FNMR of ranked scores at `thr` (accept when `>= thr`).
fn rates(g: &[f64], i: &[f64], thr: f64) -> Rates {
    let fnmr = g.iter().filter(|s| **s < thr).count() as f64 / g.len().max(1) as f64;
    let fmr = i.iter().filter(|s| **s >= thr).count() as f64 / i.len().max(1) as f64;
    Rates { fmr, fnmr }
}

#[derive(Debug, Serialize)]
struct EerAuc {
    eer: f64,
    auc: f64,
}

#[derive(Debug, Serialize)]
struct Confusion {
    tp: usize,
    fn_: usize,
    tn: usize,
    fp: usize,
}

fn eer_auc(g: &[f64], i: &[f64]) -> anyhow::Result<EerAuc> {
    Ok(EerAuc {
        eer: metrics::eer(g, i)?.eer,
        auc: metrics::auc(g, i)?,
    })
}

/// Extracts (or loads from cache) the features of every utterance.
fn extract_all(
    args: &RunArgs,
    cfg: &PipelineConfig,
    refs: &[authnet_core::model::bank::UtteranceRef],
) -> anyhow::Result<BTreeMap<Key, UtteranceFeatures>> {
    let mut ex = FeatureExtractor::from_config(cfg)?;
    let cache = FeatureCache::new(&args.cache);
    let mut crop_of: BTreeMap<String, CropMode> = BTreeMap::new();
    let pb = indicatif::ProgressBar::new(refs.len() as u64);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "features {bar:40} {pos}/{len} {elapsed_precise} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut out = BTreeMap::new();
    for r in refs {
        let crop = match (args.modality, args.crop) {
            (Modality::Lips, _) => CropMode::Mouth,
            (Modality::Face, CropArg::Detect) => CropMode::Detect,
            (Modality::Face, CropArg::None) => CropMode::None,
            (Modality::Face, CropArg::Auto) => match crop_of.get(&r.speaker) {
                Some(c) => *c,
                None => {
                    // Faces found in most frames of the speaker's first utterance: full frames.
                    // Crops of varying size (MIRACL's F02) cannot be full camera frames either.
                    ex.set_crop_mode(CropMode::Detect)?;
                    let c = match ex.extract_path(&r.dir, None) {
                        Ok((_, rep)) if rep.faces_found * 2 > rep.frames => CropMode::Detect,
                        _ => CropMode::None,
                    };
                    crop_of.insert(r.speaker.clone(), c);
                    c
                }
            },
        };
        ex.set_crop_mode(crop)?;
        let (mut f, _) = ex
            .extract_path(&r.dir, Some(&cache))
            .with_context(|| format!("features of {}", r.dir.display()))?;
        keep_mesh_blocks(&mut f, &args.mesh_blocks, &args.mesh_gain_scale);
        out.insert((r.speaker.clone(), r.word.clone(), r.instance.clone()), f);
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok(out)
}

fn pick<T: Clone>(v: &[T], n: usize, rng: &mut SplitMix64) -> Vec<T> {
    let mut c = v.to_vec();
    rng.shuffle(&mut c);
    c.truncate(n);
    c
}

/// Runs the protocol and writes the reports.
pub fn run(args: &RunArgs, mut cfg: PipelineConfig) -> anyhow::Result<Report> {
    anyhow::ensure!(
        args.mesh_gain_scale.len() == 2
            && args
                .mesh_gain_scale
                .iter()
                .all(|g| g.is_finite() && *g >= 0.0),
        "--mesh-gain-scale takes two factors >= 0, SHAPE,VELOCITY (got {:?})",
        args.mesh_gain_scale
    );
    anyhow::ensure!(
        args.other_words != Some(0) && args.other_word_clips != Some(0),
        "--other-words and --other-word-clips take at least 1 (leave them out for all)"
    );
    let refs = walk_utterances(&args.dataset)?;
    let mut speakers: Vec<String> = refs.iter().map(|r| r.speaker.clone()).collect();
    speakers.dedup();
    if !args.speakers.is_empty() {
        for s in &args.speakers {
            if !speakers.contains(s) {
                bail!("speaker {s} not found under {}", args.dataset.display());
            }
        }
        speakers = args.speakers.clone();
    }
    if speakers.len() < 2 {
        bail!("need at least two speakers, found {}", speakers.len());
    }
    let mut rng = SplitMix64::new(args.seed);
    let unseen: Vec<String> = if args.unseen_speakers.is_empty() {
        let mut u = pick(&speakers, speakers.len() / 2, &mut rng);
        u.sort();
        u
    } else {
        args.unseen_speakers.clone()
    };
    for u in &unseen {
        if !speakers.contains(u) {
            bail!("unseen speaker {u} is not among the speakers");
        }
    }
    let train_spk: Vec<String> = speakers
        .iter()
        .filter(|s| !unseen.contains(s))
        .cloned()
        .collect();
    if train_spk.is_empty() {
        bail!("every speaker is unseen; nothing to train");
    }
    let refs: Vec<_> = refs
        .into_iter()
        .filter(|r| speakers.contains(&r.speaker))
        .collect();
    cfg.crop = CropMode::Detect;
    let feats = extract_all(args, &cfg, &refs)?;
    let backbone = feats
        .values()
        .next()
        .map(|f| f.backbone.clone())
        .unwrap_or_default();

    let words_of = |s: &str| -> Vec<String> {
        let mut w: Vec<String> = feats
            .keys()
            .filter(|k| k.0 == s)
            .map(|k| k.1.clone())
            .collect();
        w.dedup();
        w
    };
    let mut heldout: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in &train_spk {
        let mut h = pick(&words_of(s), args.heldout_words, &mut rng);
        h.sort();
        heldout.insert(s.clone(), h);
    }
    let clips = |s: &str, w: &str| -> Vec<&UtteranceFeatures> {
        feats
            .iter()
            .filter(|(k, _)| k.0 == s && k.1 == w)
            .map(|(_, f)| f)
            .filter(|f| f.frames.len() >= 2)
            .collect()
    };
    let mut targets: Vec<(String, String)> = Vec::new();
    for s in &train_spk {
        for w in words_of(s) {
            if !heldout[s].contains(&w) {
                targets.push((s.clone(), w));
            }
        }
    }
    if let Some(m) = args.max_targets {
        targets.truncate(m);
    }
    let lstm = match args.lstm.as_str() {
        "paper" => LstmPreset::Paper,
        "compact" => LstmPreset::Compact,
        o => bail!("unknown --lstm {o:?} (compact or paper)"),
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads.unwrap_or(0))
        .build()?;
    let pretrained = if args.word_model.pretrained() {
        let t0 = Instant::now();
        let p = pool
            .install(|| pretrain_all(args, &train_spk, &heldout, &feats, &targets, &clips, lstm))?;
        for (_, r) in p.values() {
            eprintln!(
                "pretrained for {}: {} ({} speakers), {} classes, {} sequences, validation accuracy {:?}, {} epochs, {:.1} s",
                r.for_speaker, r.scope, r.speakers.len(), r.classes, r.train_sequences,
                r.val_accuracy, r.epochs_run, r.seconds
            );
        }
        eprintln!("pretraining took {:.1} s", t0.elapsed().as_secs_f64());
        p
    } else {
        BTreeMap::new()
    };
    let pb = indicatif::ProgressBar::new(targets.len() as u64);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "targets  {bar:40} {pos}/{len} {elapsed_precise} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let results: Vec<anyhow::Result<TargetResult>> = pool.install(|| {
        targets
            .par_iter()
            .enumerate()
            .map(|(ti, (s, w))| {
                let r = run_target(
                    args,
                    ti,
                    s,
                    w,
                    &train_spk,
                    &unseen,
                    &heldout,
                    &feats,
                    &clips,
                    &words_of,
                    lstm,
                    pretrained.get(s).map(|p| &p.0),
                );
                pb.inc(1);
                r
            })
            .collect()
    });
    pb.finish_and_clear();
    let results: Vec<TargetResult> = results.into_iter().collect::<anyhow::Result<_>>()?;
    if let Some(p) = &args.dump_scores {
        dump_scores(p, &results)?;
    }
    if let Some(dir) = &args.plots {
        crate::report::heatmap(dir, &heat_rows(&feats))?;
    }
    let runs: Vec<PretrainRun> = pretrained.into_values().map(|p| p.1).collect();
    summarise(
        args, &backbone, cfg.layout, &speakers, &unseen, heldout, &results, runs,
    )
}

/// The paper's Fig. 4: for the first clip of every (speaker, word), ordered by speaker then
/// word, the cosine difference `1 - cos` between its per-timestep features (identity and mouth,
/// `T` = 20) and those of the very first clip, at each timestep.
fn heat_rows(feats: &BTreeMap<Key, UtteranceFeatures>) -> Vec<Vec<f64>> {
    let mut firsts: BTreeMap<(String, String), &UtteranceFeatures> = BTreeMap::new();
    for (k, f) in feats {
        if f.frames.len() >= 2 {
            firsts.entry((k.0.clone(), k.1.clone())).or_insert(f);
        }
    }
    let seq = |u: &UtteranceFeatures| -> Vec<Vec<f32>> {
        let rows: Vec<Vec<f32>> = u
            .frames
            .iter()
            .map(|f| f.identity.iter().chain(&f.mouth).copied().collect())
            .collect();
        authnet_core::sequence::assemble(&rows, 20, Default::default())
    };
    let seqs: Vec<Vec<Vec<f32>>> = firsts.values().map(|u| seq(u)).collect();
    let Some(reference) = seqs.first() else {
        return Vec::new();
    };
    seqs.iter()
        .map(|s| {
            s.iter()
                .zip(reference)
                .map(|(a, b)| 1.0 - authnet_core::features::cosine(a, b) as f64)
                .collect()
        })
        .collect()
}

/// The enrolment (training) and test clips of target `ti`: 70:30 after a seeded shuffle, or
/// the paper's oversample-then-split (which also sets `cfg.oversample_to`). Deterministic in
/// `ti`, so pretraining can see which clips a target will enrol with.
fn target_split(
    args: &RunArgs,
    ti: usize,
    own: Vec<&UtteranceFeatures>,
    cfg: &mut EnrollConfig,
) -> (Vec<UtteranceFeatures>, Vec<UtteranceFeatures>) {
    let mut rng = SplitMix64::new(args.seed ^ (0x5EED_0000 + ti as u64 * 7919));
    let mut own: Vec<UtteranceFeatures> = own.into_iter().cloned().collect();
    if args.paper_split {
        // The paper: oversample 10 -> 110 first (jittered copies), then split 70:30.
        let n = own.len();
        let mut all: Vec<UtteranceFeatures> = Vec::new();
        for k in 0..cfg.oversample_to {
            let u = &own[k % n];
            all.push(if k < n {
                u.clone()
            } else {
                authnet_core::model::password::jitter_copy(u, &mut rng)
            });
        }
        rng.shuffle(&mut all);
        let cut = (all.len() as f64 * 0.7).round() as usize;
        let test = all.split_off(cut);
        cfg.oversample_to = all.len();
        (all, test)
    } else {
        rng.shuffle(&mut own);
        let cut = (own.len() as f64 * 0.7).round() as usize;
        let test = own.split_off(cut);
        (own, test)
    }
}

/// Pretrains one LSTM backbone per training speaker `s`, on the run's *other* training
/// speakers' training words (never an unseen speaker, never a held-out word, never `s`, so
/// never a clip `s`'s targets are tested on, and never the enrolling user, as in deployment).
/// With a single training speaker there is nobody else: that backbone is pretrained on `s`'s
/// own enrolment clips (the training side of each of its targets' splits, never a test clip).
#[allow(clippy::too_many_arguments)]
fn pretrain_all<'a>(
    args: &RunArgs,
    train_spk: &[String],
    heldout: &BTreeMap<String, Vec<String>>,
    feats: &'a BTreeMap<Key, UtteranceFeatures>,
    targets: &[(String, String)],
    clips: &(dyn Fn(&str, &str) -> Vec<&'a UtteranceFeatures> + Sync),
    lstm: LstmPreset,
) -> anyhow::Result<BTreeMap<String, (PretrainedLstm, PretrainRun)>> {
    let pc = PretrainConfig {
        lstm,
        pad: args.pad,
        seed: args.seed,
        ..PretrainConfig::default()
    };
    let jobs: Vec<anyhow::Result<(String, (PretrainedLstm, PretrainRun))>> = train_spk
        .par_iter()
        .map(|s| {
            let mut own: Vec<(String, String, UtteranceFeatures)> = Vec::new();
            let scope = if train_spk.len() > 1 {
                "other training speakers"
            } else {
                for (ti, (ts, tw)) in targets.iter().enumerate() {
                    if ts == s {
                        let mut cfg = EnrollConfig {
                            pad: args.pad,
                            ..Default::default()
                        };
                        let (tr, _) = target_split(args, ti, clips(ts, tw), &mut cfg);
                        own.extend(tr.into_iter().map(|u| (ts.clone(), tw.clone(), u)));
                    }
                }
                "own enrolment clips (single training speaker)"
            };
            let mut labelled: Vec<LabelledClip> = own.iter().map(LabelledClip::from).collect();
            if train_spk.len() > 1 {
                labelled.extend(
                    feats
                        .iter()
                        .filter(|(k, _)| {
                            &k.0 != s && train_spk.contains(&k.0) && !heldout[&k.0].contains(&k.1)
                        })
                        .map(|(k, f)| LabelledClip {
                            speaker: &k.0,
                            utterance: &k.1,
                            features: f,
                        }),
                );
            }
            let m = pretrain(&labelled, &"0".repeat(64), Default::default(), &pc)
                .with_context(|| format!("pretraining for speaker {s}"))?;
            let t = &m.training;
            let run = PretrainRun {
                for_speaker: s.clone(),
                scope,
                speakers: t.speakers.clone(),
                classes: t.classes,
                train_sequences: t.train_sequences,
                val_sequences: t.val_sequences,
                val_accuracy: t.report.best_val_accuracy,
                epochs_run: t.report.epochs_run,
                seconds: t.report.seconds,
            };
            Ok((s.clone(), (m, run)))
        })
        .collect();
    jobs.into_iter().collect()
}

#[allow(clippy::too_many_arguments)]
fn run_target<'a>(
    args: &RunArgs,
    ti: usize,
    s: &str,
    w: &str,
    train_spk: &[String],
    unseen: &[String],
    heldout: &BTreeMap<String, Vec<String>>,
    feats: &'a BTreeMap<Key, UtteranceFeatures>,
    clips: &dyn Fn(&str, &str) -> Vec<&'a UtteranceFeatures>,
    words_of: &dyn Fn(&str) -> Vec<String>,
    lstm: LstmPreset,
    pretrained: Option<&PretrainedLstm>,
) -> anyhow::Result<TargetResult> {
    let mut cfg = EnrollConfig {
        seed: args.seed.wrapping_add(ti as u64),
        word_model: args.word_model.kind(),
        lstm,
        pad: args.pad,
        group_folds: args.group_folds,
        gap_midpoint: args.gap_midpoint,
        separation_scale: args.separation_scale,
        word_smoothing: args.word_smoothing,
        word_view_trim: args.word_view_trim,
        ridge_lambdas: args.ridge_lambdas.clone(),
        ridge_relative: args.ridge_relative,
        word_whitening: args.word_whitening,
        whitened_ridge: (args.whitened_ridge != 0.0).then_some(args.whitened_ridge),
        fmr_rule: args.fmr_rule,
        ..Default::default()
    };
    let (train_pos, test_pos) = target_split(args, ti, clips(s, w), &mut cfg);
    // The user's other words as enrolment sees them: every clip of every training word but
    // the password, labelled; or, with `--other-words` / `--other-word-clips` /
    // `--other-word-labels false`, as few as a live enrolment records (the first N words,
    // the first R clips of each, by name).
    let (other_words, mut other_word_labels): (Vec<UtteranceFeatures>, Vec<String>) = words_of(s)
        .into_iter()
        .filter(|x| x != w && !heldout[s].contains(x))
        .take(args.other_words.unwrap_or(usize::MAX))
        .flat_map(|x| {
            clips(s, &x)
                .into_iter()
                .take(args.other_word_clips.unwrap_or(usize::MAX))
                .map(move |u| (u.clone(), x.clone()))
        })
        .unzip();
    if !args.other_word_labels {
        other_word_labels.clear();
    }
    let first = &train_pos[0];
    let mut bank = ImpostorBank::new(
        &first.backbone,
        &"0".repeat(64),
        first.identity_dim,
        first.mouth_dim,
    );
    for (k, f) in feats {
        if k.0 != s
            && train_spk.contains(&k.0)
            && !heldout[&k.0].contains(&k.1)
            && f.frames.len() >= 2
        {
            bank.entries.push(BankEntry {
                speaker: k.0.clone(),
                word: k.1.clone(),
                instance: k.2.clone(),
                features: f.clone(),
            });
        }
    }
    let input = EnrollInput {
        positives: &train_pos,
        other_words: &other_words,
        other_word_labels: &other_word_labels,
        bank: Some(&bank),
    };
    let t0 = Instant::now();
    let (model, rep, oof) = enroll_traced(&input, pretrained, &cfg, &mut |_, _, _| {})?;
    let train_seconds = t0.elapsed().as_secs_f64();
    let st = model.stored_config().clone();
    let mut out = TargetResult {
        train_seconds,
        validation_eer: rep.validation_eer,
        speaker: s.to_string(),
        word: w.to_string(),
        threshold_eer: model.threshold(ThresholdPolicy::Eer),
        threshold_fmr: model.threshold(ThresholdPolicy::Fmr),
        oof,
        ..Default::default()
    };
    let (mut g_ranked, mut i_ranked) = (Vec::new(), Vec::new());
    let (mut g_gates, mut i_gates) = (Vec::new(), Vec::new());
    let mut gate_names = Vec::new();
    type Scored = (f64, f64, f64, f64, Vec<f64>);
    let mut score = |u: &UtteranceFeatures| -> anyhow::Result<Scored> {
        let t = Instant::now();
        let d = model.decide(u, args.threshold_policy)?;
        out.score_ms.push(t.elapsed().as_secs_f64() * 1e3);
        if gate_names.is_empty() {
            gate_names = d.gates.iter().map(|g| g.gate).collect();
        }
        // Vetoed probes rank below every live one (`Scores::ranked`), so the ROC sees them.
        Ok((
            d.scores.ranked() - d.threshold,
            d.scores.identity,
            (d.scores.word - st.word.mean) / st.word.std,
            d.scores.ranked(),
            d.gates.iter().map(|g| g.z).collect(),
        ))
    };
    let mut genuine = Vec::new();
    let mut impostor = Vec::new();
    for u in &test_pos {
        let x = score(u)?;
        genuine.push((x.0, x.1, x.2));
        g_ranked.push(x.3);
        g_gates.push(x.4);
        let f = score(&u.frozen())?;
        impostor.push((f.0, f.1, f.2, ImpostorKind::FrozenFrame));
    }
    for hw in &heldout[s] {
        for u in clips(s, hw) {
            let x = score(u)?;
            impostor.push((x.0, x.1, x.2, ImpostorKind::SamePersonDifferentWord));
            i_ranked.push(x.3);
            i_gates.push(x.4);
        }
    }
    for us in unseen {
        for ww in words_of(us) {
            let kind = if ww == w {
                ImpostorKind::DifferentPersonSameWord
            } else {
                ImpostorKind::DifferentPersonDifferentWord
            };
            for u in clips(us, &ww) {
                let x = score(u)?;
                impostor.push((x.0, x.1, x.2, kind));
                i_ranked.push(x.3);
                i_gates.push(x.4);
            }
        }
    }
    out.genuine = genuine;
    out.impostor = impostor;
    out.genuine_ranked = g_ranked;
    out.genuine_gates = g_gates;
    out.impostor_gates = i_gates;
    out.gate_names = gate_names;
    out.impostor_ranked = i_ranked;
    Ok(out)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

// The run's parts, each from another stage; bundling them would only rename them.
#[allow(clippy::too_many_arguments)]
fn summarise(
    args: &RunArgs,
    backbone: &str,
    layout: FeatureLayout,
    speakers: &[String],
    unseen: &[String],
    heldout: BTreeMap<String, Vec<String>>,
    results: &[TargetResult],
    pretraining: Vec<PretrainRun>,
) -> anyhow::Result<Report> {
    let shifted = |f: fn(&TargetResult) -> f64| -> (Vec<f64>, Vec<f64>) {
        let g = results
            .iter()
            .flat_map(|r| r.genuine_ranked.iter().map(move |x| x - f(r)))
            .collect();
        let i = results
            .iter()
            .flat_map(|r| r.impostor_ranked.iter().map(move |x| x - f(r)))
            .collect();
        (g, i)
    };
    let (ge, ie) = shifted(|r| r.threshold_eer);
    let (gf, if_) = shifted(|r| r.threshold_fmr);
    let at_deployed_threshold = PolicyRates {
        eer: rates(&ge, &ie, 0.0),
        fmr: rates(&gf, &if_, 0.0),
    };
    const ORACLE_FMR: f64 = 1e-3;
    let offset = metrics::threshold_at_fmr(&gf, &if_, ORACLE_FMR)?;
    let oracle_not_deployable = Oracle {
        target_fmr: ORACLE_FMR,
        offset_on_fmr_thresholds: offset,
        at_offset: rates(&gf, &if_, offset),
        per_target_thresholds: {
            let t: Vec<(&[f64], &[f64])> = results
                .iter()
                .map(|r| (r.genuine_ranked.as_slice(), r.impostor_ranked.as_slice()))
                .collect();
            let budget = (ORACLE_FMR * if_.len() as f64).floor() as usize;
            let (missed, passed) = per_target_oracle(&t, budget);
            Rates {
                fmr: passed as f64 / if_.len().max(1) as f64,
                fnmr: missed as f64 / gf.len().max(1) as f64,
            }
        },
    };
    let per_target = results
        .iter()
        .map(|r| {
            Ok(TargetSummary {
                speaker: r.speaker.clone(),
                word: r.word.clone(),
                validation_eer: r.validation_eer,
                test_eer: metrics::eer(&r.genuine_ranked, &r.impostor_ranked)?.eer,
                at_deployed_threshold: PolicyRates {
                    eer: rates(&r.genuine_ranked, &r.impostor_ranked, r.threshold_eer),
                    fmr: rates(&r.genuine_ranked, &r.impostor_ranked, r.threshold_fmr),
                },
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let g: Vec<f64> = results
        .iter()
        .flat_map(|r| r.genuine.iter().map(|x| x.0))
        .collect();
    // Impostors of the three "person/word" kinds; photo attacks are reported separately.
    let imp: Vec<(f64, ImpostorKind)> = results
        .iter()
        .flat_map(|r| r.impostor.iter().map(|x| (x.0, x.3)))
        .filter(|x| x.1 != ImpostorKind::FrozenFrame)
        .collect();
    let i: Vec<f64> = imp.iter().map(|x| x.0).collect();
    let photo: Vec<f64> = results
        .iter()
        .flat_map(|r| {
            r.impostor
                .iter()
                .filter(|x| x.3 == ImpostorKind::FrozenFrame)
                .map(|x| x.0)
        })
        .collect();
    let conf = metrics::confusion(&g, &i, 0.0);
    let (fmr, fnmr) = metrics::fmr_fnmr_at(&g, &i, 0.0)?;
    // Baselines: identity cosine alone (face only, no temporal model), word z alone.
    let g_id: Vec<f64> = results
        .iter()
        .flat_map(|r| r.genuine.iter().map(|x| x.1))
        .collect();
    let i_id: Vec<f64> = results
        .iter()
        .flat_map(|r| {
            r.impostor
                .iter()
                .filter(|x| x.3 != ImpostorKind::FrozenFrame)
                .map(|x| x.1)
        })
        .collect();
    let g_w: Vec<f64> = results
        .iter()
        .flat_map(|r| r.genuine.iter().map(|x| x.2))
        .collect();
    let i_w: Vec<f64> = results
        .iter()
        .flat_map(|r| {
            r.impostor
                .iter()
                .filter(|x| x.3 != ImpostorKind::FrozenFrame)
                .map(|x| x.2)
        })
        .collect();
    let all_ms: Vec<f64> = results
        .iter()
        .flat_map(|r| r.score_ms.iter().copied())
        .collect();
    let report = Report {
        targets: results.len(),
        eer: metrics::eer(&g, &i)?.eer,
        auc: metrics::auc(&g, &i)?,
        accuracy: conf.accuracy()?,
        sensitivity: conf.sensitivity()?,
        specificity: conf.specificity()?,
        far: conf.far()?,
        frr: conf.frr()?,
        threshold_policy: args.threshold_policy,
        fmr_at_threshold: fmr,
        fnmr_at_threshold: fnmr,
        specificity_by_impostor: metrics::specificity_by_kind(&imp, 0.0)?,
        photo_attack_accept_rate: photo.iter().filter(|x| **x >= 0.0).count() as f64
            / photo.len().max(1) as f64,
        face_only_baseline: eer_auc(&g_id, &i_id)?,
        motion_only: eer_auc(&g_w, &i_w)?,
        train_seconds_mean: mean(&results.iter().map(|r| r.train_seconds).collect::<Vec<_>>()),
        score_ms_mean: mean(&all_ms),
        backbone: backbone.to_string(),
        layout,
        mesh_blocks: args.mesh_blocks.clone(),
        mesh_gain_scale: args.mesh_gain_scale.clone(),
        seed: args.seed,
        modality: args.modality,
        paper_split: args.paper_split,
        pad: args.pad,
        word_model: args.word_model.kind(),
        group_folds: args.group_folds,
        gap_midpoint: args.gap_midpoint,
        separation_scale: args.separation_scale,
        word_smoothing: args.word_smoothing,
        word_view_trim: args.word_view_trim,
        ridge_lambdas: args.ridge_lambdas.clone(),
        ridge_relative: args.ridge_relative,
        word_whitening: args.word_whitening,
        whitened_ridge: args.whitened_ridge,
        fmr_rule: args.fmr_rule,
        other_words: args.other_words,
        other_word_clips: args.other_word_clips,
        other_word_labels: args.other_word_labels,
        word_model_arg: args.word_model,
        pretraining,
        at_deployed_threshold,
        per_target,
        oracle_not_deployable,
        speakers: speakers.to_vec(),
        unseen_speakers: unseen.to_vec(),
        heldout_words: heldout,
        genuine_trials: g.len(),
        impostor_trials: i.len(),
        validation_eer_mean: mean(&results.iter().map(|r| r.validation_eer).collect::<Vec<_>>()),
        confusion: Confusion {
            tp: conf.tp,
            fn_: conf.fn_,
            tn: conf.tn,
            fp: conf.fp,
        },
    };
    write_json(&args.report, &report)?;
    if let Some(md) = &args.markdown {
        std::fs::write(md, crate::report::markdown(&report_view(&report)))
            .with_context(|| format!("writing {}", md.display()))?;
    }
    if let Some(dir) = &args.plots {
        crate::report::plots(dir, &g, &i, &conf_view(&report))?;
    }
    Ok(report)
}

fn write_json(path: &Path, r: &impl Serialize) -> anyhow::Result<()> {
    if let Some(p) = path.parent() {
        if !p.as_os_str().is_empty() {
            std::fs::create_dir_all(p)?;
        }
    }
    std::fs::write(path, serde_json::to_string_pretty(r)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// The figures the markdown and plots need.
pub struct View {
    /// Report as JSON.
    pub json: serde_json::Value,
}

fn report_view(r: &Report) -> View {
    View {
        json: serde_json::to_value(r).unwrap_or_default(),
    }
}

fn conf_view(r: &Report) -> [usize; 4] {
    [
        r.confusion.tp,
        r.confusion.fn_,
        r.confusion.tn,
        r.confusion.fp,
    ]
}

impl Report {
    /// One-line summary for the terminal.
    pub fn summary(&self) -> String {
        format!(
            "{} layout | targets {} | EER {:.4} AUC {:.4} | acc {:.4} FAR {:.4} FRR {:.4} | spec same-person/other-word {:?} | photo accept {:.3} | face-only EER {:.4} | motion-only EER {:.4} | validation EER mean {:.4} | train {:.2}s score {:.2}ms | deployed EER policy FMR {:.4} FNMR {:.4} | deployed FMR policy FMR {:.4} FNMR {:.4} | oracle (not deployable) FNMR {:.4} at FMR {:.4}, per-target oracle FNMR {:.4} at FMR {:.4}",
            self.layout,
            self.targets,
            self.eer,
            self.auc,
            self.accuracy,
            self.far,
            self.frr,
            self.specificity_by_impostor.same_person_different_word,
            self.photo_attack_accept_rate,
            self.face_only_baseline.eer,
            self.motion_only.eer,
            self.validation_eer_mean,
            self.train_seconds_mean,
            self.score_ms_mean,
            self.at_deployed_threshold.eer.fmr,
            self.at_deployed_threshold.eer.fnmr,
            self.at_deployed_threshold.fmr.fmr,
            self.at_deployed_threshold.fmr.fnmr,
            self.oracle_not_deployable.at_offset.fnmr,
            self.oracle_not_deployable.at_offset.fmr,
            self.oracle_not_deployable.per_target_thresholds.fnmr,
            self.oracle_not_deployable.per_target_thresholds.fmr
        )
    }
}

#[cfg(test)]
mod tests {
    use super::per_target_oracle;

    #[test]
    fn per_target_oracle_spends_the_false_matches_where_they_save_most() {
        // Target a: passing its top impostor (0.9) saves two genuine clips; target b: passing
        // its top impostor saves one.
        let a = (vec![0.5, 0.6, 1.0], vec![0.9, 0.1]);
        let b = (vec![0.5, 1.0], vec![0.8, 0.2]);
        let t = [(&a.0[..], &a.1[..]), (&b.0[..], &b.1[..])];
        assert_eq!(per_target_oracle(&t, 0), (3, 0));
        assert_eq!(per_target_oracle(&t, 1), (1, 1));
        assert_eq!(per_target_oracle(&t, 2), (0, 2));
        // More budget than needed: no more false matches than it takes.
        assert_eq!(per_target_oracle(&t, 9), (0, 2));
    }
}
