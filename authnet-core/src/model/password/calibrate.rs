//! Calibration on out-of-fold data: each gate's statistics from the genuine held-out scores,
//! the choice of optional gates, and the EER and target-FMR thresholds of the fused score. The
//! test data is never used.

use super::config::{EnrollConfig, FmrRule, DEFAULT_TARGET_FMR, GAUSSIAN_FMR_POSITION};
use super::decision::{fuse, VETO_RANK_OFFSET};
use super::gate::{Gate, GateStats, REGISTRY};
use super::train_set::NegSource;
use super::PasswordError;
use crate::metrics;
use crate::model::file::Thresholds;

/// Fewer held-out other-word scores than this and a gate is scaled against every negative.
const MIN_OTHER_WORDS: usize = 3;

/// Out-of-fold raw scores: `raw[gate][item]`, `None` for items never held out (jittered
/// copies, training-only negatives); `negative[item]` says where a negative came from, `None`
/// for the genuine items.
pub(crate) struct OutOfFold {
    pub(crate) raw: Vec<Vec<Option<f64>>>,
    pub(crate) negative: Vec<Option<NegSource>>,
}

/// The fused out-of-fold scores calibration placed the thresholds on, ranked as
/// [`Scores::ranked`](super::Scores::ranked) ranks a probe (vetoes last).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct OofScores {
    /// The user's held-out password clips.
    pub genuine: Vec<f64>,
    /// The held-out negatives and where each came from.
    pub impostor: Vec<(f64, NegSource)>,
}

impl OutOfFold {
    /// The genuine raw scores of gate `g`, in item order.
    pub(crate) fn genuine_of(&self, g: usize) -> Vec<f64> {
        self.raw[g]
            .iter()
            .zip(&self.negative)
            .filter(|(_, neg)| neg.is_none())
            .filter_map(|(s, _)| *s)
            .collect()
    }

    /// The raw scores of gate `g` on the negatives it is scaled against: the user's held-out
    /// other words when there are at least [`MIN_OTHER_WORDS`] (the negatives the word gates
    /// find hardest, and the ones that pass at test time), else every held-out negative.
    pub(crate) fn separation_negatives_of(&self, g: usize) -> Vec<f64> {
        let of = |keep: &dyn Fn(NegSource) -> bool| -> Vec<f64> {
            self.raw[g]
                .iter()
                .zip(&self.negative)
                .filter(|(_, neg)| neg.is_some_and(keep))
                .filter_map(|(s, _)| *s)
                .collect()
        };
        let own = of(&|n| n == NegSource::OtherWord);
        if own.len() >= MIN_OTHER_WORDS {
            own
        } else {
            of(&|_| true)
        }
    }

    /// The ranked fused scores (vetoes ranked last) of the `active` gates: `(genuine,
    /// impostor, impostor vetoed?)`.
    fn fused(
        &self,
        gates: &[Box<dyn Gate>],
        active: &[bool],
    ) -> (Vec<f64>, Vec<(f64, bool, NegSource)>) {
        let (mut g, mut i) = (Vec::new(), Vec::new());
        for item in 0..self.negative.len() {
            let Some(raws) = self
                .raw
                .iter()
                .map(|r| r[item])
                .collect::<Option<Vec<f64>>>()
            else {
                continue;
            };
            let (fused, veto) = fuse(
                gates
                    .iter()
                    .zip(raws)
                    .zip(active)
                    .filter(|(_, a)| **a)
                    .map(|((g, r), _)| (g.as_ref(), r)),
            );
            let ranked = if veto.is_some() {
                fused - VETO_RANK_OFFSET
            } else {
                fused
            };
            match self.negative[item] {
                None => g.push(ranked),
                Some(src) => i.push((ranked, veto.is_some(), src)),
            }
        }
        (g, i)
    }
}

/// What calibration decided.
pub(crate) struct Calibrated {
    /// Which gates the model keeps.
    pub(crate) active: Vec<bool>,
    /// The thresholds.
    pub(crate) thresholds: Thresholds,
    /// Out-of-fold EER of the fused score.
    pub(crate) eer: f64,
    /// Mean fused out-of-fold score of genuine clips.
    pub(crate) genuine_mean: f64,
    /// Mean fused out-of-fold score of impostor clips, vetoes excluded.
    pub(crate) impostor_mean: f64,
    /// The fused out-of-fold scores.
    pub(crate) oof: OofScores,
}

/// Calibrates every gate on its genuine out-of-fold scores (and, with
/// [`EnrollConfig::separation_scale`], those of the negatives it must refuse), drops each optional gate that does
/// not lower the out-of-fold EER, and sets the thresholds as `cfg` says
/// ([`EnrollConfig::target_fmr`], [`EnrollConfig::gap_midpoint`], [`EnrollConfig::fmr_rule`]).
pub(crate) fn calibrate(
    gates: &mut [Box<dyn Gate>],
    oof: &OutOfFold,
    cfg: &EnrollConfig,
) -> Result<Calibrated, PasswordError> {
    let target_fmr = cfg.target_fmr;
    for (k, g) in gates.iter_mut().enumerate() {
        let scale_by = if cfg.separation_scale {
            oof.separation_negatives_of(k)
        } else {
            Vec::new()
        };
        g.calibrate(&oof.genuine_of(k), &scale_by);
    }
    let eer_of = |active: &[bool]| -> Result<f64, PasswordError> {
        let (g, i) = oof.fused(gates, active);
        let i: Vec<f64> = i.into_iter().map(|(s, ..)| s).collect();
        Ok(metrics::eer(&g, &i)?.eer)
    };
    // Whether an optional gate helps is decided per user on the out-of-fold data.
    let mut active = vec![true; gates.len()];
    for (k, g) in gates.iter().enumerate() {
        let optional = REGISTRY.iter().any(|r| r.optional && r.name == g.name());
        if optional {
            let mut without = active.clone();
            without[k] = false;
            if eer_of(&without)? <= eer_of(&active)? {
                active = without;
            }
        }
    }
    let (g_f, i_f) = oof.fused(gates, &active);
    let i_scores: Vec<f64> = i_f.iter().map(|(s, ..)| *s).collect();
    let mut eer = metrics::eer(&g_f, &i_scores)?;
    if cfg.gap_midpoint {
        if let Some(mid) = gap_middle(&g_f, &i_scores) {
            eer.threshold = mid;
        }
    }
    // The empirical FMR threshold must not be laxer than the EER one.
    let empirical = metrics::threshold_at_fmr(&g_f, &i_scores, target_fmr)?.max(eer.threshold);
    // The Gaussian position was chosen for the default target; any other target is met
    // empirically.
    let fmr = match cfg.fmr_rule {
        FmrRule::Gaussian if target_fmr == DEFAULT_TARGET_FMR => {
            gaussian_threshold(&g_f, &i_f).unwrap_or(empirical)
        }
        FmrRule::Gaussian | FmrRule::Empirical => empirical,
    };
    let live_imp: Vec<f64> = i_f
        .iter()
        .filter(|(_, v, _)| !v)
        .map(|(s, ..)| *s)
        .collect();
    Ok(Calibrated {
        active,
        thresholds: Thresholds {
            eer: eer.threshold,
            fmr,
            target_fmr,
        },
        eer: eer.eer,
        genuine_mean: g_f.iter().sum::<f64>() / g_f.len().max(1) as f64,
        impostor_mean: live_imp.iter().sum::<f64>() / live_imp.len().max(1) as f64,
        oof: OofScores {
            impostor: i_f.iter().map(|(s, _, src)| (*s, *src)).collect(),
            genuine: g_f,
        },
    })
}

/// [`FmrRule::Gaussian`]: `mu_g - position * sigma_g * z`, where `z = (mu_g - mu_i) /
/// (sigma_g + sigma_i)` is how many standard deviations the point equally far from both
/// means lies from each. The impostors are the live (not vetoed) other-word clips of the
/// user, else the live bank clips. `None` (the caller falls back to the empirical rule)
/// without two of them, or when their mean is not below the genuine mean.
fn gaussian_threshold(genuine: &[f64], impostor: &[(f64, bool, NegSource)]) -> Option<f64> {
    let live = |want: fn(NegSource) -> bool| -> Vec<f64> {
        impostor
            .iter()
            .filter(|(_, vetoed, src)| !vetoed && want(*src))
            .map(|(s, ..)| *s)
            .collect()
    };
    let mut imp = live(|s| s == NegSource::OtherWord);
    if imp.len() < 2 {
        imp = live(|s| s != NegSource::Derived);
    }
    if imp.len() < 2 || genuine.is_empty() {
        return None;
    }
    let g = GateStats::from_scores(genuine, 1e-6);
    let i = GateStats::from_scores(&imp, 1e-6);
    let z = (g.mean - i.mean) / (g.std + i.std);
    (z > 0.0).then_some(g.mean - GAUSSIAN_FMR_POSITION * g.std * z)
}

/// The middle of the gap between the highest impostor and the lowest genuine score, when
/// every genuine score is above every impostor score.
fn gap_middle(genuine: &[f64], impostor: &[f64]) -> Option<f64> {
    let lo = genuine.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = impostor.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo.is_finite() && hi.is_finite() && hi < lo).then_some((hi + lo) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::{gap_middle, gaussian_threshold, NegSource};

    #[test]
    fn the_gaussian_threshold_sits_between_the_means_and_reads_only_live_negatives() {
        // Genuine mean 1, std 1; other words mean -5, std 1: z = 3, threshold 1 - 0.6 * 3.
        let g = [0.0, 2.0];
        let w = |s| (s, false, NegSource::OtherWord);
        let mut imp = vec![w(-6.0), w(-4.0), (-1000.0, true, NegSource::OtherWord)];
        imp.push((50.0, false, NegSource::Derived));
        let t = gaussian_threshold(&g, &imp).unwrap();
        assert!((t - (1.0 - 0.6 * 3.0)).abs() < 1e-9, "{t}");
        // Without two live other-word clips the bank stands in; without either, no rule.
        let bank = [
            (-6.0, false, NegSource::Bank),
            (-4.0, false, NegSource::Bank),
        ];
        let mut one = vec![w(-5.0)];
        one.extend(bank);
        assert!(gaussian_threshold(&g, &one).is_some());
        assert_eq!(gaussian_threshold(&g, &[w(-5.0)]), None);
        // Impostors scoring above the genuine clips: no Gaussian placement.
        assert_eq!(gaussian_threshold(&g, &[w(5.0), w(7.0)]), None);
    }

    #[test]
    fn gap_middle_only_when_separated() {
        assert_eq!(gap_middle(&[1.0, 2.0], &[-3.0, -1.0]), Some(0.0));
        assert_eq!(gap_middle(&[1.0, 2.0], &[1.0, -1.0]), None);
        assert_eq!(gap_middle(&[0.5], &[-3.0, 1.0]), None);
        assert_eq!(gap_middle(&[], &[-1.0]), None);
    }
}
