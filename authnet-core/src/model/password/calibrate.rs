//! Calibration on out-of-fold data: each gate's statistics from the genuine held-out scores,
//! the choice of optional gates, and the EER and target-FMR thresholds of the fused score. The
//! test data is never used.

use super::decision::{fuse, VETO_RANK_OFFSET};
use super::gate::{Gate, REGISTRY};
use super::train_set::NegSource;
use super::PasswordError;
use crate::metrics;
use crate::model::file::Thresholds;

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

/// Calibrates every gate on its genuine out-of-fold scores, drops each optional gate that does
/// not lower the out-of-fold EER, and sets the thresholds. With `gap_midpoint`, when the
/// out-of-fold genuine and impostor scores do not overlap, the EER threshold is the middle of
/// the gap between them instead of the lowest genuine score.
pub(crate) fn calibrate(
    gates: &mut [Box<dyn Gate>],
    oof: &OutOfFold,
    target_fmr: f64,
    gap_midpoint: bool,
) -> Result<Calibrated, PasswordError> {
    for (k, g) in gates.iter_mut().enumerate() {
        g.calibrate(&oof.genuine_of(k));
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
    if gap_midpoint {
        if let Some(mid) = gap_middle(&g_f, &i_scores) {
            eer.threshold = mid;
        }
    }
    let fmr_t = metrics::threshold_at_fmr(&g_f, &i_scores, target_fmr)?;
    let live_imp: Vec<f64> = i_f
        .iter()
        .filter(|(_, v, _)| !v)
        .map(|(s, ..)| *s)
        .collect();
    Ok(Calibrated {
        active,
        // The FMR threshold must not be laxer than the EER one.
        thresholds: Thresholds {
            eer: eer.threshold,
            fmr: fmr_t.max(eer.threshold),
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

/// The middle of the gap between the highest impostor and the lowest genuine score, when
/// every genuine score is above every impostor score.
fn gap_middle(genuine: &[f64], impostor: &[f64]) -> Option<f64> {
    let lo = genuine.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = impostor.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo.is_finite() && hi.is_finite() && hi < lo).then_some((hi + lo) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::gap_middle;

    #[test]
    fn gap_middle_only_when_separated() {
        assert_eq!(gap_middle(&[1.0, 2.0], &[-3.0, -1.0]), Some(0.0));
        assert_eq!(gap_middle(&[1.0, 2.0], &[1.0, -1.0]), None);
        assert_eq!(gap_middle(&[0.5], &[-3.0, 1.0]), None);
        assert_eq!(gap_middle(&[], &[-1.0]), None);
    }
}
