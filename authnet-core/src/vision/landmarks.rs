//! Face landmarks: MediaPipe's 468-point face mesh (`models/face_landmark.onnx`) on ONNX
//! Runtime, and a tracker that follows the face from one frame's mesh to the next, so the face
//! detector runs only on the first frame of an utterance or after the face is lost.
//!
//! The model is loaded through the same manifest, sha256 and graph checks as the backbone
//! ([`crate::vision::embed`]), so a missing, truncated or swapped file is an [`EmbedError`]
//! naming it. Per frame: a square crop around the face is resampled to 192×192 RGB in 0..1
//! (pixels outside the frame are black), and the model returns 468 points in crop pixels,
//! mapped back to frame pixels here, plus a face-presence logit. A presence under
//! [`TrackerConfig::presence_threshold`] means "no face": the mesh is dropped, never scored.
//!
//! Frames that already are face crops (MIRACL-VC1's F02) have no detector run and no tracking:
//! the whole crop stands for the detector's box ([`FaceTracker::track_crop`]).
//!
//! Unlike MediaPipe the crop is not rotated by the eye line; AuthNet users face the camera, and
//! the word features align the points per frame anyway (see [`crate::features`]).

use std::path::Path;

use image::RgbImage;
use ort::value::Tensor;

use crate::capture::Frame;
use crate::vision::detect::{expand_box, DetectOutcome, FaceBox, FaceDetector};
use crate::vision::embed::{EmbedError, Manifest, OnnxModel};

/// Manifest name of the landmark model (`models/face_landmark.toml`).
pub const MANIFEST: &str = "face_landmark";
/// Points in the mesh.
pub const NUM_POINTS: usize = 468;

/// MediaPipe mesh indices of the outer lip contour, in order around the mouth (corner 61,
/// lower lip, corner 291, upper lip).
pub const OUTER_LIP: [usize; 20] = [
    61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185,
];
/// MediaPipe mesh indices of the inner lip contour, in the same order (corner 78, lower, corner
/// 308, upper; 13 and 14 are the upper and lower inner midpoints).
pub const INNER_LIP: [usize; 20] = [
    78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191,
];
/// Outer corners of the two eyes (subject's right, then left).
pub const EYE_OUTER: [usize; 2] = [33, 263];
/// Inner corners of the two eyes.
pub const EYE_INNER: [usize; 2] = [133, 362];
/// Nose tip and nose bridge.
pub const NOSE: [usize; 2] = [1, 168];
/// Upper and lower inner-lip midpoints: their distance is the lip opening.
pub const LIP_GAP: [usize; 2] = [13, 14];

/// Side of the detector's face box (default margin) over the mesh's height: the SeetaFace box
/// with a 15 % margin spans 1.13 mesh heights on MIRACL-VC1 F01 frames (box geometry only; no
/// accuracy figure was used to choose it).
pub const DETECTOR_SIDE_PER_MESH_HEIGHT: f32 = 1.13;
/// How far the detector's box centre sits above the mesh's, per mesh height (the mesh reaches
/// the chin, the detector box the forehead), measured as above.
pub const DETECTOR_RAISE_PER_MESH_HEIGHT: f32 = 0.09;

/// One face mesh, in frame pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Mesh {
    /// [`NUM_POINTS`] points: x, y in frame pixels, z (relative depth) on the same scale.
    pub points: Vec<[f32; 3]>,
    /// Face-presence probability (sigmoid of the model's logit), 0..1.
    pub presence: f32,
}

impl Mesh {
    /// x, y of point `i`.
    pub fn xy(&self, i: usize) -> [f32; 2] {
        let p = self.points[i];
        [p[0], p[1]]
    }

    /// Bounding box of all points: (x0, y0, x1, y1).
    pub fn bounds(&self) -> (f32, f32, f32, f32) {
        self.bounds_of(0..self.points.len())
    }

    /// Bounding box of the points `idx`.
    pub fn bounds_of(&self, idx: impl IntoIterator<Item = usize>) -> (f32, f32, f32, f32) {
        let mut b = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
        for i in idx {
            let [x, y, _] = self.points[i];
            b = (b.0.min(x), b.1.min(y), b.2.max(x), b.3.max(y));
        }
        b
    }

    /// Distance between the outer eye corners, in pixels (the face's scale).
    pub fn eye_distance(&self) -> f32 {
        dist(self.xy(EYE_OUTER[0]), self.xy(EYE_OUTER[1]))
    }

    /// Inner-lip opening divided by the eye distance (0 when closed).
    pub fn lip_opening(&self) -> f32 {
        let d = self.eye_distance();
        if d <= f32::EPSILON {
            return 0.0;
        }
        dist(self.xy(LIP_GAP[0]), self.xy(LIP_GAP[1])) / d
    }

    /// A face box framed like the detector's (with its default margin), so the identity
    /// backbone sees the same crop whichever placed it: a square of side
    /// [`DETECTOR_SIDE_PER_MESH_HEIGHT`] × the mesh's height, centred
    /// [`DETECTOR_RAISE_PER_MESH_HEIGHT`] × that height above the mesh's centre, clamped to
    /// the frame.
    pub fn face_box(&self, fw: u32, fh: u32) -> FaceBox {
        let (x0, y0, x1, y1) = self.bounds();
        let h = y1 - y0;
        let side = h * DETECTOR_SIDE_PER_MESH_HEIGHT;
        let cx = (x0 + x1) / 2.0;
        let cy = (y0 + y1) / 2.0 - h * DETECTOR_RAISE_PER_MESH_HEIGHT;
        expand_box(cx - side / 2.0, cy - side / 2.0, side, side, 0.0, fw, fh)
    }

    /// The mouth region placed by the lips: centred on the outer lip contour, `width_scale`
    /// times the corner-to-corner width wide and half as high (the mouth descriptor's 2:1
    /// aspect), clamped to the frame.
    pub fn mouth_box(&self, width_scale: f32, fw: u32, fh: u32) -> FaceBox {
        let (x0, y0, x1, y1) = self.bounds_of(OUTER_LIP);
        let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
        let w = (dist(self.xy(61), self.xy(291)) * width_scale)
            .max(x1 - x0)
            .max(2.0);
        let h = (w / 2.0).max(y1 - y0);
        let x = (cx - w / 2.0).max(0.0);
        let y = (cy - h / 2.0).max(0.0);
        FaceBox::rounded([x, y, w, h], fw, fh)
    }
}

fn dist(a: [f32; 2], b: [f32; 2]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

/// A square region of a frame, in frame pixels; it may reach past the frame's edges.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Square {
    /// Centre x.
    pub cx: f32,
    /// Centre y.
    pub cy: f32,
    /// Side length.
    pub side: f32,
}

impl Square {
    /// The square around a box's centre with side `scale` × its longer side.
    pub fn around(b: FaceBox, scale: f32) -> Self {
        Self {
            cx: b.x as f32 + b.w as f32 / 2.0,
            cy: b.y as f32 + b.h as f32 / 2.0,
            side: b.w.max(b.h) as f32 * scale,
        }
    }

    /// The square around a mesh's bounds with side `scale` × their longer side.
    pub fn around_mesh(m: &Mesh, scale: f32) -> Self {
        let (x0, y0, x1, y1) = m.bounds();
        Self {
            cx: (x0 + x1) / 2.0,
            cy: (y0 + y1) / 2.0,
            side: (x1 - x0).max(y1 - y0) * scale,
        }
    }
}

/// Samples `sq` of `frame` bilinearly into an `n`×`n` image; outside the frame is black.
pub fn sample_square(frame: &Frame, sq: Square, n: u32) -> RgbImage {
    let mut out = RgbImage::new(n, n);
    let step = sq.side / n as f32;
    let x0 = sq.cx - sq.side / 2.0;
    let y0 = sq.cy - sq.side / 2.0;
    let (w, h) = (frame.width as i64, frame.height as i64);
    let stride = frame.width as usize * 3;
    let px = |x: i64, y: i64, c: usize| -> f32 {
        if x < 0 || y < 0 || x >= w || y >= h {
            0.0
        } else {
            frame.rgb[y as usize * stride + x as usize * 3 + c] as f32
        }
    };
    for (ox, oy, p) in out.enumerate_pixels_mut() {
        // Centre of the output pixel, in frame coordinates (pixel centres at +0.5).
        let fx = x0 + (ox as f32 + 0.5) * step - 0.5;
        let fy = y0 + (oy as f32 + 0.5) * step - 0.5;
        let (ix, iy) = (fx.floor() as i64, fy.floor() as i64);
        let (ax, ay) = (fx - ix as f32, fy - iy as f32);
        for c in 0..3 {
            let v = px(ix, iy, c) * (1.0 - ax) * (1.0 - ay)
                + px(ix + 1, iy, c) * ax * (1.0 - ay)
                + px(ix, iy + 1, c) * (1.0 - ax) * ay
                + px(ix + 1, iy + 1, c) * ax * ay;
            p[c] = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// The landmark network, ready to run on square face crops.
pub struct LandmarkModel {
    model: OnnxModel,
    score_output: String,
}

impl std::fmt::Debug for LandmarkModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LandmarkModel")
            .field("path", &self.model.path)
            .finish()
    }
}

impl LandmarkModel {
    /// Loads `<models_dir>/face_landmark.toml` and the model it names, checking its sha256 and
    /// its graph ([`NUM_POINTS`] × 3 landmark values, a face-presence output, one batch item).
    /// [`crate::vision::embed::init_runtime`] must have succeeded first.
    pub fn load(models_dir: &Path, threads: usize) -> Result<Self, EmbedError> {
        let manifest = Manifest::load(models_dir, MANIFEST)?;
        let path = models_dir.join(format!("{MANIFEST}.toml"));
        let bad = |what| EmbedError::ManifestValue {
            path: path.clone(),
            what,
        };
        if manifest.output_dim != NUM_POINTS * 3 {
            return Err(bad("output_dim must be 1404 (468 points × xyz)"));
        }
        if manifest.batch != 1 || manifest.input_width != manifest.input_height {
            return Err(bad("the landmark model takes one square image (batch = 1)"));
        }
        let Some(score_output) = manifest.score_output.clone() else {
            return Err(bad("score_output (the face-presence output) is required"));
        };
        Ok(Self {
            model: OnnxModel::load(models_dir, manifest, threads)?,
            score_output,
        })
    }

    /// Side of the model's square input, in pixels.
    pub fn input_side(&self) -> u32 {
        self.model.manifest.input_width
    }

    /// Runs the mesh on the square `sq` of `frame`.
    pub fn run(&mut self, frame: &Frame, sq: Square) -> Result<Mesh, EmbedError> {
        let n = self.input_side();
        let crop = sample_square(frame, sq, n);
        let mut data = Vec::with_capacity((n * n * 3) as usize);
        self.model.preprocess(&crop, &mut data);
        let path = self.model.path.clone();
        let oe = |source: ort::Error| EmbedError::Ort {
            path: path.clone(),
            source,
        };
        let tensor = Tensor::from_array((self.model.input_shape(1), data)).map_err(oe)?;
        let input = self.model.manifest.input_name.clone();
        let out_name = self.model.manifest.output_name.clone();
        let outputs = self
            .model
            .session
            .run(ort::inputs![input.as_str() => tensor])
            .map_err(oe)?;
        let (_, vals) = outputs[out_name.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(oe)?;
        let (_, score) = outputs[self.score_output.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(oe)?;
        if vals.len() != NUM_POINTS * 3 || score.len() != 1 {
            return Err(EmbedError::Shape {
                path,
                what: "landmark outputs",
                expected: format!("{} values and 1 score", NUM_POINTS * 3),
                found: format!("{} values and {} scores", vals.len(), score.len()),
            });
        }
        let k = sq.side / n as f32;
        let (x0, y0) = (sq.cx - sq.side / 2.0, sq.cy - sq.side / 2.0);
        let points = vals
            .chunks_exact(3)
            .map(|p| [x0 + p[0] * k, y0 + p[1] * k, p[2] * k])
            .collect();
        let logit = score[0];
        let presence = 1.0 / (1.0 + (-logit).exp());
        Ok(Mesh {
            points,
            presence: if presence.is_finite() { presence } else { 0.0 },
        })
    }
}

/// Tracker settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackerConfig {
    /// A mesh whose presence is below this is "no face" (and the face is lost).
    pub presence_threshold: f32,
    /// The crop around a detector box is this many times the box's side (the detector's box
    /// already carries its own margin).
    pub detector_scale: f32,
    /// The crop for the next frame is this many times the side of this frame's mesh bounds
    /// (MediaPipe uses 1.5).
    pub mesh_scale: f32,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            presence_threshold: 0.5,
            detector_scale: 1.25,
            mesh_scale: 1.5,
        }
    }
}

/// What the tracker made of one frame.
#[derive(Debug, Clone, PartialEq)]
pub enum TrackOutcome {
    /// A face mesh.
    Mesh(Mesh),
    /// No face: the detector found none, or the mesh said there is none.
    NoFace,
    /// The frame is too dark to judge.
    TooDark,
}

/// Follows one face through an utterance: detector on the first frame (or after loss), then the
/// previous frame's mesh places the next crop.
#[derive(Debug)]
pub struct FaceTracker {
    model: LandmarkModel,
    cfg: TrackerConfig,
    last: Option<Square>,
    detector_runs: usize,
}

impl FaceTracker {
    /// A tracker on a loaded model.
    pub fn new(model: LandmarkModel, cfg: TrackerConfig) -> Self {
        Self {
            model,
            cfg,
            last: None,
            detector_runs: 0,
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &TrackerConfig {
        &self.cfg
    }

    /// Forgets the tracked face (call at the start of every utterance).
    pub fn reset(&mut self) {
        self.last = None;
    }

    /// How many frames needed the detector since this tracker was made.
    pub fn detector_runs(&self) -> usize {
        self.detector_runs
    }

    /// The mesh of one frame.
    pub fn track(
        &mut self,
        frame: &Frame,
        detector: &mut FaceDetector,
    ) -> Result<TrackOutcome, EmbedError> {
        if frame.mean_luma() < detector.config().dark_threshold {
            self.last = None;
            return Ok(TrackOutcome::TooDark);
        }
        if let Some(sq) = self.last {
            let m = self.model.run(frame, sq)?;
            if m.presence >= self.cfg.presence_threshold {
                return Ok(self.found(m));
            }
            self.last = None;
        }
        self.detector_runs += 1;
        detector.reset();
        let b = match detector.detect(frame) {
            DetectOutcome::Face(b) => b,
            DetectOutcome::NoFace => return Ok(TrackOutcome::NoFace),
            DetectOutcome::TooDark => return Ok(TrackOutcome::TooDark),
        };
        match self.acquire(frame, b)? {
            Some(m) => Ok(self.found(m)),
            None => Ok(TrackOutcome::NoFace),
        }
    }

    /// The mesh of a frame that already is a face crop (the pass-through crop mode, e.g.
    /// MIRACL-VC1's F02): no detector and no tracking, as every crop frames its own face; the
    /// whole crop stands for the detector's box. Frames darker than `dark_threshold` (mean
    /// luma) are [`TrackOutcome::TooDark`], as in [`Self::track`].
    pub fn track_crop(
        &mut self,
        frame: &Frame,
        dark_threshold: f32,
    ) -> Result<TrackOutcome, EmbedError> {
        self.last = None;
        if frame.mean_luma() < dark_threshold {
            return Ok(TrackOutcome::TooDark);
        }
        Ok(match self.acquire(frame, FaceBox::full(frame))? {
            Some(m) => TrackOutcome::Mesh(m),
            None => TrackOutcome::NoFace,
        })
    }

    /// The mesh around a face box: one pass on the box's square, then one on the square that
    /// mesh implies. `None` when the first pass says there is no face.
    fn acquire(&mut self, frame: &Frame, b: FaceBox) -> Result<Option<Mesh>, EmbedError> {
        let first = self
            .model
            .run(frame, Square::around(b, self.cfg.detector_scale))?;
        if first.presence < self.cfg.presence_threshold {
            return Ok(None);
        }
        // The box is only roughly where the mesh wants the face; one more pass on the crop the
        // mesh itself implies gives the same framing as every tracked frame.
        let refined = self
            .model
            .run(frame, Square::around_mesh(&first, self.cfg.mesh_scale))?;
        Ok(Some(if refined.presence >= self.cfg.presence_threshold {
            refined
        } else {
            first
        }))
    }

    fn found(&mut self, m: Mesh) -> TrackOutcome {
        self.last = Some(Square::around_mesh(&m, self.cfg.mesh_scale));
        TrackOutcome::Mesh(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> Frame {
        let mut rgb = Vec::new();
        for y in 0..h {
            for x in 0..w {
                rgb.extend(f(x, y));
            }
        }
        Frame::new(w, h, rgb).unwrap()
    }

    #[test]
    fn sample_square_maps_pixels_and_pads_black() {
        let f = frame(8, 8, |x, y| [(x * 10) as u8, (y * 10) as u8, 200]);
        // The whole frame at its own resolution is the identity.
        let same = sample_square(
            &f,
            Square {
                cx: 4.0,
                cy: 4.0,
                side: 8.0,
            },
            8,
        );
        assert_eq!(same.get_pixel(3, 5).0, [30, 50, 200]);
        // A square twice the frame: the frame sits in the middle, black around it.
        let big = sample_square(
            &f,
            Square {
                cx: 4.0,
                cy: 4.0,
                side: 16.0,
            },
            16,
        );
        assert_eq!(big.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(big.get_pixel(7, 9).0, [30, 50, 200]);
    }

    fn mesh_at(f: impl Fn(usize) -> [f32; 3]) -> Mesh {
        Mesh {
            points: (0..NUM_POINTS).map(f).collect(),
            presence: 1.0,
        }
    }

    #[test]
    fn mouth_box_follows_the_lips() {
        // All points on a 10×10 grid around (100, 100), lips moved to around (100, 140).
        let mut m = mesh_at(|i| [90.0 + (i % 20) as f32, 90.0 + (i / 20) as f32, 0.0]);
        for (k, &i) in OUTER_LIP.iter().chain(&INNER_LIP).enumerate() {
            let a = k as f32 / 20.0 * std::f32::consts::TAU;
            m.points[i] = [100.0 + 20.0 * a.cos(), 140.0 + 8.0 * a.sin(), 0.0];
        }
        m.points[61] = [80.0, 140.0, 0.0];
        m.points[291] = [120.0, 140.0, 0.0];
        let b = m.mouth_box(1.5, 640, 480);
        assert_eq!(b.w, 60);
        assert_eq!(b.h, 30);
        let (cx, cy) = (b.x + b.w / 2, b.y + b.h / 2);
        assert!(
            (99..=101).contains(&cx) && (139..=141).contains(&cy),
            "{b:?}"
        );
    }

    #[test]
    fn square_around_mesh_is_scaled_bounds() {
        let m = mesh_at(|i| {
            [
                10.0 + (i % 2) as f32 * 40.0,
                20.0 + (i % 3) as f32 * 10.0,
                0.0,
            ]
        });
        let s = Square::around_mesh(&m, 1.5);
        assert_eq!((s.cx, s.cy, s.side), (30.0, 30.0, 60.0));
    }
}
