//! [`VideoSource`]: frames of a video file (mp4, mov, webm, mkv, avi; whatever FFmpeg's
//! demuxers and decoders in the system libraries read), decoded through `ffmpeg-next`.
//!
//! Phones and laptops record at 24–60 fps, often with a variable frame rate, while the pipeline
//! and the per-user models expect MIRACL-VC1's constant 15 fps. So the source resamples by
//! timestamp: output frame `k` is the decoded frame whose presentation time is nearest to
//! `k / fps` seconds after the first frame (ties go to the earlier frame). It also
//! - turns the picture upright according to the rotation metadata phones write (the display
//!   matrix side data, or the older `rotate` stream tag), 90° steps only;
//! - converts to RGB24 with swscale, downscaling so the longer side is at most
//!   [`VideoOptions::max_side`];
//! - bounds memory: a clip longer than [`VideoOptions::max_duration_s`] or wider or taller
//!   than [`MAX_FRAME_SIDE`] is refused, so at most `fps * max_duration_s` frames (checked
//!   against [`MAX_FRAMES`]) of at most `max_side²` pixels exist per clip.
//!
//! Errors say which of the usual failures happened: an empty file, a file that is no video, a
//! video container that is truncated or corrupt, a clip that is too long or too large.

use std::collections::VecDeque;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Once;

use ffmpeg::codec::packet::side_data::Type as SideDataType;
use ffmpeg::format::Pixel;
use ffmpeg::software::scaling;
/// The `ffmpeg-next` version this module is built on (tests encode clips with it).
pub use ffmpeg_next as ffmpeg;

use super::{CaptureError, Frame, FrameSource, MAX_FRAMES, MAX_FRAME_SIDE};

/// MIRACL-VC1's frame rate, the rate the models are trained at.
pub const DEFAULT_FPS: f64 = 15.0;
/// Longest accepted clip, in seconds. A spoken password takes about 2 s; 10 s leaves room for a
/// slow start while bounding decode time and memory (150 frames at 15 fps).
pub const DEFAULT_MAX_DURATION_S: f64 = 10.0;
/// Default bound on the longer side of output frames. 1280 keeps a 1080p phone clip's face
/// large enough for the detector (which downsamples anyway) at under half the memory.
pub const DEFAULT_MAX_SIDE: u32 = 1280;

/// How a [`VideoSource`] samples and bounds a clip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoOptions {
    /// Output frame rate (frames per second of video time).
    pub fps: f64,
    /// Longest accepted clip, seconds.
    pub max_duration_s: f64,
    /// Longest output side in pixels; larger frames are downscaled, keeping the aspect ratio.
    pub max_side: u32,
}

impl Default for VideoOptions {
    fn default() -> Self {
        Self {
            fps: DEFAULT_FPS,
            max_duration_s: DEFAULT_MAX_DURATION_S,
            max_side: DEFAULT_MAX_SIDE,
        }
    }
}

/// Why a video file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// The file has zero bytes.
    #[error("{path}: the file is empty (0 bytes), not a video")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// FFmpeg recognises no video in the file.
    #[error("{path} is not a video file (FFmpeg finds no video stream in it)")]
    NotVideo {
        /// The file.
        path: PathBuf,
        /// FFmpeg's error, when opening failed outright.
        #[source]
        source: Option<ffmpeg::Error>,
    },
    /// The file starts like a known container but cannot be read through.
    #[error("{path} starts like {container} but is truncated or corrupt")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// The container its first bytes name.
        container: &'static str,
        /// FFmpeg's error, if one was reported (none when the stream simply had no frames).
        #[source]
        source: Option<ffmpeg::Error>,
    },
    /// The video ends well before the duration its header states.
    #[error(
        "{path} is truncated: its video ends after {decoded_s:.2} s but its header says {expected_s:.2} s"
    )]
    EndedEarly {
        /// The file.
        path: PathBuf,
        /// Seconds of video decoded.
        decoded_s: f64,
        /// Seconds the container announced.
        expected_s: f64,
    },
    /// Longer than [`VideoOptions::max_duration_s`].
    #[error("{path} is {seconds:.1} s long, more than the {limit_s:.1} s limit for one utterance")]
    TooLong {
        /// The file.
        path: PathBuf,
        /// Its duration (as far as known when refused).
        seconds: f64,
        /// The limit.
        limit_s: f64,
    },
    /// A frame side beyond [`MAX_FRAME_SIDE`].
    #[error("{path} is {width}x{height}, larger than the {MAX_FRAME_SIDE}x{MAX_FRAME_SIDE} limit")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Coded width.
        width: u32,
        /// Coded height.
        height: u32,
    },
    /// FFmpeg has no decoder for the stream's codec, or could not open it.
    #[error("{path}: cannot open a decoder for its video stream")]
    Decoder {
        /// The file.
        path: PathBuf,
        /// FFmpeg's error.
        #[source]
        source: ffmpeg::Error,
    },
    /// Pixel conversion failed (an exotic pixel format swscale does not take).
    #[error("{path}: cannot convert {format:?} frames to RGB")]
    Convert {
        /// The file.
        path: PathBuf,
        /// The decoder's pixel format.
        format: Pixel,
        /// FFmpeg's error.
        #[source]
        source: ffmpeg::Error,
    },
    /// Options out of range.
    #[error(
        "bad video options: fps {fps} and max duration {max_duration_s} s must be positive with \
         fps x duration <= {MAX_FRAMES} frames, and max side {max_side} within 16..={MAX_FRAME_SIDE}"
    )]
    BadOptions {
        /// Requested fps.
        fps: f64,
        /// Requested duration cap.
        max_duration_s: f64,
        /// Requested side cap.
        max_side: u32,
    },
}

static INIT: Once = Once::new();

/// Initialises FFmpeg once per process. FFmpeg's own log is limited to fatal messages: every
/// failure reaches the caller as a [`VideoError`], and stderr belongs to the daemon's logger.
fn init() {
    INIT.call_once(|| {
        // `init` only registers codecs on FFmpeg < 4; with 5.1 it cannot fail in practice, and
        // a failure would show up as an open error right after.
        let _ = ffmpeg::init();
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Fatal);
    });
}

/// The container a file's first bytes announce, if any (to tell "truncated" from "not a video").
fn sniff_container(path: &Path) -> Option<&'static str> {
    let mut head = [0u8; 12];
    let mut f = std::fs::File::open(path).ok()?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    let head = &head[..n];
    if head.len() >= 8 && matches!(&head[4..8], b"ftyp" | b"moov" | b"mdat" | b"wide" | b"free") {
        Some("an MP4/QuickTime file")
    } else if head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        Some("a Matroska/WebM file")
    } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"AVI " {
        Some("an AVI file")
    } else {
        None
    }
}

/// Clockwise rotation in degrees (0, 90, 180, 270) that turns the stored picture upright:
/// the display matrix side data if present, else the `rotate` tag. Angles are rounded to the
/// nearest quarter turn (phones only write quarter turns).
fn stream_rotation(stream: &ffmpeg::format::stream::Stream) -> u32 {
    for sd in stream.side_data() {
        if sd.kind() == SideDataType::DisplayMatrix {
            if let Some(deg) = display_matrix_rotation(sd.data()) {
                return quarter_turns(deg);
            }
        }
    }
    stream
        .metadata()
        .get("rotate")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(quarter_turns)
        .unwrap_or(0)
}

/// `-av_display_rotation_get(m)`: the clockwise angle the display matrix (nine native-endian
/// i32, 16.16 fixed point for the 2×2 part) applies when presenting the picture.
fn display_matrix_rotation(bytes: &[u8]) -> Option<f64> {
    if bytes.len() < 36 {
        return None;
    }
    let m: Vec<f64> = bytes[..36]
        .chunks_exact(4)
        .map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]) as f64 / 65536.0)
        .collect();
    let s0 = m[0].hypot(m[3]);
    let s1 = m[1].hypot(m[4]);
    if s0 == 0.0 || s1 == 0.0 {
        return None;
    }
    // av_display_rotation_get returns the counter-clockwise angle -atan2(..); its negation is
    // the clockwise one, which is what FFmpeg's own autorotate applies.
    Some((m[1] / s1).atan2(m[0] / s0).to_degrees())
}

fn quarter_turns(deg: f64) -> u32 {
    let q = (deg / 90.0).round().rem_euclid(4.0);
    q as u32 * 90
}

/// Rotates an RGB frame clockwise by 90, 180 or 270 degrees (0 returns it unchanged).
pub fn rotate_clockwise(frame: Frame, degrees: u32) -> Frame {
    let (w, h) = (frame.width as usize, frame.height as usize);
    let (nw, nh) = match degrees {
        90 | 270 => (h, w),
        180 => (w, h),
        _ => return frame,
    };
    let mut out = vec![0u8; frame.rgb.len()];
    for y in 0..h {
        for x in 0..w {
            let (nx, ny) = match degrees {
                90 => (h - 1 - y, x),
                180 => (w - 1 - x, h - 1 - y),
                _ => (y, w - 1 - x),
            };
            let s = (y * w + x) * 3;
            let d = (ny * nw + nx) * 3;
            out[d..d + 3].copy_from_slice(&frame.rgb[s..s + 3]);
        }
    }
    Frame {
        width: nw as u32,
        height: nh as u32,
        rgb: out,
    }
}

/// The output size for a `w`×`h` picture whose longer side may be at most `max_side`.
fn fit(w: u32, h: u32, max_side: u32) -> (u32, u32) {
    let long = w.max(h);
    if long <= max_side {
        return (w, h);
    }
    let s = max_side as f64 / long as f64;
    let sc = |v: u32| ((v as f64 * s).round() as u32).max(1);
    (sc(w), sc(h))
}

/// Frames of a video file at a constant frame rate, upright, RGB. See the module doc.
pub struct VideoSource {
    path: PathBuf,
    opts: VideoOptions,
    container: Option<&'static str>,
    input: ffmpeg::format::context::Input,
    stream_index: usize,
    time_base: f64,
    /// Seconds the header announces for the video, when it does.
    expected_s: Option<f64>,
    /// Nominal frame interval from the stream's frame rate, for frames without timestamps.
    nominal_interval: f64,
    decoder: ffmpeg::decoder::Video,
    scaler: Option<(scaling::Context, Pixel, u32, u32)>,
    out_size: (u32, u32),
    rotation: u32,
    decoded: ffmpeg::frame::Video,
    rgb: ffmpeg::frame::Video,
    /// Timestamp (stream units) of the first decoded frame: time zero.
    first_ts: Option<i64>,
    /// The previous decoded frame and its time in seconds.
    prev: Option<(f64, Frame)>,
    /// The last positive gap between decoded frames, seconds.
    last_interval: Option<f64>,
    frames_decoded: usize,
    next_tick: u64,
    ready: VecDeque<Frame>,
    eof_sent: bool,
    done: bool,
}

impl std::fmt::Debug for VideoSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoSource")
            .field("path", &self.path)
            .field("opts", &self.opts)
            .field("out_size", &self.out_size)
            .field("rotation", &self.rotation)
            .finish_non_exhaustive()
    }
}

impl VideoSource {
    /// Opens `path` with the default options (15 fps, 10 s, 1280 px).
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        Self::open_with(path, VideoOptions::default())
    }

    /// Opens `path`: checks the file, the container, the video stream, its size and announced
    /// duration. Decoding happens frame by frame in [`FrameSource::next_frame`].
    pub fn open_with(path: &Path, opts: VideoOptions) -> Result<Self, CaptureError> {
        Ok(Self::open_inner(path, opts)?)
    }

    fn open_inner(path: &Path, opts: VideoOptions) -> Result<Self, VideoError> {
        let p = || path.to_path_buf();
        let valid = opts.fps > 0.0
            && opts.fps.is_finite()
            && opts.max_duration_s > 0.0
            && opts.max_duration_s.is_finite()
            && opts.fps * opts.max_duration_s <= MAX_FRAMES as f64
            && (16..=MAX_FRAME_SIDE).contains(&opts.max_side);
        if !valid {
            return Err(VideoError::BadOptions {
                fps: opts.fps,
                max_duration_s: opts.max_duration_s,
                max_side: opts.max_side,
            });
        }
        // Opening a missing file is an I/O problem, reported by the caller's `CaptureError::Io`
        // path; an empty one is a user mistake worth naming.
        if std::fs::metadata(path)
            .map(|m| m.len() == 0)
            .unwrap_or(false)
        {
            return Err(VideoError::Empty { path: p() });
        }
        init();
        let container = sniff_container(path);
        let input = ffmpeg::format::input(path).map_err(|e| match container {
            Some(container) => VideoError::Truncated {
                path: p(),
                container,
                source: Some(e),
            },
            None => VideoError::NotVideo {
                path: p(),
                source: Some(e),
            },
        })?;
        let stream = input
            .streams()
            .best(ffmpeg::media::Type::Video)
            .ok_or_else(|| VideoError::NotVideo {
                path: p(),
                source: None,
            })?;
        let stream_index = stream.index();
        let tb = stream.time_base();
        let time_base = if tb.denominator() != 0 {
            tb.numerator() as f64 / tb.denominator() as f64
        } else {
            0.0
        };
        let stream_s = (stream.duration() > 0 && time_base > 0.0)
            .then(|| stream.duration() as f64 * time_base);
        let container_s = (input.duration() > 0)
            .then(|| input.duration() as f64 / f64::from(ffmpeg::ffi::AV_TIME_BASE));
        let expected_s = stream_s.or(container_s);
        if let Some(s) = expected_s {
            if s > opts.max_duration_s + 0.5 {
                return Err(VideoError::TooLong {
                    path: p(),
                    seconds: s,
                    limit_s: opts.max_duration_s,
                });
            }
        }
        let rate = stream.avg_frame_rate();
        let nominal_interval = if rate.numerator() > 0 && rate.denominator() > 0 {
            rate.denominator() as f64 / rate.numerator() as f64
        } else {
            1.0 / opts.fps
        };
        let rotation = stream_rotation(&stream);
        let dec_err = |source| VideoError::Decoder { path: p(), source };
        let decoder = ffmpeg::codec::context::Context::from_parameters(stream.parameters())
            .map_err(dec_err)?
            .decoder()
            .video()
            .map_err(dec_err)?;
        let (w, h) = (decoder.width(), decoder.height());
        if w > MAX_FRAME_SIDE || h > MAX_FRAME_SIDE {
            return Err(VideoError::TooLarge {
                path: p(),
                width: w,
                height: h,
            });
        }
        Ok(Self {
            path: p(),
            opts,
            container,
            input,
            stream_index,
            time_base,
            expected_s,
            nominal_interval,
            decoder,
            scaler: None,
            out_size: (0, 0),
            rotation,
            decoded: ffmpeg::frame::Video::empty(),
            rgb: ffmpeg::frame::Video::empty(),
            first_ts: None,
            prev: None,
            last_interval: None,
            frames_decoded: 0,
            next_tick: 0,
            ready: VecDeque::new(),
            eof_sent: false,
            done: false,
        })
    }

    /// Clockwise rotation applied to every frame (from the file's metadata).
    pub fn rotation(&self) -> u32 {
        self.rotation
    }

    /// The options in force.
    pub fn options(&self) -> VideoOptions {
        self.opts
    }

    fn corrupt(&self, source: Option<ffmpeg::Error>) -> VideoError {
        match self.container {
            Some(container) => VideoError::Truncated {
                path: self.path.clone(),
                container,
                source,
            },
            None if self.frames_decoded == 0 => VideoError::NotVideo {
                path: self.path.clone(),
                source,
            },
            // An unrecognised container that did decode frames, then broke: truncated too.
            None => VideoError::Truncated {
                path: self.path.clone(),
                container: "a video file",
                source,
            },
        }
    }

    /// Converts `self.decoded` to an upright RGB frame no larger than `max_side`.
    fn convert(&mut self) -> Result<Frame, VideoError> {
        let (fmt, w, h) = (
            self.decoded.format(),
            self.decoded.width(),
            self.decoded.height(),
        );
        if w == 0 || h == 0 || w > MAX_FRAME_SIDE || h > MAX_FRAME_SIDE {
            return Err(VideoError::TooLarge {
                path: self.path.clone(),
                width: w,
                height: h,
            });
        }
        let stale = !matches!(&self.scaler, Some((_, f, sw, sh)) if (*f, *sw, *sh) == (fmt, w, h));
        if stale {
            // The output size is fixed by the first frame, so a mid-stream resolution change
            // still yields one frame size per clip.
            if self.out_size == (0, 0) {
                self.out_size = fit(w, h, self.opts.max_side);
            }
            let (ow, oh) = self.out_size;
            let ctx = scaling::Context::get(fmt, w, h, Pixel::RGB24, ow, oh, scaling::Flags::AREA)
                .map_err(|source| VideoError::Convert {
                    path: self.path.clone(),
                    format: fmt,
                    source,
                })?;
            self.scaler = Some((ctx, fmt, w, h));
            self.rgb = ffmpeg::frame::Video::new(Pixel::RGB24, ow, oh);
        }
        let Some((ctx, ..)) = self.scaler.as_mut() else {
            // Invariant: set just above when missing.
            return Err(VideoError::Convert {
                path: self.path.clone(),
                format: fmt,
                source: ffmpeg::Error::Bug,
            });
        };
        ctx.run(&self.decoded, &mut self.rgb)
            .map_err(|source| VideoError::Convert {
                path: self.path.clone(),
                format: fmt,
                source,
            })?;
        let (ow, oh) = self.out_size;
        let stride = self.rgb.stride(0);
        let data = self.rgb.data(0);
        let row = ow as usize * 3;
        let mut rgb = Vec::with_capacity(row * oh as usize);
        for y in 0..oh as usize {
            rgb.extend_from_slice(&data[y * stride..y * stride + row]);
        }
        let frame = Frame {
            width: ow,
            height: oh,
            rgb,
        };
        Ok(rotate_clockwise(frame, self.rotation))
    }

    /// Handles `self.decoded`: places it on the timeline and emits the output ticks it is the
    /// nearest frame to.
    fn take_decoded(&mut self) -> Result<(), VideoError> {
        let ts = self.decoded.timestamp().or(self.decoded.pts());
        let t = match (ts, self.first_ts) {
            (Some(ts), Some(first)) if self.time_base > 0.0 => (ts - first) as f64 * self.time_base,
            (Some(ts), None) => {
                self.first_ts = Some(ts);
                0.0
            }
            // No usable timestamp: one nominal interval after the previous frame.
            _ => self
                .prev
                .as_ref()
                .map(|(tp, _)| tp + self.nominal_interval)
                .unwrap_or(0.0),
        };
        if t > self.opts.max_duration_s + 0.5 {
            return Err(VideoError::TooLong {
                path: self.path.clone(),
                seconds: t,
                limit_s: self.opts.max_duration_s,
            });
        }
        self.frames_decoded += 1;
        let frame = self.convert()?;
        let tick = |k: u64| k as f64 / self.opts.fps;
        // Timestamps are exact multiples in the common case; the epsilon absorbs rounding.
        const EPS: f64 = 1e-6;
        match self.prev.take() {
            None => {
                while tick(self.next_tick) <= t + EPS {
                    self.ready.push_back(frame.clone());
                    self.next_tick += 1;
                }
            }
            Some((tp, pf)) => {
                if t > tp {
                    self.last_interval = Some(t - tp);
                }
                while tick(self.next_tick) <= t + EPS {
                    let tk = tick(self.next_tick);
                    let pick = if (tk - tp).abs() <= (t - tk).abs() + EPS {
                        &pf
                    } else {
                        &frame
                    };
                    self.ready.push_back(pick.clone());
                    self.next_tick += 1;
                }
            }
        }
        self.prev = Some((t, frame));
        Ok(())
    }

    /// At the end of the stream: the last frame covers the ticks within half a frame interval
    /// after it; then the truncation check.
    fn finish(&mut self) -> Result<(), VideoError> {
        self.done = true;
        let Some((tp, pf)) = self.prev.take() else {
            return Err(self.corrupt(None));
        };
        let interval = self.last_interval.unwrap_or(self.nominal_interval);
        while (self.next_tick as f64 / self.opts.fps) < tp + interval / 2.0 {
            self.ready.push_back(pf.clone());
            self.next_tick += 1;
        }
        let decoded_s = tp + interval;
        if let Some(expected_s) = self.expected_s {
            // Audio tracks and edit lists make headers disagree with the video by a frame or
            // two; a quarter second or a tenth of the clip, whichever is more, is truncation.
            if expected_s - decoded_s > (0.25f64).max(0.1 * expected_s) {
                return Err(VideoError::EndedEarly {
                    path: self.path.clone(),
                    decoded_s,
                    expected_s,
                });
            }
        }
        Ok(())
    }

    /// Drains decoded frames from the decoder.
    fn drain(&mut self) -> Result<(), VideoError> {
        loop {
            match self.decoder.receive_frame(&mut self.decoded) {
                Ok(()) => self.take_decoded()?,
                Err(ffmpeg::Error::Eof) => return self.finish(),
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                    return Ok(())
                }
                Err(e) => return Err(self.corrupt(Some(e))),
            }
        }
    }

    /// Feeds packets until at least one output frame is ready or the clip has ended.
    fn pump(&mut self) -> Result<(), VideoError> {
        while self.ready.is_empty() && !self.done {
            if self.eof_sent {
                self.drain()?;
                continue;
            }
            let mut packet = ffmpeg::Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) => {
                    if packet.stream() != self.stream_index {
                        continue;
                    }
                    self.decoder
                        .send_packet(&packet)
                        .map_err(|e| self.corrupt(Some(e)))?;
                    self.drain()?;
                }
                Err(ffmpeg::Error::Eof) => {
                    self.decoder.send_eof().map_err(|e| self.corrupt(Some(e)))?;
                    self.eof_sent = true;
                }
                Err(e) => return Err(self.corrupt(Some(e))),
            }
        }
        Ok(())
    }
}

impl FrameSource for VideoSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        self.pump()?;
        Ok(self.ready.pop_front())
    }

    fn describe(&self) -> String {
        format!("video:{}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_moves_pixels_clockwise() {
        // 2x1: [A B] -> 90° cw is 1x2 column [A; B].
        let f = Frame::new(2, 1, vec![1, 1, 1, 2, 2, 2]).unwrap();
        let r = rotate_clockwise(f.clone(), 90);
        assert_eq!((r.width, r.height), (1, 2));
        assert_eq!(r.rgb, vec![1, 1, 1, 2, 2, 2]);
        let r = rotate_clockwise(f.clone(), 270);
        assert_eq!(r.rgb, vec![2, 2, 2, 1, 1, 1]);
        let r = rotate_clockwise(f.clone(), 180);
        assert_eq!((r.width, r.height), (2, 1));
        assert_eq!(r.rgb, vec![2, 2, 2, 1, 1, 1]);
        // A full turn of quarter turns is the identity.
        let sq = Frame::new(2, 2, (0..12).collect()).unwrap();
        let back = (0..4).fold(sq.clone(), |a, _| rotate_clockwise(a, 90));
        assert_eq!(back, sq);
    }

    /// av_display_rotation_set(m, angle), the matrix FFmpeg writes for a clockwise `angle`.
    fn display_matrix(angle: f64) -> Vec<u8> {
        let r = -angle.to_radians();
        let (c, s) = (r.cos(), r.sin());
        let fx = |v: f64| (v * 65536.0).round() as i32;
        let m = [fx(c), fx(-s), 0, fx(s), fx(c), 0, 0, 0, 1 << 30];
        m.iter().flat_map(|v| v.to_ne_bytes()).collect()
    }

    #[test]
    fn display_matrix_angles_round_to_quarter_turns() {
        // av_display_rotation_set(m, a) describes a clockwise turn by `a`, and FFmpeg's
        // autorotate turns the picture clockwise by -av_display_rotation_get(m) = a.
        for (set, want) in [
            (0.0, 0),
            (90.0, 90),
            (-90.0, 270),
            (180.0, 180),
            (-88.0, 270),
        ] {
            let deg = display_matrix_rotation(&display_matrix(set)).unwrap();
            assert_eq!(quarter_turns(deg), want, "set {set}");
        }
        assert_eq!(display_matrix_rotation(&[0u8; 36]), None);
        assert_eq!(display_matrix_rotation(&[0u8; 8]), None);
    }

    #[test]
    fn fit_bounds_the_longer_side() {
        assert_eq!(fit(1920, 1080, 1280), (1280, 720));
        assert_eq!(fit(1080, 1920, 1280), (720, 1280));
        assert_eq!(fit(640, 480, 1280), (640, 480));
    }

    #[test]
    fn bad_options_are_refused_before_opening() {
        let opts = VideoOptions {
            fps: 120.0,
            max_duration_s: 60.0,
            ..Default::default()
        };
        let e = VideoSource::open_with(Path::new("/nonexistent.mp4"), opts).unwrap_err();
        assert!(
            matches!(e, CaptureError::Video(VideoError::BadOptions { .. })),
            "{e}"
        );
    }

    #[test]
    fn sniffing_names_containers() {
        let d = tempfile::tempdir().unwrap();
        let w = |name: &str, bytes: &[u8]| {
            let p = d.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        };
        assert!(sniff_container(&w("a.mp4", b"\0\0\0\x20ftypisom")).is_some());
        assert!(sniff_container(&w("a.webm", &[0x1A, 0x45, 0xDF, 0xA3, 1])).is_some());
        assert!(sniff_container(&w("a.avi", b"RIFF\0\0\0\0AVI LIST")).is_some());
        assert_eq!(sniff_container(&w("t.mp4", b"hello, not a video\n")), None);
    }
}
