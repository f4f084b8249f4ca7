//! Per-frame features of one utterance: the identity embedding (backbone) and the mouth-region
//! descriptor, side by side. Everything downstream (model training, scoring, evaluation, the
//! impostor bank, the cache) works on [`UtteranceFeatures`].

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Features of one frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct FrameFeatures {
    /// L2-normalised identity embedding from the backbone (`identity_dim` values).
    pub identity: Vec<f32>,
    /// L2-normalised mouth-region descriptor (`mouth_dim` values).
    pub mouth: Vec<f32>,
}

/// Features of one utterance (variable number of frames, before sequence assembly).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UtteranceFeatures {
    /// Backbone manifest name the identity embeddings came from (e.g. `mobilefacenet`).
    pub backbone: String,
    /// Length of every `identity` vector.
    pub identity_dim: usize,
    /// Length of every `mouth` vector.
    pub mouth_dim: usize,
    /// One entry per frame in which a face (or a pass-through crop) was available.
    pub frames: Vec<FrameFeatures>,
    /// Frames read from the source, including those without a face.
    pub frames_read: usize,
}

impl UtteranceFeatures {
    /// Identity embeddings, one per frame.
    pub fn identity_seq(&self) -> Vec<Vec<f32>> {
        self.frames.iter().map(|f| f.identity.clone()).collect()
    }

    /// Mouth descriptors, one per frame.
    pub fn mouth_seq(&self) -> Vec<Vec<f32>> {
        self.frames.iter().map(|f| f.mouth.clone()).collect()
    }

    /// Mean identity embedding, L2-normalised (the face-only template of this utterance).
    pub fn mean_identity(&self) -> Vec<f32> {
        let mut m = vec![0.0f32; self.identity_dim];
        for f in &self.frames {
            for (a, b) in m.iter_mut().zip(&f.identity) {
                *a += b;
            }
        }
        l2_normalise(&mut m);
        m
    }

    /// The frozen-frame ("photo held up to the camera") version of this utterance: its middle
    /// frame repeated for the utterance's length.
    pub fn frozen(&self) -> UtteranceFeatures {
        let mut out = self.clone();
        if let Some(mid) = self.frames.get(self.frames.len() / 2).cloned() {
            out.frames = vec![mid; self.frames.len()];
        }
        out
    }
}

/// Scales `v` to unit L2 norm in place (left unchanged if it is all zeros).
pub fn l2_normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 1e-12 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// Cosine similarity; 0 when either vector is all zeros.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na < 1e-12 || nb < 1e-12 {
        0.0
    } else {
        dot / (na * nb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_basics() {
        assert!((cosine(&[1.0, 0.0], &[2.0, 0.0]) - 1.0).abs() < 1e-6);
        assert!(cosine(&[1.0, 0.0], &[0.0, 3.0]).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
    }

    #[test]
    fn frozen_repeats_one_frame() {
        let u = UtteranceFeatures {
            backbone: "x".into(),
            identity_dim: 1,
            mouth_dim: 1,
            frames: (0..5)
                .map(|i| FrameFeatures {
                    identity: vec![i as f32],
                    mouth: vec![i as f32],
                })
                .collect(),
            frames_read: 5,
        };
        let f = u.frozen();
        assert_eq!(f.frames.len(), 5);
        assert!(f.frames.iter().all(|x| x.mouth == vec![2.0]));
    }
}
