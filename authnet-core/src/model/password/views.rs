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

/// The flattened `T x mouth_dim` input of the ridge word model.
pub(crate) fn word_input(u: &UtteranceFeatures, t: usize, pad: PadPolicy) -> Vec<f32> {
    assemble(&u.mouth_seq(), t, pad)
        .into_iter()
        .flatten()
        .collect()
}

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
