//! Face detection with rustface (SeetaFace frontal detector).
//!
//! The detector runs on a grayscale copy downscaled so that its longer side is at most
//! [`DetectorConfig::max_side`] pixels (detection cost grows with the area); the largest face is
//! mapped back to full resolution, expanded by a margin, squared and clamped to the frame.

use std::path::Path;

use image::{imageops, GrayImage, RgbImage};

use crate::capture::Frame;

/// How frames are turned into face crops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CropMode {
    /// Run the face detector.
    Detect,
    /// The frame already is a face crop (pass-through).
    None,
    /// The frame is a mouth crop (MIRACL-VC1 `lips`): no detection, and the whole frame is the
    /// mouth region.
    Mouth,
}

impl std::str::FromStr for CropMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "detect" => Ok(Self::Detect),
            "none" => Ok(Self::None),
            "mouth" => Ok(Self::Mouth),
            o => Err(format!(
                "unknown crop mode {o:?} (expected detect, none or mouth)"
            )),
        }
    }
}

/// A face rectangle in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FaceBox {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
}

/// Per-frame detection result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DetectOutcome {
    /// A face, with its (expanded, clamped) box.
    Face(FaceBox),
    /// No face found.
    NoFace,
    /// The frame is too dark to judge (mean luma under the configured threshold).
    TooDark,
}

/// Detector settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorConfig {
    /// Longer side of the grayscale copy the detector sees.
    pub max_side: u32,
    /// Smallest face, in pixels of the downscaled copy (rustface minimum: 20).
    pub min_face: u32,
    /// Detector score threshold (rustface's examples use 2.0).
    pub score_threshold: f64,
    /// Margin added on each side, as a fraction of the box size.
    pub margin: f32,
    /// Frames whose mean luma is below this are reported [`DetectOutcome::TooDark`].
    pub dark_threshold: f32,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            max_side: 320,
            min_face: 20,
            score_threshold: 2.0,
            margin: 0.15,
            dark_threshold: 25.0,
        }
    }
}

/// Errors loading the detector.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// The model file could not be read or parsed.
    #[error("cannot load face detector model {path}: {source}")]
    Model {
        /// The model path.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The SeetaFace detector with our pre- and post-processing.
pub struct FaceDetector {
    inner: Box<dyn rustface::Detector + Send>,
    cfg: DetectorConfig,
    /// The last raw (unexpanded) face box, for tracking within one utterance.
    last: Option<(f32, f32, f32, f32)>,
}

impl std::fmt::Debug for FaceDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaceDetector")
            .field("cfg", &self.cfg)
            .finish()
    }
}

/// Most bytes a detector model file may have (the SeetaFace frontal model is 1.2 MB).
const MAX_DETECTOR_MODEL: u64 = 64 * 1024 * 1024;

impl FaceDetector {
    /// Loads `seeta_fd_frontal_v1.0.bin`.
    pub fn load(path: &Path, cfg: DetectorConfig) -> Result<Self, DetectError> {
        let err = |source| DetectError::Model {
            path: path.into(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(err)?;
        if meta.len() > MAX_DETECTOR_MODEL {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "file too large",
            )));
        }
        let bytes = std::fs::read(path).map_err(err)?;
        // rustface's parser indexes into the buffer it reads; a truncated file must not take the
        // process down, so parse behind catch_unwind.
        let parsed = std::panic::catch_unwind(|| rustface::read_model(std::io::Cursor::new(bytes)));
        let model = match parsed {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => return Err(err(e)),
            Err(_) => {
                return Err(err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "malformed model",
                )))
            }
        };
        let mut inner = rustface::create_detector_with_model(model);
        inner.set_min_face_size(cfg.min_face.max(20));
        inner.set_score_thresh(cfg.score_threshold);
        inner.set_pyramid_scale_factor(0.8);
        inner.set_slide_window_step(4, 4);
        // SAFETY-free: the boxed detector owns plain data; it is only used behind &mut self.
        Ok(Self {
            inner: assert_send(inner),
            cfg,
            last: None,
        })
    }

    /// The settings in force.
    pub fn config(&self) -> &DetectorConfig {
        &self.cfg
    }

    /// Forgets the tracked face (call at the start of every utterance).
    pub fn reset(&mut self) {
        self.last = None;
    }

    /// Detects the largest face in `frame`.
    ///
    /// Within an utterance the face moves little, so once a face is known the detector first
    /// searches a window of twice its size around it, scaled so the face is about
    /// [`TRACK_FACE_PX`] pixels: a few hundred microseconds instead of a full-frame pyramid.
    /// If the face is lost there, the full (downscaled) frame is searched again.
    pub fn detect(&mut self, frame: &Frame) -> DetectOutcome {
        if frame.mean_luma() < self.cfg.dark_threshold {
            return DetectOutcome::TooDark;
        }
        if let Some(prev) = self.last {
            if let Some(b) = self.search(frame, Some(prev)) {
                return self.found(frame, b);
            }
        }
        match self.search(frame, None) {
            Some(b) => self.found(frame, b),
            None => {
                self.last = None;
                DetectOutcome::NoFace
            }
        }
    }

    fn found(&mut self, frame: &Frame, b: (f32, f32, f32, f32)) -> DetectOutcome {
        self.last = Some(b);
        DetectOutcome::Face(expand_box(
            b.0,
            b.1,
            b.2,
            b.3,
            self.cfg.margin,
            frame.width,
            frame.height,
        ))
    }

    /// Runs the detector on a region (the whole frame when `around` is `None`) and returns the
    /// largest face as (x, y, w, h) in frame pixels.
    fn search(
        &mut self,
        frame: &Frame,
        around: Option<(f32, f32, f32, f32)>,
    ) -> Option<(f32, f32, f32, f32)> {
        let (fw, fh) = (frame.width as f32, frame.height as f32);
        let (rx, ry, rw, rh, scale) = match around {
            None => {
                let scale = (self.cfg.max_side as f32 / fw.max(fh)).min(1.0);
                (0.0, 0.0, fw, fh, scale)
            }
            Some((x, y, w, h)) => {
                let side = w.max(h);
                let win = (side * 2.0).min(fw).min(fh);
                let (cx, cy) = (x + w / 2.0, y + h / 2.0);
                let x0 = (cx - win / 2.0).clamp(0.0, fw - win);
                let y0 = (cy - win / 2.0).clamp(0.0, fh - win);
                let scale = (TRACK_FACE_PX / side).min(1.0);
                (x0, y0, win, win, scale)
            }
        };
        let (rx, ry) = (rx.floor() as u32, ry.floor() as u32);
        let (rw, rh) = (
            (rw as u32).min(frame.width - rx),
            (rh as u32).min(frame.height - ry),
        );
        let small = gray_region(frame, rx, ry, rw, rh, scale);
        let (sw, sh) = small.dimensions();
        if sw < 20 || sh < 20 {
            return None;
        }
        let img = rustface::ImageData::new(small.as_raw(), sw, sh);
        let faces = self.inner.detect(&img);
        let best = faces
            .iter()
            .max_by_key(|f| f.bbox().width() as u64 * f.bbox().height() as u64)?;
        let b = best.bbox();
        let sx = rw as f32 / sw as f32;
        let sy = rh as f32 / sh as f32;
        Some((
            rx as f32 + b.x() as f32 * sx,
            ry as f32 + b.y() as f32 * sy,
            b.width() as f32 * sx,
            b.height() as f32 * sy,
        ))
    }
}

/// Face size, in pixels, the tracker rescales the search window to.
pub const TRACK_FACE_PX: f32 = 40.0;

/// The grayscale (BT.601) copy of a frame region, resized by `scale`.
fn gray_region(frame: &Frame, x: u32, y: u32, w: u32, h: u32, scale: f32) -> GrayImage {
    let mut g = GrayImage::new(w.max(1), h.max(1));
    let stride = frame.width as usize * 3;
    for yy in 0..h {
        let row = (y + yy) as usize * stride;
        for xx in 0..w {
            let i = row + (x + xx) as usize * 3;
            let p = &frame.rgb[i..i + 3];
            let l = (77 * p[0] as u32 + 150 * p[1] as u32 + 29 * p[2] as u32) >> 8;
            g.put_pixel(xx, yy, image::Luma([l as u8]));
        }
    }
    if scale >= 0.999 {
        return g;
    }
    let nw = ((w as f32 * scale).round() as u32).max(1);
    let nh = ((h as f32 * scale).round() as u32).max(1);
    imageops::resize(&g, nw, nh, imageops::FilterType::Triangle)
}

// rustface's `Detector` trait object is not declared Send, but FuStDetector holds only owned
// model data and scratch buffers. This wrapper states that once.
fn assert_send(d: Box<dyn rustface::Detector>) -> Box<dyn rustface::Detector + Send> {
    struct SendDetector(Box<dyn rustface::Detector>);
    // SAFETY: FuStDetector (the only implementation create_detector_with_model returns) owns
    // its model and buffers (Vec/Box, no Rc or thread-bound state); it is moved between threads,
    // never shared, because FaceDetector::detect takes &mut self.
    #[allow(unsafe_code)]
    unsafe impl Send for SendDetector {}
    impl rustface::Detector for SendDetector {
        fn detect(&mut self, image: &rustface::ImageData) -> Vec<rustface::FaceInfo> {
            self.0.detect(image)
        }
        fn set_window_size(&mut self, s: u32) {
            self.0.set_window_size(s)
        }
        fn set_slide_window_step(&mut self, x: u32, y: u32) {
            self.0.set_slide_window_step(x, y)
        }
        fn set_min_face_size(&mut self, s: u32) {
            self.0.set_min_face_size(s)
        }
        fn set_max_face_size(&mut self, s: u32) {
            self.0.set_max_face_size(s)
        }
        fn set_pyramid_scale_factor(&mut self, f: f32) {
            self.0.set_pyramid_scale_factor(f)
        }
        fn set_score_thresh(&mut self, t: f64) {
            self.0.set_score_thresh(t)
        }
    }
    Box::new(SendDetector(d))
}

/// Expands a box by `margin` on each side, makes it square around its centre, and clamps it to
/// the `fw`×`fh` frame. Never returns an empty box for a non-empty frame.
pub fn expand_box(x: f32, y: f32, w: f32, h: f32, margin: f32, fw: u32, fh: u32) -> FaceBox {
    let side = w.max(h) * (1.0 + 2.0 * margin);
    let (cx, cy) = (x + w / 2.0, y + h / 2.0);
    let side = side.min(fw as f32).min(fh as f32).max(1.0);
    let x0 = (cx - side / 2.0).clamp(0.0, fw as f32 - side);
    let y0 = (cy - side / 2.0).clamp(0.0, fh as f32 - side);
    FaceBox::rounded([x0, y0, side, side], fw, fh)
}

impl FaceBox {
    /// The box `[x, y, w, h]` in fractional pixels (non-negative), rounded to whole pixels and
    /// [`FaceBox::clamped`] to a `fw`×`fh` frame.
    pub fn rounded([x, y, w, h]: [f32; 4], fw: u32, fh: u32) -> FaceBox {
        FaceBox {
            x: x.round() as u32,
            y: y.round() as u32,
            w: w.round() as u32,
            h: h.round() as u32,
        }
        .clamped(fw, fh)
    }

    /// The box intersected with a `fw`×`fh` frame, at least 1×1.
    pub fn clamped(self, fw: u32, fh: u32) -> FaceBox {
        let x = self.x.min(fw.saturating_sub(1));
        let y = self.y.min(fh.saturating_sub(1));
        FaceBox {
            x,
            y,
            w: self.w.min(fw - x).max(1),
            h: self.h.min(fh - y).max(1),
        }
    }

    /// The whole frame.
    pub fn full(frame: &Frame) -> FaceBox {
        FaceBox {
            x: 0,
            y: 0,
            w: frame.width,
            h: frame.height,
        }
    }

    /// The mouth region of a face box: rows 55–90 % of its height, the central 56 % of its
    /// width. Tight crops put the lips near 65 % of the height, detector boxes with our margin
    /// near 75 %; this band holds both with the lips away from its edges.
    pub fn mouth_region(&self) -> FaceBox {
        let x = self.x + (self.w as f32 * 0.22) as u32;
        let y = self.y + (self.h as f32 * 0.55) as u32;
        FaceBox {
            x,
            y,
            w: ((self.w as f32 * 0.56) as u32).max(1),
            h: ((self.h as f32 * 0.35) as u32).max(1),
        }
    }
}

/// Crops `b` out of `frame` (the box must lie within the frame; it is clamped if not).
pub fn crop(frame: &Frame, b: FaceBox) -> RgbImage {
    let b = b.clamped(frame.width, frame.height);
    let img = frame.to_image();
    imageops::crop_imm(&img, b.x, b.y, b.w, b.h).to_image()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expand_clamps_and_squares() {
        let b = expand_box(10.0, 10.0, 20.0, 30.0, 0.1, 100, 100);
        assert_eq!(b.w, b.h);
        assert_eq!(b.w, 36);
        // Centre kept: (20, 25) -> x0 = 2, y0 = 7.
        assert_eq!((b.x, b.y), (2, 7));
        let edge = expand_box(90.0, 90.0, 20.0, 20.0, 0.5, 100, 100);
        assert!(edge.x + edge.w <= 100 && edge.y + edge.h <= 100);
        let huge = expand_box(0.0, 0.0, 500.0, 500.0, 0.2, 64, 48);
        assert_eq!((huge.w, huge.h), (48, 48));
    }

    #[test]
    fn mouth_region_is_inside_the_face() {
        let f = FaceBox {
            x: 10,
            y: 20,
            w: 100,
            h: 100,
        };
        let m = f.mouth_region();
        assert!(m.x >= f.x && m.y >= f.y + 50);
        assert!(m.x + m.w <= f.x + f.w && m.y + m.h <= f.y + f.h);
    }

    #[test]
    fn crop_mode_parses() {
        assert_eq!("detect".parse::<CropMode>(), Ok(CropMode::Detect));
        assert!("auto".parse::<CropMode>().is_err());
    }

    #[test]
    fn truncated_model_is_an_error_not_a_panic() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("fd.bin");
        std::fs::write(&p, [1u8, 0, 0, 0, 7, 7]).unwrap();
        assert!(FaceDetector::load(&p, DetectorConfig::default()).is_err());
        assert!(
            FaceDetector::load(&d.path().join("missing.bin"), DetectorConfig::default()).is_err()
        );
    }
}
