//! Biometric metrics over verification scores: the confusion-matrix family, ROC, AUC, EER and
//! operating thresholds.
//!
//! Conventions used throughout:
//!
//! - A **higher score means more genuine**. A probe is *accepted* iff `score >= threshold`.
//! - FMR (false match rate, = FAR) is the fraction of impostor scores accepted; FNMR (false
//!   non-match rate, = FRR) is the fraction of genuine scores rejected; TMR = 1 − FNMR.
//! - Scores are `f64`. Every function that takes whole score sets refuses an empty class
//!   ([`MetricsError::EmptyClass`]) and non-finite scores ([`MetricsError::NonFinite`]) instead
//!   of returning NaN: a NaN EER in a report is worse than an error.
//! - Ratios are computed from integer counts, so the hand-computable cases in the tests are exact.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Which side of the verification problem a score set belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Scores of the enrolled user saying their own password.
    Genuine,
    /// Scores of anything else (other people, other words, replayed frames).
    Impostor,
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Class::Genuine => "genuine",
            Class::Impostor => "impostor",
        })
    }
}

/// Why a metric could not be computed.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum MetricsError {
    /// A class has no scores, so every rate with it in the denominator is undefined.
    #[error("no {which} scores: the rate is undefined")]
    EmptyClass {
        /// The empty class.
        which: Class,
    },
    /// A confusion matrix with no counts at all (accuracy is undefined).
    #[error("the confusion matrix is empty")]
    NoScores,
    /// A score is NaN or infinite.
    #[error("{which} score #{index} is not finite ({value})")]
    NonFinite {
        /// The class the score belongs to.
        which: Class,
        /// Its position in the input slice.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// The threshold is NaN (infinite thresholds are allowed: they accept nothing / everything).
    #[error("the threshold is NaN")]
    NanThreshold,
    /// A target rate outside `[0, 1]` or not finite.
    #[error("target rate {target} is not in [0, 1]")]
    InvalidTarget {
        /// The refused target.
        target: f64,
    },
    /// Parallel slices (scores and labels) of different lengths.
    #[error("{scores} scores but {labels} labels")]
    LengthMismatch {
        /// Number of scores.
        scores: usize,
        /// Number of labels.
        labels: usize,
    },
}

/// Counts at one threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Confusion {
    /// Genuine accepted.
    pub tp: usize,
    /// Genuine rejected.
    pub fn_: usize,
    /// Impostors rejected.
    pub tn: usize,
    /// Impostors accepted.
    pub fp: usize,
}

/// `num / den`, or `err` when `den == 0`.
fn ratio(num: usize, den: usize, err: MetricsError) -> Result<f64, MetricsError> {
    if den == 0 {
        Err(err)
    } else {
        Ok(num as f64 / den as f64)
    }
}

impl Confusion {
    /// (tp + tn) / all. Errors with [`MetricsError::NoScores`] when there are no counts.
    pub fn accuracy(&self) -> Result<f64, MetricsError> {
        ratio(
            self.tp + self.tn,
            self.tp + self.fn_ + self.tn + self.fp,
            MetricsError::NoScores,
        )
    }

    /// tp / (tp + fn) = TMR = 1 − FNMR. Errors when there are no genuine scores.
    pub fn sensitivity(&self) -> Result<f64, MetricsError> {
        ratio(self.tp, self.tp + self.fn_, Self::no(Class::Genuine))
    }

    /// tn / (tn + fp) = 1 − FMR. Errors when there are no impostor scores.
    pub fn specificity(&self) -> Result<f64, MetricsError> {
        ratio(self.tn, self.tn + self.fp, Self::no(Class::Impostor))
    }

    /// fp / (fp + tn): false acceptance rate = FMR. Errors when there are no impostor scores.
    pub fn far(&self) -> Result<f64, MetricsError> {
        ratio(self.fp, self.fp + self.tn, Self::no(Class::Impostor))
    }

    /// fn / (tp + fn): false rejection rate = FNMR. Errors when there are no genuine scores.
    pub fn frr(&self) -> Result<f64, MetricsError> {
        ratio(self.fn_, self.tp + self.fn_, Self::no(Class::Genuine))
    }

    fn no(which: Class) -> MetricsError {
        MetricsError::EmptyClass { which }
    }
}

/// Counts at `threshold` (accept iff `score >= threshold`).
///
/// Total on any input: a NaN score compares false and so is counted as rejected; use the
/// `Result`-returning functions below when the inputs are not known to be finite.
pub fn confusion(genuine: &[f64], impostor: &[f64], threshold: f64) -> Confusion {
    let tp = genuine.iter().filter(|&&s| s >= threshold).count();
    let fp = impostor.iter().filter(|&&s| s >= threshold).count();
    Confusion {
        tp,
        fn_: genuine.len() - tp,
        tn: impostor.len() - fp,
        fp,
    }
}

/// Checks one class: non-empty, every score finite.
fn check_class(scores: &[f64], which: Class) -> Result<(), MetricsError> {
    if scores.is_empty() {
        return Err(MetricsError::EmptyClass { which });
    }
    match scores.iter().position(|s| !s.is_finite()) {
        Some(index) => Err(MetricsError::NonFinite {
            which,
            index,
            value: scores[index],
        }),
        None => Ok(()),
    }
}

fn check(genuine: &[f64], impostor: &[f64]) -> Result<(), MetricsError> {
    check_class(genuine, Class::Genuine)?;
    check_class(impostor, Class::Impostor)
}

/// Ascending copy; the inputs have been checked finite, so `total_cmp` is the numeric order.
fn sorted(scores: &[f64]) -> Vec<f64> {
    let mut v = scores.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

/// Number of entries of ascending `v` that are `>= t` (i.e. accepted at threshold `t`).
fn count_at_least(v: &[f64], t: f64) -> usize {
    v.len() - v.partition_point(|&s| s < t)
}

/// A finite value strictly above `s`, standing in for "just above `s`".
///
/// `f64::next_up` would be the exact tool but needs Rust 1.86 and the workspace's MSRV is 1.85;
/// the margin `max(1e-9, |s|·1e-9)` is far below any meaningful score difference and keeps the
/// value printable.
pub fn just_above(s: f64) -> f64 {
    s + (s.abs() * 1e-9).max(1e-9)
}

/// Splits parallel `scores`/`is_genuine` slices into (genuine, impostor) score sets.
pub fn split_scores(
    scores: &[f64],
    is_genuine: &[bool],
) -> Result<(Vec<f64>, Vec<f64>), MetricsError> {
    if scores.len() != is_genuine.len() {
        return Err(MetricsError::LengthMismatch {
            scores: scores.len(),
            labels: is_genuine.len(),
        });
    }
    let mut genuine = Vec::new();
    let mut impostor = Vec::new();
    for (&s, &g) in scores.iter().zip(is_genuine) {
        if g {
            genuine.push(s);
        } else {
            impostor.push(s);
        }
    }
    Ok((genuine, impostor))
}

/// One operating point of the ROC curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RocPoint {
    /// Accept iff `score >= threshold`. The first point has `+inf` (accept nothing); serde_json
    /// writes that as `null`.
    pub threshold: f64,
    /// False match rate (impostors accepted / impostors).
    pub fmr: f64,
    /// True match rate (genuine accepted / genuine).
    pub tmr: f64,
}

/// The empirical ROC curve: one point per distinct observed score (tied scores, genuine or
/// impostor, form a single point), in decreasing threshold order, from `(0, 0)` at `+inf` to
/// `(1, 1)` at the lowest score. Both `fmr` and `tmr` are non-decreasing along the vector.
pub fn roc(genuine: &[f64], impostor: &[f64]) -> Result<Vec<RocPoint>, MetricsError> {
    check(genuine, impostor)?;
    let g = sorted(genuine);
    let i = sorted(impostor);
    let mut all: Vec<f64> = g.iter().chain(&i).copied().collect();
    all.sort_by(|a, b| b.total_cmp(a));
    all.dedup();
    let (ng, ni) = (g.len() as f64, i.len() as f64);
    let mut out = Vec::with_capacity(all.len() + 1);
    out.push(RocPoint {
        threshold: f64::INFINITY,
        fmr: 0.0,
        tmr: 0.0,
    });
    out.extend(all.into_iter().map(|t| RocPoint {
        threshold: t,
        fmr: count_at_least(&i, t) as f64 / ni,
        tmr: count_at_least(&g, t) as f64 / ng,
    }));
    Ok(out)
}

/// Area under the ROC curve as the Mann–Whitney statistic: the probability that a random
/// genuine score is above a random impostor score, ties counting one half. All-equal scores
/// give exactly 0.5. Computed from integer (doubled) counts, O((G + I) log I).
pub fn auc(genuine: &[f64], impostor: &[f64]) -> Result<f64, MetricsError> {
    check(genuine, impostor)?;
    let i = sorted(impostor);
    // Twice the Mann–Whitney U, so that ties (worth 1/2) stay integral.
    let twice_u: u128 = genuine
        .iter()
        .map(|&s| {
            let below = i.partition_point(|&x| x < s);
            let not_above = i.partition_point(|&x| x <= s);
            (2 * below + (not_above - below)) as u128
        })
        .sum();
    let pairs = 2 * genuine.len() as u128 * i.len() as u128;
    Ok(twice_u as f64 / pairs as f64)
}

/// The equal error rate and where it happens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Eer {
    /// The rate at which FMR = FNMR.
    pub eer: f64,
    /// The (interpolated) threshold at the crossing.
    pub threshold: f64,
}

/// Equal error rate, linearly interpolated between the two adjacent ROC points where
/// `FMR − FNMR` changes sign.
///
/// Along [`roc`], `d = FMR − FNMR` is strictly increasing (each point adds at least one accepted
/// score) and runs from −1 at `+inf` to +1 at the lowest score, so the crossing is unique. If a
/// point has `d == 0` exactly, that point's rate and threshold are returned. Otherwise, with
/// `α = −d₀ / (d₁ − d₀)` between the points before and after the crossing, the EER is
/// `FMR₀ + α(FMR₁ − FMR₀)` (equal to the interpolated FNMR) and the threshold is interpolated with
/// the same `α`; when the crossing lies between `+inf` and the highest score, [`just_above`] the
/// highest score stands in for `+inf`. The interpolated threshold is a nominal value: the
/// empirical rates *at* it are those of the upper point.
pub fn eer(genuine: &[f64], impostor: &[f64]) -> Result<Eer, MetricsError> {
    let points = roc(genuine, impostor)?;
    let d = |p: &RocPoint| p.fmr - (1.0 - p.tmr);
    let mut prev = points[0];
    for p in points.iter().skip(1) {
        let (d0, d1) = (d(&prev), d(p));
        if d1 == 0.0 {
            return Ok(Eer {
                eer: p.fmr,
                threshold: p.threshold,
            });
        }
        if d1 > 0.0 {
            let alpha = -d0 / (d1 - d0);
            let upper = if prev.threshold.is_finite() {
                prev.threshold
            } else {
                just_above(p.threshold)
            };
            return Ok(Eer {
                eer: prev.fmr + alpha * (p.fmr - prev.fmr),
                threshold: upper + alpha * (p.threshold - upper),
            });
        }
        prev = *p;
    }
    // Unreachable for checked, non-empty inputs: the last ROC point is (1, 1), where d = 1.
    Err(MetricsError::EmptyClass {
        which: Class::Impostor,
    })
}

/// Largest `k` with `k / n <= target`, computed so that float rounding of `target · n` cannot
/// shift it by one.
fn allowed_count(target: f64, n: usize) -> usize {
    let nf = n as f64;
    let mut k = ((target * nf).floor().max(0.0) as usize).min(n);
    while k > 0 && k as f64 / nf > target {
        k -= 1;
    }
    while k < n && (k + 1) as f64 / nf <= target {
        k += 1;
    }
    k
}

/// The lowest threshold whose empirical FMR is `<= target_fmr` (accept iff `score >= t`).
///
/// With impostors sorted high to low, at most `k = ⌊target · I⌋` of them may be accepted, so the
/// `(k+1)`-th highest impostor score `s` must be rejected and the answer is the lowest value
/// strictly above `s`: the smaller of [`just_above`]`(s)` and the next observed (genuine or
/// impostor) score above `s`. When every impostor may be accepted (`target >= 1` in effect), the
/// answer is the lowest observed score, which accepts everything.
pub fn threshold_at_fmr(
    genuine: &[f64],
    impostor: &[f64],
    target_fmr: f64,
) -> Result<f64, MetricsError> {
    check(genuine, impostor)?;
    if !(0.0..=1.0).contains(&target_fmr) {
        return Err(MetricsError::InvalidTarget { target: target_fmr });
    }
    let imp_desc = {
        let mut v = sorted(impostor);
        v.reverse();
        v
    };
    let k = allowed_count(target_fmr, imp_desc.len());
    let all = sorted(&[genuine, impostor].concat());
    let Some(&s) = imp_desc.get(k) else {
        // k == I: everything may be accepted. `all` is non-empty (checked above).
        return Ok(all.first().copied().unwrap_or(f64::NEG_INFINITY));
    };
    let above = just_above(s);
    let next_observed = all.get(all.partition_point(|&x| x <= s)).copied();
    Ok(next_observed.map_or(above, |n| n.min(above)))
}

/// `(FMR, FNMR)` at `threshold`.
pub fn fmr_fnmr_at(
    genuine: &[f64],
    impostor: &[f64],
    threshold: f64,
) -> Result<(f64, f64), MetricsError> {
    check(genuine, impostor)?;
    if threshold.is_nan() {
        return Err(MetricsError::NanThreshold);
    }
    let c = confusion(genuine, impostor, threshold);
    Ok((c.far()?, c.frr()?))
}

/// The kind of impostor attempt, for the per-kind specificity breakdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImpostorKind {
    /// The enrolled user mouthing a different word (a wrong password).
    SamePersonDifferentWord,
    /// Someone else mouthing the enrolled word (a stolen password).
    DifferentPersonSameWord,
    /// Someone else mouthing something else.
    DifferentPersonDifferentWord,
    /// A still frame of the enrolled user held for the utterance length (a photo attack).
    FrozenFrame,
}

impl ImpostorKind {
    /// Every kind, in declaration order.
    pub const ALL: [ImpostorKind; 4] = [
        ImpostorKind::SamePersonDifferentWord,
        ImpostorKind::DifferentPersonSameWord,
        ImpostorKind::DifferentPersonDifferentWord,
        ImpostorKind::FrozenFrame,
    ];
}

/// Specificity (impostors rejected / impostors) per impostor kind; `None` when the set had no
/// impostor of that kind. Serializes with one snake_case key per kind, `null` when absent.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct SpecificityByKind {
    /// [`ImpostorKind::SamePersonDifferentWord`].
    pub same_person_different_word: Option<f64>,
    /// [`ImpostorKind::DifferentPersonSameWord`].
    pub different_person_same_word: Option<f64>,
    /// [`ImpostorKind::DifferentPersonDifferentWord`].
    pub different_person_different_word: Option<f64>,
    /// [`ImpostorKind::FrozenFrame`].
    pub frozen_frame: Option<f64>,
}

impl SpecificityByKind {
    /// The specificity for `kind`.
    pub fn get(&self, kind: ImpostorKind) -> Option<f64> {
        match kind {
            ImpostorKind::SamePersonDifferentWord => self.same_person_different_word,
            ImpostorKind::DifferentPersonSameWord => self.different_person_same_word,
            ImpostorKind::DifferentPersonDifferentWord => self.different_person_different_word,
            ImpostorKind::FrozenFrame => self.frozen_frame,
        }
    }

    fn slot(&mut self, kind: ImpostorKind) -> &mut Option<f64> {
        match kind {
            ImpostorKind::SamePersonDifferentWord => &mut self.same_person_different_word,
            ImpostorKind::DifferentPersonSameWord => &mut self.different_person_same_word,
            ImpostorKind::DifferentPersonDifferentWord => &mut self.different_person_different_word,
            ImpostorKind::FrozenFrame => &mut self.frozen_frame,
        }
    }
}

/// Specificity at `threshold` for each impostor kind present in `impostors`.
///
/// Refuses a non-finite score or a NaN threshold. An empty slice gives all-`None`.
pub fn specificity_by_kind(
    impostors: &[(f64, ImpostorKind)],
    threshold: f64,
) -> Result<SpecificityByKind, MetricsError> {
    if threshold.is_nan() {
        return Err(MetricsError::NanThreshold);
    }
    // kind -> (rejected, total)
    let mut counts: BTreeMap<ImpostorKind, (usize, usize)> = BTreeMap::new();
    for (index, &(s, kind)) in impostors.iter().enumerate() {
        if !s.is_finite() {
            return Err(MetricsError::NonFinite {
                which: Class::Impostor,
                index,
                value: s,
            });
        }
        let c = counts.entry(kind).or_default();
        c.0 += usize::from(s < threshold);
        c.1 += 1;
    }
    let mut out = SpecificityByKind::default();
    for (kind, (rejected, total)) in counts {
        // total >= 1: an entry exists only once a score of that kind was counted.
        *out.slot(kind) = Some(rejected as f64 / total as f64);
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const G: [f64; 3] = [0.9, 0.8, 0.4];
    const I: [f64; 4] = [0.7, 0.3, 0.2, 0.1];

    fn pt(threshold: f64, fmr: f64, tmr: f64) -> RocPoint {
        RocPoint {
            threshold,
            fmr,
            tmr,
        }
    }

    #[test]
    fn small_case_roc_points() {
        let r = roc(&G, &I).unwrap();
        assert_eq!(
            r,
            vec![
                pt(f64::INFINITY, 0.0, 0.0),
                pt(0.9, 0.0, 1.0 / 3.0),
                pt(0.8, 0.0, 2.0 / 3.0),
                pt(0.7, 0.25, 2.0 / 3.0),
                pt(0.4, 0.25, 1.0),
                pt(0.3, 0.5, 1.0),
                pt(0.2, 0.75, 1.0),
                pt(0.1, 1.0, 1.0),
            ]
        );
    }

    #[test]
    fn small_case_auc_is_eleven_twelfths() {
        // 0.9 and 0.8 beat all 4 impostors, 0.4 beats 3: 11 of 12 pairs.
        assert_eq!(auc(&G, &I).unwrap(), 11.0 / 12.0);
        // The trapezoidal area under the ROC points agrees.
        let r = roc(&G, &I).unwrap();
        let trap: f64 = r
            .windows(2)
            .map(|w| (w[1].fmr - w[0].fmr) * (w[1].tmr + w[0].tmr) / 2.0)
            .sum();
        assert!((trap - 11.0 / 12.0).abs() < 1e-15);
    }

    #[test]
    fn small_case_eer_interpolates_between_0_7_and_0_4() {
        // At 0.7: FMR 1/4, FNMR 1/3 (d = -1/12); at 0.4: FMR 1/4, FNMR 0 (d = 1/4).
        // alpha = (1/12) / (1/12 + 1/4) = 1/4 -> EER 1/4, threshold 0.7 - 0.3/4 = 0.625.
        let e = eer(&G, &I).unwrap();
        assert!((e.eer - 0.25).abs() < 1e-15, "{e:?}");
        assert!((e.threshold - 0.625).abs() < 1e-15, "{e:?}");
    }

    #[test]
    fn small_case_confusion_and_rates() {
        let c = confusion(&G, &I, 0.5);
        assert_eq!(
            c,
            Confusion {
                tp: 2,
                fn_: 1,
                tn: 3,
                fp: 1
            }
        );
        assert_eq!(c.accuracy().unwrap(), 5.0 / 7.0);
        assert_eq!(c.sensitivity().unwrap(), 2.0 / 3.0);
        assert_eq!(c.specificity().unwrap(), 0.75);
        assert_eq!(c.far().unwrap(), 0.25);
        assert_eq!(c.frr().unwrap(), 1.0 / 3.0);
        // Accept iff score >= threshold: a score equal to the threshold is accepted.
        let at = confusion(&G, &I, 0.7);
        assert_eq!((at.tp, at.fp), (2, 1));
        assert_eq!(fmr_fnmr_at(&G, &I, 0.7).unwrap(), (0.25, 1.0 / 3.0));
        assert_eq!(fmr_fnmr_at(&G, &I, f64::INFINITY).unwrap(), (0.0, 1.0));
        assert_eq!(fmr_fnmr_at(&G, &I, f64::NEG_INFINITY).unwrap(), (1.0, 0.0));
    }

    #[test]
    fn ties_group_into_one_roc_point_and_count_half_in_auc() {
        let g = [0.5, 0.5, 0.9];
        let i = [0.5, 0.1];
        // Pairs: 0.9 beats both (2); each 0.5 ties 0.5 (1/2) and beats 0.1 (1): 2 + 2*1.5 = 5 of 6.
        assert_eq!(auc(&g, &i).unwrap(), 5.0 / 6.0);
        let r = roc(&g, &i).unwrap();
        assert_eq!(
            r,
            vec![
                pt(f64::INFINITY, 0.0, 0.0),
                pt(0.9, 0.0, 1.0 / 3.0),
                pt(0.5, 0.5, 1.0),
                pt(0.1, 1.0, 1.0),
            ]
        );
    }

    #[test]
    fn all_equal_scores_give_half() {
        let g = [0.3; 5];
        let i = [0.3; 7];
        assert_eq!(auc(&g, &i).unwrap(), 0.5);
        let e = eer(&g, &i).unwrap();
        assert_eq!(e.eer, 0.5);
        // Crossing between +inf (stood in for by just_above(0.3)) and 0.3, half way.
        let up = just_above(0.3);
        assert_eq!(e.threshold, up + 0.5 * (0.3 - up));
        assert!(e.threshold > 0.3 && e.threshold < up);
    }

    #[test]
    fn perfect_and_inverted_separation() {
        let g = [0.8, 0.9];
        let i = [0.1, 0.2];
        assert_eq!(auc(&g, &i).unwrap(), 1.0);
        assert_eq!(auc(&i, &g).unwrap(), 0.0);
        // Crossing at the 0.8 point exactly: FMR 0, FNMR 0.
        assert_eq!(
            eer(&g, &i).unwrap(),
            Eer {
                eer: 0.0,
                threshold: 0.8
            }
        );
        // Inverted: at 0.9 FMR 1/2, FNMR 1 (d = -1/2); at 0.8 FMR 1, FNMR 1 (d = 0) -> exactly 1.
        assert_eq!(eer(&i, &g).unwrap().eer, 1.0);
    }

    #[test]
    fn empty_class_is_an_error_not_nan() {
        let genuine_missing = MetricsError::EmptyClass {
            which: Class::Genuine,
        };
        let impostor_missing = MetricsError::EmptyClass {
            which: Class::Impostor,
        };
        assert_eq!(auc(&[], &I), Err(genuine_missing));
        assert_eq!(auc(&G, &[]), Err(impostor_missing));
        assert_eq!(eer(&[], &I), Err(genuine_missing));
        assert_eq!(roc(&G, &[]), Err(impostor_missing));
        assert_eq!(threshold_at_fmr(&G, &[], 0.1), Err(impostor_missing));
        assert_eq!(fmr_fnmr_at(&[], &I, 0.5), Err(genuine_missing));
        let c = confusion(&[], &I, 0.5);
        assert_eq!(c.sensitivity(), Err(genuine_missing));
        assert_eq!(c.frr(), Err(genuine_missing));
        assert_eq!(c.far().unwrap(), 0.25);
        let c = confusion(&G, &[], 0.5);
        assert_eq!(c.specificity(), Err(impostor_missing));
        assert_eq!(c.far(), Err(impostor_missing));
        assert_eq!(Confusion::default().accuracy(), Err(MetricsError::NoScores));
    }

    #[test]
    fn non_finite_scores_are_refused() {
        let bad = [0.5, f64::NAN];
        assert!(matches!(
            auc(&bad, &I),
            Err(MetricsError::NonFinite {
                which: Class::Genuine,
                index: 1,
                ..
            })
        ));
        assert_eq!(
            eer(&G, &[0.1, f64::INFINITY]),
            Err(MetricsError::NonFinite {
                which: Class::Impostor,
                index: 1,
                value: f64::INFINITY
            })
        );
        assert!(roc(&[f64::NEG_INFINITY], &I).is_err());
        assert!(threshold_at_fmr(&bad, &I, 0.1).is_err());
        assert_eq!(
            fmr_fnmr_at(&G, &I, f64::NAN),
            Err(MetricsError::NanThreshold)
        );
    }

    #[test]
    fn threshold_at_fmr_picks_lowest_admissible() {
        // Impostors high to low: 0.7 0.3 0.2 0.1.
        // target 0: 0.7 must be rejected; the next observed score above 0.7 is genuine 0.8,
        // but just_above(0.7) is lower.
        assert_eq!(threshold_at_fmr(&G, &I, 0.0).unwrap(), just_above(0.7));
        // target 0.25: one impostor allowed, 0.3 must be rejected; next observed above is 0.4.
        assert_eq!(threshold_at_fmr(&G, &I, 0.25).unwrap(), just_above(0.3));
        assert_eq!(threshold_at_fmr(&G, &I, 0.49).unwrap(), just_above(0.3));
        assert_eq!(threshold_at_fmr(&G, &I, 0.5).unwrap(), just_above(0.2));
        // Everything allowed: the lowest observed score.
        assert_eq!(threshold_at_fmr(&G, &I, 1.0).unwrap(), 0.1);
        // The returned thresholds meet the target empirically.
        for target in [0.0, 0.1, 0.25, 0.3, 0.5, 0.75, 0.99, 1.0] {
            let t = threshold_at_fmr(&G, &I, target).unwrap();
            assert!(fmr_fnmr_at(&G, &I, t).unwrap().0 <= target, "{target}");
        }
        // A next observed score closer than the margin wins over just_above.
        let g = [0.7 + 1e-12];
        assert_eq!(threshold_at_fmr(&g, &[0.7], 0.0).unwrap(), 0.7 + 1e-12);
        // Ties at the boundary are rejected together.
        assert_eq!(
            threshold_at_fmr(&G, &[0.6, 0.6, 0.1, 0.0], 0.25).unwrap(),
            just_above(0.6)
        );
        assert_eq!(
            threshold_at_fmr(&G, &I, 1.5),
            Err(MetricsError::InvalidTarget { target: 1.5 })
        );
        assert!(threshold_at_fmr(&G, &I, f64::NAN).is_err());
    }

    #[test]
    fn allowed_count_is_exact_under_rounding() {
        // 0.29 * 100 = 28.999999999999996 in f64; 29/100 <= 0.29 must still be allowed.
        assert_eq!(allowed_count(0.29, 100), 29);
        assert_eq!(allowed_count(0.3, 10), 3);
        assert_eq!(allowed_count(0.0, 10), 0);
        assert_eq!(allowed_count(1.0, 10), 10);
    }

    #[test]
    fn just_above_is_strictly_above() {
        assert_eq!(just_above(0.0), 1e-9);
        assert_eq!(just_above(-2.0), -2.0 + 2e-9);
        assert!(just_above(1e12) > 1e12);
    }

    #[test]
    fn split_scores_checks_lengths() {
        assert_eq!(
            split_scores(&[0.1, 0.9, 0.5], &[false, true, true]).unwrap(),
            (vec![0.9, 0.5], vec![0.1])
        );
        assert_eq!(
            split_scores(&[0.1], &[]),
            Err(MetricsError::LengthMismatch {
                scores: 1,
                labels: 0
            })
        );
    }

    #[test]
    fn specificity_by_kind_counts_each_kind_and_serializes_snake_case() {
        use ImpostorKind::*;
        let imp = [
            (0.1, SamePersonDifferentWord),
            (0.9, SamePersonDifferentWord),
            (0.2, DifferentPersonSameWord),
            (0.6, DifferentPersonDifferentWord),
            (0.5, DifferentPersonDifferentWord),
            (0.4, DifferentPersonDifferentWord),
        ];
        let s = specificity_by_kind(&imp, 0.5).unwrap();
        assert_eq!(s.get(SamePersonDifferentWord), Some(0.5));
        assert_eq!(s.get(DifferentPersonSameWord), Some(1.0));
        assert_eq!(s.get(DifferentPersonDifferentWord), Some(1.0 / 3.0));
        assert_eq!(s.get(FrozenFrame), None);
        let json = serde_json::to_value(s).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "same_person_different_word": 0.5,
                "different_person_same_word": 1.0,
                "different_person_different_word": 1.0 / 3.0,
                "frozen_frame": null,
            })
        );
        assert_eq!(
            serde_json::to_string(&DifferentPersonSameWord).unwrap(),
            "\"different_person_same_word\""
        );
        assert!(matches!(
            specificity_by_kind(&[(0.2, FrozenFrame), (f64::NAN, FrozenFrame)], 0.5),
            Err(MetricsError::NonFinite {
                which: Class::Impostor,
                index: 1,
                ..
            })
        ));
        assert_eq!(
            specificity_by_kind(&imp, f64::NAN),
            Err(MetricsError::NanThreshold)
        );
        assert_eq!(
            specificity_by_kind(&[], 0.5).unwrap(),
            SpecificityByKind::default()
        );
    }
}
