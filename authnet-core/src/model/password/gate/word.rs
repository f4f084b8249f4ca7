//! The word gate: a per-user classifier of the mouth-feature sequence (what the lips do over
//! `T` timesteps), trained on the user's clips against same-person other words, the impostor
//! bank, and negatives derived from the user's own clips (frozen, reversed, shuffled). Either a
//! weighted ridge classifier on the flattened sequence ([`WordModelKind::Linear`]), the stacked
//! LSTM ([`WordModelKind::Lstm`], the paper's model), both averaged, or a ridge classifier on
//! the frozen encoding of a pretrained LSTM backbone ([`WordModelKind::Encoded`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::whiten::{Repetitions, Residuals, Whitener};
use super::{Calibration, Gate, GateStats, Registration, Role, Stored, Trainer};
use crate::features::UtteranceFeatures;
use crate::metrics;
use crate::model::file::{ModelMeta, NamedTensor};
use crate::model::lstm::{LstmConfig, SeqClassifier, Sequence};
use crate::model::password::config::{
    check_view_trim, check_word_smoothing, EnrollConfig, StoredConfig, WordModelKind,
};
use crate::model::password::ridge::{dual_scores, gram, primal, ridge_dual, Ridge};
use crate::model::password::train_set::{Item, NegSource, TrainData};
use crate::model::password::views::{lstm_input, trimmed_views, word_input};
use crate::model::password::{PasswordError, MIN_FRAMES};
use crate::sequence::{assemble, PadPolicy};

/// The registry entry.
pub(crate) const REGISTRATION: Registration = Registration {
    name: NAME,
    optional: false,
    prepare: |d| Ok(Some(Box::new(WordTrainer::new(d)?))),
    load,
};

const NAME: &str = "word";
/// Floor of the genuine standard deviation.
const STD_FLOOR: f64 = 0.05;

/// The trained word gate.
#[derive(Debug)]
pub struct WordGate {
    kind: WordModelKind,
    timesteps: usize,
    pad: PadPolicy,
    /// Temporal smoothing radius of the ridge's input (`views::smooth_time`).
    smoothing: usize,
    ridge: Option<Ridge>,
    ridge_lambda: Option<f64>,
    lstm: Option<SeqClassifier>,
    lstm_config: Option<LstmConfig>,
    /// The frozen pretrained backbone whose `h_T` the ridge reads ([`WordModelKind::Encoded`]).
    /// Shared with the trainer that encoded the training set with it (it is never trained).
    encoder: Option<Arc<SeqClassifier>>,
    /// The whitening share the ridge was fitted with, if its input was whitened.
    whitening: Option<f64>,
    /// The ridge scores the best of the probe's trimmed views (`views::trimmed_views`) with
    /// this share; 0: the whole clip only.
    view_trim: f64,
    stats: GateStats,
}

/// The ridge's input for `probe`: the flattened (smoothed) mouth sequence, or the encoder's
/// `h_T`.
fn ridge_input(
    encoder: Option<&SeqClassifier>,
    probe: &UtteranceFeatures,
    t: usize,
    pad: PadPolicy,
    smoothing: usize,
) -> Result<Vec<f32>, PasswordError> {
    match encoder {
        Some(e) => e
            .encode(&[lstm_input(probe, t, pad)])?
            .pop()
            .ok_or(PasswordError::Invalid("the encoder returned nothing")),
        None => Ok(word_input(probe, t, pad, smoothing)),
    }
}

/// The best ridge score over `views` (each already turned into the ridge's input).
fn best_view(ridge: &Ridge, views: &[Vec<f32>]) -> f64 {
    views
        .iter()
        .map(|x| ridge.score(x))
        .fold(f64::NEG_INFINITY, f64::max)
}

impl Gate for WordGate {
    fn name(&self) -> &'static str {
        NAME
    }
    fn role(&self) -> Role {
        Role::Fused("word")
    }
    fn score(&self, probe: &UtteranceFeatures) -> Result<f64, PasswordError> {
        let (t, pad) = (self.timesteps, self.pad);
        let r = match &self.ridge {
            Some(r) if self.view_trim > 0.0 && self.encoder.is_none() => {
                let views: Vec<Vec<f32>> = trimmed_views(probe, self.view_trim)
                    .iter()
                    .map(|v| word_input(v, t, pad, self.smoothing))
                    .collect();
                Some(best_view(r, &views))
            }
            Some(r) => Some(r.score(&ridge_input(
                self.encoder.as_deref(),
                probe,
                t,
                pad,
                self.smoothing,
            )?)),
            None => None,
        };
        let l = match &self.lstm {
            Some(m) => Some(lstm_word(m.logits(&[lstm_input(probe, t, pad)])?[0])),
            None => None,
        };
        Ok(combine_word(self.kind, r, l))
    }
    fn calibrate(&mut self, genuine: &[f64], impostor: &[f64]) {
        self.stats = GateStats::from_separation(genuine, impostor, STD_FLOOR);
    }
    fn stats(&self) -> Calibration {
        Calibration::Standardise(self.stats)
    }
    fn tensors(&self, _meta: &ModelMeta) -> Vec<NamedTensor> {
        let mut v = Vec::new();
        if let Some(r) = &self.ridge {
            v.push(NamedTensor::new("ridge.w", vec![r.w.len()], r.w.clone()));
            v.push(NamedTensor::new("ridge.b", vec![1], vec![r.b]));
        }
        if let Some(m) = &self.lstm {
            for (name, shape, data) in m.tensors() {
                v.push(NamedTensor::new(format!("lstm/{name}"), shape, data));
            }
        }
        if let Some(e) = &self.encoder {
            for (name, shape, data) in e.backbone_tensors() {
                v.push(NamedTensor::new(format!("enc/{name}"), shape, data));
            }
        }
        v
    }
    fn store(&self, cfg: &mut StoredConfig) {
        cfg.word_model = self.kind;
        cfg.lstm = self.lstm_config.clone();
        cfg.ridge_lambda = self.ridge_lambda;
        cfg.word_smoothing =
            (self.ridge.is_some() && self.encoder.is_none()).then_some(self.smoothing);
        cfg.word_whitening = self.whitening;
        cfg.word_view_trim = (self.view_trim > 0.0).then_some(self.view_trim);
        cfg.word = self.stats;
    }
}

/// The word gate's training inputs, computed once per enrolment.
struct WordTrainer<'d> {
    cfg: &'d EnrollConfig,
    /// Flattened ridge inputs, when the ridge is used.
    xw: Vec<Vec<f32>>,
    /// LSTM inputs, when the LSTM is used.
    xl: Vec<Sequence>,
    /// Gram matrix of `xw`.
    k: Vec<Vec<f64>>,
    /// The ridge penalty (absolute) chosen by out-of-fold EER, when the ridge is used.
    lambda: Option<f64>,
    use_lstm: bool,
    /// The pretrained backbone `xw` was encoded with ([`WordModelKind::Encoded`]); the fitted
    /// gate keeps it.
    encoder: Option<Arc<SeqClassifier>>,
    /// The nuisance whitening `xw` was transformed with ([`EnrollConfig::word_whitening`]);
    /// the fitted weights are mapped back through it.
    whitener: Option<Whitener>,
    /// Per item, the ridge inputs (whitened like `xw`) of its trimmed views, when the ridge
    /// scores views ([`EnrollConfig::word_view_trim`]) and the item is scored out of fold;
    /// empty otherwise.
    views: Vec<Vec<Vec<f32>>>,
}

/// Repetitions of one word by one speaker, as unsmoothed `T x mouth_dim` sequences, for
/// the nuisance whitening: the bank's clips by (speaker, word) and the user's other words that
/// carry a label (the daemon's recorded other words carry none, so there only the bank).
fn repetition_groups(d: &TrainData) -> Vec<Repetitions> {
    let (t, pad) = (d.cfg.timesteps, d.cfg.pad);
    let seq = |u: &crate::features::UtteranceFeatures| assemble(&u.mouth_seq(), t, pad);
    let mut keyed: BTreeMap<(u8, String, String), Repetitions> = BTreeMap::new();
    let mut push = |key: (u8, String, String), s| keyed.entry(key).or_default().push(s);
    for (item, u) in d.set.items.iter().zip(&d.set.feats) {
        if let Item::Neg {
            from_clip: None,
            group,
            source: NegSource::OtherWord,
            ..
        } = item
        {
            // Unlabelled clips have a group of their own and so form no repetition group.
            push((1, group.to_string(), String::new()), seq(u));
        }
    }
    if let Some(bank) = d.bank {
        for e in bank
            .entries
            .iter()
            .filter(|e| e.features.frames.len() >= MIN_FRAMES)
        {
            push((2, e.speaker.clone(), e.word.clone()), seq(&e.features));
        }
    }
    keyed.into_values().collect()
}

impl<'d> WordTrainer<'d> {
    fn new(d: &TrainData<'d>) -> Result<Self, PasswordError> {
        let cfg = d.cfg;
        let (t, pad) = (cfg.timesteps, cfg.pad);
        let use_ridge = cfg.word_model != WordModelKind::Lstm;
        let use_lstm = matches!(
            cfg.word_model,
            WordModelKind::Lstm | WordModelKind::Ensemble
        );
        let mut encoder = None;
        let xw: Vec<Vec<f32>> = match cfg.word_model {
            WordModelKind::Lstm => Vec::new(),
            WordModelKind::Encoded => {
                let p = d.pretrained.ok_or(PasswordError::Invalid(
                    "the encoded word model needs a pretrained LSTM",
                ))?;
                let seqs: Vec<Sequence> =
                    d.set.feats.iter().map(|u| lstm_input(u, t, pad)).collect();
                // Built once: `fit` hands this backbone to the gate (its head is unused).
                encoder.insert(Arc::new(p.start(0)?)).encode(&seqs)?
            }
            WordModelKind::Linear | WordModelKind::Ensemble => {
                let r = cfg.word_smoothing;
                d.set
                    .feats
                    .iter()
                    .map(|u| word_input(u, t, pad, r))
                    .collect()
            }
        };
        let xl: Vec<Sequence> = if use_lstm {
            d.set.feats.iter().map(|u| lstm_input(u, t, pad)).collect()
        } else {
            Vec::new()
        };
        // Nuisance whitening (`EnrollConfig::word_whitening`), learnt from other people's and
        // the user's other words' repetitions only: the password clips are held out in the
        // folds, and a whitener fitted on them would make their out-of-fold scores look
        // tighter than a new login's (tried: it gained nothing once each fold whitened with
        // its own training clips only).
        let whitener = if encoder.is_none() && use_ridge && cfg.word_whitening > 0.0 {
            Whitener::from_residuals(
                &Residuals::of_groups(&repetition_groups(d))?,
                cfg.word_whitening,
            )?
        } else {
            None
        };
        let xw = match &whitener {
            Some(w) => w.apply(&xw)?,
            None => xw,
        };
        let k = if use_ridge { gram(&xw)? } else { Vec::new() };
        let views = if use_ridge && encoder.is_none() && cfg.word_view_trim > 0.0 {
            let (r, share) = (cfg.word_smoothing, cfg.word_view_trim);
            // The whole clip's input is `xw[i]` already; the trimmed views of every held-out
            // item are whitened together, in one product.
            let (mut owner, mut trims) = (Vec::new(), Vec::new());
            for i in (0..d.len()).filter(|&i| d.is_eval(i)) {
                for v in trimmed_views(&d.set.feats[i], share).iter().skip(1) {
                    owner.push(i);
                    trims.push(word_input(v, t, pad, r));
                }
            }
            let trims = match &whitener {
                Some(w) => w.apply(&trims)?,
                None => trims,
            };
            let mut views: Vec<Vec<Vec<f32>>> = (0..d.len())
                .map(|i| {
                    if d.is_eval(i) {
                        vec![xw[i].clone()]
                    } else {
                        Vec::new()
                    }
                })
                .collect();
            for (i, x) in owner.into_iter().zip(trims) {
                views[i].push(x);
            }
            views
        } else {
            Vec::new()
        };
        let mut me = Self {
            cfg,
            xw,
            xl,
            k,
            lambda: None,
            use_lstm,
            encoder,
            whitener,
            views,
        };
        if use_ridge {
            me.lambda = me.choose_lambda(d)?;
        }
        Ok(me)
    }

    /// The ridge penalty with the lowest out-of-fold EER of the word score alone (the only
    /// one, when only one is given).
    fn choose_lambda(&self, d: &TrainData) -> Result<Option<f64>, PasswordError> {
        let mut best: Option<(f64, f64)> = None;
        if let (Some(_), Some(l)) = (&self.whitener, self.cfg.whitened_ridge) {
            return Ok(Some(l * mean_diagonal(&self.k)));
        }
        let unit = if self.cfg.ridge_relative {
            mean_diagonal(&self.k)
        } else {
            1.0
        };
        if let [only] = self.cfg.ridge_lambdas[..] {
            // Nothing to choose: the out-of-fold fits would only be thrown away.
            return Ok(Some(only * unit));
        }
        for lam in self.cfg.ridge_lambdas.iter().map(|l| l * unit) {
            let mut gs = Vec::new();
            let mut is_ = Vec::new();
            for f in 0..d.folds {
                let (tr, te) = d.split(f);
                let a = ridge_dual(&self.k, &tr, &d.y, &d.c, lam)?;
                for (i, s) in te.iter().zip(dual_scores(&self.k, &tr, &a, &te)) {
                    if d.y[*i] > 0.0 {
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
        Ok(best.map(|(_, l)| l))
    }

    fn lstm_config(&self, d: &TrainData) -> Option<LstmConfig> {
        let first = d.positives.first()?;
        if self.cfg.word_model == WordModelKind::Encoded {
            return d.pretrained.map(|p| p.lstm.clone());
        }
        self.use_lstm.then(|| match d.pretrained {
            Some(p) => p.lstm.clone(),
            None => self.cfg.lstm.config(first.mouth_dim + first.identity_dim),
        })
    }
}

impl Trainer for WordTrainer<'_> {
    fn fold_scores(
        &self,
        d: &TrainData,
        fold: usize,
        train: &[usize],
        test: &[usize],
    ) -> Result<Vec<f64>, PasswordError> {
        let ridge_s = match self.lambda {
            Some(lam) => {
                let a = ridge_dual(&self.k, train, &d.y, &d.c, lam)?;
                if self.views.is_empty() {
                    Some(dual_scores(&self.k, train, &a, test))
                } else {
                    // Scored as a login is: the best of the held-out clip's views.
                    let r = primal(&self.xw, train, &a);
                    Some(
                        test.iter()
                            .map(|&i| match self.views.get(i) {
                                Some(v) if !v.is_empty() => Ok(best_view(&r, v)),
                                _ => Err(PasswordError::Invalid(
                                    "a held-out item has no trimmed views",
                                )),
                            })
                            .collect::<Result<Vec<f64>, _>>()?,
                    )
                }
            }
            None => None,
        };
        let lstm_s = if self.use_lstm {
            let seed = self.cfg.seed.wrapping_add(fold as u64 + 1);
            let m = train_lstm(d, &self.xl, train, self.cfg, seed)?;
            let q: Vec<Sequence> = test.iter().map(|&i| self.xl[i].clone()).collect();
            Some(m.logits(&q)?)
        } else {
            None
        };
        Ok((0..test.len())
            .map(|j| {
                combine_word(
                    self.cfg.word_model,
                    ridge_s.as_ref().map(|v| v[j]),
                    lstm_s.as_ref().map(|v| lstm_word(v[j])),
                )
            })
            .collect())
    }

    fn fit(&self, d: &TrainData) -> Result<Box<dyn Gate>, PasswordError> {
        let all: Vec<usize> = (0..d.len()).collect();
        let ridge = match self.lambda {
            Some(lam) => {
                let mut r = primal(&self.xw, &all, &ridge_dual(&self.k, &all, &d.y, &d.c, lam)?);
                if let Some(w) = &self.whitener {
                    r.w = w.weights_back(&r.w);
                }
                Some(r)
            }
            None => None,
        };
        let lstm = if self.use_lstm {
            Some(train_lstm(d, &self.xl, &all, self.cfg, self.cfg.seed)?)
        } else {
            None
        };
        Ok(Box::new(WordGate {
            kind: self.cfg.word_model,
            timesteps: self.cfg.timesteps,
            pad: self.cfg.pad,
            smoothing: self.cfg.word_smoothing,
            ridge,
            ridge_lambda: self.lambda,
            lstm,
            lstm_config: self.lstm_config(d),
            encoder: self.encoder.clone(),
            whitening: self.whitener.as_ref().map(|_| self.cfg.word_whitening),
            view_trim: if self.views.is_empty() {
                0.0
            } else {
                self.cfg.word_view_trim
            },
            stats: GateStats::default(),
        }))
    }
}

fn load(s: &Stored) -> Result<Option<Box<dyn Gate>>, PasswordError> {
    let (cfg, meta) = (s.cfg, s.meta);
    let prefixed = |prefix: &str| -> Vec<(String, Vec<usize>, Vec<f32>)> {
        s.tensors
            .iter()
            .filter_map(|t| {
                t.name
                    .strip_prefix(prefix)
                    .map(|n| (n.to_string(), t.shape.clone(), t.data.clone()))
            })
            .collect()
    };
    let lstm_config = || -> Result<LstmConfig, PasswordError> {
        let lc = cfg
            .lstm
            .clone()
            .ok_or(PasswordError::Invalid("no LSTM configuration"))?;
        if lc.input_dim != meta.identity_dim + meta.mouth_dim {
            return Err(PasswordError::Invalid(
                "LSTM input_dim differs from the feature dims",
            ));
        }
        Ok(lc)
    };
    let encoder = if cfg.word_model == WordModelKind::Encoded {
        Some(Arc::new(SeqClassifier::from_backbone(
            lstm_config()?,
            &prefixed("enc/"),
            0,
        )?))
    } else {
        None
    };
    let ridge = if cfg.word_model != WordModelKind::Lstm {
        let w = s
            .get("ridge.w")
            .ok_or(PasswordError::Invalid("no ridge.w tensor"))?
            .data
            .clone();
        let b = s
            .get("ridge.b")
            .and_then(|t| t.data.first().copied())
            .ok_or(PasswordError::Invalid("no ridge.b tensor"))?;
        let expected = match &encoder {
            Some(e) => e.config().backbone_width(),
            None => meta.timesteps * meta.mouth_dim,
        };
        if w.len() != expected {
            return Err(PasswordError::Invalid(
                "ridge.w length differs from its input (timesteps x mouth_dim, or the encoder's width)",
            ));
        }
        Some(Ridge { w, b })
    } else {
        None
    };
    let lstm = if matches!(
        cfg.word_model,
        WordModelKind::Lstm | WordModelKind::Ensemble
    ) {
        Some(SeqClassifier::from_tensors(
            lstm_config()?,
            &prefixed("lstm/"),
        )?)
    } else {
        None
    };
    cfg.word.check("invalid word statistics")?;
    // Files written before smoothing existed were trained unsmoothed.
    let smoothing = cfg.word_smoothing.unwrap_or(0);
    check_word_smoothing(smoothing)?;
    // Files written before views existed score the whole clip only.
    let view_trim = cfg.word_view_trim.unwrap_or(0.0);
    check_view_trim(view_trim)?;
    Ok(Some(Box::new(WordGate {
        kind: cfg.word_model,
        timesteps: meta.timesteps,
        pad: meta.pad_policy,
        smoothing,
        ridge,
        ridge_lambda: cfg.ridge_lambda,
        lstm,
        lstm_config: cfg.lstm.clone(),
        encoder,
        whitening: cfg.word_whitening,
        view_trim,
        stats: cfg.word,
    })))
}

/// Trains the LSTM on `train` items, early-stopping on a deterministic sixth of them: from
/// scratch ([`EnrollConfig::train`]), or fine-tuned from the pretrained backbone
/// ([`EnrollConfig::fine_tune`]) when the enrolment has one.
fn train_lstm(
    set: &TrainData,
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
    let (mut model, mut tc) = match set.pretrained {
        Some(p) => (p.start(seed)?, cfg.fine_tune.clone()),
        None => (
            SeqClassifier::new(cfg.lstm.config(dim), seed)?,
            cfg.train.clone(),
        ),
    };
    // Validation: every item whose clip/group id is 5 mod 6, so copies of one clip stay together.
    let is_val = |i: usize| match set.set.items[i] {
        Item::Pos { clip, .. } => clip % 6 == 5,
        Item::Neg {
            from_clip: Some(c), ..
        } => c % 6 == 5,
        Item::Neg { group, .. } => group % 6 == 5,
    };
    let (mut tx, mut ty, mut vx, mut vy) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for &i in train {
        let y = if matches!(set.set.items[i], Item::Pos { .. }) {
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
    let w = crate::model::lstm::balanced_weights(&ty);
    let val =
        (!vy.is_empty() && vy.iter().any(|y| *y > 0.5)).then_some((vx.as_slice(), vy.as_slice()));
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

/// The mean of a Gram matrix's diagonal: the mean squared norm of the rows (plus the bias
/// term's 1). A ridge penalty in these units regularises features of any scale alike (but for
/// that bias term): on the mesh face layout the diagonal is about 1400, on mouth crops 38.
/// 1 for an empty or degenerate matrix.
fn mean_diagonal(k: &[Vec<f64>]) -> f64 {
    if k.is_empty() {
        return 1.0;
    }
    let m = k.iter().enumerate().map(|(i, r)| r[i]).sum::<f64>() / k.len() as f64;
    if m.is_finite() && m > 0.0 {
        m
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::mean_diagonal;

    #[test]
    fn mean_diagonal_reads_the_diagonal_and_never_returns_zero() {
        let k = vec![vec![4.0, 100.0], vec![-100.0, 9.0]];
        assert_eq!(mean_diagonal(&k), 6.5);
        assert_eq!(mean_diagonal(&[]), 1.0);
        assert_eq!(mean_diagonal(&[vec![0.0]]), 1.0);
        assert_eq!(mean_diagonal(&[vec![f64::NAN]]), 1.0);
    }
}
