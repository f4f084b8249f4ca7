//! Per-frame features of one utterance: the identity embedding (backbone) and the mouth-region
//! descriptor, side by side. Everything downstream (model training, scoring, evaluation, the
//! impostor bank, the cache) works on [`UtteranceFeatures`].
//!
//! Two feature layouts exist ([`FeatureLayout`]); both fill the same two vectors per frame:
//!
//! - [`FeatureLayout::Box`] (feature version 2): the detector runs on every frame, the identity
//!   crop is its box, and the mouth descriptor ([`mouth::describe`]) sees a fixed band of it.
//! - [`FeatureLayout::Mesh`] (feature version 3): the face mesh
//!   ([`crate::vision::landmarks`]) is tracked from frame to frame (the detector only finds the
//!   face on the first frame or after loss). The identity crop is framed from the mesh like the
//!   detector's box ([`Mesh::face_box`]). The mouth vector is the mouth descriptor of a crop
//!   placed by the lip landmarks, followed by the 40 lip-contour points (outer and inner)
//!   aligned per frame by a similarity transform fixed by the eye corners and the nose
//!   (translation, rotation and scale removed), and then their frame-to-frame velocities:
//!   [`MESH_MOUTH_DIM`] values. On frames that already are face crops ([`CropMode::None`]) the
//!   mesh runs on the whole crop ([`FaceTracker::track_crop`]) and the identity crop stays the
//!   frame, as in the box layout. Mouth crops ([`CropMode::Mouth`]) hold no face to mesh: they
//!   keep the box features in either layout.
//!
//! The two layouts' mouth vectors differ in length, so a model, a bank or a cache entry of one
//! layout is never scored with the other's features; [`FeatureLayout::of_mouth_dim`] names the
//! layout behind a length in errors.

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

    #[test]
    fn layouts_parse_and_size_their_mouth_vectors() {
        assert_eq!("mesh".parse::<FeatureLayout>(), Ok(FeatureLayout::Mesh));
        assert_eq!("box".parse::<FeatureLayout>(), Ok(FeatureLayout::Box));
        assert!("lips".parse::<FeatureLayout>().is_err());
        assert_eq!(FeatureLayout::default(), FeatureLayout::Mesh);
        assert_eq!(FeatureLayout::Box.mouth_dim(), mouth::MOUTH_DIM);
        assert_eq!(FeatureLayout::Mesh.mouth_dim(), mouth::MOUTH_DIM + 160);
        assert_ne!(FeatureLayout::Box.tag(), FeatureLayout::Mesh.tag());
    }

    #[test]
    fn tags_name_their_layout_and_untagged_files_read_as_the_last_untagged_version() {
        for l in [FeatureLayout::Box, FeatureLayout::Mesh] {
            assert_eq!(FeatureLayout::of_tag(l.tag()), Some(l));
        }
        assert_eq!(FeatureLayout::of_tag("mesh-v3"), Some(FeatureLayout::Mesh));
        assert_eq!(FeatureLayout::of_tag("lips-v1"), None);
        assert_eq!(FeatureLayout::of_tag("mesh"), None);
        assert_eq!(FeatureLayout::untagged(MESH_MOUTH_DIM), Some("mesh-v3"));
        assert_eq!(FeatureLayout::untagged(mouth::MOUTH_DIM), Some("box-v2"));
        assert_eq!(FeatureLayout::untagged(7), None);
        // The box layout's meaning is unchanged since tags were recorded, the mesh layout's
        // lip gains are not: an untagged mesh model must be refused, an untagged box one not.
        assert_eq!(
            FeatureLayout::untagged(mouth::MOUTH_DIM),
            Some(FeatureLayout::Box.tag())
        );
        assert_ne!(
            FeatureLayout::untagged(MESH_MOUTH_DIM),
            Some(FeatureLayout::Mesh.tag())
        );
    }

    #[test]
    fn layouts_are_named_by_their_mouth_length() {
        assert_eq!(
            FeatureLayout::of_mouth_dim(mouth::MOUTH_DIM),
            Some(FeatureLayout::Box)
        );
        assert_eq!(
            FeatureLayout::of_mouth_dim(MESH_MOUTH_DIM),
            Some(FeatureLayout::Mesh)
        );
        assert_eq!(FeatureLayout::of_mouth_dim(7), None);
        assert_eq!(FeatureLayout::Mesh.to_string(), "mesh");
    }

    #[test]
    fn lip_openings_read_the_inner_lip_gap_back() {
        let [a, b] = lip_gap_slots().unwrap();
        let frame = |gap: f32| {
            let mut m = vec![0.0f32; MESH_MOUTH_DIM];
            let o = mouth::MOUTH_DIM;
            m[o + 2 * a + 1] = -gap / 2.0 * LIP_SHAPE_GAIN;
            m[o + 2 * b + 1] = gap / 2.0 * LIP_SHAPE_GAIN;
            FrameFeatures {
                identity: vec![1.0],
                mouth: m,
            }
        };
        let u = UtteranceFeatures {
            backbone: "x".into(),
            identity_dim: 1,
            mouth_dim: MESH_MOUTH_DIM,
            frames: vec![frame(0.05), frame(0.3), frame(0.1)],
            frames_read: 3,
        };
        let v = lip_openings(&u).unwrap();
        assert!((v[1] - 0.3).abs() < 1e-6, "{v:?}");
        assert!((lip_opening_range(&u).unwrap() - 0.25).abs() < 1e-6);
        assert_eq!(lip_opening_range(&u.frozen()), Some(0.0));
        let boxed = UtteranceFeatures {
            mouth_dim: mouth::MOUTH_DIM,
            ..u
        };
        assert_eq!(lip_openings(&boxed), None);
    }

    #[test]
    fn cache_keys_differ_by_layout() {
        let d = tempfile::tempdir().unwrap();
        let img = image::RgbImage::from_pixel(4, 4, image::Rgb([9, 9, 9]));
        img.save(d.path().join("001.png")).unwrap();
        let c = FeatureCache::new(d.path().join("cache"));
        let sha = "0".repeat(64);
        let k = |l| c.key(d.path(), &sha, CropMode::Detect, l).unwrap();
        assert_ne!(k(FeatureLayout::Box), k(FeatureLayout::Mesh));
        assert_eq!(k(FeatureLayout::Mesh), k(FeatureLayout::Mesh));
    }
}

// ---------------------------------------------------------------------------------------------
// Extraction: frames -> UtteranceFeatures
// ---------------------------------------------------------------------------------------------

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::capture::{CaptureError, DirSource, Frame, FrameSource};
use crate::vision::detect::{crop, CropMode, DetectOutcome, FaceBox, FaceDetector};
use crate::vision::embed::{EmbedError, Embedder};
use crate::vision::landmarks::{
    FaceTracker, LandmarkModel, Mesh, TrackOutcome, TrackerConfig, EYE_INNER, EYE_OUTER, INNER_LIP,
    LIP_GAP, NOSE, OUTER_LIP,
};
use crate::vision::mouth;
use crate::vision::worker::EmbedWorker;

/// Mean luma under which a frame is too dark, when no detector gives its own setting.
const DEFAULT_DARK_THRESHOLD: f32 = 25.0;

/// Bumped whenever the meaning of a feature vector changes, so stale cache entries are ignored.
/// Version 3 added [`FeatureLayout`] (the layout's tag is part of every cache key too).
pub const FEATURE_VERSION: u32 = 3;

/// Lip-contour points in the mesh layout (outer then inner contour).
pub const LIP_POINTS: usize = OUTER_LIP.len() + INNER_LIP.len();
/// Mouth-vector length in the mesh layout: descriptor, aligned lip points (x, y), velocities.
pub const MESH_MOUTH_DIM: usize = mouth::MOUTH_DIM + 4 * LIP_POINTS;
/// Weight of the aligned lip points in the mesh layout's mouth vector. The points are in units
/// of the outer-eye-corner distance (a closed mouth spans about 0.8 of it), so a gain of 1 puts
/// the shape block on the scale of the descriptor's two unit-norm halves. 2 (with
/// [`LIP_VELOCITY_GAIN`] 2) since `mesh-v4`: of the nine weightings tried, the one with the
/// lowest validation EER inside the enrolments (README, "The weights of the contour and
/// velocity blocks"; the version before was 1 and 4).
pub const LIP_SHAPE_GAIN: f32 = 2.0;
/// Weight of the lip-point velocities (per frame at 15–30 fps they are a tenth of the shape).
pub const LIP_VELOCITY_GAIN: f32 = 2.0;
/// The mesh layout's mouth crop is this many times the lip corner-to-corner width wide.
pub const MESH_MOUTH_WIDTH: f32 = 1.6;

/// Why a file's features do not fit a pipeline's layout ([`FeatureLayout::check_file`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileMismatch {
    /// Mouth vectors of another length: another layout.
    OtherLayout,
    /// The same layout at another version; the file's tag.
    Outdated(String),
}

/// Which per-frame features an extractor produces (see the module doc).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureLayout {
    /// Detector box on every frame; mouth descriptor of a fixed band of the box.
    Box,
    /// Tracked face mesh; lip-placed mouth crop plus aligned lip contour and velocities. The
    /// default: better than `Box` on every face run measured (README, seeds 0-2, both splits).
    #[default]
    Mesh,
}

impl FeatureLayout {
    /// The layout and the version of its meaning: hashed into cache keys, and recorded in
    /// models, impostor banks and pretrained files, which are refused under another tag ("enrol
    /// again", "rebuild the bank"). Bump the version whenever the values a layout produces
    /// change meaning (`mesh-v4`: the lip contour and velocity gains).
    pub fn tag(self) -> &'static str {
        match self {
            Self::Box => "box-v2",
            Self::Mesh => "mesh-v4",
        }
    }

    /// The layout a tag ([`Self::tag`], any version) names.
    pub fn of_tag(tag: &str) -> Option<Self> {
        tag.split_once('-')?.0.parse().ok()
    }

    /// The tag of files written before models, banks and pretrained files recorded one: the
    /// last untagged version of the layout whose mouth vectors are `mouth_dim` long.
    pub fn untagged(mouth_dim: usize) -> Option<&'static str> {
        Self::of_mouth_dim(mouth_dim).map(|l| match l {
            Self::Box => "box-v2",
            Self::Mesh => "mesh-v3",
        })
    }

    /// The tag of a file's features: the one it records, else [`Self::untagged`].
    pub fn tag_of_file(recorded: Option<&str>, mouth_dim: usize) -> Option<&str> {
        recorded.or_else(|| Self::untagged(mouth_dim))
    }

    /// The tag a file written now records for features whose mouth vectors are `mouth_dim`
    /// long (the layout that length names, at this build's version).
    pub fn current_tag(mouth_dim: usize) -> Option<&'static str> {
        Self::of_mouth_dim(mouth_dim).map(Self::tag)
    }

    /// Whether a file's features — its mouth length and recorded tag — are this layout's at
    /// this build's version: the rule models and banks are both loaded under.
    pub fn check_file(self, mouth_dim: usize, recorded: Option<&str>) -> Result<(), FileMismatch> {
        if mouth_dim != self.mouth_dim() {
            return Err(FileMismatch::OtherLayout);
        }
        match Self::tag_of_file(recorded, mouth_dim) {
            Some(t) if t == self.tag() => Ok(()),
            t => Err(FileMismatch::Outdated(t.unwrap_or("untagged").to_owned())),
        }
    }

    /// Length of the mouth vector this layout produces.
    pub fn mouth_dim(self) -> usize {
        match self {
            Self::Box => mouth::MOUTH_DIM,
            Self::Mesh => MESH_MOUTH_DIM,
        }
    }
}

impl FeatureLayout {
    /// The layout whose features have mouth vectors of length `dim` ([`Self::mouth_dim`]);
    /// `None` for any other length. Mouth crops give box-length vectors in either layout.
    pub fn of_mouth_dim(dim: usize) -> Option<Self> {
        [Self::Box, Self::Mesh]
            .into_iter()
            .find(|l| l.mouth_dim() == dim)
    }

    /// The name used in configuration files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Box => "box",
            Self::Mesh => "mesh",
        }
    }
}

impl std::fmt::Display for FeatureLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for FeatureLayout {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "box" => Ok(Self::Box),
            "mesh" => Ok(Self::Mesh),
            o => Err(format!(
                "unknown feature layout {o:?} (expected box or mesh)"
            )),
        }
    }
}

/// The lip-contour points of a mesh in a face-fixed frame: origin at the centroid of the eye
/// corners and nose, x along the outer-eye-corner line, unit = the outer-eye-corner distance.
/// `2 * LIP_POINTS` values (x0, y0, x1, y1, ...); `None` if the eyes coincide.
pub fn aligned_lips(m: &Mesh) -> Option<Vec<f32>> {
    let anchors = EYE_OUTER.iter().chain(&EYE_INNER).chain(&NOSE);
    let n = (EYE_OUTER.len() + EYE_INNER.len() + NOSE.len()) as f32;
    let (mut cx, mut cy) = (0.0, 0.0);
    for &i in anchors {
        let [x, y] = m.xy(i);
        cx += x / n;
        cy += y / n;
    }
    let [ax, ay] = m.xy(EYE_OUTER[0]);
    let [bx, by] = m.xy(EYE_OUTER[1]);
    let (dx, dy) = (bx - ax, by - ay);
    let d2 = dx * dx + dy * dy;
    if d2.is_nan() || d2 <= 1e-6 {
        return None;
    }
    // Similarity transform: rotate by -angle(eye line), scale by 1/eye distance. With
    // (c, s) = (dx, dy) / d², x' = (c·u + s·v), y' = (-s·u + c·v) does both at once.
    let (c, s) = (dx / d2, dy / d2);
    let mut out = Vec::with_capacity(2 * LIP_POINTS);
    for &i in OUTER_LIP.iter().chain(&INNER_LIP) {
        let [x, y] = m.xy(i);
        let (u, v) = (x - cx, y - cy);
        out.push(c * u + s * v);
        out.push(-s * u + c * v);
    }
    Some(out)
}

/// Where the inner-lip midpoints ([`LIP_GAP`]) sit among the aligned lip points: their
/// positions in [`INNER_LIP`], after the outer contour.
fn lip_gap_slots() -> Option<[usize; 2]> {
    let pos = |p: usize| {
        INNER_LIP
            .iter()
            .position(|&i| i == p)
            .map(|k| OUTER_LIP.len() + k)
    };
    Some([pos(LIP_GAP[0])?, pos(LIP_GAP[1])?])
}

/// The lip opening of every frame of a mesh-layout utterance: the distance between the inner
/// lip midpoints in units of the outer-eye-corner distance (the face's scale), read back from
/// the aligned lip points in the mouth vector. `None` for features of any other layout (mouth
/// vectors of another length), where no landmarks exist.
pub fn lip_openings(u: &UtteranceFeatures) -> Option<Vec<f32>> {
    if u.mouth_dim != MESH_MOUTH_DIM {
        return None;
    }
    let [a, b] = lip_gap_slots()?;
    let at = |m: &[f32], k: usize| -> Option<[f32; 2]> {
        let o = mouth::MOUTH_DIM + 2 * k;
        Some([*m.get(o)?, *m.get(o + 1)?])
    };
    u.frames
        .iter()
        .map(|f| {
            let (p, q) = (at(&f.mouth, a)?, at(&f.mouth, b)?);
            Some(((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sqrt() / LIP_SHAPE_GAIN)
        })
        .collect()
}

/// Range (max − min) of [`lip_openings`]: how much the lips opened and closed during the
/// utterance, in eye distances. `None` outside the mesh layout; 0 with fewer than two frames.
pub fn lip_opening_range(u: &UtteranceFeatures) -> Option<f64> {
    let v = lip_openings(u)?;
    if v.len() < 2 {
        return Some(0.0);
    }
    let (lo, hi) = v
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    Some(f64::from(hi - lo))
}

/// Errors turning frames into features.
#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    /// Reading frames failed.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// The backbone failed.
    #[error(transparent)]
    Embed(#[from] EmbedError),
    /// `CropMode::Detect` was asked for without a detector.
    #[error("face detection requested but no detector model is loaded")]
    NoDetector,
    /// [`FeatureLayout::Mesh`] was asked for without a landmark model.
    #[error("the mesh feature layout needs the face landmark model, which is not loaded")]
    NoLandmarks,
}

/// What happened to each frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractReport {
    /// Frames read.
    pub frames: usize,
    /// Frames with a face (all of them in pass-through modes).
    pub faces_found: usize,
    /// Frames without a face.
    pub no_face: usize,
    /// Frames too dark to judge.
    pub too_dark: usize,
    /// Mesh layout: frames with a face whose face-presence score was under
    /// [`PRESENCE_QUALITY`] (kept, but a poor view of the face: an enrolment quality signal).
    #[serde(default)]
    pub low_presence: usize,
}

/// A mesh whose face-presence probability is under this counts as a poor view of the face in
/// [`ExtractReport::low_presence`]. (Under [`TrackerConfig::presence_threshold`] it is no face
/// at all.)
pub const PRESENCE_QUALITY: f32 = 0.9;

impl ExtractReport {
    /// Share of the frames with a face whose mesh presence was low (0 without faces, and
    /// always 0 in the box layout, which has no presence score).
    pub fn low_presence_share(&self) -> f64 {
        if self.faces_found == 0 {
            0.0
        } else {
            self.low_presence as f64 / self.faces_found as f64
        }
    }
}

/// Turns frames into [`FrameFeatures`]: detection (or pass-through), mouth descriptor, and the
/// identity backbone, batched to the backbone's batch size. The backbone runs on a thread of
/// its own ([`EmbedWorker`]), so a batch is embedded while the next frames are meshed.
#[derive(Debug)]
pub struct FeatureExtractor {
    embedder: EmbedWorker,
    detector: Option<FaceDetector>,
    tracker: Option<FaceTracker>,
    crop: CropMode,
    layout: FeatureLayout,
}

/// An utterance being assembled frame by frame, so that detection and embedding run while the
/// camera still captures (the daemon feeds frames as they arrive).
#[derive(Debug)]
pub struct Incremental<'a> {
    ex: &'a mut FeatureExtractor,
    pending: Vec<(image::RgbImage, Vec<f32>)>,
    /// The mouth vectors of the batches sent to the backbone and not yet answered, oldest
    /// first.
    in_flight: std::collections::VecDeque<Vec<Vec<f32>>>,
    out: UtteranceFeatures,
    report: ExtractReport,
    /// The previous frame's aligned lip points (mesh layout), for the velocities.
    prev_lips: Option<Vec<f32>>,
    /// Lowest face-presence score of the meshes so far (mesh layout; 1 before any).
    min_presence: f32,
}

impl FeatureExtractor {
    /// An extractor; `embedder` moves to a thread of its own. `detector` is required for
    /// [`CropMode::Detect`].
    pub fn new(
        embedder: Embedder,
        detector: Option<FaceDetector>,
        crop: CropMode,
    ) -> Result<Self, FeatureError> {
        if crop == CropMode::Detect && detector.is_none() {
            return Err(FeatureError::NoDetector);
        }
        Ok(Self {
            embedder: EmbedWorker::spawn(embedder)?,
            detector,
            tracker: None,
            crop,
            layout: FeatureLayout::Box,
        })
    }

    /// Adds the face-mesh tracker, so [`FeatureLayout::Mesh`] can be chosen.
    pub fn with_tracker(mut self, tracker: FaceTracker) -> Self {
        self.tracker = Some(tracker);
        self
    }

    /// The feature layout in force.
    pub fn layout(&self) -> FeatureLayout {
        self.layout
    }

    /// Switches the feature layout. The mesh layout needs the tracker.
    pub fn set_layout(&mut self, layout: FeatureLayout) -> Result<(), FeatureError> {
        if layout == FeatureLayout::Mesh && self.tracker.is_none() {
            return Err(FeatureError::NoLandmarks);
        }
        self.layout = layout;
        Ok(())
    }

    /// Whether frames go through the mesh: the mesh layout on full frames or face crops.
    /// Mouth crops hold no face to mesh and keep the box features.
    fn meshing(&self) -> bool {
        self.layout == FeatureLayout::Mesh && self.crop != CropMode::Mouth
    }

    /// The layout of the features produced in the current layout and crop mode: mouth crops
    /// give box features in either layout.
    pub fn produced_layout(&self) -> FeatureLayout {
        if self.meshing() {
            FeatureLayout::Mesh
        } else {
            FeatureLayout::Box
        }
    }

    /// Length of the mouth vectors produced in the current layout and crop mode.
    pub fn mouth_dim(&self) -> usize {
        self.produced_layout().mouth_dim()
    }

    /// Runs the face mesh on one frame: tracked, with the detector when needed, on full
    /// frames; on the whole frame when frames are face crops ([`CropMode::None`]).
    pub fn track(&mut self, frame: &Frame) -> Result<TrackOutcome, FeatureError> {
        if self.crop != CropMode::Detect {
            let dark = self
                .detector
                .as_ref()
                .map_or(DEFAULT_DARK_THRESHOLD, |d| d.config().dark_threshold);
            let t = self.tracker.as_mut().ok_or(FeatureError::NoLandmarks)?;
            return Ok(t.track_crop(frame, dark)?);
        }
        match (&mut self.tracker, &mut self.detector) {
            (Some(t), Some(d)) => Ok(t.track(frame, d)?),
            (None, _) => Err(FeatureError::NoLandmarks),
            (_, None) => Err(FeatureError::NoDetector),
        }
    }

    /// The crop mode in force.
    pub fn crop_mode(&self) -> CropMode {
        self.crop
    }

    /// Switches crop mode (e.g. `--crop auto` deciding per speaker).
    pub fn set_crop_mode(&mut self, crop: CropMode) -> Result<(), FeatureError> {
        if crop == CropMode::Detect && self.detector.is_none() {
            return Err(FeatureError::NoDetector);
        }
        self.crop = crop;
        Ok(())
    }

    /// Runs the backbone on crops directly (benchmarks, enrolment templates).
    pub fn embed_crops(
        &mut self,
        crops: &[image::RgbImage],
    ) -> Result<Vec<Vec<f32>>, FeatureError> {
        Ok(self.embedder.embed(crops)?)
    }

    /// The backbone.
    pub fn embedder(&self) -> &EmbedWorker {
        &self.embedder
    }

    /// Runs only the detector on a frame (pass-through modes report a face when bright enough).
    pub fn detect(&mut self, frame: &Frame) -> DetectOutcome {
        match (&mut self.detector, self.crop) {
            (Some(d), CropMode::Detect) => d.detect(frame),
            (d, _) => {
                let dark = d
                    .as_ref()
                    .map(|d| d.config().dark_threshold)
                    .unwrap_or(DEFAULT_DARK_THRESHOLD);
                if frame.mean_luma() < dark {
                    DetectOutcome::TooDark
                } else {
                    DetectOutcome::Face(FaceBox::full(frame))
                }
            }
        }
    }

    /// Starts an utterance.
    pub fn begin(&mut self) -> Incremental<'_> {
        // An utterance abandoned half-way (an error, a dropped `Incremental`) may still be
        // owed embeddings; they are not this one's.
        self.embedder.discard();
        if let Some(d) = &mut self.detector {
            d.reset();
        }
        if let Some(t) = &mut self.tracker {
            t.reset();
        }
        let out = UtteranceFeatures {
            backbone: self.embedder.manifest().name.clone(),
            identity_dim: self.embedder.dim(),
            mouth_dim: self.mouth_dim(),
            frames: Vec::new(),
            frames_read: 0,
        };
        Incremental {
            ex: self,
            pending: Vec::new(),
            in_flight: std::collections::VecDeque::new(),
            out,
            report: ExtractReport::default(),
            prev_lips: None,
            min_presence: 1.0,
        }
    }

    /// Frames on which the face detector has run since this extractor was made (in the mesh
    /// layout only the first frame of an utterance and frames after a loss need it).
    pub fn detector_runs(&self) -> usize {
        self.tracker.as_ref().map_or(0, FaceTracker::detector_runs)
    }

    /// Features of a whole list of frames.
    pub fn extract(
        &mut self,
        frames: &[Frame],
    ) -> Result<(UtteranceFeatures, ExtractReport), FeatureError> {
        let mut inc = self.begin();
        for f in frames {
            inc.push(f)?;
        }
        inc.finish()
    }

    /// Features of every frame of a source.
    pub fn extract_source(
        &mut self,
        src: &mut dyn FrameSource,
    ) -> Result<(UtteranceFeatures, ExtractReport), FeatureError> {
        let mut inc = self.begin();
        let mut n = 0;
        while let Some(f) = src.next_frame()? {
            inc.push(&f)?;
            n += 1;
            if n >= crate::capture::MAX_FRAMES {
                break;
            }
        }
        inc.finish()
    }

    /// Features of an utterance directory, through `cache` when given.
    pub fn extract_dir(
        &mut self,
        dir: &Path,
        cache: Option<&FeatureCache>,
    ) -> Result<(UtteranceFeatures, ExtractReport), FeatureError> {
        self.through_cache(
            cache,
            |c, sha, crop, layout| c.key(dir, sha, crop, layout),
            |ex| {
                let mut src = DirSource::open(dir)?;
                if ex.crop != CropMode::Detect {
                    src = src.allow_mixed_sizes();
                }
                ex.extract_source(&mut src)
            },
        )
    }

    /// Features of an utterance at `path`: a frame directory (as [`Self::extract_dir`]) or a
    /// video file (with the `video` feature; resampled to 15 fps), through `cache` when given.
    pub fn extract_path(
        &mut self,
        path: &Path,
        cache: Option<&FeatureCache>,
    ) -> Result<(UtteranceFeatures, ExtractReport), FeatureError> {
        if path.is_dir() {
            return self.extract_dir(path, cache);
        }
        self.through_cache(
            cache,
            |c, sha, crop, layout| c.key_file(path, sha, crop, layout),
            |ex| {
                let mut src = crate::capture::open_utterance(path, ex.crop != CropMode::Detect)?;
                ex.extract_source(src.as_mut())
            },
        )
    }

    /// `extract` through `cache`: the entry under `key` if there is one, else the extraction,
    /// stored under it (a cache that cannot be written only costs time later).
    fn through_cache(
        &mut self,
        cache: Option<&FeatureCache>,
        key: impl FnOnce(&FeatureCache, &str, CropMode, FeatureLayout) -> Result<String, CaptureError>,
        extract: impl FnOnce(&mut Self) -> Result<(UtteranceFeatures, ExtractReport), FeatureError>,
    ) -> Result<(UtteranceFeatures, ExtractReport), FeatureError> {
        let key = match cache {
            Some(c) => {
                let k = key(
                    c,
                    self.embedder.manifest().embeddings_sha256(),
                    self.crop,
                    self.layout,
                )?;
                if let Some(hit) = c.get(&k) {
                    return Ok(hit);
                }
                Some(k)
            }
            None => None,
        };
        let got = extract(self)?;
        if let (Some(c), Some(k)) = (cache, key) {
            let _ = c.put(&k, &got);
        }
        Ok(got)
    }
}

impl Incremental<'_> {
    /// Processes one frame: detection (and the mesh) and mouth vector now, the backbone once a
    /// batch is full.
    pub fn push(&mut self, frame: &Frame) -> Result<DetectOutcome, FeatureError> {
        self.report.frames += 1;
        self.out.frames_read += 1;
        if self.ex.meshing() {
            return self.push_mesh(frame);
        }
        let outcome = self.ex.detect(frame);
        match outcome {
            DetectOutcome::Face(b) => {
                self.report.faces_found += 1;
                let face = crop(frame, b);
                let m = match self.ex.crop {
                    CropMode::Mouth => mouth::describe(&face),
                    _ => mouth::describe(&crop(frame, b.mouth_region())),
                };
                self.queue(face, m)?;
            }
            DetectOutcome::NoFace => self.report.no_face += 1,
            DetectOutcome::TooDark => self.report.too_dark += 1,
        }
        Ok(outcome)
    }

    /// The mesh layout: a frame whose mesh finds no face is "no face" and adds no features.
    fn push_mesh(&mut self, frame: &Frame) -> Result<DetectOutcome, FeatureError> {
        let outcome = self.ex.track(frame)?;
        let mesh = match outcome {
            TrackOutcome::Mesh(m) => m,
            TrackOutcome::NoFace => {
                self.report.no_face += 1;
                self.prev_lips = None;
                return Ok(DetectOutcome::NoFace);
            }
            TrackOutcome::TooDark => {
                self.report.too_dark += 1;
                self.prev_lips = None;
                return Ok(DetectOutcome::TooDark);
            }
        };
        let Some(lips) = aligned_lips(&mesh) else {
            self.report.no_face += 1;
            self.prev_lips = None;
            return Ok(DetectOutcome::NoFace);
        };
        self.min_presence = self.min_presence.min(mesh.presence);
        self.report.faces_found += 1;
        if mesh.presence < PRESENCE_QUALITY {
            self.report.low_presence += 1;
        }
        // Face crops are the identity crop already (as in the box layout).
        let b = if self.ex.crop == CropMode::Detect {
            mesh.face_box(frame.width, frame.height)
        } else {
            FaceBox::full(frame)
        };
        let mouth_box = mesh.mouth_box(MESH_MOUTH_WIDTH, frame.width, frame.height);
        let mut m = mouth::describe(&crop(frame, mouth_box));
        m.extend(lips.iter().map(|v| v * LIP_SHAPE_GAIN));
        match &self.prev_lips {
            Some(prev) => m.extend(
                lips.iter()
                    .zip(prev)
                    .map(|(now, before)| (now - before) * LIP_VELOCITY_GAIN),
            ),
            None => m.extend(std::iter::repeat_n(0.0, lips.len())),
        }
        self.prev_lips = Some(lips);
        self.queue(crop(frame, b), m)?;
        Ok(DetectOutcome::Face(b))
    }

    fn queue(&mut self, face: image::RgbImage, m: Vec<f32>) -> Result<(), FeatureError> {
        self.pending.push((face, m));
        let batch = self.ex.embedder.manifest().batch.max(1);
        if self.pending.len() >= batch {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends the pending crops to the backbone's thread, and takes in whatever batches it
    /// has finished.
    fn flush(&mut self) -> Result<(), FeatureError> {
        if !self.pending.is_empty() {
            let (crops, mouths): (Vec<_>, Vec<_>) = self.pending.drain(..).unzip();
            self.ex.embedder.submit(crops)?;
            self.in_flight.push_back(mouths);
        }
        while let Some(ids) = self.ex.embedder.try_receive() {
            self.take_in(ids?)?;
        }
        Ok(())
    }

    /// Pairs the oldest batch in flight with its embeddings.
    fn take_in(&mut self, ids: Vec<Vec<f32>>) -> Result<(), FeatureError> {
        let mouths = self.in_flight.pop_front().ok_or(EmbedError::Worker {
            what: "answered a batch that was not sent",
        })?;
        for (m, id) in mouths.into_iter().zip(ids) {
            self.out.frames.push(FrameFeatures {
                identity: id,
                mouth: m,
            });
        }
        Ok(())
    }

    /// Lowest face-presence score of this utterance's meshes (mesh layout; 1.0 when none yet
    /// or in the box layout): an enrolment quality signal.
    pub fn min_presence(&self) -> f32 {
        self.min_presence
    }

    /// Frames processed so far.
    pub fn report(&self) -> ExtractReport {
        self.report
    }

    /// Embeds what is left, waits for the backbone's thread, and returns the utterance.
    pub fn finish(mut self) -> Result<(UtteranceFeatures, ExtractReport), FeatureError> {
        self.flush()?;
        while let Some(ids) = self.ex.embedder.receive() {
            self.take_in(ids?)?;
        }
        Ok((self.out.clone(), self.report))
    }
}

/// A content-addressed cache of extracted features: the key hashes the feature version, the
/// backbone's sha256, the crop mode, the feature layout and every frame file's name and bytes, so a changed frame,
/// model or setting never returns stale features.
#[derive(Debug, Clone)]
pub struct FeatureCache {
    dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct CacheEntry {
    version: u32,
    features: UtteranceFeatures,
    report: ExtractReport,
}

impl FeatureCache {
    /// A cache stored under `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The cache key of an utterance directory.
    pub fn key(
        &self,
        utterance: &Path,
        backbone_sha256: &str,
        crop: CropMode,
        layout: FeatureLayout,
    ) -> Result<String, CaptureError> {
        let mut h = Sha256::new();
        h.update(FEATURE_VERSION.to_le_bytes());
        h.update(backbone_sha256.as_bytes());
        h.update(format!("{crop:?}").as_bytes());
        h.update(layout.tag().as_bytes());
        for f in crate::capture::list_frames(utterance)? {
            let bytes = std::fs::read(&f).map_err(|source| CaptureError::Io {
                path: f.clone(),
                source,
            })?;
            h.update(
                f.file_name()
                    .map(|n| n.as_encoded_bytes())
                    .unwrap_or_default(),
            );
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(&bytes);
        }
        Ok(hex::encode(h.finalize()))
    }

    /// The cache key of an utterance stored as one file (a video): its bytes, streamed through
    /// the hash, stand for all its frames. Distinct from every directory key (the `file` tag).
    pub fn key_file(
        &self,
        file: &Path,
        backbone_sha256: &str,
        crop: CropMode,
        layout: FeatureLayout,
    ) -> Result<String, CaptureError> {
        let io = |source| CaptureError::Io {
            path: file.into(),
            source,
        };
        let mut h = Sha256::new();
        h.update(FEATURE_VERSION.to_le_bytes());
        h.update(backbone_sha256.as_bytes());
        h.update(format!("{crop:?}").as_bytes());
        h.update(layout.tag().as_bytes());
        h.update(b"file");
        let mut f = std::fs::File::open(file).map_err(io)?;
        std::io::copy(&mut f, &mut h).map_err(io)?;
        Ok(hex::encode(h.finalize()))
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// A cached entry, if present and readable.
    pub fn get(&self, key: &str) -> Option<(UtteranceFeatures, ExtractReport)> {
        let text = std::fs::read(self.path(key)).ok()?;
        let e: CacheEntry = serde_json::from_slice(&text).ok()?;
        (e.version == FEATURE_VERSION).then_some((e.features, e.report))
    }

    /// Stores an entry atomically ([`crate::fsutil::write_atomic`]).
    pub fn put(&self, key: &str, v: &(UtteranceFeatures, ExtractReport)) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let e = CacheEntry {
            version: FEATURE_VERSION,
            features: v.0.clone(),
            report: v.1,
        };
        let bytes = serde_json::to_vec(&e).map_err(std::io::Error::other)?;
        crate::fsutil::write_atomic(&self.path(key), &bytes)
    }
}

/// Where to find ONNX Runtime and the models when the caller gives no path.
pub mod locate {
    use std::path::PathBuf;

    /// Installed location of ONNX Runtime (`make install`).
    pub const INSTALLED_ORT: &str = "/usr/lib/authnet/libonnxruntime.so.1.22.1";
    /// Installed models directory.
    pub const INSTALLED_MODELS: &str = "/usr/share/authnet/models";
    /// Repository-relative ONNX Runtime (`make setup`).
    pub const REPO_ORT: &str = "vendor/onnxruntime/lib/libonnxruntime.so.1.22.1";

    /// `$AUTHNET_ORT_LIB`, else the installed library, else the repository's vendored one.
    pub fn ort_lib() -> PathBuf {
        if let Some(p) = std::env::var_os("AUTHNET_ORT_LIB") {
            return p.into();
        }
        if std::path::Path::new(INSTALLED_ORT).is_file() {
            return INSTALLED_ORT.into();
        }
        REPO_ORT.into()
    }

    /// `$AUTHNET_MODELS_DIR`, else the installed directory, else `./models`.
    pub fn models_dir() -> PathBuf {
        if let Some(p) = std::env::var_os("AUTHNET_MODELS_DIR") {
            return p.into();
        }
        if std::path::Path::new(INSTALLED_MODELS).is_dir() {
            return INSTALLED_MODELS.into();
        }
        "models".into()
    }
}

/// File name of the SeetaFace detector model inside the models directory.
pub const DETECTOR_FILE: &str = "seeta_fd_frontal_v1.0.bin";
/// Threads the landmark model runs on (it is small: one thread keeps the other for the
/// backbone when the daemon shares a 2-core machine).
pub const LANDMARK_THREADS: usize = 1;

/// Everything needed to build a [`FeatureExtractor`] from files.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// ONNX Runtime shared library.
    pub ort_lib: PathBuf,
    /// Directory with the manifests, the backbone and the detector.
    pub models_dir: PathBuf,
    /// Backbone manifest name.
    pub backbone: String,
    /// Crop mode.
    pub crop: CropMode,
    /// ONNX Runtime intra-op threads.
    pub threads: usize,
    /// Detector settings.
    pub detector: crate::vision::detect::DetectorConfig,
    /// Feature layout.
    pub layout: FeatureLayout,
}

impl PipelineConfig {
    /// Defaults: located paths, MobileFaceNet, detection on, 2 threads.
    pub fn located() -> Self {
        Self {
            ort_lib: locate::ort_lib(),
            models_dir: locate::models_dir(),
            backbone: "mobilefacenet".into(),
            crop: CropMode::Detect,
            threads: 2,
            detector: Default::default(),
            layout: FeatureLayout::Box,
        }
    }
}

/// Errors building the pipeline from files.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Backbone or runtime.
    #[error(transparent)]
    Embed(#[from] EmbedError),
    /// Detector model.
    #[error(transparent)]
    Detect(#[from] crate::vision::detect::DetectError),
    /// Inconsistent settings.
    #[error(transparent)]
    Feature(#[from] FeatureError),
}

impl FeatureExtractor {
    /// Loads ONNX Runtime, the backbone named by `cfg.backbone`, the detector and the face
    /// landmark model (all always loaded, so the crop mode and layout can change later, and a
    /// missing, truncated or wrong-hash model file is an error naming it at startup), in the
    /// layout `cfg.layout` (see [`Self::set_layout`]).
    pub fn from_config(cfg: &PipelineConfig) -> Result<Self, PipelineError> {
        crate::vision::embed::init_runtime(&cfg.ort_lib)?;
        let manifest = crate::vision::embed::Manifest::load(&cfg.models_dir, &cfg.backbone)?;
        let embedder = Embedder::load(&cfg.models_dir, manifest, cfg.threads)?;
        let detector =
            FaceDetector::load(&cfg.models_dir.join(DETECTOR_FILE), cfg.detector.clone())?;
        let landmarks = LandmarkModel::load(&cfg.models_dir, LANDMARK_THREADS)?;
        let tracker = FaceTracker::new(landmarks, TrackerConfig::default());
        let mut ex = Self::new(embedder, Some(detector), cfg.crop)?.with_tracker(tracker);
        ex.set_layout(cfg.layout)?;
        Ok(ex)
    }
}
