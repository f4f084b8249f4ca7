//! The per-user model file: safetensors weights plus an `"authnet"` metadata entry.
//!
//! The file is a plain [safetensors](https://github.com/huggingface/safetensors) file, so any
//! safetensors tool can list it. Its `__metadata__` map has one key, [`METADATA_KEY`], whose value
//! is the JSON of [`ModelMeta`]: which backbone (name and sha256) and dimensions the model was
//! trained on, its sequence length and padding policy, its thresholds and training statistics,
//! and the architecture parameters owned by the model code (`config`, opaque here).
//!
//! Weights cross this module as [`NamedTensor`]s (name, shape, `f32` data), so it does not
//! depend on candle. All tensors are `F32`, little-endian; [`load_model`] returns them sorted by
//! name.
//!
//! [`load_model`] refuses, with a [`ModelFileError`], anything it cannot use as is: a file over
//! [`MAX_MODEL_FILE_BYTES`] (checked before reading), a malformed or truncated safetensors file,
//! missing or malformed metadata, an unknown `format_version`, a model for another backbone or
//! dimension, non-finite thresholds or weights, and `timesteps` outside `1..=MAX_TIMESTEPS`.
//!
//! **Integrity and ownership.** A second metadata key, [`DIGEST_KEY`], holds the sha256 of the
//! metadata JSON and of every tensor (name, shape, data), so a file whose weights or thresholds
//! were edited, or whose data was corrupted in place, is refused ([`ModelFileError::Tampered`]).
//! [`ModelMeta::owner`] binds the model to the account it was enrolled for, by name *and*
//! uid: a caller that passes [`Expect::owner`] (the daemon always does) refuses a model copied
//! into another user's directory, or left behind by a deleted account whose name was reused.
//! The digest is not a signature: whoever can write the state directory (root) can also
//! recompute it. It makes a copied, edited or damaged file fail closed, with a message that
//! says which.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors, View};
use serde::{Deserialize, Serialize};

use crate::features::{FeatureLayout, FileMismatch};
use crate::sequence::PadPolicy;

/// The only `format_version` this code reads and writes. Version 2 added the owner binding
/// and the integrity digest; version 1 files are refused with a message to re-enrol.
pub const FORMAT_VERSION: u32 = 2;
/// The `__metadata__` key holding the [`ModelMeta`] JSON.
pub const METADATA_KEY: &str = "authnet";
/// The `__metadata__` key holding the hex sha256 of the metadata JSON and the tensors.
pub const DIGEST_KEY: &str = "authnet.sha256";
/// Cap on a model file, checked before it is read. A per-user LSTM over 20 steps of a
/// 512 + 512-dimensional input with 256 hidden units is about 4.5 MiB of f32; 64 MiB leaves room
/// for larger heads while bounding what a corrupt file can make the daemon read.
pub const MAX_MODEL_FILE_BYTES: u64 = 64 << 20;
/// Longest supported sequence length (MIRACL-VC1 word clips have at most 22 frames).
pub const MAX_TIMESTEPS: usize = 256;

/// Why a model file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    /// Reading or writing the file failed, or it is over its cap.
    #[error(transparent)]
    File(#[from] crate::fsutil::FileError),
    /// Not a (complete) safetensors file, as judged by the safetensors parser.
    #[error("not a valid safetensors file")]
    Safetensors(#[source] SafeTensorError),
    /// The `__metadata__` map has no [`METADATA_KEY`] entry.
    #[error("the model file has no {METADATA_KEY:?} metadata")]
    MissingMetadata,
    /// The metadata is not the expected JSON.
    #[error("invalid {METADATA_KEY:?} metadata")]
    Metadata(#[source] serde_json::Error),
    /// A `format_version` this code does not know.
    #[error("unsupported model format version {found} (this build reads {FORMAT_VERSION}){}",
        if *found < u64::from(FORMAT_VERSION) {
            "; it was written by an older authnetd: enrol again with `authnet-enroll add`"
        } else { "" })]
    UnsupportedVersion {
        /// The version found.
        found: u64,
    },
    /// The [`DIGEST_KEY`] entry is missing or does not match the content: the file was
    /// edited or damaged after it was written.
    #[error("the model's integrity digest {0}: the file was edited or damaged after enrolment; enrol again")]
    Tampered(&'static str),
    /// The caller expects an owner and the model records none.
    #[error("the model is bound to no account; enrol again")]
    Unbound,
    /// The model belongs to another account (or to an earlier account of the same name).
    #[error("the model belongs to {found} but is being used for {expected}: it was copied from another account, or the account was re-created; enrol again")]
    OwnerMismatch {
        /// The account asked for.
        expected: Owner,
        /// The account recorded in the model.
        found: Owner,
    },
    /// The model was trained on features of another backbone.
    #[error("model is for backbone {found:?}, expected {expected:?}")]
    BackboneMismatch {
        /// The backbone in use.
        expected: String,
        /// The model's backbone.
        found: String,
    },
    /// Same backbone name, different model file.
    #[error("model backbone sha256 is {found}, expected {expected}")]
    BackboneSha256Mismatch {
        /// The sha256 of the backbone in use.
        expected: String,
        /// The model's.
        found: String,
    },
    /// The model was enrolled under another feature layout than the pipeline in use.
    #[error(
        "model has mouth_dim {found} ({} feature layout), the pipeline makes {expected} ({}): it \
         was enrolled under another feature_layout; enrol again",
        layout_name(*found),
        layout_name(*expected)
    )]
    LayoutMismatch {
        /// The pipeline's mouth-vector length.
        expected: usize,
        /// The model's.
        found: usize,
    },
    /// Same layout, but its features changed meaning since the model was enrolled (another
    /// version of [`FeatureLayout::tag`]).
    #[error(
        "model was enrolled on {found} features, the pipeline makes {expected}: the features \
         changed since enrolment and the model would misread them; enrol again"
    )]
    FeaturesOutdated {
        /// The pipeline's tag.
        expected: &'static str,
        /// The model's ([`FeatureLayout::tag_of_file`]).
        found: String,
    },
    /// The model's identity dimension differs from the backbone in use.
    #[error("model has identity_dim {found}, expected {expected}")]
    DimMismatch {
        /// The backbone's dimension.
        expected: usize,
        /// The model's.
        found: usize,
    },
    /// A threshold (or the target FMR) is NaN, infinite or out of range.
    #[error("threshold {which} = {value} is not usable")]
    InvalidThreshold {
        /// `eer`, `fmr` or `target_fmr`.
        which: &'static str,
        /// The value.
        value: f64,
    },
    /// A training statistic is not finite (JSON cannot represent it).
    #[error("training statistic {which} = {value} is not finite")]
    NonFiniteStat {
        /// The field.
        which: &'static str,
        /// The value.
        value: f64,
    },
    /// `timesteps` is 0 or over [`MAX_TIMESTEPS`].
    #[error("timesteps {found} is outside 1..={MAX_TIMESTEPS}")]
    InvalidTimesteps {
        /// The value.
        found: usize,
    },
    /// A tensor that is not `F32`.
    #[error("tensor {name:?} has dtype {dtype:?}, expected F32")]
    WrongDtype {
        /// The tensor.
        name: String,
        /// Its dtype.
        dtype: Dtype,
    },
    /// A tensor whose data length does not match its shape.
    #[error("tensor {name:?} has shape {shape:?} but {len} values")]
    ShapeMismatch {
        /// The tensor.
        name: String,
        /// Its shape.
        shape: Vec<usize>,
        /// Its number of values.
        len: usize,
    },
    /// Two tensors with the same name.
    #[error("tensor name {name:?} appears twice")]
    DuplicateTensor {
        /// The name.
        name: String,
    },
    /// A NaN or infinite weight.
    #[error("tensor {name:?} holds a non-finite value")]
    NonFiniteWeight {
        /// The tensor.
        name: String,
    },
}

/// One weight tensor, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Name (e.g. `lstm.weight_ih_l0`).
    pub name: String,
    /// Shape; the product equals `data.len()`.
    pub shape: Vec<usize>,
    /// Values in row-major order.
    pub data: Vec<f32>,
}

impl NamedTensor {
    /// A tensor from its parts (checked by [`save_model`], not here).
    pub fn new(name: impl Into<String>, shape: Vec<usize>, data: Vec<f32>) -> Self {
        Self {
            name: name.into(),
            shape,
            data,
        }
    }
}

/// Operating thresholds on the model's score (accept iff `score >= threshold`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// The equal-error-rate threshold on the validation scores.
    pub eer: f64,
    /// The threshold meeting `target_fmr` on the validation scores.
    pub fmr: f64,
    /// The FMR that `fmr` was chosen for, in `[0, 1]`.
    pub target_fmr: f64,
}

/// How the model was trained, for reports and sanity checks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainingStats {
    /// Genuine training sequences.
    pub positives: usize,
    /// Impostor training sequences.
    pub negatives: usize,
    /// Epochs run.
    pub epochs: usize,
    /// EER on the held-out validation split.
    pub validation_eer: f64,
    /// Mean validation score of genuine sequences.
    pub genuine_mean: f64,
    /// Mean validation score of impostor sequences.
    pub impostor_mean: f64,
    /// Wall-clock training time.
    pub train_seconds: f64,
}

/// The account a model was enrolled for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Login name.
    pub user: String,
    /// Its uid when the model was enrolled.
    pub uid: u32,
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "user {:?} (uid {})", self.user, self.uid)
    }
}

/// Everything about a model except its weights; stored as JSON under [`METADATA_KEY`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// Backbone manifest name.
    pub backbone: String,
    /// sha256 of the backbone model file.
    pub backbone_sha256: String,
    /// Identity embedding length.
    pub identity_dim: usize,
    /// Mouth descriptor length.
    pub mouth_dim: usize,
    /// Sequence length `T`, in `1..=MAX_TIMESTEPS`.
    pub timesteps: usize,
    /// How clips are brought to `T` steps.
    pub pad_policy: PadPolicy,
    /// Operating thresholds.
    pub thresholds: Thresholds,
    /// Training statistics.
    pub training: TrainingStats,
    /// When the model was trained (RFC 3339, UTC; see [`rfc3339_utc`]).
    pub created: String,
    /// Architecture and fusion parameters, owned and validated by the model code.
    pub config: serde_json::Value,
    /// The account the model was enrolled for; `None` for models that no daemon enrolled
    /// (evaluation runs). See [`Expect::owner`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    /// The features the model was trained on ([`FeatureLayout::tag`]); absent in models
    /// written before it was recorded (see [`FeatureLayout::tag_of_file`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<String>,
}

impl ModelMeta {
    /// Checks what does not depend on the caller's backbone: version, timesteps, thresholds
    /// and the finiteness of every statistic.
    pub fn validate(&self) -> Result<(), ModelFileError> {
        if self.format_version != FORMAT_VERSION {
            return Err(ModelFileError::UnsupportedVersion {
                found: u64::from(self.format_version),
            });
        }
        if self.timesteps == 0 || self.timesteps > MAX_TIMESTEPS {
            return Err(ModelFileError::InvalidTimesteps {
                found: self.timesteps,
            });
        }
        let t = &self.thresholds;
        for (which, value) in [("eer", t.eer), ("fmr", t.fmr), ("target_fmr", t.target_fmr)] {
            if !value.is_finite() {
                return Err(ModelFileError::InvalidThreshold { which, value });
            }
        }
        if !(0.0..=1.0).contains(&t.target_fmr) {
            return Err(ModelFileError::InvalidThreshold {
                which: "target_fmr",
                value: t.target_fmr,
            });
        }
        let s = &self.training;
        for (which, value) in [
            ("validation_eer", s.validation_eer),
            ("genuine_mean", s.genuine_mean),
            ("impostor_mean", s.impostor_mean),
            ("train_seconds", s.train_seconds),
        ] {
            if !value.is_finite() {
                return Err(ModelFileError::NonFiniteStat { which, value });
            }
        }
        Ok(())
    }
}

/// The feature layout whose mouth vectors are `dim` long, for messages.
fn layout_name(dim: usize) -> &'static str {
    FeatureLayout::of_mouth_dim(dim).map_or("an unknown", |l| l.name())
}

/// What the caller's pipeline produces; a model trained on anything else is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect<'a> {
    /// Backbone manifest name in use.
    pub backbone: &'a str,
    /// sha256 of the backbone model file in use.
    pub backbone_sha256: &'a str,
    /// Its identity embedding length.
    pub identity_dim: usize,
    /// The feature layout of the pipeline in use, or `None` to accept any (evaluation tools).
    /// A model enrolled under another `feature_layout`, or under an older version of this one
    /// ([`FeatureLayout::tag`]), is refused here, at load, rather than misreading every probe.
    pub layout: Option<FeatureLayout>,
    /// The account the model must belong to, or `None` to accept any (evaluation tools). The
    /// daemon always passes the requesting user's name and current uid.
    pub owner: Option<&'a Owner>,
}

impl<'a> Expect<'a> {
    /// A backbone (name, sha256, embedding length), any feature layout and any owner: what
    /// evaluation tools and tests load with. The daemon sets `layout` and `owner` too.
    pub fn backbone(name: &'a str, sha256: &'a str, identity_dim: usize) -> Self {
        Self {
            backbone: name,
            backbone_sha256: sha256,
            identity_dim,
            layout: None,
            owner: None,
        }
    }
}

/// The content digest stored under [`DIGEST_KEY`]: sha256 over the metadata JSON and, for
/// every tensor in name order, its name, shape and little-endian data, each length-prefixed so
/// that no two different contents hash the same input.
fn content_digest(meta_json: &str, tensors: &[NamedTensor]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(b"authnet-model-v2");
    field(meta_json.as_bytes());
    let mut order: Vec<&NamedTensor> = tensors.iter().collect();
    order.sort_by(|a, b| a.name.cmp(&b.name));
    for t in order {
        field(t.name.as_bytes());
        let shape: Vec<u8> = t
            .shape
            .iter()
            .flat_map(|d| (*d as u64).to_le_bytes())
            .collect();
        field(&shape);
        let data: Vec<u8> = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        field(&data);
    }
    hex::encode(h.finalize())
}

/// A tensor as safetensors' serializer wants it.
struct F32View<'a> {
    shape: &'a [usize],
    data: &'a [f32],
}

impl View for F32View<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.data.iter().flat_map(|v| v.to_le_bytes()).collect())
    }
    fn data_len(&self) -> usize {
        self.data.len() * 4
    }
}

/// Names unique, shapes consistent with the data, values finite.
fn validate_tensors(tensors: &[NamedTensor]) -> Result<(), ModelFileError> {
    let mut names = BTreeSet::new();
    for t in tensors {
        if !names.insert(t.name.as_str()) {
            return Err(ModelFileError::DuplicateTensor {
                name: t.name.clone(),
            });
        }
        let elems = t
            .shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if elems != Some(t.data.len()) {
            return Err(ModelFileError::ShapeMismatch {
                name: t.name.clone(),
                shape: t.shape.clone(),
                len: t.data.len(),
            });
        }
        if !t.data.iter().all(|v| v.is_finite()) {
            return Err(ModelFileError::NonFiniteWeight {
                name: t.name.clone(),
            });
        }
    }
    Ok(())
}

/// The file image: checks `meta` and `tensors`, then serializes.
pub fn model_to_bytes(
    meta: &ModelMeta,
    tensors: &[NamedTensor],
) -> Result<Vec<u8>, ModelFileError> {
    meta.validate()?;
    validate_tensors(tensors)?;
    let json = serde_json::to_string(meta).map_err(ModelFileError::Metadata)?;
    let digest = content_digest(&json, tensors);
    let metadata = HashMap::from([
        (METADATA_KEY.to_owned(), json),
        (DIGEST_KEY.to_owned(), digest),
    ]);
    let views = tensors.iter().map(|t| {
        (
            t.name.as_str(),
            F32View {
                shape: &t.shape,
                data: &t.data,
            },
        )
    });
    safetensors::tensor::serialize(views, Some(metadata)).map_err(ModelFileError::Safetensors)
}

/// Writes a model atomically (temporary file in the same directory, fsync, rename, fsync of the
/// directory), after the same checks the loader makes except the backbone comparison.
pub fn save_model(
    path: &Path,
    meta: &ModelMeta,
    tensors: &[NamedTensor],
) -> Result<(), ModelFileError> {
    let bytes = model_to_bytes(meta, tensors)?;
    Ok(crate::fsutil::write_file(path, &bytes)?)
}

/// Reads a model file and checks it against `expect`. The size is checked against
/// [`MAX_MODEL_FILE_BYTES`] before anything is read.
pub fn load_model(
    path: &Path,
    expect: &Expect<'_>,
) -> Result<(ModelMeta, Vec<NamedTensor>), ModelFileError> {
    let bytes = crate::fsutil::read_file(path, MAX_MODEL_FILE_BYTES)?;
    model_from_bytes(&bytes, expect)
}

/// Parses and checks a model file image (see [`load_model`]).
pub fn model_from_bytes(
    bytes: &[u8],
    expect: &Expect<'_>,
) -> Result<(ModelMeta, Vec<NamedTensor>), ModelFileError> {
    let st = SafeTensors::deserialize(bytes).map_err(ModelFileError::Safetensors)?;
    // `deserialize` has already parsed the header; re-reading it is the only way to reach the
    // `__metadata__` map (SafeTensors keeps it private) and costs one small JSON parse.
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(ModelFileError::Safetensors)?;
    let json = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(METADATA_KEY))
        .ok_or(ModelFileError::MissingMetadata)?;
    let stored_digest = header.metadata().as_ref().and_then(|m| m.get(DIGEST_KEY));
    // The version first, so that a future format is reported as such rather than as a JSON
    // shape error.
    let raw: serde_json::Value = serde_json::from_str(json).map_err(ModelFileError::Metadata)?;
    if let Some(found) = raw
        .get("format_version")
        .and_then(serde_json::Value::as_u64)
    {
        if found != u64::from(FORMAT_VERSION) {
            return Err(ModelFileError::UnsupportedVersion { found });
        }
    }
    let meta: ModelMeta = serde_json::from_value(raw).map_err(ModelFileError::Metadata)?;
    meta.validate()?;
    if meta.backbone != expect.backbone {
        return Err(ModelFileError::BackboneMismatch {
            expected: expect.backbone.to_owned(),
            found: meta.backbone,
        });
    }
    if meta.backbone_sha256 != expect.backbone_sha256 {
        return Err(ModelFileError::BackboneSha256Mismatch {
            expected: expect.backbone_sha256.to_owned(),
            found: meta.backbone_sha256,
        });
    }
    if meta.identity_dim != expect.identity_dim {
        return Err(ModelFileError::DimMismatch {
            expected: expect.identity_dim,
            found: meta.identity_dim,
        });
    }
    if let Some(layout) = expect.layout {
        layout
            .check_file(meta.mouth_dim, meta.features.as_deref())
            .map_err(|m| match m {
                FileMismatch::OtherLayout => ModelFileError::LayoutMismatch {
                    expected: layout.mouth_dim(),
                    found: meta.mouth_dim,
                },
                FileMismatch::Outdated(found) => ModelFileError::FeaturesOutdated {
                    expected: layout.tag(),
                    found,
                },
            })?;
    }
    let mut tensors = Vec::with_capacity(st.len());
    for (name, view) in st.iter() {
        if view.dtype() != Dtype::F32 {
            return Err(ModelFileError::WrongDtype {
                name: name.to_owned(),
                dtype: view.dtype(),
            });
        }
        // The parser has checked that the byte length equals shape × 4.
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        tensors.push(NamedTensor {
            name: name.to_owned(),
            shape: view.shape().to_vec(),
            data,
        });
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    validate_tensors(&tensors)?;
    match stored_digest {
        None => return Err(ModelFileError::Tampered("is missing")),
        Some(d) if *d != content_digest(json, &tensors) => {
            return Err(ModelFileError::Tampered("does not match"))
        }
        Some(_) => {}
    }
    if let Some(expected) = expect.owner {
        match &meta.owner {
            None => return Err(ModelFileError::Unbound),
            Some(found) if found != expected => {
                return Err(ModelFileError::OwnerMismatch {
                    expected: expected.clone(),
                    found: found.clone(),
                })
            }
            Some(_) => {}
        }
    }
    Ok((meta, tensors))
}

/// `t` as RFC 3339 in UTC with second precision, e.g. `2025-03-01T12:00:00Z`. Times before the
/// Unix epoch are clamped to it.
pub fn rfc3339_utc(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's `civil_from_days`), in u64 since
    // the input is never negative.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::fs;

    const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const OTHER_SHA: &str = "f123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn meta() -> ModelMeta {
        ModelMeta {
            format_version: FORMAT_VERSION,
            backbone: "mobilefacenet".into(),
            backbone_sha256: SHA.into(),
            identity_dim: 128,
            mouth_dim: 64,
            timesteps: 20,
            pad_policy: PadPolicy::PadEdge,
            thresholds: Thresholds {
                eer: 0.42,
                fmr: 0.61,
                target_fmr: 0.01,
            },
            training: TrainingStats {
                positives: 40,
                negatives: 400,
                epochs: 30,
                validation_eer: 0.05,
                genuine_mean: 0.9,
                impostor_mean: 0.1,
                train_seconds: 12.5,
            },
            created: "2025-03-01T12:00:00Z".into(),
            config: serde_json::json!({"hidden": 32, "layers": 1, "fusion": "concat"}),
            owner: None,
            features: None,
        }
    }

    fn tensors() -> Vec<NamedTensor> {
        vec![
            NamedTensor::new("lstm.bias", vec![4], vec![0.5, -0.5, 1.0, 2.0]),
            NamedTensor::new(
                "head.weight",
                vec![2, 3],
                vec![1.0, 2.0, 3.0, 4.0, 5.0, -6.5],
            ),
            NamedTensor::new("scalar", vec![], vec![7.0]),
        ]
    }

    fn expect() -> Expect<'static> {
        Expect::backbone("mobilefacenet", SHA, 128)
    }

    fn sorted(mut t: Vec<NamedTensor>) -> Vec<NamedTensor> {
        t.sort_by(|a, b| a.name.cmp(&b.name));
        t
    }

    /// A safetensors image with arbitrary metadata, bypassing `model_to_bytes`' checks.
    fn raw_file(metadata: Option<HashMap<String, String>>) -> Vec<u8> {
        let t = tensors();
        let views = t.iter().map(|t| {
            (
                t.name.as_str(),
                F32View {
                    shape: &t.shape,
                    data: &t.data,
                },
            )
        });
        safetensors::tensor::serialize(views, metadata).unwrap()
    }

    fn with_meta_json(json: String) -> Vec<u8> {
        raw_file(Some(HashMap::from([(METADATA_KEY.to_owned(), json)])))
    }

    fn with_meta(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let mut v = serde_json::to_value(meta()).unwrap();
        edit(&mut v);
        with_meta_json(v.to_string())
    }

    #[test]
    fn round_trip_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alice.safetensors");
        save_model(&path, &meta(), &tensors()).unwrap();
        let (m, t) = load_model(&path, &expect()).unwrap();
        assert_eq!(m, meta());
        assert_eq!(t, sorted(tensors()));
        // Saving again replaces the file; no temporary file is left behind.
        let mut m2 = meta();
        m2.thresholds.eer = 0.5;
        save_model(&path, &m2, &tensors()).unwrap();
        assert_eq!(load_model(&path, &expect()).unwrap().0.thresholds.eer, 0.5);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn metadata_is_one_authnet_key_with_snake_case_json() {
        let bytes = model_to_bytes(&meta(), &tensors()).unwrap();
        let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
        let md = header.metadata().as_ref().unwrap();
        assert_eq!(md.len(), 2, "the meta JSON and its digest");
        assert_eq!(md[DIGEST_KEY].len(), 64);
        let v: serde_json::Value = serde_json::from_str(&md["authnet"]).unwrap();
        assert_eq!(v["format_version"], 2);
        assert!(v.get("owner").is_none(), "no owner key when unbound");
        assert_eq!(v["pad_policy"], "pad_edge");
        assert_eq!(v["thresholds"]["target_fmr"], 0.01);
        assert_eq!(v["config"]["hidden"], 32);
    }

    #[test]
    fn not_safetensors_or_truncated_is_refused() {
        for junk in [
            &b""[..],
            b"hello world, not a model",
            b"\xff\xff\xff\xff\xff\xff\xff\xff{}",
        ] {
            assert!(matches!(
                model_from_bytes(junk, &expect()),
                Err(ModelFileError::Safetensors(_))
            ));
        }
        let bytes = model_to_bytes(&meta(), &tensors()).unwrap();
        for cut in [1, 8, 20, bytes.len() / 2, bytes.len() - 1] {
            assert!(
                matches!(
                    model_from_bytes(&bytes[..cut], &expect()),
                    Err(ModelFileError::Safetensors(_))
                ),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn missing_or_malformed_metadata_is_refused() {
        assert!(matches!(
            model_from_bytes(&raw_file(None), &expect()),
            Err(ModelFileError::MissingMetadata)
        ));
        let other_key = raw_file(Some(HashMap::from([("format".into(), "pt".into())])));
        assert!(matches!(
            model_from_bytes(&other_key, &expect()),
            Err(ModelFileError::MissingMetadata)
        ));
        assert!(matches!(
            model_from_bytes(&with_meta_json("{not json".into()), &expect()),
            Err(ModelFileError::Metadata(_))
        ));
        let no_thresholds = with_meta(|v| {
            v.as_object_mut().unwrap().remove("thresholds");
        });
        assert!(matches!(
            model_from_bytes(&no_thresholds, &expect()),
            Err(ModelFileError::Metadata(_))
        ));
    }

    #[test]
    fn unknown_format_version_is_refused() {
        // A future version is reported as such even if its fields changed.
        let v3 = with_meta_json(r#"{"format_version": 3, "layout": "new"}"#.into());
        assert!(matches!(
            model_from_bytes(&v3, &expect()),
            Err(ModelFileError::UnsupportedVersion { found: 3 })
        ));
        let mut m = meta();
        m.format_version = 0;
        assert!(matches!(
            save_model(Path::new("/nonexistent/x"), &m, &tensors()),
            Err(ModelFileError::UnsupportedVersion { found: 0 })
        ));
    }

    #[test]
    fn wrong_backbone_sha_or_dim_is_refused() {
        let bytes = model_to_bytes(&meta(), &tensors()).unwrap();
        let e = Expect {
            backbone: "arcface",
            ..expect()
        };
        match model_from_bytes(&bytes, &e) {
            Err(ModelFileError::BackboneMismatch { expected, found }) => {
                assert_eq!(
                    (expected.as_str(), found.as_str()),
                    ("arcface", "mobilefacenet")
                );
            }
            other => panic!("{other:?}"),
        }
        let e = Expect {
            backbone_sha256: OTHER_SHA,
            ..expect()
        };
        assert!(matches!(
            model_from_bytes(&bytes, &e),
            Err(ModelFileError::BackboneSha256Mismatch { .. })
        ));
        // A model of another feature layout (meta: mouth_dim 64, no layout's length).
        let mesh = FeatureLayout::Mesh.mouth_dim();
        match model_from_bytes(
            &bytes,
            &Expect {
                layout: Some(FeatureLayout::Mesh),
                ..expect()
            },
        ) {
            Err(
                e @ ModelFileError::LayoutMismatch {
                    expected,
                    found: 64,
                },
            ) => {
                assert_eq!(expected, mesh);
                let text = e.to_string();
                assert!(
                    text.contains("(mesh)") && text.contains("enrol again"),
                    "{text}"
                );
            }
            other => panic!("{other:?}"),
        }
        let e = Expect {
            identity_dim: 512,
            ..expect()
        };
        assert!(matches!(
            model_from_bytes(&bytes, &e),
            Err(ModelFileError::DimMismatch {
                expected: 512,
                found: 128
            })
        ));
    }

    #[test]
    fn a_model_of_an_older_version_of_the_layout_is_refused_and_an_untagged_box_one_is_not() {
        let bytes_of = |layout: FeatureLayout, features: Option<&str>| {
            let m = ModelMeta {
                mouth_dim: layout.mouth_dim(),
                features: features.map(str::to_owned),
                ..meta()
            };
            model_to_bytes(&m, &tensors()).unwrap()
        };
        let under = |layout| Expect {
            layout: Some(layout),
            ..expect()
        };
        let mesh = FeatureLayout::Mesh;
        // Enrolled now: loads.
        assert!(model_from_bytes(&bytes_of(mesh, Some(mesh.tag())), &under(mesh)).is_ok());
        // Enrolled before the tag was recorded, when mesh features had other gains.
        for old in [None, Some("mesh-v3")] {
            match model_from_bytes(&bytes_of(mesh, old), &under(mesh)) {
                Err(e @ ModelFileError::FeaturesOutdated { .. }) => {
                    let text = e.to_string();
                    assert!(
                        text.contains("mesh-v3")
                            && text.contains(mesh.tag())
                            && text.contains("enrol again"),
                        "{text}"
                    );
                }
                other => panic!("{other:?}"),
            }
        }
        // Box features have not changed since: an untagged box model still loads.
        let boxl = FeatureLayout::Box;
        assert!(model_from_bytes(&bytes_of(boxl, None), &under(boxl)).is_ok());
        // Evaluation tools accept any.
        assert!(model_from_bytes(&bytes_of(mesh, None), &expect()).is_ok());
    }
    #[test]
    fn unusable_thresholds_and_timesteps_are_refused() {
        // JSON has no NaN: serde_json writes it as null, which is refused as malformed.
        let nan = with_meta(|v| v["thresholds"]["eer"] = serde_json::Value::Null);
        assert!(matches!(
            model_from_bytes(&nan, &expect()),
            Err(ModelFileError::Metadata(_))
        ));
        let bad_target = with_meta(|v| v["thresholds"]["target_fmr"] = serde_json::json!(1.5));
        assert!(matches!(
            model_from_bytes(&bad_target, &expect()),
            Err(ModelFileError::InvalidThreshold {
                which: "target_fmr",
                value: 1.5
            })
        ));
        for t in [0usize, 257, 100_000] {
            let b = with_meta(|v| v["timesteps"] = serde_json::json!(t));
            assert!(
                matches!(
                    model_from_bytes(&b, &expect()),
                    Err(ModelFileError::InvalidTimesteps { found }) if found == t
                ),
                "timesteps {t}"
            );
        }
        // The edge value passes every check but the digest, which `with_meta` does not write.
        assert!(matches!(
            model_from_bytes(
                &with_meta(|v| v["timesteps"] = serde_json::json!(256)),
                &expect()
            ),
            Err(ModelFileError::Tampered("is missing"))
        ));
        // Non-finite values are refused at save time, before they could become nulls.
        let mut m = meta();
        m.thresholds.fmr = f64::INFINITY;
        assert!(matches!(
            model_to_bytes(&m, &tensors()),
            Err(ModelFileError::InvalidThreshold { which: "fmr", .. })
        ));
        let mut m = meta();
        m.training.validation_eer = f64::NAN;
        assert!(matches!(
            model_to_bytes(&m, &tensors()),
            Err(ModelFileError::NonFiniteStat {
                which: "validation_eer",
                ..
            })
        ));
    }

    #[test]
    fn bad_tensors_are_refused() {
        let mut t = tensors();
        t[1].shape = vec![4, 4];
        assert!(matches!(
            model_to_bytes(&meta(), &t),
            Err(ModelFileError::ShapeMismatch { len: 6, .. })
        ));
        let mut t = tensors();
        t[0].data[2] = f32::NAN;
        assert!(matches!(
            model_to_bytes(&meta(), &t),
            Err(ModelFileError::NonFiniteWeight { name }) if name == "lstm.bias"
        ));
        let mut t = tensors();
        t[2].name = "lstm.bias".into();
        assert!(matches!(
            model_to_bytes(&meta(), &t),
            Err(ModelFileError::DuplicateTensor { .. })
        ));
        // A non-finite weight in a file written by another tool.
        let mut bytes = model_to_bytes(&meta(), &tensors()).unwrap();
        let n = bytes.len();
        bytes[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(matches!(
            model_from_bytes(&bytes, &expect()),
            Err(ModelFileError::NonFiniteWeight { .. })
        ));
        // A tensor of another dtype.
        let json = serde_json::to_string(&meta()).unwrap();
        let i32_data: Vec<u8> = [1i32, 2].iter().flat_map(|v| v.to_le_bytes()).collect();
        let view = safetensors::tensor::TensorView::new(Dtype::I32, vec![2], &i32_data).unwrap();
        let bytes = safetensors::tensor::serialize(
            [("ids", view)],
            Some(HashMap::from([(METADATA_KEY.to_owned(), json)])),
        )
        .unwrap();
        assert!(matches!(
            model_from_bytes(&bytes, &expect()),
            Err(ModelFileError::WrongDtype {
                dtype: Dtype::I32,
                ..
            })
        ));
    }

    #[test]
    fn oversized_file_is_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.safetensors");
        let f = fs::File::create(&path).unwrap();
        // Sparse: no 64 MiB is written or read.
        f.set_len(MAX_MODEL_FILE_BYTES + 1).unwrap();
        assert!(matches!(
            load_model(&path, &expect()),
            Err(ModelFileError::File(crate::fsutil::FileError::TooLarge { size, .. })) if size == MAX_MODEL_FILE_BYTES + 1
        ));
        match load_model(&dir.path().join("absent"), &expect()) {
            Err(ModelFileError::File(crate::fsutil::FileError::Io { source, .. })) => {
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        use std::time::Duration;
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3_661); // 2000-02-29 01:01:01
        assert_eq!(rfc3339_utc(t), "2000-02-29T01:01:01Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_735_689_599); // last second of 2024
        assert_eq!(rfc3339_utc(t), "2024-12-31T23:59:59Z");
    }

    fn alice() -> Owner {
        Owner {
            user: "alice".into(),
            uid: 1001,
        }
    }

    #[test]
    fn a_model_is_bound_to_its_account_by_name_and_uid() {
        let mut m = meta();
        m.owner = Some(alice());
        let bytes = model_to_bytes(&m, &tensors()).unwrap();
        let as_ = |o: &Owner| {
            model_from_bytes(
                &bytes,
                &Expect {
                    owner: Some(o),
                    ..expect()
                },
            )
        };
        assert_eq!(as_(&alice()).unwrap().0.owner, Some(alice()));
        // Copied into bob's directory.
        let bob = Owner {
            user: "bob".into(),
            uid: 1002,
        };
        match as_(&bob) {
            Err(e @ ModelFileError::OwnerMismatch { .. }) => {
                let text = e.to_string();
                assert!(
                    text.contains("\"alice\" (uid 1001)") && text.contains("\"bob\""),
                    "{text}"
                );
            }
            other => panic!("{other:?}"),
        }
        // alice deleted and re-created with another uid.
        let new_alice = Owner {
            uid: 1500,
            ..alice()
        };
        assert!(matches!(
            as_(&new_alice),
            Err(ModelFileError::OwnerMismatch { .. })
        ));
        // Evaluation tools pass no owner and accept it.
        assert!(model_from_bytes(&bytes, &expect()).is_ok());
        // A model with no owner is refused wherever an owner is expected.
        let unbound = model_to_bytes(&meta(), &tensors()).unwrap();
        assert!(matches!(
            model_from_bytes(
                &unbound,
                &Expect {
                    owner: Some(&alice()),
                    ..expect()
                }
            ),
            Err(ModelFileError::Unbound)
        ));
    }

    #[test]
    fn an_edited_owner_threshold_or_weight_is_refused_as_tampered() {
        let mut m = meta();
        m.owner = Some(alice());
        let good = model_to_bytes(&m, &tensors()).unwrap();
        let (_, header) = SafeTensors::read_metadata(&good).unwrap();
        let md = header.metadata().clone().unwrap();
        // Rewrite the metadata JSON (owner → bob, or a lower threshold), keeping the digest.
        for (from, to) in [
            (r#""user":"alice""#, r#""user":"bob""#),
            (r#""eer":0.42"#, r#""eer":0.01"#),
        ] {
            let json = md[METADATA_KEY].replace(from, to);
            assert_ne!(json, md[METADATA_KEY]);
            let mut md2 = md.clone();
            md2.insert(METADATA_KEY.into(), json);
            assert!(matches!(
                model_from_bytes(&raw_file(Some(md2)), &expect()),
                Err(ModelFileError::Tampered("does not match"))
            ));
        }
        // One flipped bit in the tensor data, at the end of the file.
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x01;
        assert!(matches!(
            model_from_bytes(&flipped, &expect()),
            Err(ModelFileError::Tampered("does not match"))
        ));
        // No digest at all (a hand-made or pre-v2 file).
        let mut md3 = md.clone();
        md3.remove(DIGEST_KEY);
        assert!(matches!(
            model_from_bytes(&raw_file(Some(md3)), &expect()),
            Err(ModelFileError::Tampered("is missing"))
        ));
    }

    #[test]
    fn a_version_1_file_says_to_enrol_again() {
        let bytes = with_meta(|v| v["format_version"] = 1.into());
        let e = model_from_bytes(&bytes, &expect()).unwrap_err();
        assert!(matches!(e, ModelFileError::UnsupportedVersion { found: 1 }));
        assert!(e.to_string().contains("enrol again"), "{e}");
    }
}
