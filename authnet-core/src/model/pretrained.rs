//! The pretrained word model: the stacked LSTM's backbone (projection and LSTM layers) trained
//! across many speakers, from which each user's word model is fine-tuned at enrolment.
//!
//! # Objective
//!
//! Multi-class softmax over speaker x utterance ([`SeqClassifier::pretrain_multiclass`]): one
//! class per (speaker, word) of the admin's corpus. A user's word model must tell *this person
//! mouthing this word* from the same person mouthing other words and from other people, which
//! is exactly what separating speaker x word classes asks of the backbone's last state. A
//! softmax over a few hundred classes needs no pair or triplet mining, is stable with ten
//! clips per class, and converges in tens of epochs on 2 cores; metric learning (triplets,
//! contrastive pairs) would need mining and many more steps for the same corpus.
//!
//! # File format (version 2)
//!
//! Mirrors the impostor bank's ([`super::bank`]). All integers little-endian.
//!
//! ```text
//! offset  size  field
//! 0       12    magic  b"AUTHNETPRET\0"
//! 12      4     u32    format version (2; version 1 recorded the layout, not its version)
//! 16      8     u64    H = header length in bytes (<= MAX_HEADER_BYTES)
//! 24      H     JSON   PretrainedHeader { backbone, backbone_sha256, features,
//!                      input_layout, identity_dim, mouth_dim, timesteps, pad, lstm,
//!                      tensors: [{name, shape}], body_bytes, created, training }
//! 24+H    B     body   every tensor's f32 values, in header order; B = body_bytes = exactly
//!                      the rest of the file
//! ```
//!
//! The loader trusts no length: the file size is capped ([`MAX_FILE_BYTES`]) before anything is
//! read, the header length is capped and checked against the file, the declared body size must
//! equal what is left, the tensor list is capped ([`MAX_TENSORS`]) and each tensor's size is
//! checked against the bytes remaining before it is copied, and the tensors must be exactly
//! those the stored LSTM configuration's backbone needs (names, shapes, finite values). The
//! tags (backbone name and sha256, feature layout, LSTM input layout, dimensions) must equal
//! what the caller's pipeline produces. Every refusal is a [`PretrainedError`]; none panics.
//!
//! Like the bank, the file is derived from the admin's recordings and is never committed.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::file::rfc3339_utc;
use super::lstm::{LstmConfig, LstmError, PretrainReport, SeqClassifier, Sequence, TrainConfig};
use super::password::config::LstmPreset;
use super::password::views::{jitter_copy, lstm_input};
use crate::features::{FeatureLayout, UtteranceFeatures};
use crate::fsutil::Reader;
use crate::rng::SplitMix64;
use crate::sequence::{PadPolicy, DEFAULT_TIMESTEPS};

/// The first bytes of every pretrained-model file.
pub const MAGIC: &[u8; 12] = b"AUTHNETPRET\0";
/// The only format version this code reads and writes.
pub const FORMAT_VERSION: u32 = 2;
/// Cap on the JSON header (a few strings, the configuration and the tensor list: a few KiB).
pub const MAX_HEADER_BYTES: u64 = 1 << 20;
/// Cap on a whole file. The paper's stack on 512 + 608 inputs is under 0.5 MiB of f32, the
/// compact one under 0.1 MiB; 64 MiB (the per-user model's cap) bounds what a corrupt or
/// hostile file can make the daemon read.
pub const MAX_FILE_BYTES: u64 = 64 << 20;
/// Cap on the number of tensors listed (a 16-layer stack with a projection has 50).
pub const MAX_TENSORS: usize = 64;
/// How the LSTM's per-frame input is laid out: the mouth vector, then the identity vector
/// (the word gate's `lstm_input`). Stored so that a future layout cannot be mixed with this one.
pub const INPUT_LAYOUT: &str = "mouth+identity";

const PREFIX_BYTES: usize = 12 + 4 + 8;

/// Why a pretrained model could not be built, saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum PretrainedError {
    /// Reading or writing the file failed, or it is over its cap.
    #[error(transparent)]
    File(#[from] crate::fsutil::FileError),
    /// The file does not start with [`MAGIC`].
    #[error("not an AuthNet pretrained word model (bad magic)")]
    BadMagic,
    /// A format version this code does not know.
    #[error("unsupported pretrained-model format version {found} (this build reads {FORMAT_VERSION}); rebuild it with `authnet-eval pretrain --dataset DIR --crop MODE --out FILE`")]
    UnsupportedVersion {
        /// The version in the file.
        found: u32,
    },
    /// The file ends before `what` is complete.
    #[error("truncated pretrained model: {what} needs {needed} bytes, {available} left")]
    Truncated {
        /// The part being read.
        what: &'static str,
        /// Bytes it needs.
        needed: u64,
        /// Bytes left.
        available: u64,
    },
    /// The declared header length is over [`MAX_HEADER_BYTES`].
    #[error("pretrained-model header declares {len} bytes, more than the {max}-byte cap")]
    HeaderTooLarge {
        /// Declared length.
        len: u64,
        /// The cap.
        max: u64,
    },
    /// The header is not the expected JSON.
    #[error("invalid pretrained-model header")]
    Header(#[source] serde_json::Error),
    /// The header's `body_bytes` differs from what follows the header.
    #[error(
        "pretrained-model header declares a {declared}-byte body but {actual} bytes follow it"
    )]
    BodyLength {
        /// Declared body size.
        declared: u64,
        /// Actual bytes after the header.
        actual: u64,
    },
    /// More tensors listed than [`MAX_TENSORS`].
    #[error("pretrained model lists {found} tensors, more than {MAX_TENSORS}")]
    TooManyTensors {
        /// The count.
        found: usize,
    },
    /// Bytes remain after the last tensor.
    #[error("{extra} bytes after the last tensor")]
    TrailingBytes {
        /// Unread bytes.
        extra: u64,
    },
    /// A tag differs from the caller's pipeline (backbone, sha256, layout, dimensions).
    #[error("pretrained model is for {what} {found}, this pipeline has {expected}; rebuild it with `authnet-eval pretrain` for this pipeline")]
    Mismatch {
        /// Which tag.
        what: &'static str,
        /// The pipeline's.
        expected: String,
        /// The file's.
        found: String,
    },
    /// The stored LSTM configuration or tensors are unusable.
    #[error("invalid pretrained LSTM: {0}")]
    Lstm(#[from] LstmError),
    /// Pretraining needs at least two classes.
    #[error("pretraining needs at least 2 speaker x utterance classes with usable clips, got {0}")]
    TooFewClasses(usize),
    /// The clips are not all of one feature kind.
    #[error("clip {index} has features {found}, the first clip has {expected}")]
    FeatureKind {
        /// Clip position.
        index: usize,
        /// The first clip's kind.
        expected: String,
        /// This clip's kind.
        found: String,
    },
}

/// What the caller's pipeline produces; a file tagged otherwise is refused.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// Backbone manifest name.
    pub backbone: &'a str,
    /// sha256 of the backbone model file.
    pub backbone_sha256: &'a str,
    /// The feature layout.
    pub feature_layout: FeatureLayout,
    /// Identity embedding length.
    pub identity_dim: usize,
    /// Mouth vector length.
    pub mouth_dim: usize,
}

/// How pretraining went, stored in the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainStats {
    /// The speakers pretrained on.
    pub speakers: Vec<String>,
    /// Number of speaker x utterance classes.
    pub classes: usize,
    /// Training sequences (clips and their jittered copies).
    pub train_sequences: usize,
    /// Validation sequences (held-out clips, no copies).
    pub val_sequences: usize,
    /// The trainer's report.
    pub report: PretrainReport,
}

/// Name and shape of a stored tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TensorInfo {
    name: String,
    shape: Vec<usize>,
}

/// The JSON header of the file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PretrainedHeader {
    backbone: String,
    backbone_sha256: String,
    /// [`FeatureLayout::tag`]: the layout and the version of its features.
    features: String,
    input_layout: String,
    identity_dim: usize,
    mouth_dim: usize,
    timesteps: usize,
    pad: PadPolicy,
    lstm: LstmConfig,
    tensors: Vec<TensorInfo>,
    body_bytes: u64,
    created: String,
    training: PretrainStats,
}

/// A pretrained LSTM backbone with the tags of the features it was trained on.
#[derive(Debug, Clone, PartialEq)]
pub struct PretrainedLstm {
    /// Backbone manifest name.
    pub backbone: String,
    /// sha256 of the backbone model file (64 lowercase hex digits).
    pub backbone_sha256: String,
    /// The feature layout of the clips.
    pub feature_layout: FeatureLayout,
    /// Identity embedding length.
    pub identity_dim: usize,
    /// Mouth vector length.
    pub mouth_dim: usize,
    /// Timesteps `T` the sequences were brought to.
    pub timesteps: usize,
    /// How they were brought to `T`.
    pub pad: PadPolicy,
    /// The architecture (its dense layer and head are not stored: fine-tuning starts them
    /// afresh).
    pub lstm: LstmConfig,
    /// When it was built (RFC 3339, UTC).
    pub created: String,
    /// How pretraining went.
    pub training: PretrainStats,
    /// The backbone tensors, as [`SeqClassifier::backbone_tensors`] gives them.
    backbone_tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
}

impl PretrainedLstm {
    /// The starting point of one user's word model: the pretrained backbone with a dense layer
    /// and head freshly initialised from `seed`.
    pub fn start(&self, seed: u64) -> Result<SeqClassifier, LstmError> {
        SeqClassifier::from_backbone(self.lstm.clone(), &self.backbone_tensors, seed)
    }

    /// The tags of the features, as errors name a kind of features.
    pub fn feature_kind(&self) -> String {
        format!(
            "{} {}+{} ({:?} layout, T={}, {:?})",
            self.backbone,
            self.identity_dim,
            self.mouth_dim,
            self.feature_layout,
            self.timesteps,
            self.pad
        )
    }

    /// Refuses a file whose tags differ from the caller's pipeline.
    pub fn check(&self, e: &Expect) -> Result<(), PretrainedError> {
        let mismatch = |what, expected: String, found: String| {
            Err(PretrainedError::Mismatch {
                what,
                expected,
                found,
            })
        };
        if self.backbone != e.backbone {
            return mismatch("backbone", e.backbone.into(), self.backbone.clone());
        }
        if self.backbone_sha256 != e.backbone_sha256 {
            return mismatch(
                "backbone sha256",
                e.backbone_sha256.into(),
                self.backbone_sha256.clone(),
            );
        }
        if self.feature_layout != e.feature_layout {
            return mismatch(
                "feature layout",
                format!("{:?}", e.feature_layout),
                format!("{:?}", self.feature_layout),
            );
        }
        if (self.identity_dim, self.mouth_dim) != (e.identity_dim, e.mouth_dim) {
            return mismatch(
                "identity+mouth dims",
                format!("{}+{}", e.identity_dim, e.mouth_dim),
                format!("{}+{}", self.identity_dim, self.mouth_dim),
            );
        }
        Ok(())
    }

    /// The file image (see the module doc).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut body = Vec::new();
        for (_, _, data) in &self.backbone_tensors {
            for v in data {
                body.extend_from_slice(&v.to_le_bytes());
            }
        }
        let header = PretrainedHeader {
            backbone: self.backbone.clone(),
            backbone_sha256: self.backbone_sha256.clone(),
            features: self.feature_layout.tag().to_string(),
            input_layout: INPUT_LAYOUT.to_string(),
            identity_dim: self.identity_dim,
            mouth_dim: self.mouth_dim,
            timesteps: self.timesteps,
            pad: self.pad,
            lstm: self.lstm.clone(),
            tensors: self
                .backbone_tensors
                .iter()
                .map(|(name, shape, _)| TensorInfo {
                    name: name.clone(),
                    shape: shape.clone(),
                })
                .collect(),
            body_bytes: body.len() as u64,
            created: self.created.clone(),
            training: self.training.clone(),
        };
        // Serialising plain structs of strings, numbers and vectors cannot fail; the stats'
        // floats are finite (a diverged pretraining is an error, not a report). Should it
        // fail anyway, the empty header makes the file unreadable rather than wrong.
        let header = serde_json::to_vec(&header).unwrap_or_default();
        let mut out = Vec::with_capacity(PREFIX_BYTES + header.len() + body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&body);
        out
    }

    /// Writes the file atomically (temporary file, fsync, rename, fsync of the directory).
    pub fn save(&self, path: &Path) -> Result<(), PretrainedError> {
        Ok(crate::fsutil::write_file(path, &self.to_bytes())?)
    }

    /// Reads a file and checks it against the caller's pipeline. The size is checked against
    /// [`MAX_FILE_BYTES`] before anything is read.
    pub fn load(path: &Path, expect: &Expect) -> Result<Self, PretrainedError> {
        let bytes = crate::fsutil::read_file(path, MAX_FILE_BYTES)?;
        let m = Self::from_bytes(&bytes)?;
        m.check(expect)?;
        Ok(m)
    }

    /// Parses a file image (tags not checked against a pipeline: see [`Self::check`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PretrainedError> {
        let mut r = Reader::new(bytes);
        if r.take(MAGIC.len(), "magic")? != MAGIC {
            return Err(PretrainedError::BadMagic);
        }
        let version = u32::from_le_bytes(r.array("format version")?);
        if version != FORMAT_VERSION {
            return Err(PretrainedError::UnsupportedVersion { found: version });
        }
        let header_len = u64::from_le_bytes(r.array("header length")?);
        if header_len > MAX_HEADER_BYTES {
            return Err(PretrainedError::HeaderTooLarge {
                len: header_len,
                max: MAX_HEADER_BYTES,
            });
        }
        // header_len <= 1 MiB: the cast is lossless.
        let h: PretrainedHeader = serde_json::from_slice(r.take(header_len as usize, "header")?)
            .map_err(PretrainedError::Header)?;
        let actual = r.remaining();
        if h.body_bytes != actual {
            return Err(PretrainedError::BodyLength {
                declared: h.body_bytes,
                actual,
            });
        }
        if h.input_layout != INPUT_LAYOUT {
            return Err(PretrainedError::Mismatch {
                what: "LSTM input layout",
                expected: INPUT_LAYOUT.into(),
                found: h.input_layout,
            });
        }
        if h.tensors.len() > MAX_TENSORS {
            return Err(PretrainedError::TooManyTensors {
                found: h.tensors.len(),
            });
        }
        // Validates every width against the MAX_* caps before any shape is multiplied out.
        h.lstm.validate()?;
        // A layout this build makes, at this build's version of its features.
        let Some(feature_layout) =
            FeatureLayout::of_tag(&h.features).filter(|l| l.tag() == h.features)
        else {
            return Err(PretrainedError::Mismatch {
                what: "features",
                expected: format!(
                    "{} or {}",
                    FeatureLayout::Box.tag(),
                    FeatureLayout::Mesh.tag()
                ),
                found: h.features,
            });
        };
        if h.lstm.input_dim != h.identity_dim + h.mouth_dim {
            return Err(PretrainedError::Mismatch {
                what: "LSTM input width",
                expected: format!("{}", h.identity_dim + h.mouth_dim),
                found: format!("{}", h.lstm.input_dim),
            });
        }
        if !(1..=super::file::MAX_TIMESTEPS).contains(&h.timesteps) {
            return Err(PretrainedError::Mismatch {
                what: "timesteps",
                expected: format!("1..={}", super::file::MAX_TIMESTEPS),
                found: h.timesteps.to_string(),
            });
        }
        let mut tensors = Vec::with_capacity(h.tensors.len());
        for t in &h.tensors {
            // A lying shape cannot overflow or over-allocate: the product is checked, and the
            // bytes must be in the file before they are copied.
            let n = t
                .shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .and_then(|n| n.checked_mul(4))
                .ok_or(PretrainedError::Truncated {
                    what: "tensor",
                    needed: u64::MAX,
                    available: r.remaining(),
                })?;
            let raw = r.take(n, "tensor")?;
            let data: Vec<f32> = raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            tensors.push((t.name.clone(), t.shape.clone(), data));
        }
        if r.remaining() != 0 {
            return Err(PretrainedError::TrailingBytes {
                extra: r.remaining(),
            });
        }
        // Exactly the backbone's tensors, with their shapes and finite values.
        SeqClassifier::from_backbone(h.lstm.clone(), &tensors, 0)?;
        Ok(Self {
            backbone: h.backbone,
            backbone_sha256: h.backbone_sha256,
            feature_layout,
            identity_dim: h.identity_dim,
            mouth_dim: h.mouth_dim,
            timesteps: h.timesteps,
            pad: h.pad,
            lstm: h.lstm,
            created: h.created,
            training: h.training,
            backbone_tensors: tensors,
        })
    }
}

impl From<crate::fsutil::Short> for PretrainedError {
    fn from(s: crate::fsutil::Short) -> Self {
        Self::Truncated {
            what: s.what,
            needed: s.needed,
            available: s.available,
        }
    }
}

/// Pretraining settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PretrainConfig {
    /// Architecture preset (the per-user model inherits it).
    pub lstm: LstmPreset,
    /// Timesteps `T` (must equal the enrolment's).
    pub timesteps: usize,
    /// Padding policy (must equal the enrolment's).
    pub pad: PadPolicy,
    /// Training sequences per training clip: the clip and `copies - 1` jittered copies.
    pub copies: usize,
    /// Every `val_every`-th clip of each class (by the order given) is held out for early
    /// stopping; 0 holds out none.
    pub val_every: usize,
    /// Optimiser settings.
    pub train: TrainConfig,
    /// Seed of the initialisation, the jitter and the shuffling.
    pub seed: u64,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        Self {
            lstm: LstmPreset::default(),
            timesteps: DEFAULT_TIMESTEPS,
            pad: PadPolicy::default(),
            copies: 4,
            val_every: 5,
            train: TrainConfig {
                lr: 3e-3,
                batch_size: 64,
                max_epochs: 40,
                patience: 6,
                ..TrainConfig::default()
            },
            seed: 0,
        }
    }
}

/// One clip of the pretraining corpus.
#[derive(Debug, Clone, Copy)]
pub struct LabelledClip<'a> {
    /// Who mouths it.
    pub speaker: &'a str,
    /// What is mouthed (a word or phrase label).
    pub utterance: &'a str,
    /// Its features.
    pub features: &'a UtteranceFeatures,
}

impl<'a> From<&'a (String, String, UtteranceFeatures)> for LabelledClip<'a> {
    /// A `(speaker, utterance, features)` triple, as corpora are gathered.
    fn from((speaker, utterance, features): &'a (String, String, UtteranceFeatures)) -> Self {
        LabelledClip {
            speaker,
            utterance,
            features,
        }
    }
}

/// Pretrains the LSTM backbone on `clips` (one class per speaker x utterance; clips with fewer
/// than two frames are skipped), tagging the result with `backbone_sha256` and
/// `feature_layout`.
pub fn pretrain(
    clips: &[LabelledClip],
    backbone_sha256: &str,
    feature_layout: FeatureLayout,
    cfg: &PretrainConfig,
) -> Result<PretrainedLstm, PretrainedError> {
    let clips: Vec<&LabelledClip> = clips
        .iter()
        .filter(|c| c.features.frames.len() >= super::password::MIN_FRAMES)
        .collect();
    let mut classes: Vec<(&str, &str)> = clips.iter().map(|c| (c.speaker, c.utterance)).collect();
    classes.sort_unstable();
    classes.dedup();
    if classes.len() < 2 {
        return Err(PretrainedError::TooFewClasses(classes.len()));
    }
    let first = clips[0].features;
    let kind = |u: &UtteranceFeatures| {
        super::password::feature_kind(&u.backbone, u.identity_dim, u.mouth_dim)
    };
    for (index, c) in clips.iter().enumerate() {
        let u = c.features;
        if (&u.backbone, u.identity_dim, u.mouth_dim)
            != (&first.backbone, first.identity_dim, first.mouth_dim)
        {
            return Err(PretrainedError::FeatureKind {
                index,
                expected: kind(first),
                found: kind(u),
            });
        }
    }
    let mut rng = SplitMix64::new(cfg.seed ^ 0x9E7A_0001);
    let (mut tx, mut ty, mut vx, mut vy) =
        (Vec::<Sequence>::new(), Vec::new(), Vec::new(), Vec::new());
    let mut seen = vec![0usize; classes.len()];
    for c in &clips {
        // Present: `classes` was built from these very clips.
        let k = classes
            .binary_search(&(c.speaker, c.utterance))
            .unwrap_or_default();
        seen[k] += 1;
        let seq = |u: &UtteranceFeatures| lstm_input(u, cfg.timesteps, cfg.pad);
        if cfg.val_every > 0 && seen[k] % cfg.val_every == 0 {
            vx.push(seq(c.features));
            vy.push(k);
            continue;
        }
        tx.push(seq(c.features));
        ty.push(k);
        for _ in 1..cfg.copies.max(1) {
            tx.push(seq(&jitter_copy(c.features, &mut rng)));
            ty.push(k);
        }
    }
    let dim = first.identity_dim + first.mouth_dim;
    let mut model = SeqClassifier::new(cfg.lstm.config(dim), cfg.seed)?;
    let mut tc = cfg.train.clone();
    tc.seed = cfg.seed;
    let val = (!vx.is_empty()).then_some((vx.as_slice(), vy.as_slice()));
    let report = model.pretrain_multiclass(&tx, &ty, classes.len(), val, &tc)?;
    let mut speakers: Vec<String> = classes.iter().map(|c| c.0.to_string()).collect();
    speakers.dedup();
    Ok(PretrainedLstm {
        backbone: first.backbone.clone(),
        backbone_sha256: backbone_sha256.to_string(),
        feature_layout,
        identity_dim: first.identity_dim,
        mouth_dim: first.mouth_dim,
        timesteps: cfg.timesteps,
        pad: cfg.pad,
        lstm: model.config().clone(),
        created: rfc3339_utc(std::time::SystemTime::now()),
        training: PretrainStats {
            speakers,
            classes: classes.len(),
            train_sequences: tx.len(),
            val_sequences: vx.len(),
            report,
        },
        backbone_tensors: model.backbone_tensors(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::model::synthetic::Speech;

    /// A synthetic utterance: identity direction per speaker, mouth trajectory per word.
    fn utt(speaker: u64, word: u64, inst: u64) -> UtteranceFeatures {
        Speech {
            identity_dim: 6,
            mouth_dim: 4,
            min_frames: 10,
            frame_spread: 6,
            word_seed: 777,
            identity_noise: 0.2,
            speaker_mouth_offset: 0.0,
        }
        .utterance(speaker, word, inst)
    }

    const SHA: &str = "abababababababababababababababababababababababababababababababab";

    fn expect() -> Expect<'static> {
        Expect {
            backbone: "t",
            backbone_sha256: SHA,
            feature_layout: FeatureLayout::Box,
            identity_dim: 6,
            mouth_dim: 4,
        }
    }

    fn small() -> PretrainedLstm {
        let feats: Vec<(String, String, UtteranceFeatures)> = (1..4)
            .flat_map(|s| {
                (1..4).flat_map(move |w| {
                    (0..5).map(move |i| (format!("S{s}"), format!("{w:02}"), utt(s, w, i)))
                })
            })
            .collect();
        let clips: Vec<LabelledClip> = feats.iter().map(LabelledClip::from).collect();
        let cfg = PretrainConfig {
            copies: 2,
            train: TrainConfig {
                max_epochs: 30,
                ..PretrainConfig::default().train
            },
            ..PretrainConfig::default()
        };
        pretrain(&clips, SHA, FeatureLayout::Box, &cfg).unwrap()
    }

    #[test]
    fn pretraining_learns_the_classes_and_round_trips() {
        let m = small();
        assert_eq!(m.training.classes, 9);
        assert_eq!(m.training.speakers, vec!["S1", "S2", "S3"]);
        // 5 clips per class, every 5th held out: 4 x 2 training sequences, 1 validation.
        assert_eq!(m.training.train_sequences, 9 * 8);
        assert_eq!(m.training.val_sequences, 9);
        let acc = m.training.report.best_val_accuracy.unwrap();
        // Chance is 1/9.
        assert!(acc > 0.5, "{:?}", m.training.report);

        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("pre.bin");
        m.save(&p).unwrap();
        let back = PretrainedLstm::load(&p, &expect()).unwrap();
        assert_eq!(back, m);
        // The starting points of fine-tuning are identical, and deterministic for a seed.
        let probe = vec![lstm_input(&utt(1, 1, 40), 20, PadPolicy::default())];
        let a = m.start(5).unwrap().logits(&probe).unwrap();
        let b = back.start(5).unwrap().logits(&probe).unwrap();
        assert_eq!(a[0].to_bits(), b[0].to_bits());
        // The backbone is the pretrained one whatever the seed; only the head differs.
        let s1 = m.start(1).unwrap();
        let s2 = m.start(2).unwrap();
        assert_eq!(s1.backbone_tensors(), s2.backbone_tensors());
        assert_ne!(s1.tensors(), s2.tensors());
    }

    #[test]
    fn refuses_truncated_wrong_version_and_wrong_tags() {
        let m = small();
        let bytes = m.to_bytes();
        assert!(PretrainedLstm::from_bytes(&bytes).is_ok());
        // Every truncation is refused, none panics.
        for cut in (0..bytes.len()).step_by(7).chain([bytes.len() - 1]) {
            assert!(
                PretrainedLstm::from_bytes(&bytes[..cut]).is_err(),
                "accepted a file cut at {cut}"
            );
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(matches!(
            PretrainedLstm::from_bytes(&extra),
            Err(PretrainedError::BodyLength { .. })
        ));
        let mut v1 = bytes.clone();
        v1[12..16].copy_from_slice(&1u32.to_le_bytes());
        let e = PretrainedLstm::from_bytes(&v1).unwrap_err();
        assert!(matches!(
            e,
            PretrainedError::UnsupportedVersion { found: 1 }
        ));
        assert!(e.to_string().contains("authnet-eval pretrain"), "{e}");
        // Features of an older version of the layout (the tag edited in place, same length).
        let tag = FeatureLayout::Box.tag();
        let at = bytes
            .windows(tag.len())
            .position(|w| w == tag.as_bytes())
            .unwrap();
        let mut old = bytes.clone();
        old[at..at + tag.len()].copy_from_slice(b"box-v1");
        match PretrainedLstm::from_bytes(&old) {
            Err(
                e @ PretrainedError::Mismatch {
                    what: "features", ..
                },
            ) => {
                assert!(e.to_string().contains("box-v1"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        let mut magic = bytes.clone();
        magic[0] = b'X';
        assert!(matches!(
            PretrainedLstm::from_bytes(&magic),
            Err(PretrainedError::BadMagic)
        ));
        // An impostor bank (another tag) is not a pretrained model.
        let bank = crate::model::bank::ImpostorBank::new("t", SHA, 6, 4)
            .to_bytes()
            .unwrap();
        assert!(matches!(
            PretrainedLstm::from_bytes(&bank),
            Err(PretrainedError::BadMagic)
        ));
        let mut huge = bytes.clone();
        huge[16..24].copy_from_slice(&(MAX_HEADER_BYTES + 1).to_le_bytes());
        assert!(matches!(
            PretrainedLstm::from_bytes(&huge),
            Err(PretrainedError::HeaderTooLarge { .. })
        ));
        // A flipped weight to NaN is refused.
        let mut nan = bytes.clone();
        let at = nan.len() - 4;
        nan[at..].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(matches!(
            PretrainedLstm::from_bytes(&nan),
            Err(PretrainedError::Lstm(LstmError::NonFiniteTensor { .. }))
        ));

        // Tags: each mismatch is named.
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("pre.bin");
        m.save(&p).unwrap();
        let other_sha = "cd".repeat(32);
        for (e, what) in [
            (
                Expect {
                    backbone: "other",
                    ..expect()
                },
                "backbone",
            ),
            (
                Expect {
                    backbone_sha256: &other_sha,
                    ..expect()
                },
                "backbone sha256",
            ),
            (
                Expect {
                    feature_layout: FeatureLayout::Mesh,
                    ..expect()
                },
                "feature layout",
            ),
            (
                Expect {
                    mouth_dim: 5,
                    ..expect()
                },
                "identity+mouth dims",
            ),
        ] {
            match PretrainedLstm::load(&p, &e) {
                Err(PretrainedError::Mismatch { what: w, .. }) => assert_eq!(w, what),
                other => panic!("{what}: {other:?}"),
            }
        }
        assert!(matches!(
            PretrainedLstm::load(&d.path().join("missing"), &expect()),
            Err(PretrainedError::File(crate::fsutil::FileError::Io { .. }))
        ));
    }

    /// The shared setup of the enrolment tests: the [`small`] pretrained model, speaker 1's
    /// clips (none pretrained on) and an enrolment configuration.
    struct Enrolment {
        m: PretrainedLstm,
        /// Six clips of word 1.
        pos: Vec<UtteranceFeatures>,
        /// Three clips each of words 2 and 3.
        other: Vec<UtteranceFeatures>,
        cfg: crate::model::password::EnrollConfig,
    }

    impl Enrolment {
        fn new(word_model: crate::model::password::WordModelKind) -> Self {
            Self {
                m: small(),
                pos: (10..16).map(|i| utt(1, 1, i)).collect(),
                other: (2..4)
                    .flat_map(|w| (10..13).map(move |i| utt(1, w, i)))
                    .collect(),
                cfg: crate::model::password::EnrollConfig {
                    oversample_to: 30,
                    word_model,
                    ..Default::default()
                },
            }
        }

        fn input(&self) -> crate::model::password::EnrollInput<'_> {
            crate::model::password::EnrollInput {
                positives: &self.pos,
                other_words: &self.other,
                ..Default::default()
            }
        }
    }

    #[test]
    fn enrolment_fine_tunes_from_the_pretrained_backbone() {
        use crate::model::password::{enroll_with, EnrollConfig, WordModelKind};
        let e = Enrolment::new(WordModelKind::Lstm);
        let (m, input, cfg) = (&e.m, e.input(), &e.cfg);
        let (model, rep) = enroll_with(&input, Some(m), cfg, &mut |_, _, _| {}).unwrap();
        assert!(rep.validation_eer.is_finite());
        // The per-user LSTM has the pretrained architecture.
        assert_eq!(model.stored_config().lstm.as_ref(), Some(&m.lstm));
        let genuine = model.score(&utt(1, 1, 30)).unwrap();
        assert!(genuine.word.is_finite());
        // A pretrained model for another sequence length is refused.
        let other_t = EnrollConfig {
            timesteps: 10,
            ..cfg.clone()
        };
        assert!(matches!(
            enroll_with(&input, Some(m), &other_t, &mut |_, _, _| {}),
            Err(crate::model::password::PasswordError::FeatureMismatch { .. })
        ));
    }

    #[test]
    fn the_encoded_word_model_reads_the_frozen_backbone_and_round_trips() {
        use crate::model::file::Expect;
        use crate::model::password::{
            enroll, enroll_with, PasswordError, PasswordModel, WordModelKind,
        };
        let e = Enrolment::new(WordModelKind::Encoded);
        let (m, input, cfg) = (&e.m, e.input(), &e.cfg);
        // Without a pretrained backbone there is nothing to encode with.
        assert!(matches!(
            enroll(&input, cfg, &mut |_, _, _| {}),
            Err(PasswordError::Invalid(_))
        ));
        let (model, _) = enroll_with(&input, Some(m), cfg, &mut |_, _, _| {}).unwrap();
        assert_eq!(model.stored_config().word_model, WordModelKind::Encoded);
        assert_eq!(model.stored_config().lstm.as_ref(), Some(&m.lstm));
        // The ridge reads h_T: one weight per backbone output.
        let bytes = model.to_bytes().unwrap();
        let back = PasswordModel::from_bytes(&bytes, &Expect::backbone("t", "", 6)).unwrap();
        let probe = utt(1, 1, 30);
        let (a, b) = (model.score(&probe).unwrap(), back.score(&probe).unwrap());
        assert!(a.word.is_finite());
        assert_eq!(
            a.word, b.word,
            "the stored backbone scores as the trained one"
        );
        // The word score follows the word: the password scores above another word.
        assert!(a.word > model.score(&utt(1, 3, 30)).unwrap().word);
    }

    #[test]
    fn refuses_too_few_classes_and_mixed_features() {
        let a = utt(1, 1, 0);
        let one = [LabelledClip {
            speaker: "S1",
            utterance: "01",
            features: &a,
        }];
        assert!(matches!(
            pretrain(&one, SHA, FeatureLayout::Box, &PretrainConfig::default()),
            Err(PretrainedError::TooFewClasses(1))
        ));
        let mut b = utt(1, 2, 0);
        b.backbone = "other".into();
        let mixed = [
            one[0],
            LabelledClip {
                speaker: "S1",
                utterance: "02",
                features: &b,
            },
        ];
        assert!(matches!(
            pretrain(&mixed, SHA, FeatureLayout::Box, &PretrainConfig::default()),
            Err(PretrainedError::FeatureKind { index: 1, .. })
        ));
    }
}
