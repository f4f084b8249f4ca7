//! Sequence assembly: an utterance of any length becomes exactly `T` timesteps.
//!
//! MIRACL-VC1 word utterances have 4–22 frames at 15 fps; the paper feeds 20 timesteps and pads
//! short clips with white frames. A white frame is an input the backbone never saw during
//! training, and padding at the end makes the *position* of the last real frame depend on the
//! speaking rate, so the default here is [`PadPolicy::Interpolate`]: linear resampling in time,
//! for both longer and shorter clips. The alternatives stay selectable so the evaluation can
//! compare them (`authnet-eval run --pad ...`).
//!
//! Evidence (seed 0, `authnet-eval run`; mean enrolment-side cross-validation EER, which is what
//! the choice may use, then the test EER for reference):
//!
//! | policy | mouth crops, 35 targets | faces, 7 targets |
//! |---|---|---|
//! | interpolate | 0.0007 (test 0.028) | 0.075 (test 0.051) |
//! | pad_edge | 0.0023 (test 0.038) | 0.072 (test 0.067) |
//! | pad_zero (the paper's white frames) | 0.0015 (test 0.048) | 0.086 (test 0.048) |

use serde::{Deserialize, Serialize};

/// Paper default: 20 timesteps.
pub const DEFAULT_TIMESTEPS: usize = 20;

/// How clips whose length differs from `T` are brought to `T`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PadPolicy {
    /// Linear interpolation in time to exactly `T` steps (longer and shorter clips alike).
    #[default]
    Interpolate,
    /// Longer clips are resampled; shorter ones repeat their last frame.
    PadEdge,
    /// Longer clips are resampled; shorter ones are padded with zero vectors (the closest
    /// feature-space analogue of the paper's white frames).
    PadZero,
}

impl std::str::FromStr for PadPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "interpolate" => Ok(Self::Interpolate),
            "pad_edge" | "edge" => Ok(Self::PadEdge),
            "pad_zero" | "zero" => Ok(Self::PadZero),
            other => Err(format!(
                "unknown pad policy {other:?} (expected interpolate, pad_edge or pad_zero)"
            )),
        }
    }
}

/// Linear resampling of `frames` (each of equal length) to `t` steps.
///
/// Output: `t` vectors of the input dimension. An empty input gives an empty output.
pub fn resample(frames: &[Vec<f32>], t: usize) -> Vec<Vec<f32>> {
    let n = frames.len();
    if n == 0 || t == 0 {
        return Vec::new();
    }
    if n == 1 {
        return vec![frames[0].clone(); t];
    }
    (0..t)
        .map(|i| {
            let pos = if t == 1 {
                0.0
            } else {
                i as f32 * (n - 1) as f32 / (t - 1) as f32
            };
            let lo = pos.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            let w = pos - lo as f32;
            frames[lo]
                .iter()
                .zip(&frames[hi])
                .map(|(a, b)| a * (1.0 - w) + b * w)
                .collect()
        })
        .collect()
}

/// Brings `frames` to exactly `t` timesteps under `policy`.
pub fn assemble(frames: &[Vec<f32>], t: usize, policy: PadPolicy) -> Vec<Vec<f32>> {
    let n = frames.len();
    if n == 0 || n >= t || policy == PadPolicy::Interpolate {
        return resample(frames, t);
    }
    let mut out: Vec<Vec<f32>> = frames.to_vec();
    let dim = frames[0].len();
    while out.len() < t {
        let pad = match policy {
            PadPolicy::PadEdge => frames[n - 1].clone(),
            _ => vec![0.0; dim],
        };
        out.push(pad);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(vals: &[f32]) -> Vec<Vec<f32>> {
        vals.iter().map(|v| vec![*v, -*v]).collect()
    }

    #[test]
    fn resample_keeps_endpoints_and_is_linear() {
        let out = resample(&seq(&[0.0, 10.0]), 5);
        let firsts: Vec<f32> = out.iter().map(|v| v[0]).collect();
        assert_eq!(firsts, vec![0.0, 2.5, 5.0, 7.5, 10.0]);
        assert_eq!(out[4][1], -10.0);
    }

    #[test]
    fn longer_clips_are_downsampled() {
        let out = assemble(
            &seq(&(0..40).map(|x| x as f32).collect::<Vec<_>>()),
            20,
            PadPolicy::PadEdge,
        );
        assert_eq!(out.len(), 20);
        assert_eq!(out[0][0], 0.0);
        assert_eq!(out[19][0], 39.0);
    }

    #[test]
    fn short_clips_pad_by_policy() {
        let s = seq(&[1.0, 2.0, 3.0]);
        let e = assemble(&s, 6, PadPolicy::PadEdge);
        assert_eq!(
            e.iter().map(|v| v[0]).collect::<Vec<_>>(),
            vec![1.0, 2.0, 3.0, 3.0, 3.0, 3.0]
        );
        let z = assemble(&s, 5, PadPolicy::PadZero);
        assert_eq!(
            z.iter().map(|v| v[0]).collect::<Vec<_>>(),
            vec![1.0, 2.0, 3.0, 0.0, 0.0]
        );
        let i = assemble(&s, 5, PadPolicy::Interpolate);
        assert_eq!(
            i.iter().map(|v| v[0]).collect::<Vec<_>>(),
            vec![1.0, 1.5, 2.0, 2.5, 3.0]
        );
    }

    #[test]
    fn degenerate_inputs() {
        assert!(assemble(&[], 20, PadPolicy::Interpolate).is_empty());
        let one = assemble(&seq(&[4.0]), 3, PadPolicy::Interpolate);
        assert_eq!(one.len(), 3);
        assert!(one.iter().all(|v| v[0] == 4.0));
        assert_eq!("pad_zero".parse::<PadPolicy>(), Ok(PadPolicy::PadZero));
        assert!("white".parse::<PadPolicy>().is_err());
    }
}
