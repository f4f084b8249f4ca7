//! The training set of one enrolment: the clips, the negatives derived from them, their labels,
//! class weights and cross-validation folds.

use super::config::EnrollConfig;
use super::views::{jitter_copy, reversed, shuffled};
use super::MIN_FRAMES;
use crate::features::UtteranceFeatures;
use crate::model::bank::ImpostorBank;
use crate::model::pretrained::PretrainedLstm;
use crate::rng::SplitMix64;

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
pub(crate) enum Item {
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

pub(crate) struct TrainSet {
    pub(crate) items: Vec<Item>,
    pub(crate) feats: Vec<UtteranceFeatures>,
}

pub(crate) fn build_train_set(
    input: &EnrollInput,
    cfg: &EnrollConfig,
    rng: &mut SplitMix64,
) -> TrainSet {
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

/// Everything a gate's trainer reads: the training set, its labels and class weights, the
/// user's clips, and which fold each item is held out in.
pub(crate) struct TrainData<'a> {
    /// The items and their features.
    pub(crate) set: TrainSet,
    /// The user's usable password clips (copy 0 of each positive item, in clip order).
    pub(crate) positives: &'a [UtteranceFeatures],
    /// `+1` for positives, `-1` for negatives.
    pub(crate) y: Vec<f64>,
    /// Class-balancing weight of each item (`n / (2 n_class)`).
    pub(crate) c: Vec<f64>,
    /// Number of folds.
    pub(crate) folds: usize,
    /// Fold of each positive clip.
    clip_fold: Vec<usize>,
    /// The settings.
    pub(crate) cfg: &'a EnrollConfig,
    /// The pretrained LSTM backbone the word gate fine-tunes from, if any.
    pub(crate) pretrained: Option<&'a PretrainedLstm>,
}

impl<'a> TrainData<'a> {
    /// Labels, weights and folds of `set`; `rng` continues the stream that built `set`.
    pub(crate) fn new(
        set: TrainSet,
        positives: &'a [UtteranceFeatures],
        cfg: &'a EnrollConfig,
        rng: &mut SplitMix64,
    ) -> Self {
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
        // Fold of each item: positives by clip, derived negatives with their clip, others by
        // group.
        let np = positives.len();
        let folds = cfg.folds.clamp(2, np);
        let mut clip_fold: Vec<usize> = (0..np).map(|i| i % folds).collect();
        rng.shuffle(&mut clip_fold);
        Self {
            set,
            positives,
            y,
            c,
            folds,
            clip_fold,
            cfg,
            pretrained: None,
        }
    }

    /// Number of items.
    pub(crate) fn len(&self) -> usize {
        self.set.items.len()
    }

    /// Number of negative items.
    pub(crate) fn negatives(&self) -> usize {
        self.y.iter().filter(|v| **v < 0.0).count()
    }

    /// The fold item `i` is held out in.
    pub(crate) fn fold_of(&self, i: usize) -> usize {
        match self.set.items[i] {
            Item::Pos { clip, .. }
            | Item::Neg {
                from_clip: Some(clip),
                ..
            } => self.clip_fold[clip],
            Item::Neg { group, .. } => group % self.folds,
        }
    }

    /// Whether item `i` is scored when held out: jittered copies are training-only.
    pub(crate) fn is_eval(&self, i: usize) -> bool {
        match self.set.items[i] {
            Item::Pos { copy, .. } => copy == 0,
            Item::Neg { calibrate, .. } => calibrate,
        }
    }

    /// `(training items, held-out evaluation items)` of fold `f`.
    pub(crate) fn split(&self, f: usize) -> (Vec<usize>, Vec<usize>) {
        let n = self.len();
        let tr = (0..n).filter(|&i| self.fold_of(i) != f).collect();
        let te = (0..n)
            .filter(|&i| self.fold_of(i) == f && self.is_eval(i))
            .collect();
        (tr, te)
    }

    /// The user's clips that fold `f` trains on.
    pub(crate) fn train_positives(&self, f: usize) -> Vec<&'a UtteranceFeatures> {
        let positives = self.positives;
        (0..positives.len())
            .filter(|&c| self.clip_fold[c] != f)
            .map(|c| &positives[c])
            .collect()
    }
}
