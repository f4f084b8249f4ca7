//! Enrolment: checks the clips, builds the training set, scores every gate out of fold by
//! k-fold cross-validation over the enrolment clips, calibrates, then fits the final gates on
//! everything.

use std::time::Instant;

use super::calibrate::{calibrate, OofScores, OutOfFold};
use super::config::{
    check_ridge_lambdas, check_view_trim, check_whitening, check_word_smoothing, EnrollConfig,
    EnrollReport, StoredConfig,
};
use super::gate::{Trainer, REGISTRY};
use super::train_set::{build_train_set, EnrollInput, Item, TrainData};
use super::{feature_kind as kind, PasswordError, PasswordModel, MIN_FRAMES, MIN_POSITIVES};
use crate::features::UtteranceFeatures;
use crate::model::file::{self, ModelMeta, TrainingStats};
use crate::model::pretrained::PretrainedLstm;
use crate::rng::SplitMix64;

/// Refuses clips or a bank of another feature kind than the first positive.
fn check_kinds(input: &EnrollInput, first: &UtteranceFeatures) -> Result<(), PasswordError> {
    let want = (first.backbone.as_str(), first.identity_dim, first.mouth_dim);
    let expected = || kind(want.0, want.1, want.2);
    for u in input.positives.iter().chain(input.other_words) {
        if (u.backbone.as_str(), u.identity_dim, u.mouth_dim) != want {
            return Err(PasswordError::FeatureMismatch {
                expected: expected(),
                found: kind(&u.backbone, u.identity_dim, u.mouth_dim),
            });
        }
    }
    if let Some(b) = input.bank {
        if (b.backbone.as_str(), b.identity_dim, b.mouth_dim) != want {
            return Err(PasswordError::FeatureMismatch {
                expected: expected(),
                found: format!("bank of {}", kind(&b.backbone, b.identity_dim, b.mouth_dim)),
            });
        }
    }
    Ok(())
}

/// Enrols a user: trains the gates, calibrates them and the thresholds by k-fold
/// cross-validation over the enrolment clips, then trains the final model on everything.
/// `progress(stage, done, total)` is called as work proceeds.
pub fn enroll(
    input: &EnrollInput,
    cfg: &EnrollConfig,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<(PasswordModel, EnrollReport), PasswordError> {
    enroll_with(input, None, cfg, progress)
}

/// Refuses a pretrained model of another feature kind, sequence length or padding than the
/// enrolment's.
fn check_pretrained(
    p: &PretrainedLstm,
    first: &UtteranceFeatures,
    cfg: &EnrollConfig,
) -> Result<(), PasswordError> {
    if (p.backbone.as_str(), p.identity_dim, p.mouth_dim)
        != (first.backbone.as_str(), first.identity_dim, first.mouth_dim)
        || (p.timesteps, p.pad) != (cfg.timesteps, cfg.pad)
    {
        return Err(PasswordError::FeatureMismatch {
            expected: format!(
                "{} (T={}, {:?})",
                kind(&first.backbone, first.identity_dim, first.mouth_dim),
                cfg.timesteps,
                cfg.pad
            ),
            found: format!("pretrained model of {}", p.feature_kind()),
        });
    }
    Ok(())
}

/// [`enroll()`], with the word gate's LSTM (when [`EnrollConfig::word_model`] uses one)
/// fine-tuned from `pretrained` instead of trained from scratch: its projection and LSTM
/// layers start from the pretrained backbone, its dense layer and head afresh, and every fold
/// and the final model are trained with [`EnrollConfig::fine_tune`].
pub fn enroll_with(
    input: &EnrollInput,
    pretrained: Option<&PretrainedLstm>,
    cfg: &EnrollConfig,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<(PasswordModel, EnrollReport), PasswordError> {
    enroll_traced(input, pretrained, cfg, progress).map(|(m, r, _)| (m, r))
}

/// [`enroll_with()`], also returning the fused out-of-fold scores the thresholds were placed
/// on, for evaluations that study the operating point.
pub fn enroll_traced(
    input: &EnrollInput,
    pretrained: Option<&PretrainedLstm>,
    cfg: &EnrollConfig,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<(PasswordModel, EnrollReport, OofScores), PasswordError> {
    let started = Instant::now();
    check_word_smoothing(cfg.word_smoothing)?;
    check_view_trim(cfg.word_view_trim)?;
    check_ridge_lambdas(&cfg.ridge_lambdas)?;
    check_whitening(cfg.word_whitening, cfg.whitened_ridge)?;
    let usable = |u: &&UtteranceFeatures| u.frames.len() >= MIN_FRAMES;
    let positives: Vec<UtteranceFeatures> =
        input.positives.iter().filter(usable).cloned().collect();
    if positives.len() < MIN_POSITIVES {
        return Err(PasswordError::TooFewPositives(positives.len()));
    }
    let first = &positives[0];
    check_kinds(input, first)?;
    if let Some(p) = pretrained {
        check_pretrained(p, first, cfg)?;
    }
    let (backbone, id_dim, m_dim) = (first.backbone.clone(), first.identity_dim, first.mouth_dim);
    let labels = input.other_word_labels;
    if !labels.is_empty() && labels.len() != input.other_words.len() {
        return Err(PasswordError::Invalid(
            "other_word_labels must label every other-word clip or none",
        ));
    }
    let (others, other_labels): (Vec<UtteranceFeatures>, Vec<String>) = input
        .other_words
        .iter()
        .enumerate()
        .filter(|(_, u)| usable(u))
        .map(|(k, u)| (u.clone(), labels.get(k).cloned().unwrap_or_default()))
        .unzip();
    if others.is_empty() && input.bank.is_none() {
        return Err(PasswordError::NoNegatives);
    }
    let filtered = EnrollInput {
        positives: &positives,
        other_words: &others,
        other_word_labels: if labels.is_empty() {
            &[]
        } else {
            &other_labels
        },
        bank: input.bank,
    };
    let mut rng = SplitMix64::new(cfg.seed ^ 0xA17E_0001);
    let set = build_train_set(&filtered, cfg, &mut rng);
    let mut data = TrainData::new(set, &positives, cfg, &mut rng);
    data.pretrained = pretrained;
    data.bank = input.bank;
    let n = data.len();

    progress("features", 0, 1);
    let mut trainers: Vec<Box<dyn Trainer + '_>> = Vec::new();
    for r in REGISTRY {
        if let Some(t) = (r.prepare)(&data)? {
            trainers.push(t);
        }
    }
    progress("features", 1, 1);

    // Out-of-fold raw scores of every gate.
    let folds = data.folds;
    let mut oof = OutOfFold {
        raw: vec![vec![None; n]; trainers.len()],
        negative: data
            .set
            .items
            .iter()
            .map(|i| match i {
                Item::Pos { .. } => None,
                Item::Neg { source, .. } => Some(*source),
            })
            .collect(),
    };
    for f in 0..folds {
        progress("calibrating", f, folds + 1);
        let (tr, te) = data.split(f);
        for (k, t) in trainers.iter().enumerate() {
            for (&i, s) in te.iter().zip(t.fold_scores(&data, f, &tr, &te)?) {
                oof.raw[k][i] = Some(s);
            }
        }
    }
    progress("calibrating", folds, folds + 1);

    // Final gates on everything, calibrated on the out-of-fold scores.
    let mut gates = trainers
        .iter()
        .map(|t| t.fit(&data))
        .collect::<Result<Vec<_>, _>>()?;
    let cal = calibrate(&mut gates, &oof, cfg)?;
    let gates: Vec<_> = gates
        .into_iter()
        .zip(&cal.active)
        .filter(|(_, a)| **a)
        .map(|(g, _)| g)
        .collect();
    progress("calibrating", folds + 1, folds + 1);

    let mut stored = StoredConfig::default();
    for g in &gates {
        g.store(&mut stored);
    }
    let train_seconds = started.elapsed().as_secs_f64();
    let meta = ModelMeta {
        format_version: file::FORMAT_VERSION,
        backbone,
        backbone_sha256: String::new(),
        identity_dim: id_dim,
        mouth_dim: m_dim,
        timesteps: cfg.timesteps,
        pad_policy: cfg.pad,
        thresholds: cal.thresholds,
        training: TrainingStats {
            positives: positives.len(),
            negatives: data.negatives(),
            epochs: cfg.train.max_epochs,
            validation_eer: cal.eer,
            genuine_mean: cal.genuine_mean,
            impostor_mean: cal.impostor_mean,
            train_seconds,
        },
        created: file::rfc3339_utc(std::time::SystemTime::now()),
        config: serde_json::to_value(&stored)
            .map_err(|_| PasswordError::Invalid("config not serialisable"))?,
        owner: None,
        // The layout is named by the mouth length; the version is this build's.
        features: crate::features::FeatureLayout::current_tag(m_dim).map(str::to_owned),
    };
    let report = EnrollReport {
        validation_eer: cal.eer,
        genuine_mean: cal.genuine_mean,
        impostor_mean: cal.impostor_mean,
        margin: cal.genuine_mean - cal.impostor_mean,
        train_seconds,
    };
    Ok((
        PasswordModel {
            meta,
            cfg: stored,
            gates,
        },
        report,
        cal.oof,
    ))
}
