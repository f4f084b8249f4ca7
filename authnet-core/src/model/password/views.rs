//! Views of one utterance's features that the gates and the training set use.

use crate::features::{l2_normalise, UtteranceFeatures};
use crate::model::lstm::Sequence;
use crate::rng::SplitMix64;
use crate::sequence::{assemble, resample, PadPolicy};

/// Mouth motion energy: mean L2 change of the mouth descriptor between consecutive frames.
pub fn motion_energy(u: &UtteranceFeatures) -> f64 {
    if u.frames.len() < 2 {
        return 0.0;
    }
    let s: f64 = u
        .frames
        .windows(2)
        .map(|w| {
            w[0].mouth
                .iter()
                .zip(&w[1].mouth)
                .map(|(a, b)| ((a - b) as f64).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .sum();
    s / (u.frames.len() - 1) as f64
}

/// The flattened `T x mouth_dim` input of the ridge word model, smoothed in time over
/// `smoothing` steps either side ([`smooth_time`]).
pub(crate) fn word_input(
    u: &UtteranceFeatures,
    t: usize,
    pad: PadPolicy,
    smoothing: usize,
) -> Vec<f32> {
    smooth_time(&assemble(&u.mouth_seq(), t, pad), smoothing)
        .into_iter()
        .flatten()
        .collect()
}

/// Each step replaced by the average of the steps up to `radius` either side, weighted by a
/// triangle (`radius + 1 - |k|`; the ends repeat the first and last step). For the linear
/// word model this is a smoothness prior on its weights over time: a word mouthed a frame
/// earlier or later scores nearly the same. `radius` 0 returns the sequence unchanged.
pub(crate) fn smooth_time(seq: &[Vec<f32>], radius: usize) -> Vec<Vec<f32>> {
    let n = seq.len();
    if radius == 0 || n < 2 {
        return seq.to_vec();
    }
    let r = radius as isize;
    let total: f32 = (-r..=r).map(|k| (r + 1 - k.abs()) as f32).sum();
    (0..n)
        .map(|i| {
            let mut acc = vec![0.0f32; seq[i].len()];
            for k in -r..=r {
                let j = (i as isize + k).clamp(0, n as isize - 1) as usize;
                let w = (r + 1 - k.abs()) as f32 / total;
                for (a, b) in acc.iter_mut().zip(&seq[j]) {
                    *a += w * b;
                }
            }
            acc
        })
        .collect()
}

/// The views the ridge word model scores a clip by, when [`EnrollConfig::word_view_trim`] is
/// set: the whole clip, and the clip with `share` of its frames cut from the start, from the
/// end, and half from each end. A clip too short to lose that many frames and keep
/// [`VIEW_MIN_FRAMES`], or a `share` that cuts no frame, has only the whole view.
///
/// [`EnrollConfig::word_view_trim`]: super::EnrollConfig::word_view_trim
pub(crate) fn trimmed_views(u: &UtteranceFeatures, share: f64) -> Vec<UtteranceFeatures> {
    let n = u.frames.len();
    let k = (n as f64 * share).round() as usize;
    let mut views = vec![u.clone()];
    if k == 0 || n < k + VIEW_MIN_FRAMES {
        return views;
    }
    for (start, end) in [(k, n), (0, n - k), (k / 2, n - (k - k / 2))] {
        let mut v = u.clone();
        v.frames = u.frames[start..end].to_vec();
        views.push(v);
    }
    views
}

/// The fewest frames a trimmed view keeps ([`trimmed_views`]).
pub(crate) const VIEW_MIN_FRAMES: usize = 4;

/// The `T x (mouth_dim + identity_dim)` input of the LSTM.
pub(crate) fn lstm_input(u: &UtteranceFeatures, t: usize, pad: PadPolicy) -> Sequence {
    let rows: Vec<Vec<f32>> = u
        .frames
        .iter()
        .map(|f| f.mouth.iter().chain(&f.identity).copied().collect())
        .collect();
    assemble(&rows, t, pad)
}

/// A temporally jittered copy (the augmentation enrolment oversamples with): a random
/// sub-span covering at least 80 % of the clip, resampled to 85–115 % of its length.
pub fn jitter_copy(u: &UtteranceFeatures, rng: &mut SplitMix64) -> UtteranceFeatures {
    let n = u.frames.len();
    let mut out = u.clone();
    if n < 4 {
        return out;
    }
    let cut = (n as f32 * 0.2) as usize;
    let start = rng.below(cut / 2 + 1);
    let end = n - rng.below(cut - cut / 2 + 1);
    let span = &u.frames[start..end.max(start + 2)];
    // Also vary the speaking rate: resample the span to 85–115 % of its length.
    let len = ((span.len() as f32) * (0.85 + 0.3 * rng.next_f32()))
        .round()
        .max(2.0) as usize;
    let ids = resample(
        &span.iter().map(|f| f.identity.clone()).collect::<Vec<_>>(),
        len,
    );
    let ms = resample(
        &span.iter().map(|f| f.mouth.clone()).collect::<Vec<_>>(),
        len,
    );
    out.frames = ids
        .into_iter()
        .zip(ms)
        .map(|(identity, mouth)| crate::features::FrameFeatures { identity, mouth })
        .collect();
    out
}

pub(crate) fn reversed(u: &UtteranceFeatures) -> UtteranceFeatures {
    let mut o = u.clone();
    o.frames.reverse();
    o
}

pub(crate) fn shuffled(u: &UtteranceFeatures, rng: &mut SplitMix64) -> UtteranceFeatures {
    let mut o = u.clone();
    rng.shuffle(&mut o.frames);
    o
}

pub(crate) fn template_of(pos: &[&UtteranceFeatures]) -> Vec<f32> {
    let dim = pos.first().map(|u| u.identity_dim).unwrap_or(0);
    let mut t = vec![0.0f32; dim];
    for u in pos {
        for (a, b) in t.iter_mut().zip(u.mean_identity()) {
            *a += b;
        }
    }
    l2_normalise(&mut t);
    t
}

#[cfg(test)]
mod tests {
    use super::{smooth_time, trimmed_views, VIEW_MIN_FRAMES};
    use crate::features::{FrameFeatures, UtteranceFeatures};

    fn clip(n: usize) -> UtteranceFeatures {
        UtteranceFeatures {
            backbone: "t".into(),
            identity_dim: 1,
            mouth_dim: 1,
            frames: (0..n)
                .map(|i| FrameFeatures {
                    identity: vec![0.0],
                    mouth: vec![i as f32],
                })
                .collect(),
            frames_read: n,
        }
    }

    fn firsts_and_lasts(views: &[UtteranceFeatures]) -> Vec<(f32, f32, usize)> {
        views
            .iter()
            .map(|v| {
                let m = |f: Option<&FrameFeatures>| f.map_or(-1.0, |f| f.mouth[0]);
                (m(v.frames.first()), m(v.frames.last()), v.frames.len())
            })
            .collect()
    }

    #[test]
    fn trimmed_views_cut_the_start_the_end_and_both() {
        // 20 frames, 10 %: 2 frames off the start, off the end, and one off each end.
        let v = trimmed_views(&clip(20), 0.1);
        assert_eq!(
            firsts_and_lasts(&v),
            vec![
                (0.0, 19.0, 20),
                (2.0, 19.0, 18),
                (0.0, 17.0, 18),
                (1.0, 18.0, 18)
            ]
        );
        // A share that cuts no frame, or a clip that would keep too few, has the whole view.
        assert_eq!(trimmed_views(&clip(20), 0.0).len(), 1);
        assert_eq!(trimmed_views(&clip(4), 0.1).len(), 1);
        let short = VIEW_MIN_FRAMES + 1;
        assert_eq!(trimmed_views(&clip(short), 0.25).len(), 4);
        assert!(trimmed_views(&clip(short), 0.25)
            .iter()
            .all(|v| v.frames.len() >= VIEW_MIN_FRAMES));
        assert_eq!(trimmed_views(&clip(short - 1), 0.25).len(), 1);
    }

    #[test]
    fn smoothing_spreads_a_step_by_a_triangle_and_keeps_constants() {
        let seq: Vec<Vec<f32>> = (0..7)
            .map(|i| vec![if i == 3 { 4.0 } else { 0.0 }, 1.0])
            .collect();
        assert_eq!(smooth_time(&seq, 0), seq);
        let s = smooth_time(&seq, 1);
        let col: Vec<f32> = s.iter().map(|f| f[0]).collect();
        assert_eq!(col, vec![0.0, 0.0, 1.0, 2.0, 1.0, 0.0, 0.0]);
        // A constant channel stays constant, the ends included.
        assert!(s.iter().all(|f| (f[1] - 1.0).abs() < 1e-6));
        let s2 = smooth_time(&seq, 2);
        let col2: Vec<f32> = s2.iter().map(|f| f[0]).collect();
        let want = [
            0.0,
            4.0 / 9.0,
            8.0 / 9.0,
            12.0 / 9.0,
            8.0 / 9.0,
            4.0 / 9.0,
            0.0,
        ];
        assert!(
            col2.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6),
            "{col2:?}"
        );
        // The mass of the step is kept away from the ends.
        assert!((col2.iter().sum::<f32>() - 4.0).abs() < 1e-5);
        assert_eq!(smooth_time(&seq[..1], 3), seq[..1].to_vec());
    }
}
