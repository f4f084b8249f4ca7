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
#[derive(Debug, Clone, Copy, Default)]
pub struct EnrollInput<'a> {
    /// The user mouthing the password.
    pub positives: &'a [UtteranceFeatures],
    /// The user mouthing other words.
    pub other_words: &'a [UtteranceFeatures],
    /// Which word each of `other_words` is (any label; clips of one word share it), or empty
    /// when unknown. With [`EnrollConfig::group_folds`], cross-validation holds out all clips
    /// of a word together, as a word the model never saw is at test time; unlabelled clips
    /// are held out one by one.
    pub other_word_labels: &'a [String],
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
        source: NegSource,
    },
}

/// Where a negative came from: what kind of impostor its out-of-fold score stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NegSource {
    /// Made from one of the user's password clips (a frozen frame, reversed, shuffled).
    Derived,
    /// The user saying another word.
    OtherWord,
    /// Another person, from the impostor bank.
    Bank,
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
                source: NegSource::Derived,
            });
            feats.push(d);
        }
    }
    let mut groups = Groups::default();
    let labels = input.other_word_labels;
    for (k, u) in input.other_words.iter().enumerate() {
        let label = labels
            .get(k)
            .map(String::as_str)
            .filter(|l| cfg.group_folds && !l.is_empty());
        items.push(Item::Neg {
            from_clip: None,
            group: groups.of(label, "word"),
            calibrate: true,
            source: NegSource::OtherWord,
        });
        feats.push(u.clone());
    }
    if let Some(bank) = input.bank {
        let mut idx: Vec<usize> = (0..bank.entries.len()).collect();
        rng.shuffle(&mut idx);
        idx.truncate(cfg.max_bank_negatives);
        idx.sort_unstable();
        for i in idx {
            let e = &bank.entries[i];
            if e.features.frames.len() >= MIN_FRAMES {
                let speaker = Some(e.speaker.as_str()).filter(|s| cfg.group_folds && !s.is_empty());
                items.push(Item::Neg {
                    from_clip: None,
                    group: groups.of(speaker, "speaker"),
                    calibrate: true,
                    source: NegSource::Bank,
                });
                feats.push(e.features.clone());
            }
        }
    }
    TrainSet { items, feats }
}

/// Group ids of the negatives not derived from a positive: one per distinct `(kind, label)`
/// in order of first appearance, and a fresh one for each unlabelled item.
#[derive(Default)]
struct Groups {
    next: usize,
    seen: Vec<(&'static str, String, usize)>,
}

impl Groups {
    fn of(&mut self, label: Option<&str>, kind: &'static str) -> usize {
        if let Some(l) = label {
            if let Some((_, _, g)) = self.seen.iter().find(|(k, s, _)| *k == kind && s == l) {
                return *g;
            }
            self.seen.push((kind, l.to_string(), self.next));
        }
        self.next += 1;
        self.next - 1
    }
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
    /// The impostor bank the negatives were drawn from, if any.
    pub(crate) bank: Option<&'a ImpostorBank>,
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
            bank: None,
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::model::password::tests::{bank_of, utt};

    /// Folds of the non-derived negatives, by (kind, label): other words first, then the bank.
    fn folds_by_label(cfg: &EnrollConfig, labelled: bool) -> Vec<(String, usize)> {
        let pos: Vec<_> = (0..7).map(|i| utt(1, 1, i)).collect();
        let mut other = Vec::new();
        let mut labels = Vec::new();
        for w in 2..5 {
            for i in 0..4 {
                other.push(utt(1, w, i));
                labels.push(format!("w{w}"));
            }
        }
        let bank = bank_of(10..13);
        let input = EnrollInput {
            positives: &pos,
            other_words: &other,
            other_word_labels: if labelled { &labels } else { &[] },
            bank: Some(&bank),
        };
        let mut rng = SplitMix64::new(1);
        let set = build_train_set(&input, cfg, &mut rng);
        let data = TrainData::new(set, &pos, cfg, &mut rng);
        let names: Vec<String> = labels
            .iter()
            .cloned()
            .chain(bank.entries.iter().map(|e| e.speaker.clone()))
            .collect();
        (0..data.len())
            .filter(|&i| {
                matches!(
                    data.set.items[i],
                    Item::Neg {
                        from_clip: None,
                        ..
                    }
                )
            })
            .zip(names)
            .map(|(i, n)| (n, data.fold_of(i)))
            .collect()
    }

    fn folds_of(v: &[(String, usize)], name: &str) -> Vec<usize> {
        let mut f: Vec<usize> = v.iter().filter(|x| x.0 == name).map(|x| x.1).collect();
        f.dedup();
        f
    }

    #[test]
    fn grouped_folds_hold_out_a_whole_word_and_a_whole_speaker() {
        let cfg = EnrollConfig::default();
        assert!(cfg.group_folds);
        let v = folds_by_label(&cfg, true);
        assert_eq!(v.len(), 12 + 9);
        for name in ["w2", "w3", "w4", "P10", "P11", "P12"] {
            assert_eq!(folds_of(&v, name).len(), 1, "{name}: {v:?}");
        }
        // Different words (and speakers) go to different folds while folds remain.
        let mut words: Vec<usize> = ["w2", "w3", "w4"]
            .iter()
            .map(|n| folds_of(&v, n)[0])
            .collect();
        words.dedup();
        assert_eq!(words.len(), 3, "{v:?}");
    }

    #[test]
    fn unlabelled_or_ungrouped_clips_are_held_out_one_by_one() {
        // Without labels the other words spread over the folds, the bank still by speaker.
        let v = folds_by_label(&EnrollConfig::default(), false);
        assert!(folds_of(&v, "w2").len() > 1, "{v:?}");
        assert_eq!(folds_of(&v, "P10").len(), 1, "{v:?}");
        // With grouping off, neither is grouped (the old folds).
        let cfg = EnrollConfig {
            group_folds: false,
            ..Default::default()
        };
        let v = folds_by_label(&cfg, true);
        assert!(folds_of(&v, "w2").len() > 1, "{v:?}");
        assert!(folds_of(&v, "P10").len() > 1, "{v:?}");
    }
}
