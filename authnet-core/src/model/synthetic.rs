//! Synthetic utterances for the model tests: each speaker has an identity direction and each
//! word a mouth trajectory, with per-frame noise, so that a model can learn who says what.

use crate::features::{l2_normalise, FrameFeatures, UtteranceFeatures};
use crate::rng::SplitMix64;

/// How [`Speech::utterance`] draws its clips.
pub(crate) struct Speech {
    pub identity_dim: usize,
    pub mouth_dim: usize,
    /// Frame counts are drawn from `min_frames..min_frames + frame_spread`.
    pub min_frames: usize,
    pub frame_spread: usize,
    /// Added to the word to seed its mouth trajectory.
    pub word_seed: u64,
    /// Standard deviation of the per-frame noise on the identity direction.
    pub identity_noise: f32,
    /// Times the speaker number, added to every mouth value (speakers mouth alike words a
    /// little differently).
    pub speaker_mouth_offset: f32,
}

impl Speech {
    /// Instance `inst` of `word` said by `speaker` (backbone `"t"`).
    pub fn utterance(&self, speaker: u64, word: u64, inst: u64) -> UtteranceFeatures {
        let mut r = SplitMix64::new(speaker * 1000 + word * 10 + inst);
        let n = self.min_frames + r.below(self.frame_spread);
        let mut pid = SplitMix64::new(speaker);
        let base: Vec<f32> = (0..self.identity_dim).map(|_| pid.normal()).collect();
        let mut wr = SplitMix64::new(self.word_seed + word);
        let traj: Vec<f32> = (0..self.mouth_dim).map(|_| wr.normal()).collect();
        let offset = speaker as f32 * self.speaker_mouth_offset;
        let frames = (0..n)
            .map(|f| {
                let ph = f as f32 / n as f32;
                let mut identity: Vec<f32> = base
                    .iter()
                    .map(|b| b + self.identity_noise * r.normal())
                    .collect();
                l2_normalise(&mut identity);
                let mut mouth: Vec<f32> = traj
                    .iter()
                    .enumerate()
                    .map(|(k, a)| (a * (ph * 6.0 + k as f32).sin()) + 0.1 * r.normal() + offset)
                    .collect();
                l2_normalise(&mut mouth);
                FrameFeatures { identity, mouth }
            })
            .collect();
        UtteranceFeatures {
            backbone: "t".into(),
            identity_dim: self.identity_dim,
            mouth_dim: self.mouth_dim,
            frames,
            frames_read: n,
        }
    }
}
