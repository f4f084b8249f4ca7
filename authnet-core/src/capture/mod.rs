//! Frame sources: where RGB frames come from.
//!
//! Everything that produces frames implements [`FrameSource`]:
//! - [`DirSource`]: an image directory, frames in file-name order (a MIRACL-VC1 utterance
//!   folder of `color_NNN.jpg`, or a clip recorded for enrolment);
//! - [`SyntheticSource`]: deterministic generated frames for tests;
//! - `v4l2::V4l2Source` (feature `v4l2`): a V4L2 camera, MJPEG or YUYV decoded to RGB;
//! - `video::VideoSource` (feature `video`): a video file resampled to a constant frame rate.
//!
//! [`open_utterance`] picks the source for a path that may be a frame directory or a video file.

pub mod convert;
#[cfg(feature = "v4l2")]
pub mod v4l2;
#[cfg(feature = "video")]
pub mod video;

use std::path::{Path, PathBuf};

use image::{ImageReader, Limits};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Largest accepted frame side, in pixels. Bounds the memory a hostile or broken image file can
/// make us allocate (a 4096×4096 RGB frame is 48 MiB).
pub const MAX_FRAME_SIDE: u32 = 4096;

/// Largest accepted frame *file*, in bytes (a 4096×4096 PNG of noise is about 50 MiB; camera
/// frames are far smaller). Checked with `fstat` before reading.
pub const MAX_FRAME_FILE: u64 = 64 * 1024 * 1024;

/// Most encoded bytes one clip may hold in memory when loaded with [`load_dir`].
pub const MAX_CLIP_BYTES: u64 = 256 * 1024 * 1024;

/// Most frames one utterance directory may hold (a 2-second clip at 30 fps is 60; this leaves
/// room for slow speakers while bounding memory).
pub const MAX_FRAMES: usize = 600;

/// One RGB frame, 8 bits per channel, row-major, no padding. Wiped from memory on drop: frames
/// are biometric data.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Frame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 3` bytes, RGB.
    pub rgb: Vec<u8>,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Frame({}x{})", self.width, self.height)
    }
}

impl Frame {
    /// Wraps an RGB buffer, checking its length and size limits.
    pub fn new(width: u32, height: u32, rgb: Vec<u8>) -> Result<Self, CaptureError> {
        if width == 0 || height == 0 || width > MAX_FRAME_SIDE || height > MAX_FRAME_SIDE {
            return Err(CaptureError::BadSize { width, height });
        }
        if rgb.len() != width as usize * height as usize * 3 {
            return Err(CaptureError::BufferLength {
                expected: width as usize * height as usize * 3,
                got: rgb.len(),
            });
        }
        Ok(Self { width, height, rgb })
    }

    /// A copy as an `image` RGB buffer.
    pub fn to_image(&self) -> image::RgbImage {
        // Invariant: `new` checked that the buffer length matches the dimensions.
        image::RgbImage::from_raw(self.width, self.height, self.rgb.clone())
            .unwrap_or_else(|| image::RgbImage::new(self.width, self.height))
    }

    /// Mean luma (BT.601), 0–255.
    pub fn mean_luma(&self) -> f32 {
        let n = (self.width * self.height) as f64;
        let s: f64 = self
            .rgb
            .chunks_exact(3)
            .map(|p| 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64)
            .sum();
        (s / n) as f32
    }
}

/// Errors from frame sources.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// A directory or file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An image file could not be decoded.
    #[error("cannot decode frame {path}: {source}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: image::ImageError,
    },
    /// An image exceeds [`MAX_FRAME_SIDE`].
    #[error(
        "frame {path} is {width}x{height}, larger than the {MAX_FRAME_SIDE}x{MAX_FRAME_SIDE} limit"
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
    },
    /// A clip's frame files hold more than [`MAX_CLIP_BYTES`] together.
    #[error("the frames of {path} hold more than {MAX_CLIP_BYTES} bytes")]
    ClipTooLarge {
        /// The directory.
        path: PathBuf,
    },
    /// A directory holds no image frames.
    #[error("no image frames (.jpg, .jpeg, .png) in {0}")]
    Empty(PathBuf),
    /// A directory holds more than [`MAX_FRAMES`] frames.
    #[error("{path} holds {count} frames, more than the {MAX_FRAMES} limit")]
    TooManyFrames {
        /// The directory.
        path: PathBuf,
        /// How many it holds.
        count: usize,
    },
    /// Frames of one clip differ in size.
    #[error("frame {path} is {got_w}x{got_h} but earlier frames are {want_w}x{want_h}")]
    SizeMismatch {
        /// The offending file.
        path: PathBuf,
        /// Its width.
        got_w: u32,
        /// Its height.
        got_h: u32,
        /// The clip's width.
        want_w: u32,
        /// The clip's height.
        want_h: u32,
    },
    /// Frame dimensions are zero or beyond the limit.
    #[error("bad frame size {width}x{height}")]
    BadSize {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
    /// A pixel buffer does not match its dimensions.
    #[error("pixel buffer is {got} bytes, expected {expected}")]
    BufferLength {
        /// Expected bytes.
        expected: usize,
        /// Actual bytes.
        got: usize,
    },
    /// A camera pixel format that cannot be decoded.
    #[error("unsupported camera pixel format {0}")]
    UnsupportedFormat(String),
    /// The camera device failed.
    #[error("camera {device}: {source}")]
    Camera {
        /// The device path.
        device: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A compressed camera frame could not be decoded.
    #[error("cannot decode camera frame: {0}")]
    CameraDecode(#[source] image::ImageError),
    /// A video file was given to a build without the `video` feature.
    #[error("{0} is a file, not a frame directory, and this build cannot read video files (feature `video` is off)")]
    VideoUnsupported(PathBuf),
    /// A video file could not be read.
    #[cfg(feature = "video")]
    #[error(transparent)]
    Video(#[from] video::VideoError),
}

/// Anything that yields frames of one utterance (or a live stream).
pub trait FrameSource {
    /// The next frame, or `Ok(None)` at the end of a finite source.
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError>;

    /// A short human description for logs and errors (`dir:/path`, `v4l2:/dev/video0`).
    fn describe(&self) -> String;
}

/// Extensions of the video files accepted where an utterance directory is (with feature
/// `video`; the dataset walker lists such files as utterances).
pub const VIDEO_EXTS: &[&str] = &["mp4", "mov", "webm", "mkv", "avi", "m4v"];

/// Whether `path` names a video file by its extension.
pub fn is_video_file(path: &Path) -> bool {
    path.is_file()
        && path
            .extension()
            .and_then(|x| x.to_str())
            .map(|x| VIDEO_EXTS.contains(&x.to_ascii_lowercase().as_str()))
            .unwrap_or(false)
}

/// Image extensions a [`DirSource`] reads.
const IMAGE_EXTS: &[&str] = &["jpg", "jpeg", "png"];

/// Frames from an image directory, in file-name order.
#[derive(Debug)]
pub struct DirSource {
    dir: PathBuf,
    files: Vec<PathBuf>,
    next: usize,
    size: Option<(u32, u32)>,
    mixed_ok: bool,
}

impl DirSource {
    /// Lists the image files of `dir` (sorted by name). Errors if it holds none.
    pub fn open(dir: &Path) -> Result<Self, CaptureError> {
        let files = list_frames(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            files,
            next: 0,
            size: None,
            mixed_ok: false,
        })
    }

    /// Accepts frames of differing sizes. Only for directories of *crops* (each crop is resized
    /// to the network input anyway, and MIRACL-VC1's F02 face crops vary from 84x84 to 69x68);
    /// full camera frames of one clip must share one size.
    pub fn allow_mixed_sizes(mut self) -> Self {
        self.mixed_ok = true;
        self
    }

    /// The frame files, in reading order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Reads every frame.
    pub fn read_all(mut self) -> Result<Vec<Frame>, CaptureError> {
        let mut out = Vec::with_capacity(self.files.len());
        while let Some(f) = self.next_frame()? {
            out.push(f);
        }
        Ok(out)
    }
}

/// The sorted image files of `dir`.
pub fn list_frames(dir: &Path) -> Result<Vec<PathBuf>, CaptureError> {
    let rd = std::fs::read_dir(dir).map_err(|source| CaptureError::Io {
        path: dir.into(),
        source,
    })?;
    let mut files = Vec::new();
    for e in rd {
        let e = e.map_err(|source| CaptureError::Io {
            path: dir.into(),
            source,
        })?;
        let p = e.path();
        // The entry's own type, not its target's: a symlinked frame is not listed (and
        // `read_image` would refuse it anyway).
        let is_file = e.file_type().map(|t| t.is_file()).unwrap_or(false);
        let is_img = p
            .extension()
            .and_then(|x| x.to_str())
            .map(|x| IMAGE_EXTS.contains(&x.to_ascii_lowercase().as_str()))
            .unwrap_or(false);
        if is_img && is_file {
            files.push(p);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(CaptureError::Empty(dir.into()));
    }
    if files.len() > MAX_FRAMES {
        return Err(CaptureError::TooManyFrames {
            path: dir.into(),
            count: files.len(),
        });
    }
    Ok(files)
}

/// Reads one frame file's bytes: opened with [`crate::fsutil::open_regular`] (no symlink, no
/// FIFO or device, never blocking on open), at most [`MAX_FRAME_FILE`] bytes.
pub fn read_frame_file(path: &Path) -> Result<Vec<u8>, CaptureError> {
    use crate::fsutil::{read_bounded, BoundedRead};
    read_bounded(path, MAX_FRAME_FILE).map_err(|e| CaptureError::Io {
        path: path.into(),
        source: match e {
            BoundedRead::Io(e) => e,
            BoundedRead::TooLarge { size } => std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{size} bytes, more than the {MAX_FRAME_FILE}-byte frame limit"),
            ),
        },
    })
}

/// Decodes one image file to RGB, refusing images beyond [`MAX_FRAME_SIDE`] before decoding
/// the pixels. The file is read whole first ([`read_frame_file`]).
pub fn read_image(path: &Path) -> Result<Frame, CaptureError> {
    decode_image(path, &read_frame_file(path)?)
}

/// Decodes the encoded image `bytes` (read from `path`, which names it in errors) to RGB,
/// refusing images beyond [`MAX_FRAME_SIDE`] before decoding the pixels.
pub fn decode_image(path: &Path, bytes: &[u8]) -> Result<Frame, CaptureError> {
    let dec = |source| CaptureError::Decode {
        path: path.into(),
        source,
    };
    let open = || -> Result<ImageReader<std::io::Cursor<&[u8]>>, CaptureError> {
        ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|source| CaptureError::Io {
                path: path.into(),
                source,
            })
    };
    let (w, h) = open()?.into_dimensions().map_err(dec)?;
    if w > MAX_FRAME_SIDE || h > MAX_FRAME_SIDE {
        return Err(CaptureError::TooLarge {
            path: path.into(),
            width: w,
            height: h,
        });
    }
    let mut reader = open()?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_FRAME_SIDE);
    limits.max_image_height = Some(MAX_FRAME_SIDE);
    limits.max_alloc = Some(256 * 1024 * 1024);
    reader.limits(limits);
    let img = reader.decode().map_err(dec)?.to_rgb8();
    let (w, h) = img.dimensions();
    Frame::new(w, h, img.into_raw())
}

/// Checks a clip's frame sizes agree (unless `mixed_ok`), remembering the first in `size`.
fn check_size(
    size: &mut Option<(u32, u32)>,
    mixed_ok: bool,
    path: &Path,
    frame: &Frame,
) -> Result<(), CaptureError> {
    match *size {
        None => *size = Some((frame.width, frame.height)),
        Some((w, h)) if !mixed_ok && (w, h) != (frame.width, frame.height) => {
            return Err(CaptureError::SizeMismatch {
                path: path.into(),
                got_w: frame.width,
                got_h: frame.height,
                want_w: w,
                want_h: h,
            })
        }
        Some(_) => {}
    }
    Ok(())
}

/// A frame directory read into memory ([`load_dir`]): its encoded frames, decoded one at a time
/// by [`FrameSource::next_frame`]. Lets a caller do all the file I/O of a clip (which a user
/// controls and might make slow) before it takes a shared resource, and only decode while
/// holding it.
pub struct LoadedDir {
    dir: PathBuf,
    files: Vec<(PathBuf, Vec<u8>)>,
    next: usize,
    size: Option<(u32, u32)>,
    mixed_ok: bool,
}

impl std::fmt::Debug for LoadedDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LoadedDir({}, {} frames)",
            self.dir.display(),
            self.files.len()
        )
    }
}

impl LoadedDir {
    /// Accepts frames of differing sizes (see [`DirSource::allow_mixed_sizes`]).
    pub fn allow_mixed_sizes(mut self) -> Self {
        self.mixed_ok = true;
        self
    }
}

/// Reads every frame file of the directory `dir` (as [`DirSource`] lists them, each with
/// [`read_frame_file`]) into memory, at most [`MAX_CLIP_BYTES`] in all.
pub fn load_dir(dir: &Path) -> Result<LoadedDir, CaptureError> {
    let mut total = 0u64;
    let mut files = Vec::new();
    for p in list_frames(dir)? {
        let bytes = read_frame_file(&p)?;
        total += bytes.len() as u64;
        if total > MAX_CLIP_BYTES {
            return Err(CaptureError::ClipTooLarge { path: dir.into() });
        }
        files.push((p, bytes));
    }
    Ok(LoadedDir {
        dir: dir.into(),
        files,
        next: 0,
        size: None,
        mixed_ok: false,
    })
}

impl FrameSource for LoadedDir {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        let Some((path, bytes)) = self.files.get(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        let frame = decode_image(path, bytes)?;
        check_size(&mut self.size, self.mixed_ok, path, &frame)?;
        Ok(Some(frame))
    }

    fn describe(&self) -> String {
        format!("dir:{}", self.dir.display())
    }
}

impl FrameSource for DirSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        let Some(path) = self.files.get(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        let frame = read_image(path)?;
        check_size(&mut self.size, self.mixed_ok, path, &frame)?;
        Ok(Some(frame))
    }

    fn describe(&self) -> String {
        format!("dir:{}", self.dir.display())
    }
}

/// Deterministic generated frames: a face-like oval with eyes and a mouth whose opening follows
/// a per-seed rhythm. `frozen` keeps the mouth still (a photo). For tests only; no biometric
/// meaning.
#[derive(Debug, Clone)]
pub struct SyntheticSource {
    width: u32,
    height: u32,
    count: usize,
    next: usize,
    seed: u64,
    frozen: bool,
    brightness: f32,
}

impl SyntheticSource {
    /// `count` frames of `width`×`height`.
    pub fn new(width: u32, height: u32, count: usize, seed: u64) -> Self {
        Self {
            width,
            height,
            count,
            next: 0,
            seed,
            frozen: false,
            brightness: 1.0,
        }
    }

    /// The same face, mouth never moving.
    pub fn frozen(mut self) -> Self {
        self.frozen = true;
        self
    }

    /// Scales all pixel values (e.g. 0.05 for a dark room).
    pub fn with_brightness(mut self, b: f32) -> Self {
        self.brightness = b;
        self
    }

    fn render(&self, i: usize) -> Frame {
        let (w, h) = (self.width as f32, self.height as f32);
        let phase = (self.seed % 97) as f32 * 0.13;
        let t = if self.frozen { 0.0 } else { i as f32 };
        let open = 0.5 + 0.5 * (t * 0.9 + phase).sin();
        let skin = [
            200.0 + (self.seed % 40) as f32,
            160.0 + (self.seed % 30) as f32,
            130.0 + (self.seed % 20) as f32,
        ];
        let mut rgb = Vec::with_capacity((self.width * self.height * 3) as usize);
        let (cx, cy, rx, ry) = (w * 0.5, h * 0.5, w * 0.22, h * 0.32);
        for y in 0..self.height {
            for x in 0..self.width {
                let (fx, fy) = (x as f32, y as f32);
                let mut px = [40.0f32, 60.0, 90.0];
                let d = ((fx - cx) / rx).powi(2) + ((fy - cy) / ry).powi(2);
                if d <= 1.0 {
                    px = skin;
                    for ex in [cx - rx * 0.4, cx + rx * 0.4] {
                        if ((fx - ex) / (rx * 0.15)).powi(2)
                            + ((fy - (cy - ry * 0.25)) / (ry * 0.07)).powi(2)
                            <= 1.0
                        {
                            px = [30.0, 30.0, 30.0];
                        }
                    }
                    let my = cy + ry * 0.5;
                    let mh = ry * (0.03 + 0.12 * open);
                    if ((fx - cx) / (rx * 0.4)).powi(2) + ((fy - my) / mh).powi(2) <= 1.0 {
                        px = [120.0, 30.0, 40.0];
                    }
                }
                for c in px {
                    rgb.push((c * self.brightness).clamp(0.0, 255.0) as u8);
                }
            }
        }
        Frame {
            width: self.width,
            height: self.height,
            rgb,
        }
    }
}

impl FrameSource for SyntheticSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        if self.next >= self.count {
            return Ok(None);
        }
        let f = self.render(self.next);
        self.next += 1;
        Ok(Some(f))
    }

    fn describe(&self) -> String {
        format!(
            "synthetic:{}x{}x{}#{}",
            self.width, self.height, self.count, self.seed
        )
    }
}

/// The frames of one utterance at `path`: a [`DirSource`] for a directory (`mixed_sizes`:
/// see [`DirSource::allow_mixed_sizes`]), otherwise a video file at the default
/// `video::VideoOptions` (15 fps, at most 10 s and 1280 px).
pub fn open_utterance(
    path: &Path,
    mixed_sizes: bool,
) -> Result<Box<dyn FrameSource>, CaptureError> {
    let meta = std::fs::metadata(path).map_err(|source| CaptureError::Io {
        path: path.into(),
        source,
    })?;
    if meta.is_dir() {
        let src = DirSource::open(path)?;
        return Ok(Box::new(if mixed_sizes {
            src.allow_mixed_sizes()
        } else {
            src
        }));
    }
    open_video(path)
}

#[cfg(feature = "video")]
fn open_video(path: &Path) -> Result<Box<dyn FrameSource>, CaptureError> {
    Ok(Box::new(video::VideoSource::open(path)?))
}

#[cfg(not(feature = "video"))]
fn open_video(path: &Path) -> Result<Box<dyn FrameSource>, CaptureError> {
    Err(CaptureError::VideoUnsupported(path.into()))
}

/// Reads every frame of a source (bounded by [`MAX_FRAMES`]).
pub fn read_all(src: &mut dyn FrameSource) -> Result<Vec<Frame>, CaptureError> {
    let mut out = Vec::new();
    while let Some(f) = src.next_frame()? {
        out.push(f);
        if out.len() >= MAX_FRAMES {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_rgb(path: &Path, w: u32, h: u32, v: u8) {
        image::RgbImage::from_pixel(w, h, image::Rgb([v, v, v]))
            .save(path)
            .unwrap();
    }

    #[test]
    fn dir_source_reads_in_name_order() {
        let d = tempfile::tempdir().unwrap();
        write_rgb(&d.path().join("color_002.png"), 4, 3, 20);
        write_rgb(&d.path().join("color_001.png"), 4, 3, 10);
        std::fs::write(d.path().join("notes.txt"), "x").unwrap();
        let frames = DirSource::open(d.path()).unwrap().read_all().unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].rgb[0], 10);
        assert_eq!(frames[1].rgb[0], 20);
    }

    #[test]
    fn a_fifo_or_symlink_over_a_frame_fails_at_once() {
        let d = tempfile::tempdir().unwrap();
        for i in 0..3 {
            write_rgb(&d.path().join(format!("f{i}.png")), 8, 8, 10);
        }
        let src = DirSource::open(d.path()).unwrap();
        let mut loaded = load_dir(d.path()).unwrap();
        assert_eq!(read_all(&mut loaded).unwrap().len(), 3);
        // Swapped after listing: a FIFO (an open would block forever) and a symlink.
        std::fs::remove_file(d.path().join("f1.png")).unwrap();
        let st = std::process::Command::new("mkfifo")
            .arg(d.path().join("f1.png"))
            .status()
            .unwrap();
        assert!(st.success());
        std::fs::remove_file(d.path().join("f2.png")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("f2.png")).unwrap();
        let t = std::time::Instant::now();
        let mut src = src;
        assert!(src.next_frame().unwrap().is_some());
        let e = src.next_frame().unwrap_err();
        assert!(matches!(e, CaptureError::Io { .. }), "{e}");
        let e = src.next_frame().unwrap_err();
        assert!(matches!(e, CaptureError::Io { .. }), "{e}");
        assert!(load_dir(d.path()).is_ok(), "neither is listed any more");
        assert_eq!(load_dir(d.path()).unwrap().files.len(), 1);
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn empty_dir_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let e = DirSource::open(d.path()).unwrap_err();
        assert!(matches!(e, CaptureError::Empty(_)), "{e}");
    }

    #[test]
    fn corrupt_jpeg_names_the_file() {
        let d = tempfile::tempdir().unwrap();
        write_rgb(&d.path().join("color_001.png"), 4, 3, 20);
        let bad = d.path().join("color_002.jpg");
        std::fs::write(&bad, b"\xFF\xD8\xFF\xE0garbage that is not a jpeg").unwrap();
        let e = DirSource::open(d.path()).unwrap().read_all().unwrap_err();
        assert!(e.to_string().contains("color_002.jpg"), "{e}");
    }

    #[test]
    fn mixed_sizes_are_refused() {
        let d = tempfile::tempdir().unwrap();
        write_rgb(&d.path().join("a.png"), 4, 3, 20);
        write_rgb(&d.path().join("b.png"), 5, 3, 20);
        let e = DirSource::open(d.path()).unwrap().read_all().unwrap_err();
        assert!(matches!(e, CaptureError::SizeMismatch { .. }), "{e}");
        assert!(e.to_string().contains("b.png"));
    }

    #[test]
    fn oversized_image_refused_before_decoding() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("big.png");
        // 4097x1 grayscale PNG: tiny on disk, over the side limit.
        image::GrayImage::new(MAX_FRAME_SIDE + 1, 1)
            .save(&p)
            .unwrap();
        let e = read_image(&p).unwrap_err();
        assert!(matches!(e, CaptureError::TooLarge { .. }), "{e}");
    }

    #[test]
    fn synthetic_is_deterministic_and_moves() {
        let a = read_all(&mut SyntheticSource::new(64, 64, 5, 3)).unwrap();
        let b = read_all(&mut SyntheticSource::new(64, 64, 5, 3)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a[0], a[2], "mouth should move between frames");
        let f = read_all(&mut SyntheticSource::new(64, 64, 5, 3).frozen()).unwrap();
        assert_eq!(f[0], f[4]);
        let dark = read_all(&mut SyntheticSource::new(64, 64, 1, 3).with_brightness(0.05)).unwrap();
        assert!(dark[0].mean_luma() < 15.0);
    }

    #[test]
    fn frame_new_checks_lengths() {
        assert!(Frame::new(2, 2, vec![0; 12]).is_ok());
        assert!(Frame::new(2, 2, vec![0; 11]).is_err());
        assert!(Frame::new(0, 2, vec![]).is_err());
    }
}
