//! Fusion of the gates' scores and the decision on one probe.
//!
//! The [`super::gate::Role::Fused`] gates are standardised by their genuine distribution
//! (`z = (s - mean) / std`), averaged within their group and fused by `min` over groups, so an
//! attempt must look genuine on *every* group: a different person fails the identity group, the
//! same person saying another word fails the word group. A [`super::gate::Role::Veto`] gate
//! refuses the attempt whatever the fused score, and says why ([`Veto`]).

use serde::{Deserialize, Serialize};

use super::gate::{Gate, Role};

/// Why a gate refused an attempt regardless of the fused score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "veto", rename_all = "snake_case")]
pub enum Veto {
    /// The mouth did not move enough: a photo or a frozen frame.
    NoMotion {
        /// The probe's mouth motion energy.
        energy: f64,
        /// The user's floor.
        floor: f64,
    },
    /// The lips did not open and close enough (mesh feature layout): a photo moved in front
    /// of the camera.
    StillLips {
        /// Range of the probe's lip opening, in eye distances.
        range: f64,
        /// The user's floor.
        floor: f64,
    },
}

impl std::fmt::Display for Veto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoMotion { energy, floor } => {
                write!(
                    f,
                    "no mouth motion (energy {energy:.4} below floor {floor:.4})"
                )
            }
            Self::StillLips { range, floor } => {
                write!(
                    f,
                    "the lips did not open (opening range {range:.4} below floor {floor:.4})"
                )
            }
        }
    }
}

/// Offset that ranks a vetoed score below every live one on a ROC (calibration and
/// evaluation rank probes on one axis): far below any threshold, finite so it serialises, and
/// the vetoed scores keep their order among themselves. Decisions never use it; they read
/// [`Scores::veto`].
pub const VETO_RANK_OFFSET: f64 = 1000.0;

/// The scores of a probe: the paper's three raw scores, their fusion and the veto, if any.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Cosine of the probe's mean identity embedding with the template.
    pub identity: f64,
    /// Raw word-classifier output.
    pub word: f64,
    /// Mouth motion energy.
    pub liveness: f64,
    /// `min` over groups of the mean standardised score (no veto applied).
    pub fused: f64,
    /// The veto, when a veto gate refused the probe.
    pub veto: Option<Veto>,
}

impl Scores {
    /// The score on the ROC axis: [`Scores::fused`], minus [`VETO_RANK_OFFSET`] when vetoed.
    pub fn ranked(&self) -> f64 {
        if self.veto.is_some() {
            self.fused - VETO_RANK_OFFSET
        } else {
            self.fused
        }
    }

    /// Whether the scores pass `threshold` (a veto never passes).
    pub fn passes(&self, threshold: f64) -> bool {
        self.veto.is_none() && self.fused.is_finite() && self.fused >= threshold
    }
}

/// One gate's contribution to a decision.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GateScore {
    /// The gate.
    pub gate: &'static str,
    /// Its raw score.
    pub raw: f64,
    /// Its standardised score (fused gates) or its margin over the floor (veto gates).
    pub z: f64,
}

/// The outcome of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Verdict {
    /// The fused score reached the threshold and nothing vetoed.
    Accept,
    /// The fused score stayed below the threshold.
    Reject,
    /// A veto gate refused the probe.
    Vetoed(Veto),
}

/// What the model decided about one probe, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// The scores.
    pub scores: Scores,
    /// Every gate's raw and standardised score, in fusion order.
    pub gates: Vec<GateScore>,
    /// The threshold in force.
    pub threshold: f64,
    /// Accept, reject, or the veto.
    pub verdict: Verdict,
}

impl Decision {
    /// Decides `scores` against `threshold`.
    pub fn new(scores: Scores, gates: Vec<GateScore>, threshold: f64) -> Self {
        let verdict = match scores.veto {
            Some(v) => Verdict::Vetoed(v),
            None if scores.passes(threshold) => Verdict::Accept,
            None => Verdict::Reject,
        };
        Self {
            scores,
            gates,
            threshold,
            verdict,
        }
    }

    /// Whether the probe is accepted.
    pub fn accepted(&self) -> bool {
        self.verdict == Verdict::Accept
    }

    /// The veto, if any.
    pub fn veto(&self) -> Option<Veto> {
        match self.verdict {
            Verdict::Vetoed(v) => Some(v),
            _ => None,
        }
    }
}

/// Fuses the raw scores `raw[k]` of `gates[k]` (skipping those not `active`): `(fused, veto)`.
pub(crate) fn fuse<'g>(
    gates: impl IntoIterator<Item = (&'g dyn Gate, f64)>,
) -> (f64, Option<Veto>) {
    // Groups in order of first appearance: (name, sum of z, count).
    let mut groups: Vec<(&'static str, f64, usize)> = Vec::new();
    let mut veto = None;
    for (g, raw) in gates {
        match g.role() {
            Role::Fused(name) => {
                let z = g.z(raw);
                match groups.iter_mut().find(|(n, _, _)| *n == name) {
                    Some(e) => {
                        e.1 += z;
                        e.2 += 1;
                    }
                    None => groups.push((name, z, 1)),
                }
            }
            Role::Veto => veto = veto.or(g.veto(raw)),
        }
    }
    let fused = groups
        .iter()
        .map(|(_, s, n)| s / *n as f64)
        .reduce(f64::min)
        .unwrap_or(f64::NEG_INFINITY);
    (fused, veto)
}
