//! The impostor bank: feature sequences of *other* people, the negatives a per-user model is
//! trained against, stored with the backbone they were computed with so that a bank from another
//! backbone is never mixed with a user's features.
//!
//! # File format (version 2)
//!
//! All integers little-endian.
//!
//! ```text
//! offset  size  field
//! 0       12    magic  b"AUTHNETBANK\0"
//! 12      4     u32    format version (2; version 1 banks predate feature version 3)
//! 16      8     u64    H = header length in bytes (<= MAX_HEADER_BYTES)
//! 24      H     JSON   BankHeader { backbone, backbone_sha256, identity_dim, mouth_dim,
//!                                   entries, body_bytes, created }
//! 24+H    B     body   `entries` records, B = body_bytes = exactly the rest of the file
//! ```
//!
//! Each body record:
//!
//! ```text
//! u16 len, UTF-8 speaker      (len <= MAX_NAME_BYTES)
//! u16 len, UTF-8 word
//! u16 len, UTF-8 instance
//! u32 frames_read
//! u32 n                        (n <= MAX_FRAMES_PER_ENTRY)
//! n × (identity_dim + mouth_dim) f32: per frame, the identity values then the mouth values
//! ```
//!
//! The loader trusts no length: the header length is capped and checked against the file size
//! before it is read, the declared body size must equal what is actually left in the file, and
//! every record's frame block is checked against the bytes remaining before anything is
//! allocated for it. Every refusal is a [`BankError`]; none panics.
//!
//! # Layout walked by the builder
//!
//! `<root>/<SPK>/words/<WW>/<II>/` holding that utterance's frame images (MIRACL-VC1's layout;
//! see [`walk_utterances`]).

use std::error::Error as StdError;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::file::rfc3339_utc;
use crate::features::{FeatureLayout, FileMismatch, FrameFeatures, UtteranceFeatures};
use crate::fsutil::Reader;

/// The first bytes of every bank file.
pub const MAGIC: &[u8; 12] = b"AUTHNETBANK\0";
/// The only format version this code reads and writes.
pub const FORMAT_VERSION: u32 = 2;
/// Cap on the JSON header, so that a lying length cannot make the loader allocate: the header
/// holds a few short strings and numbers, well under 1 KiB in practice.
pub const MAX_HEADER_BYTES: u64 = 1 << 20;
/// Cap on a whole bank file. All 10 MIRACL-VC1 speakers × 100 word utterances × 22 frames at
/// 512 + 512 dimensions is about 90 MiB; 1 GiB leaves room for larger corpora while bounding
/// what a corrupt or hostile file can make the daemon read.
pub const MAX_BANK_BYTES: u64 = 1 << 30;
/// Cap on `identity_dim` and `mouth_dim`.
pub const MAX_DIM: usize = 1 << 16;
/// Cap on the speaker, word and instance labels, in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// Cap on frames per utterance (MIRACL-VC1 word utterances have 4–22).
pub const MAX_FRAMES_PER_ENTRY: usize = 4096;

const PREFIX_BYTES: u64 = 12 + 4 + 8;

/// Why a bank could not be built, saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum BankError {
    /// Reading or writing the file failed, or it is over its cap.
    #[error(transparent)]
    File(#[from] crate::fsutil::FileError),
    /// The file does not start with [`MAGIC`].
    #[error("not an AuthNet impostor bank (bad magic)")]
    BadMagic,
    /// A format version this code does not know.
    #[error("unsupported bank format version {found} (this build reads {FORMAT_VERSION}); rebuild the bank with `authnet-eval bank --dataset DIR --crop MODE --out FILE`")]
    UnsupportedVersion {
        /// The version in the file (or in the struct being saved).
        found: u32,
    },
    /// The file ends before `what` is complete.
    #[error("truncated bank: {what} needs {needed} bytes, {available} left")]
    Truncated {
        /// The part being read.
        what: &'static str,
        /// Bytes it needs.
        needed: u64,
        /// Bytes left in the file.
        available: u64,
    },
    /// The declared header length is over [`MAX_HEADER_BYTES`].
    #[error("bank header declares {len} bytes, more than the {max}-byte cap")]
    HeaderTooLarge {
        /// Declared length.
        len: u64,
        /// The cap.
        max: u64,
    },
    /// The header is not the expected JSON.
    #[error("invalid bank header")]
    Header(#[source] serde_json::Error),
    /// The header's `body_bytes` differs from what the file holds after the header.
    #[error("bank header declares a {declared}-byte body but {actual} bytes follow it")]
    BodyLength {
        /// Declared body size.
        declared: u64,
        /// Actual bytes after the header.
        actual: u64,
    },
    /// Bytes remain after the declared number of records.
    #[error("{extra} bytes after the last of the {entries} declared entries")]
    TrailingBytes {
        /// Declared entry count.
        entries: usize,
        /// Unread bytes.
        extra: u64,
    },
    /// The bank was computed with another backbone.
    #[error("impostor bank is for backbone {found:?}, expected {expected:?}")]
    BackboneMismatch {
        /// The backbone the caller uses.
        expected: String,
        /// The backbone of the bank.
        found: String,
    },
    /// The bank's features are of another feature layout than the caller's (the mouth length
    /// says which layout made them; see [`FeatureLayout::of_mouth_dim`]).
    #[error(
        "impostor bank has mouth_dim {mouth_dim} ({}), the daemon's feature_layout is {expected} \
         (mouth_dim {}); rebuild the bank with `authnet-eval --layout {expected} bank --dataset DIR \
         --crop MODE --out FILE`",
        found.map_or_else(|| "no known feature layout".to_string(), |l| format!("the {l} feature layout")),
        expected.mouth_dim()
    )]
    LayoutMismatch {
        /// The caller's layout.
        expected: FeatureLayout,
        /// The bank's layout, when its mouth length is one.
        found: Option<FeatureLayout>,
        /// The bank's mouth length.
        mouth_dim: usize,
    },
    /// Same layout, but its features changed meaning since the bank was built (another
    /// version of [`FeatureLayout::tag`]).
    #[error(
        "impostor bank holds {found} features, the daemon makes {}; rebuild the bank with \
         `authnet-eval --layout {layout} bank --dataset DIR --crop MODE --out FILE`",
        layout.tag()
    )]
    FeaturesOutdated {
        /// The caller's layout.
        layout: FeatureLayout,
        /// The bank's tag ([`FeatureLayout::tag_of_file`]).
        found: String,
    },
    /// The bank's identity dimension differs from the caller's.
    #[error("impostor bank has identity_dim {found}, expected {expected}")]
    DimMismatch {
        /// The caller's dimension.
        expected: usize,
        /// The bank's dimension.
        found: usize,
    },
    /// A dimension over [`MAX_DIM`].
    #[error("dimension {dim} exceeds the cap of {MAX_DIM}")]
    DimTooLarge {
        /// The refused dimension.
        dim: usize,
    },
    /// `backbone_sha256` is not 64 lowercase hex digits.
    #[error("backbone_sha256 {found:?} is not 64 lowercase hex digits")]
    InvalidSha256 {
        /// The refused value.
        found: String,
    },
    /// An entry's feature vectors do not have the bank's dimensions.
    #[error(
        "entry #{index} frame {frame}: identity/mouth dims {identity}/{mouth}, \
         bank has {expected_identity}/{expected_mouth}"
    )]
    EntryDims {
        /// Entry position.
        index: usize,
        /// Frame position within the entry.
        frame: usize,
        /// Found identity length.
        identity: usize,
        /// Found mouth length.
        mouth: usize,
        /// The bank's identity_dim.
        expected_identity: usize,
        /// The bank's mouth_dim.
        expected_mouth: usize,
    },
    /// An entry's declared dimensions or backbone differ from the bank's.
    #[error("entry #{index} was computed with backbone {found:?}, the bank is for {expected:?}")]
    EntryBackbone {
        /// Entry position.
        index: usize,
        /// The bank's backbone.
        expected: String,
        /// The entry's backbone.
        found: String,
    },
    /// A NaN or infinite feature value.
    #[error("entry #{index} holds a non-finite feature value")]
    NonFinite {
        /// Entry position.
        index: usize,
    },
    /// A label over [`MAX_NAME_BYTES`].
    #[error("entry #{index}: {field} is {len} bytes, more than {MAX_NAME_BYTES}")]
    NameTooLong {
        /// Entry position.
        index: usize,
        /// `speaker`, `word` or `instance`.
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// A label that is not UTF-8.
    #[error("entry #{index}: {field} is not UTF-8")]
    NameNotUtf8 {
        /// Entry position.
        index: usize,
        /// `speaker`, `word` or `instance`.
        field: &'static str,
        /// The decoding error.
        #[source]
        source: std::str::Utf8Error,
    },
    /// More frames than [`MAX_FRAMES_PER_ENTRY`].
    #[error("entry #{index} has {frames} frames, more than {MAX_FRAMES_PER_ENTRY}")]
    TooManyFrames {
        /// Entry position.
        index: usize,
        /// Its frame count.
        frames: usize,
    },
    /// A directory name in the corpus layout that is not UTF-8.
    #[error("{path} is not a UTF-8 name")]
    PathNotUtf8 {
        /// The offending path.
        path: PathBuf,
    },
    /// The corpus root is not a directory.
    #[error("{path} is not a directory")]
    NotADirectory {
        /// The path given as root.
        path: PathBuf,
    },
    /// The feature extractor failed on an utterance.
    #[error("feature extraction failed for {dir}")]
    Extract {
        /// The utterance directory.
        dir: PathBuf,
        /// The extractor's error.
        #[source]
        source: Box<dyn StdError + Send + Sync + 'static>,
    },
}

/// One utterance of someone else.
#[derive(Debug, Clone, PartialEq)]
pub struct BankEntry {
    /// Speaker label (e.g. `F05`).
    pub speaker: String,
    /// Word label (e.g. `03`).
    pub word: String,
    /// Instance label (e.g. `07`).
    pub instance: String,
    /// Its features; `backbone`, `identity_dim` and `mouth_dim` equal the bank's.
    pub features: UtteranceFeatures,
}

/// Feature sequences of other people, tagged with the backbone that produced them.
#[derive(Debug, Clone, PartialEq)]
pub struct ImpostorBank {
    /// Format version ([`FORMAT_VERSION`]).
    pub version: u32,
    /// Backbone manifest name.
    pub backbone: String,
    /// sha256 of the backbone model file, 64 lowercase hex digits.
    pub backbone_sha256: String,
    /// Length of every identity vector.
    pub identity_dim: usize,
    /// Length of every mouth vector.
    pub mouth_dim: usize,
    /// When the bank was built (RFC 3339, UTC).
    pub created: String,
    /// The features the bank holds ([`FeatureLayout::tag`]); `None` in banks built before it
    /// was recorded (see [`FeatureLayout::tag_of_file`]).
    pub features: Option<String>,
    /// The utterances, in the walker's order.
    pub entries: Vec<BankEntry>,
}

/// The JSON header of a bank file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BankHeader {
    backbone: String,
    backbone_sha256: String,
    identity_dim: usize,
    mouth_dim: usize,
    entries: usize,
    body_bytes: u64,
    created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    features: Option<String>,
}

/// Bytes of a record with no labels and no frames: three u16 lengths and two u32 counts.
const MIN_RECORD_BYTES: u64 = 3 * 2 + 2 * 4;

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl ImpostorBank {
    /// An empty bank for `backbone`, dated now.
    pub fn new(
        backbone: &str,
        backbone_sha256: &str,
        identity_dim: usize,
        mouth_dim: usize,
    ) -> Self {
        Self {
            version: FORMAT_VERSION,
            backbone: backbone.to_owned(),
            backbone_sha256: backbone_sha256.to_owned(),
            identity_dim,
            mouth_dim,
            created: rfc3339_utc(std::time::SystemTime::now()),
            // The layout is named by the mouth length; the version is this build's.
            features: FeatureLayout::current_tag(mouth_dim).map(str::to_owned),
            entries: Vec::new(),
        }
    }

    /// The feature layout the bank's features were made in (its mouth length names it); `None`
    /// for a length neither layout produces.
    pub fn layout(&self) -> Option<FeatureLayout> {
        FeatureLayout::of_mouth_dim(self.mouth_dim)
    }

    /// Refuses a bank of another feature layout than `expected`, or of an older version of it,
    /// with the command that rebuilds it.
    pub fn check_layout(&self, expected: FeatureLayout) -> Result<(), BankError> {
        expected
            .check_file(self.mouth_dim, self.features.as_deref())
            .map_err(|m| match m {
                FileMismatch::OtherLayout => BankError::LayoutMismatch {
                    expected,
                    found: self.layout(),
                    mouth_dim: self.mouth_dim,
                },
                FileMismatch::Outdated(found) => BankError::FeaturesOutdated {
                    layout: expected,
                    found,
                },
            })
    }

    /// Entries whose speaker is not `speaker`: the negatives for that user.
    pub fn others<'a>(&'a self, speaker: &'a str) -> impl Iterator<Item = &'a BankEntry> + 'a {
        self.entries.iter().filter(move |e| e.speaker != speaker)
    }

    /// Checks the bank-level fields and every entry against them.
    pub fn validate(&self) -> Result<(), BankError> {
        if self.version != FORMAT_VERSION {
            return Err(BankError::UnsupportedVersion {
                found: self.version,
            });
        }
        if !is_sha256_hex(&self.backbone_sha256) {
            return Err(BankError::InvalidSha256 {
                found: self.backbone_sha256.clone(),
            });
        }
        for dim in [self.identity_dim, self.mouth_dim] {
            if dim > MAX_DIM {
                return Err(BankError::DimTooLarge { dim });
            }
        }
        for (index, e) in self.entries.iter().enumerate() {
            self.validate_entry(index, e)?;
        }
        Ok(())
    }

    fn validate_entry(&self, index: usize, e: &BankEntry) -> Result<(), BankError> {
        let f = &e.features;
        if f.backbone != self.backbone {
            return Err(BankError::EntryBackbone {
                index,
                expected: self.backbone.clone(),
                found: f.backbone.clone(),
            });
        }
        for (field, s) in [
            ("speaker", &e.speaker),
            ("word", &e.word),
            ("instance", &e.instance),
        ] {
            if s.len() > MAX_NAME_BYTES {
                return Err(BankError::NameTooLong {
                    index,
                    field,
                    len: s.len(),
                });
            }
        }
        if f.frames.len() > MAX_FRAMES_PER_ENTRY {
            return Err(BankError::TooManyFrames {
                index,
                frames: f.frames.len(),
            });
        }
        let dims_err = |frame: usize, identity: usize, mouth: usize| BankError::EntryDims {
            index,
            frame,
            identity,
            mouth,
            expected_identity: self.identity_dim,
            expected_mouth: self.mouth_dim,
        };
        if f.identity_dim != self.identity_dim || f.mouth_dim != self.mouth_dim {
            return Err(dims_err(0, f.identity_dim, f.mouth_dim));
        }
        for (frame, fr) in f.frames.iter().enumerate() {
            if fr.identity.len() != self.identity_dim || fr.mouth.len() != self.mouth_dim {
                return Err(dims_err(frame, fr.identity.len(), fr.mouth.len()));
            }
            if !fr.identity.iter().chain(&fr.mouth).all(|v| v.is_finite()) {
                return Err(BankError::NonFinite { index });
            }
        }
        Ok(())
    }

    /// The file image (see the module doc), after [`Self::validate`].
    pub fn to_bytes(&self) -> Result<Vec<u8>, BankError> {
        self.validate()?;
        let mut body = Vec::new();
        for e in &self.entries {
            for s in [&e.speaker, &e.word, &e.instance] {
                // Fits: validate() capped every label at MAX_NAME_BYTES (< u16::MAX).
                body.extend_from_slice(&(s.len() as u16).to_le_bytes());
                body.extend_from_slice(s.as_bytes());
            }
            // Fits: frames <= MAX_FRAMES_PER_ENTRY; frames_read is clamped, as it is only a
            // statistic and a u32 already exceeds any real clip.
            let frames_read = u32::try_from(e.features.frames_read).unwrap_or(u32::MAX);
            body.extend_from_slice(&frames_read.to_le_bytes());
            body.extend_from_slice(&(e.features.frames.len() as u32).to_le_bytes());
            for fr in &e.features.frames {
                for v in fr.identity.iter().chain(&fr.mouth) {
                    body.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        let header = BankHeader {
            backbone: self.backbone.clone(),
            backbone_sha256: self.backbone_sha256.clone(),
            identity_dim: self.identity_dim,
            mouth_dim: self.mouth_dim,
            entries: self.entries.len(),
            body_bytes: body.len() as u64,
            created: self.created.clone(),
            features: self.features.clone(),
        };
        let header = serde_json::to_vec(&header).map_err(BankError::Header)?;
        let mut out = Vec::with_capacity(PREFIX_BYTES as usize + header.len() + body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Writes the bank atomically: a temporary file in the same directory, fsync, rename, fsync
    /// of the directory.
    pub fn save(&self, path: &Path) -> Result<(), BankError> {
        let bytes = self.to_bytes()?;
        Ok(crate::fsutil::write_file(path, &bytes)?)
    }

    /// Reads and checks a bank file. The file size is checked against [`MAX_BANK_BYTES`] before
    /// anything is read.
    pub fn load(
        path: &Path,
        expected_backbone: &str,
        expected_identity_dim: usize,
    ) -> Result<Self, BankError> {
        let bytes = crate::fsutil::read_file(path, MAX_BANK_BYTES)?;
        Self::from_bytes(&bytes, expected_backbone, expected_identity_dim)
    }

    /// Parses and checks a bank file image.
    pub fn from_bytes(
        bytes: &[u8],
        expected_backbone: &str,
        expected_identity_dim: usize,
    ) -> Result<Self, BankError> {
        let mut r = Reader::new(bytes);
        if r.take(MAGIC.len(), "magic")? != MAGIC {
            return Err(BankError::BadMagic);
        }
        let version = r.u32("format version")?;
        if version != FORMAT_VERSION {
            return Err(BankError::UnsupportedVersion { found: version });
        }
        let header_len = r.u64("header length")?;
        if header_len > MAX_HEADER_BYTES {
            return Err(BankError::HeaderTooLarge {
                len: header_len,
                max: MAX_HEADER_BYTES,
            });
        }
        // header_len <= 1 MiB, so the cast is lossless.
        let header: BankHeader = serde_json::from_slice(r.take(header_len as usize, "header")?)
            .map_err(BankError::Header)?;
        let actual = r.remaining();
        if header.body_bytes != actual {
            return Err(BankError::BodyLength {
                declared: header.body_bytes,
                actual,
            });
        }
        if header.backbone != expected_backbone {
            return Err(BankError::BackboneMismatch {
                expected: expected_backbone.to_owned(),
                found: header.backbone,
            });
        }
        if header.identity_dim != expected_identity_dim {
            return Err(BankError::DimMismatch {
                expected: expected_identity_dim,
                found: header.identity_dim,
            });
        }
        if !is_sha256_hex(&header.backbone_sha256) {
            return Err(BankError::InvalidSha256 {
                found: header.backbone_sha256,
            });
        }
        for dim in [header.identity_dim, header.mouth_dim] {
            if dim > MAX_DIM {
                return Err(BankError::DimTooLarge { dim });
            }
        }
        let frame_len = header.identity_dim + header.mouth_dim;
        // A lying entry count cannot over-allocate: at most one record per MIN_RECORD_BYTES.
        let cap = header.entries.min((actual / MIN_RECORD_BYTES) as usize);
        let mut entries = Vec::with_capacity(cap);
        for index in 0..header.entries {
            let speaker = r.name(index, "speaker")?;
            let word = r.name(index, "word")?;
            let instance = r.name(index, "instance")?;
            let frames_read = r.u32("frames_read")? as usize;
            let n = r.u32("frame count")? as usize;
            if n > MAX_FRAMES_PER_ENTRY {
                return Err(BankError::TooManyFrames { index, frames: n });
            }
            // n <= 4096 and frame_len <= 2^17, so this is below 2^31 and cannot overflow.
            let block = r.take(n * frame_len * 4, "frame block")?;
            let mut values = block
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
            let mut frames = Vec::with_capacity(n);
            for _ in 0..n {
                let identity: Vec<f32> = values.by_ref().take(header.identity_dim).collect();
                let mouth: Vec<f32> = values.by_ref().take(header.mouth_dim).collect();
                if !identity.iter().chain(&mouth).all(|v| v.is_finite()) {
                    return Err(BankError::NonFinite { index });
                }
                frames.push(FrameFeatures { identity, mouth });
            }
            entries.push(BankEntry {
                speaker,
                word,
                instance,
                features: UtteranceFeatures {
                    backbone: header.backbone.clone(),
                    identity_dim: header.identity_dim,
                    mouth_dim: header.mouth_dim,
                    frames,
                    frames_read,
                },
            });
        }
        if r.remaining() != 0 {
            return Err(BankError::TrailingBytes {
                entries: header.entries,
                extra: r.remaining(),
            });
        }
        Ok(Self {
            version,
            backbone: header.backbone,
            backbone_sha256: header.backbone_sha256,
            identity_dim: header.identity_dim,
            mouth_dim: header.mouth_dim,
            created: header.created,
            features: header.features,
            entries,
        })
    }
}

impl From<crate::fsutil::Short> for BankError {
    fn from(s: crate::fsutil::Short) -> Self {
        Self::Truncated {
            what: s.what,
            needed: s.needed,
            available: s.available,
        }
    }
}

/// The bank's own fields on the shared cursor.
impl Reader<'_> {
    fn u32(&mut self, what: &'static str) -> Result<u32, BankError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, BankError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn name(&mut self, index: usize, field: &'static str) -> Result<String, BankError> {
        let len = u16::from_le_bytes(self.array(field)?) as usize;
        if len > MAX_NAME_BYTES {
            return Err(BankError::NameTooLong { index, field, len });
        }
        let raw = self.take(len, field)?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|source| BankError::NameNotUtf8 {
                index,
                field,
                source,
            })
    }
}

/// One utterance directory of the corpus layout.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct UtteranceRef {
    /// `<SPK>`.
    pub speaker: String,
    /// `<WW>`.
    pub word: String,
    /// `<II>`.
    pub instance: String,
    /// `<root>/<SPK>/words/<WW>/<II>`, the directory holding the frame images.
    pub dir: PathBuf,
}

/// Sorted (by file name) subdirectories of `dir`, skipping files and hidden entries.
fn subdirs(dir: &Path) -> Result<Vec<(String, PathBuf)>, BankError> {
    let io = |source| BankError::from(crate::fsutil::FileError::io(dir, source));
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        // Follows symlinks, so a corpus assembled from links walks like a copied one.
        if !path.is_dir() {
            continue;
        }
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| BankError::PathNotUtf8 { path: path.clone() })?;
        if name.starts_with('.') {
            continue;
        }
        out.push((name, path));
    }
    out.sort();
    Ok(out)
}

/// Video files `<II>.<ext>` of a word directory, as (instance, path): `<II>` is the file stem.
fn video_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, BankError> {
    let io = |source| BankError::from(crate::fsutil::FileError::io(dir, source));
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if !crate::capture::is_video_file(&path) {
            continue;
        }
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            return Err(BankError::PathNotUtf8 { path });
        };
        if !stem.starts_with('.') {
            out.push((stem.to_string(), path));
        }
    }
    Ok(out)
}

/// Every utterance `<root>/<SPK>/words/<WW>/<II>`, a directory of frames or a video file
/// `<II>.mp4` (or another [`crate::capture::VIDEO_EXTS`] extension), sorted by speaker, word,
/// instance.
///
/// Regular files and hidden entries at any level are skipped (a `README.md` next to the
/// speakers is fine), as are speakers without a `words` directory (e.g. phrases only). Whether
/// an utterance directory holds usable frames is the extractor's business, not the walker's.
pub fn walk_utterances(root: &Path) -> Result<Vec<UtteranceRef>, BankError> {
    if !root.is_dir() {
        return Err(BankError::NotADirectory {
            path: root.to_owned(),
        });
    }
    let mut out = Vec::new();
    for (speaker, spk_dir) in subdirs(root)? {
        let words = spk_dir.join("words");
        if !words.is_dir() {
            continue;
        }
        for (word, word_dir) in subdirs(&words)? {
            let mut instances = subdirs(&word_dir)?;
            instances.extend(video_files(&word_dir)?);
            instances.sort();
            for (instance, dir) in instances {
                out.push(UtteranceRef {
                    speaker: speaker.clone(),
                    word: word.clone(),
                    instance,
                    dir,
                });
            }
        }
    }
    Ok(out)
}

/// Builds a bank from every utterance under `root` (see [`walk_utterances`]), in walk order.
///
/// `extract` turns an utterance directory into features; its error is kept as the source of
/// [`BankError::Extract`]. Utterances in which no frame yielded features (no face found) are left
/// out, since an empty sequence is no training negative; every other result must match the
/// bank's backbone and dimensions.
pub fn build_bank<F, E>(
    root: &Path,
    backbone: &str,
    backbone_sha256: &str,
    identity_dim: usize,
    mouth_dim: usize,
    mut extract: F,
) -> Result<ImpostorBank, BankError>
where
    F: FnMut(&Path) -> Result<UtteranceFeatures, E>,
    E: StdError + Send + Sync + 'static,
{
    let mut bank = ImpostorBank::new(backbone, backbone_sha256, identity_dim, mouth_dim);
    for u in walk_utterances(root)? {
        let features = extract(&u.dir).map_err(|e| BankError::Extract {
            dir: u.dir.clone(),
            source: Box::new(e),
        })?;
        if features.frames.is_empty() {
            continue;
        }
        let entry = BankEntry {
            speaker: u.speaker,
            word: u.word,
            instance: u.instance,
            features,
        };
        bank.validate_entry(bank.entries.len(), &entry)?;
        bank.entries.push(entry);
    }
    bank.validate()?;
    Ok(bank)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn utt(backbone: &str, id: usize, mouth: usize, frames: usize, seed: f32) -> UtteranceFeatures {
        UtteranceFeatures {
            backbone: backbone.into(),
            identity_dim: id,
            mouth_dim: mouth,
            frames: (0..frames)
                .map(|f| FrameFeatures {
                    identity: (0..id).map(|i| seed + f as f32 + i as f32 * 0.5).collect(),
                    mouth: (0..mouth).map(|i| -seed - i as f32).collect(),
                })
                .collect(),
            frames_read: frames + 1,
        }
    }

    fn sample() -> ImpostorBank {
        let mut b = ImpostorBank::new("mobilefacenet", SHA, 3, 2);
        for (k, (spk, frames)) in [("F01", 4usize), ("M01", 1), ("F05", 22)]
            .iter()
            .enumerate()
        {
            b.entries.push(BankEntry {
                speaker: (*spk).into(),
                word: format!("{:02}", k + 1),
                instance: "07".into(),
                features: utt("mobilefacenet", 3, 2, *frames, k as f32),
            });
        }
        b
    }

    #[test]
    fn round_trip_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bank.bin");
        let b = sample();
        b.save(&path).unwrap();
        let back = ImpostorBank::load(&path, "mobilefacenet", 3).unwrap();
        assert_eq!(back, b);
        // Only the bank itself is left in the directory (the temporary file was renamed).
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(
            back.others("F01")
                .map(|e| e.speaker.as_str())
                .collect::<Vec<_>>(),
            vec!["M01", "F05"]
        );
    }

    #[test]
    fn layout_is_as_documented() {
        let bytes = sample().to_bytes().unwrap();
        assert_eq!(&bytes[..12], b"AUTHNETBANK\0");
        assert_eq!(&bytes[12..16], &[2, 0, 0, 0]);
        let h = u64::from_le_bytes(bytes[16..24].try_into().unwrap()) as usize;
        let header: serde_json::Value = serde_json::from_slice(&bytes[24..24 + h]).unwrap();
        assert_eq!(header["entries"], 3);
        assert_eq!(header["identity_dim"], 3);
        assert_eq!(header["body_bytes"], (bytes.len() - 24 - h) as u64);
        // First record: "F01", "01", "07", frames_read 5, 4 frames of 5 f32.
        let body = &bytes[24 + h..];
        assert_eq!(&body[..5], &[3, 0, b'F', b'0', b'1']);
        let rec = 2 + 3 + 2 + 2 + 2 + 2 + 4 + 4 + 4 * 5 * 4;
        assert_eq!(
            &body[rec - 4 * 5 * 4 - 8..rec - 4 * 5 * 4],
            &[5, 0, 0, 0, 4, 0, 0, 0]
        );
    }

    #[test]
    fn a_bank_of_the_other_layout_is_refused_with_the_rebuild_command() {
        use crate::features::FeatureLayout;
        let (boxd, meshd) = (
            FeatureLayout::Box.mouth_dim(),
            FeatureLayout::Mesh.mouth_dim(),
        );
        let b = ImpostorBank::new("mobilefacenet", SHA, 3, meshd);
        assert_eq!(b.layout(), Some(FeatureLayout::Mesh));
        assert!(b.check_layout(FeatureLayout::Mesh).is_ok());
        let e = b.check_layout(FeatureLayout::Box).unwrap_err();
        assert!(matches!(
            e,
            BankError::LayoutMismatch {
                expected: FeatureLayout::Box,
                found: Some(FeatureLayout::Mesh),
                ..
            }
        ));
        let msg = e.to_string();
        assert!(msg.contains("mesh feature layout"), "{msg}");
        assert!(msg.contains("authnet-eval --layout box bank"), "{msg}");
        let b = ImpostorBank::new("mobilefacenet", SHA, 3, boxd);
        assert!(b.check_layout(FeatureLayout::Box).is_ok());
        assert!(b.check_layout(FeatureLayout::Mesh).is_err());
        // A length neither layout makes (the sample bank's 2) is refused by both.
        let msg = sample()
            .check_layout(FeatureLayout::Box)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("no known feature layout"), "{msg}");
    }

    #[test]
    fn a_bank_of_an_older_version_of_the_layout_is_refused_and_the_tag_survives_a_round_trip() {
        use crate::features::FeatureLayout;
        let mesh = FeatureLayout::Mesh;
        let b = ImpostorBank::new("mobilefacenet", SHA, 3, mesh.mouth_dim());
        assert_eq!(b.features.as_deref(), Some(mesh.tag()));
        let back = ImpostorBank::from_bytes(&b.to_bytes().unwrap(), "mobilefacenet", 3).unwrap();
        assert_eq!(back.features.as_deref(), Some(mesh.tag()));
        assert!(back.check_layout(mesh).is_ok());
        // Built before the tag was recorded (no "features" key in the header), or tagged with
        // an older version: refused, with the command that rebuilds it.
        for old in [None, Some("mesh-v3".to_owned())] {
            let b = ImpostorBank {
                features: old,
                ..b.clone()
            };
            let back =
                ImpostorBank::from_bytes(&b.to_bytes().unwrap(), "mobilefacenet", 3).unwrap();
            let e = back.check_layout(mesh).unwrap_err();
            assert!(matches!(e, BankError::FeaturesOutdated { .. }), "{e:?}");
            let msg = e.to_string();
            assert!(
                msg.contains("mesh-v3")
                    && msg.contains(mesh.tag())
                    && msg.contains("authnet-eval --layout mesh bank"),
                "{msg}"
            );
        }
        // Box features have not changed since: an untagged box bank is still accepted.
        let boxl = FeatureLayout::Box;
        let b = ImpostorBank {
            features: None,
            ..ImpostorBank::new("mobilefacenet", SHA, 3, boxl.mouth_dim())
        };
        assert!(b.check_layout(boxl).is_ok());
    }

    #[test]
    fn wrong_magic_is_refused() {
        let mut bytes = sample().to_bytes().unwrap();
        bytes[0] = b'X';
        assert!(matches!(
            ImpostorBank::from_bytes(&bytes, "mobilefacenet", 3),
            Err(BankError::BadMagic)
        ));
        assert!(matches!(
            ImpostorBank::from_bytes(b"PK\x03\x04", "mobilefacenet", 3),
            Err(BankError::Truncated { what: "magic", .. })
        ));
    }

    #[test]
    fn unknown_version_is_refused() {
        let mut bytes = sample().to_bytes().unwrap();
        bytes[12..16].copy_from_slice(&1u32.to_le_bytes());
        let e = ImpostorBank::from_bytes(&bytes, "mobilefacenet", 3).unwrap_err();
        assert!(matches!(e, BankError::UnsupportedVersion { found: 1 }));
        // An old bank is refused with the way to rebuild it.
        assert!(e.to_string().contains("authnet-eval bank"), "{e}");
        let mut b = sample();
        b.version = 7;
        assert!(matches!(
            b.to_bytes(),
            Err(BankError::UnsupportedVersion { found: 7 })
        ));
    }

    #[test]
    fn truncation_anywhere_is_a_typed_error() {
        let bytes = sample().to_bytes().unwrap();
        let h = u64::from_le_bytes(bytes[16..24].try_into().unwrap()) as usize;
        for cut in [
            0,
            5,
            12,
            14,
            20,
            24,
            24 + h / 2,
            24 + h,
            24 + h + 3,
            bytes.len() - 1,
        ] {
            match ImpostorBank::from_bytes(&bytes[..cut], "mobilefacenet", 3) {
                Err(BankError::Truncated { .. }) => assert!(cut <= 24 + h, "cut {cut}"),
                // Past the header the declared body size no longer matches.
                Err(BankError::BodyLength { declared, actual }) => {
                    assert!(cut >= 24 + h, "cut {cut}");
                    assert_eq!(declared, (bytes.len() - 24 - h) as u64);
                    assert_eq!(actual, (cut - 24 - h) as u64);
                }
                other => panic!("cut {cut}: {other:?}"),
            }
        }
        // Every cut point refuses (none panics or loads).
        for cut in 0..bytes.len() {
            assert!(ImpostorBank::from_bytes(&bytes[..cut], "mobilefacenet", 3).is_err());
        }
    }

    #[test]
    fn backbone_and_dim_mismatch_are_refused() {
        let bytes = sample().to_bytes().unwrap();
        match ImpostorBank::from_bytes(&bytes, "arcface", 3) {
            Err(BankError::BackboneMismatch { expected, found }) => {
                assert_eq!(
                    (expected.as_str(), found.as_str()),
                    ("arcface", "mobilefacenet")
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            ImpostorBank::from_bytes(&bytes, "mobilefacenet", 512),
            Err(BankError::DimMismatch {
                expected: 512,
                found: 3
            })
        ));
    }

    #[test]
    fn entries_with_wrong_dims_or_backbone_are_refused_on_save() {
        let mut b = sample();
        b.entries[1].features.frames[0].mouth.push(1.0);
        assert!(matches!(
            b.to_bytes(),
            Err(BankError::EntryDims {
                index: 1,
                frame: 0,
                identity: 3,
                mouth: 3,
                ..
            })
        ));
        let mut b = sample();
        b.entries[2].features.backbone = "arcface".into();
        assert!(matches!(
            b.to_bytes(),
            Err(BankError::EntryBackbone { index: 2, .. })
        ));
        let mut b = sample();
        b.entries[0].features.frames[3].identity[0] = f32::NAN;
        assert!(matches!(
            b.to_bytes(),
            Err(BankError::NonFinite { index: 0 })
        ));
        let mut b = sample();
        b.backbone_sha256 = "ABC".into();
        assert!(matches!(b.to_bytes(), Err(BankError::InvalidSha256 { .. })));
    }

    /// Rewrites the header JSON of a valid image with `edit`, fixing up the header length.
    fn with_header(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let bytes = sample().to_bytes().unwrap();
        let h = u64::from_le_bytes(bytes[16..24].try_into().unwrap()) as usize;
        let mut header: serde_json::Value = serde_json::from_slice(&bytes[24..24 + h]).unwrap();
        edit(&mut header);
        let header = serde_json::to_vec(&header).unwrap();
        let mut out = bytes[..16].to_vec();
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&bytes[24 + h..]);
        out
    }

    #[test]
    fn lying_lengths_are_refused_without_allocating() {
        // Header length far beyond the cap.
        let mut bytes = sample().to_bytes().unwrap();
        bytes[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            ImpostorBank::from_bytes(&bytes, "mobilefacenet", 3),
            Err(BankError::HeaderTooLarge { len: u64::MAX, .. })
        ));
        // Header length within the cap but beyond the file.
        bytes[16..24].copy_from_slice(&(1u64 << 19).to_le_bytes());
        assert!(matches!(
            ImpostorBank::from_bytes(&bytes, "mobilefacenet", 3),
            Err(BankError::Truncated { what: "header", .. })
        ));
        // Declared body larger than the file.
        let b = with_header(|h| h["body_bytes"] = serde_json::json!(1u64 << 40));
        assert!(matches!(
            ImpostorBank::from_bytes(&b, "mobilefacenet", 3),
            Err(BankError::BodyLength {
                declared: 1099511627776,
                ..
            })
        ));
        // Huge entry count: records run out, no usize::MAX-sized Vec is allocated.
        let b = with_header(|h| h["entries"] = serde_json::json!(usize::MAX));
        assert!(matches!(
            ImpostorBank::from_bytes(&b, "mobilefacenet", 3),
            Err(BankError::Truncated { .. })
        ));
        // Fewer entries declared than present.
        let b = with_header(|h| h["entries"] = serde_json::json!(2));
        assert!(matches!(
            ImpostorBank::from_bytes(&b, "mobilefacenet", 3),
            Err(BankError::TrailingBytes { entries: 2, .. })
        ));
        // A huge dimension.
        let b = with_header(|h| h["mouth_dim"] = serde_json::json!(1u64 << 40));
        assert!(matches!(
            ImpostorBank::from_bytes(&b, "mobilefacenet", 3),
            Err(BankError::DimTooLarge { .. })
        ));
        // A per-record frame count beyond the cap, and one beyond the bytes left.
        let bytes = sample().to_bytes().unwrap();
        let h = u64::from_le_bytes(bytes[16..24].try_into().unwrap()) as usize;
        let n_at = 24 + h + 2 + 3 + 2 + 2 + 2 + 2 + 4;
        let mut b = bytes.clone();
        b[n_at..n_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            ImpostorBank::from_bytes(&b, "mobilefacenet", 3),
            Err(BankError::TooManyFrames {
                index: 0,
                frames: 4294967295
            })
        ));
        let mut b = bytes.clone();
        b[n_at..n_at + 4].copy_from_slice(&4000u32.to_le_bytes());
        assert!(matches!(
            ImpostorBank::from_bytes(&b, "mobilefacenet", 3),
            Err(BankError::Truncated {
                what: "frame block",
                ..
            })
        ));
        // A label length beyond the cap.
        let mut b = bytes;
        b[24 + h..24 + h + 2].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(matches!(
            ImpostorBank::from_bytes(&b, "mobilefacenet", 3),
            Err(BankError::NameTooLong {
                index: 0,
                field: "speaker",
                len: 65535
            })
        ));
    }

    #[test]
    fn malformed_header_and_non_finite_values_are_refused() {
        let b = with_header(|h| h["extra"] = serde_json::json!(1));
        assert!(matches!(
            ImpostorBank::from_bytes(&b, "mobilefacenet", 3),
            Err(BankError::Header(_))
        ));
        let mut bytes = sample().to_bytes().unwrap();
        let n = bytes.len();
        bytes[n - 4..].copy_from_slice(&f32::INFINITY.to_le_bytes());
        assert!(matches!(
            ImpostorBank::from_bytes(&bytes, "mobilefacenet", 3),
            Err(BankError::NonFinite { index: 2 })
        ));
    }

    #[test]
    fn load_reports_missing_files_with_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.bin");
        match ImpostorBank::load(&path, "mobilefacenet", 3) {
            Err(BankError::File(crate::fsutil::FileError::Io { path: p, source })) => {
                assert_eq!(p, path);
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("{other:?}"),
        }
    }

    fn touch_tree(root: &Path, dirs: &[&str], files: &[&str]) {
        for d in dirs {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        for f in files {
            fs::write(root.join(f), b"x").unwrap();
        }
    }

    #[test]
    fn walker_is_sorted_and_skips_noise() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        touch_tree(
            root,
            &[
                "M01/words/02/01",
                "F02/words/10/02",
                "F02/words/10/01",
                "F02/words/01/03",
                "F02/phrases/01/01",
                "F05/phrases/01/01",
                ".cache/words/01/01",
                "F02/words/01/.tmp",
            ],
            &[
                "README.md",
                "F02/words/01/03/color_001.jpg",
                "F02/words/10/notes.txt",
            ],
        );
        let got: Vec<(String, String, String)> = walk_utterances(root)
            .unwrap()
            .into_iter()
            .map(|u| {
                assert_eq!(
                    u.dir,
                    root.join(&u.speaker)
                        .join("words")
                        .join(&u.word)
                        .join(&u.instance)
                );
                (u.speaker, u.word, u.instance)
            })
            .collect();
        let want: Vec<(String, String, String)> = [
            ("F02", "01", "03"),
            ("F02", "10", "01"),
            ("F02", "10", "02"),
            ("M01", "02", "01"),
        ]
        .iter()
        .map(|(a, b, c)| ((*a).into(), (*b).into(), (*c).into()))
        .collect();
        assert_eq!(got, want);
        assert!(matches!(
            walk_utterances(&root.join("README.md")),
            Err(BankError::NotADirectory { .. })
        ));
        // Video files stand for utterances too (`<II>.mp4`), beside or instead of folders.
        touch_tree(
            root,
            &["V01/words/03"],
            &[
                "V01/words/03/02.mp4",
                "V01/words/03/01.webm",
                "V01/words/03/x.txt",
            ],
        );
        let vids: Vec<(String, PathBuf)> = walk_utterances(root)
            .unwrap()
            .into_iter()
            .filter(|u| u.speaker == "V01")
            .map(|u| (u.instance, u.dir))
            .collect();
        assert_eq!(
            vids,
            vec![
                ("01".to_string(), root.join("V01/words/03/01.webm")),
                ("02".to_string(), root.join("V01/words/03/02.mp4")),
            ]
        );
    }

    #[derive(Debug, thiserror::Error)]
    #[error("no frames readable")]
    struct FakeExtractError;

    #[test]
    fn build_bank_walks_extracts_and_validates() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        touch_tree(
            root,
            &["F01/words/01/01", "F01/words/01/02", "M01/words/03/01"],
            &[],
        );
        let mut seen = Vec::new();
        let bank = build_bank(root, "mobilefacenet", SHA, 3, 2, |dir: &Path| {
            seen.push(dir.to_owned());
            // The second utterance has no face in any frame: left out.
            let frames = if seen.len() == 2 { 0 } else { 2 };
            Ok::<_, FakeExtractError>(utt("mobilefacenet", 3, 2, frames, seen.len() as f32))
        })
        .unwrap();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[2], root.join("M01/words/03/01"));
        let labels: Vec<_> = bank
            .entries
            .iter()
            .map(|e| (e.speaker.as_str(), e.word.as_str(), e.instance.as_str()))
            .collect();
        assert_eq!(labels, vec![("F01", "01", "01"), ("M01", "03", "01")]);
        assert_eq!(bank.entries[1].features.frames[0].identity[0], 3.0);

        let err = build_bank(root, "mobilefacenet", SHA, 3, 2, |_: &Path| {
            Err::<UtteranceFeatures, _>(FakeExtractError)
        })
        .unwrap_err();
        match err {
            BankError::Extract { dir, source } => {
                assert_eq!(dir, root.join("F01/words/01/01"));
                assert_eq!(source.to_string(), "no frames readable");
            }
            other => panic!("{other:?}"),
        }

        let err = build_bank(root, "mobilefacenet", SHA, 4, 2, |_: &Path| {
            Ok::<_, FakeExtractError>(utt("mobilefacenet", 3, 2, 2, 0.0))
        })
        .unwrap_err();
        assert!(matches!(
            err,
            BankError::EntryDims {
                index: 0,
                expected_identity: 4,
                identity: 3,
                ..
            }
        ));
    }
}
