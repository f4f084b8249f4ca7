//! The one camera, and the queue in front of it.
//!
//! [`Clip::open`] starts one clip: a V4L2 stream limited to `camera.clip_seconds`, or a
//! recorded-frames camera (`dir:PATH`) played at `camera.fps`. For `dir:PATH`, each attempt
//! re-resolves the clip, so a test or demo can switch clips between attempts:
//!
//! * if `PATH/current` is a file, its first line names the utterance folder to play (relative
//!   to `PATH`, or absolute) — rewrite it (atomically, by rename) to change clip;
//! * otherwise `PATH` itself is the utterance folder (it may be a symlink that is re-pointed).
//!
//! The clip is dropped, and so the device released, at the end of every attempt: a V4L2
//! camera is opened afresh for each clip, so suspend/resume and unplug/replug need nothing.
//! A camera that is missing or busy fails [`Clip::open`] at once; [`unavailable_reason`] turns
//! that into the answer (`camera_busy` for `EBUSY`, `no_camera` otherwise).
//!
//! Each frame's light is checked ([`light_of`]): dark frames (mean luma under
//! `dark_frame_threshold`) and blank ones (uniform) are counted and reported by
//! [`Clip::light_report`] for the log. A dark frame right after a lit one is dropped: IR
//! cameras whose emitter blinks deliver every other frame dark, and those frames carry nothing.
//!
//! [`Gate`] serialises attempts: one holder at a time, others wait up to a bound and then get
//! `camera_busy`.

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use authnet_core::capture::{CaptureError, Frame, FrameSource};
use authnet_core::vision::CropMode;
use authnet_ipc::UnavailableReason;

use crate::config::{CameraConfig, CameraSource};

/// Name of the clip-selection file inside a `dir:` camera folder.
pub const CURRENT_FILE: &str = "current";

/// Resolves which utterance folder a `dir:` camera plays now.
pub fn resolve_dir_clip(root: &Path) -> Result<PathBuf, CaptureError> {
    let sel = root.join(CURRENT_FILE);
    if !sel.is_file() {
        return Ok(root.to_path_buf());
    }
    let text = std::fs::read_to_string(&sel).map_err(|source| CaptureError::Io {
        path: sel.clone(),
        source,
    })?;
    let name = text.lines().next().unwrap_or("").trim();
    if name.is_empty() {
        return Err(CaptureError::Empty(sel));
    }
    Ok(root.join(name))
}

/// The answer for a camera that could not be opened or failed mid-clip: `camera_busy` when
/// another program holds it (`EBUSY`), `no_camera` for everything else (missing, unplugged,
/// not a device, no permission, stalled).
pub fn unavailable_reason(e: &CaptureError) -> UnavailableReason {
    match authnet_core::capture::v4l2::classify(e) {
        authnet_core::capture::v4l2::CameraFault::Busy => UnavailableReason::CameraBusy,
        _ => UnavailableReason::NoCamera,
    }
}

/// Largest luma range (max - min over sampled pixels) of a frame counted as blank: a driver
/// that delivers a uniform grey, green or white buffer.
pub const BLANK_SPREAD: u8 = 4;

/// How a frame is lit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Light {
    /// Usable.
    Lit,
    /// Mean luma under the dark threshold.
    Dark,
    /// Not dark, but uniform (luma range at most [`BLANK_SPREAD`]).
    Blank,
}

/// Classifies a frame's light; the luma range is taken over every 7th pixel (enough for a
/// uniform buffer, and cheap).
pub fn light_of(f: &Frame, dark_below: f32) -> Light {
    if f.mean_luma() < dark_below {
        return Light::Dark;
    }
    let (mut lo, mut hi) = (u8::MAX, u8::MIN);
    for p in f.rgb.chunks_exact(3).step_by(7) {
        let y = ((77 * u32::from(p[0]) + 150 * u32::from(p[1]) + 29 * u32::from(p[2])) >> 8) as u8;
        lo = lo.min(y);
        hi = hi.max(y);
    }
    if hi.saturating_sub(lo) <= BLANK_SPREAD {
        Light::Blank
    } else {
        Light::Lit
    }
}

/// Counts of the frames a clip captured, by light.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LightCounts {
    /// Frames read from the source.
    pub captured: usize,
    /// Of those, dark.
    pub dark: usize,
    /// Of those, blank.
    pub blank: usize,
    /// Dark frames dropped as IR emitter blinks (included in `dark`).
    pub blinks: usize,
}

/// One clip being captured: frames at most every `1/fps`, at most `max_frames` of them.
pub struct Clip {
    src: Box<dyn FrameSource>,
    interval: Duration,
    started: Instant,
    delivered: usize,
    max_frames: usize,
    /// Recorded frames are paced to the configured rate; a live camera paces itself.
    paced: bool,
    dark_below: f32,
    light: LightCounts,
    last_light: Option<Light>,
    /// Frames kept for a snapshot of a failed attempt (only when asked, by `keep_samples`).
    samples: Vec<Frame>,
    keep: usize,
    /// Delivered frames between two samples; doubles whenever `samples` fills up.
    stride: usize,
}

impl std::fmt::Debug for Clip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Clip({}, {} delivered)",
            self.src.describe(),
            self.delivered
        )
    }
}

impl Clip {
    /// Opens the camera for one clip.
    pub fn open(cfg: &CameraConfig, crop: CropMode) -> Result<Self, CaptureError> {
        let interval = Duration::from_secs_f64(1.0 / f64::from(cfg.fps));
        let max_frames = ((cfg.clip.as_secs_f64() * f64::from(cfg.fps)).ceil() as usize)
            .clamp(1, authnet_core::capture::MAX_FRAMES);
        let (src, paced, max_frames): (Box<dyn FrameSource>, bool, usize) = match &cfg.source {
            CameraSource::Dir(root) => {
                let clip = resolve_dir_clip(root)?;
                // A frame folder or a video file; a recording is played whole: its length is
                // the utterance's.
                let s = authnet_core::capture::open_utterance(&clip, crop != CropMode::Detect)?;
                (s, true, authnet_core::capture::MAX_FRAMES)
            }
            CameraSource::V4l2(dev) => (open_v4l2(cfg, dev)?, false, max_frames),
        };
        Ok(Self::with_source(
            src,
            interval,
            max_frames,
            paced,
            cfg.dark_threshold,
        ))
    }

    fn with_source(
        src: Box<dyn FrameSource>,
        interval: Duration,
        max_frames: usize,
        paced: bool,
        dark_below: f32,
    ) -> Self {
        Self {
            src,
            interval,
            started: Instant::now(),
            delivered: 0,
            max_frames,
            paced,
            dark_below,
            light: LightCounts::default(),
            last_light: None,
            samples: Vec::new(),
            keep: 0,
            stride: 1,
        }
    }

    /// Keeps `n` of the delivered frames, spread over the clip, for [`Self::take_samples`]
    /// (the clip's length is not known in advance: at most `2n` are held, thinned by half, and
    /// the sampling stride doubled, whenever that fills).
    pub fn keep_samples(&mut self, n: usize) {
        self.keep = n;
    }

    fn sample(&mut self, f: &Frame) {
        if self.keep == 0 || self.delivered % self.stride != 0 {
            return;
        }
        self.samples.push(f.clone());
        if self.samples.len() > 2 * self.keep {
            let mut i = 0;
            self.samples.retain(|_| {
                i += 1;
                i % 2 == 1
            });
            self.stride *= 2;
        }
    }

    /// Up to `n` frames kept by [`Self::keep_samples`], evenly spaced, first frame first.
    pub fn take_samples(&mut self) -> Vec<Frame> {
        let all = std::mem::take(&mut self.samples);
        let (n, k) = (all.len(), self.keep);
        if n <= k {
            return all;
        }
        let picks: Vec<usize> = (0..k).map(|j| j * (n - 1) / (k - 1).max(1)).collect();
        all.into_iter()
            .enumerate()
            .filter(|(i, _)| picks.contains(i))
            .map(|(_, f)| f)
            .collect()
    }

    /// The light counts so far.
    #[cfg(test)]
    pub fn light(&self) -> LightCounts {
        self.light
    }

    /// A line for the log when any frame was dark or blank, e.g.
    /// `12/20 frames dark (mean luma < 25), 10 dropped as IR emitter blinks`.
    pub fn light_report(&self) -> Option<String> {
        let l = self.light;
        if l.dark == 0 && l.blank == 0 {
            return None;
        }
        let mut parts = Vec::new();
        if l.dark > 0 {
            parts.push(format!(
                "{}/{} frames dark (mean luma < {})",
                l.dark, l.captured, self.dark_below
            ));
        }
        if l.blinks > 0 {
            parts.push(format!("{} dropped as IR emitter blinks", l.blinks));
        }
        if l.blank > 0 {
            parts.push(format!("{}/{} frames blank (uniform)", l.blank, l.captured));
        }
        Some(parts.join(", "))
    }

    /// The next frame, or `None` at the end of the clip. Waits for the frame's time slot, but
    /// never past `deadline` (then `Ok(None)`, the clip counting as timed out).
    pub fn next_frame(&mut self, deadline: Instant) -> Result<Option<Frame>, CaptureError> {
        if self.light.captured >= self.max_frames || Instant::now() >= deadline {
            return Ok(None);
        }
        if self.paced {
            let due = self.started + self.interval * self.delivered as u32;
            let now = Instant::now();
            if due > now {
                if due >= deadline {
                    std::thread::sleep(deadline.saturating_duration_since(now));
                    return Ok(None);
                }
                std::thread::sleep(due - now);
            }
        }
        loop {
            let Some(f) = self.src.next_frame()? else {
                return Ok(None);
            };
            self.light.captured += 1;
            let light = light_of(&f, self.dark_below);
            match light {
                Light::Dark => self.light.dark += 1,
                Light::Blank => self.light.blank += 1,
                Light::Lit => {}
            }
            let previous = self.last_light.replace(light);
            // An IR emitter blink: skip it, unless the clip is used up or out of time.
            if light == Light::Dark
                && previous == Some(Light::Lit)
                && self.light.captured < self.max_frames
                && Instant::now() < deadline
            {
                self.light.blinks += 1;
                continue;
            }
            self.sample(&f);
            self.delivered += 1;
            return Ok(Some(f));
        }
    }

    /// Frames delivered so far.
    pub fn delivered(&self) -> usize {
        self.delivered
    }
}

fn open_v4l2(cfg: &CameraConfig, dev: &Path) -> Result<Box<dyn FrameSource>, CaptureError> {
    let c = authnet_core::capture::v4l2::V4l2Config {
        device: dev.display().to_string(),
        width: cfg.width,
        height: cfg.height,
        fps: cfg.fps,
    };
    Ok(Box::new(authnet_core::capture::v4l2::V4l2Source::open(&c)?))
}

/// Serialises access to the camera with a bounded wait. Logins ([`Gate::acquire`]) go before
/// enrolment ([`Gate::acquire_low`]): a low-priority waiter only gets the camera when no login
/// waits for it.
#[derive(Debug, Default)]
pub struct Gate {
    state: Mutex<GateState>,
    freed: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    busy: bool,
    /// Logins waiting for the camera.
    high_waiting: usize,
}

/// Held while an attempt owns the camera; releases it on drop.
#[derive(Debug)]
pub struct GateGuard<'a> {
    gate: &'a Gate,
}

impl Gate {
    /// Waits up to `wait` for the camera, ahead of every [`Gate::acquire_low`] waiter.
    pub fn acquire(&self, wait: Duration) -> Option<GateGuard<'_>> {
        self.take(wait, true)
    }

    /// Waits up to `wait` for the camera, behind every [`Gate::acquire`] waiter.
    pub fn acquire_low(&self, wait: Duration) -> Option<GateGuard<'_>> {
        self.take(wait, false)
    }

    fn take(&self, wait: Duration, high: bool) -> Option<GateGuard<'_>> {
        let until = Instant::now() + wait;
        // A poisoned lock means a holder panicked; the state itself is still meaningful.
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if high {
            st.high_waiting += 1;
        }
        loop {
            if !st.busy && (high || st.high_waiting == 0) {
                break;
            }
            let left = until
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero());
            let Some(left) = left else {
                if high {
                    st.high_waiting -= 1;
                    // A low waiter may have been held back by this one.
                    self.freed.notify_all();
                }
                return None;
            };
            let (s, _) = self
                .freed
                .wait_timeout(st, left)
                .unwrap_or_else(|p| p.into_inner());
            st = s;
        }
        if high {
            st.high_waiting -= 1;
        }
        st.busy = true;
        Some(GateGuard { gate: self })
    }
}

impl Drop for GateGuard<'_> {
    fn drop(&mut self) {
        let mut st = self.gate.state.lock().unwrap_or_else(|p| p.into_inner());
        st.busy = false;
        // Every waiter re-checks its priority, so wake them all.
        self.gate.freed.notify_all();
    }
}

/// True when any ACPI lid under `dir` (normally `/proc/acpi/button/lid`) reports `closed`.
/// Machines without a lid, or without ACPI, count as open.
pub fn lid_closed(dir: &Path) -> bool {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return false;
    };
    rd.flatten().any(|e| {
        std::fs::read_to_string(e.path().join("state"))
            .map(|s| s.split_whitespace().last() == Some("closed"))
            .unwrap_or(false)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    /// Frames of the given mean luma (a gradient around it, so lit frames are not blank);
    /// `None` as luma gives a uniform mid-grey (blank) frame.
    struct Lumas(std::vec::IntoIter<Option<u8>>);

    impl FrameSource for Lumas {
        fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
            let Some(l) = self.0.next() else {
                return Ok(None);
            };
            let px: Vec<u8> = match l {
                Some(y) => (0..64u8)
                    .flat_map(|i| {
                        let v = y.saturating_add(i % 8).saturating_sub(4);
                        [v, v, v]
                    })
                    .collect(),
                None => vec![128; 64 * 3],
            };
            Ok(Some(Frame::new(8, 8, px).unwrap()))
        }
        fn describe(&self) -> String {
            "lumas".into()
        }
    }

    fn clip(lumas: Vec<Option<u8>>) -> Clip {
        Clip::with_source(
            Box::new(Lumas(lumas.into_iter())),
            Duration::ZERO,
            100,
            false,
            25.0,
        )
    }

    fn drain(c: &mut Clip) -> Vec<u8> {
        let far = Instant::now() + Duration::from_secs(60);
        let mut out = Vec::new();
        while let Some(f) = c.next_frame(far).unwrap() {
            out.push(f.mean_luma().round() as u8);
        }
        out
    }

    #[test]
    fn light_classes() {
        let dark = Frame::new(2, 1, vec![10; 6]).unwrap();
        assert_eq!(light_of(&dark, 25.0), Light::Dark);
        let blank = Frame::new(2, 1, vec![200; 6]).unwrap();
        assert_eq!(light_of(&blank, 25.0), Light::Blank);
        // Pixels alternate 60 / 200; the range is sampled every 7th pixel (0 and 7 here).
        let lit = Frame::new(8, 1, [[60u8; 3], [200u8; 3]].concat().repeat(4)).unwrap();
        assert_eq!(light_of(&lit, 25.0), Light::Lit);
    }

    #[test]
    fn blinking_emitter_frames_are_dropped_and_reported() {
        // Lit, dark, lit, dark, ...: every dark frame follows a lit one.
        let seq: Vec<Option<u8>> = (0..20)
            .map(|i| Some(if i % 2 == 0 { 120 } else { 5 }))
            .collect();
        let mut c = clip(seq);
        let got = drain(&mut c);
        assert_eq!(got.len(), 10);
        assert!(got.iter().all(|&l| l > 100), "{got:?}");
        let l = c.light();
        assert_eq!((l.captured, l.dark, l.blinks, l.blank), (20, 10, 10, 0));
        assert_eq!(
            c.light_report().unwrap(),
            "10/20 frames dark (mean luma < 25), 10 dropped as IR emitter blinks"
        );
    }

    #[test]
    fn a_dark_clip_is_delivered_so_it_counts_as_too_dark() {
        let mut c = clip(vec![Some(5); 12]);
        assert_eq!(drain(&mut c).len(), 12);
        assert_eq!(c.light().blinks, 0);
        assert_eq!(
            c.light_report().unwrap(),
            "12/12 frames dark (mean luma < 25)"
        );
        // After a lit frame only the first dark one is taken for a blink.
        let mut c = clip(vec![Some(120), Some(5), Some(5), Some(5)]);
        assert_eq!(drain(&mut c).len(), 3);
        assert_eq!(c.light().blinks, 1);
    }

    #[test]
    fn blank_frames_are_named_and_bright_clips_say_nothing() {
        let mut c = clip(vec![None, None, Some(120)]);
        assert_eq!(drain(&mut c).len(), 3);
        assert_eq!(c.light_report().unwrap(), "2/3 frames blank (uniform)");
        let mut c = clip(vec![Some(120); 5]);
        drain(&mut c);
        assert_eq!(c.light_report(), None);
    }

    #[test]
    fn samples_are_kept_only_when_asked() {
        let mut c = clip(vec![Some(120); 35]);
        drain(&mut c);
        assert!(c.take_samples().is_empty());
        for len in [2, 3, 10, 35, 200] {
            // Luma rises through the clip, to tell the frames apart.
            let seq: Vec<Option<u8>> = (0..len)
                .map(|i| Some((100 + i * 150 / len) as u8))
                .collect();
            let mut c = clip(seq);
            c.keep_samples(3);
            drain(&mut c);
            let s = c.take_samples();
            assert_eq!(s.len(), len.min(3), "clip of {len}");
            let lumas: Vec<f32> = s.iter().map(Frame::mean_luma).collect();
            assert!(lumas.windows(2).all(|w| w[0] < w[1]), "{lumas:?}");
            if len >= 10 {
                // Spread over the clip: the last sample is past its first third.
                assert!(lumas[2] > 150.0, "{len}: {lumas:?}");
            }
        }
    }

    #[test]
    fn camera_errors_map_to_answers_at_once() {
        let busy = CaptureError::Camera {
            device: "/dev/video0".into(),
            source: std::io::Error::from_raw_os_error(16),
        };
        assert_eq!(unavailable_reason(&busy), UnavailableReason::CameraBusy);
        let gone = CaptureError::Camera {
            device: "/dev/video0".into(),
            source: std::io::Error::from_raw_os_error(2),
        };
        assert_eq!(unavailable_reason(&gone), UnavailableReason::NoCamera);
        // A missing device fails open() at once, well inside any timeout.
        let cfg = CameraConfig {
            source: CameraSource::V4l2("/dev/v4l/by-id/authnet-no-such-camera".into()),
            width: 640,
            height: 480,
            fps: 30,
            clip: Duration::from_secs(2),
            dark_threshold: 25.0,
        };
        let t = Instant::now();
        let e = Clip::open(&cfg, CropMode::Detect).unwrap_err();
        assert!(t.elapsed() < Duration::from_millis(500));
        assert_eq!(unavailable_reason(&e), UnavailableReason::NoCamera);
        assert!(e.to_string().contains("authnet-no-such-camera"), "{e}");
    }

    #[test]
    fn current_file_selects_the_clip() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(resolve_dir_clip(d.path()).unwrap(), d.path());
        std::fs::write(d.path().join(CURRENT_FILE), "b\n").unwrap();
        assert_eq!(resolve_dir_clip(d.path()).unwrap(), d.path().join("b"));
        std::fs::write(d.path().join(CURRENT_FILE), "/abs/clip").unwrap();
        assert_eq!(resolve_dir_clip(d.path()).unwrap(), Path::new("/abs/clip"));
    }

    #[test]
    fn gate_waits_then_gives_up() {
        let g = Gate::default();
        let held = g.acquire(Duration::ZERO).unwrap();
        let t = Instant::now();
        assert!(g.acquire(Duration::from_millis(50)).is_none());
        assert!(t.elapsed() >= Duration::from_millis(50));
        drop(held);
        assert!(g.acquire(Duration::ZERO).is_some());
    }

    #[test]
    fn logins_go_before_enrolment() {
        let g = std::sync::Arc::new(Gate::default());
        let held = g.acquire(Duration::ZERO).unwrap();
        let order = std::sync::Arc::new(Mutex::new(Vec::new()));
        let low = {
            let (g, order) = (g.clone(), order.clone());
            std::thread::spawn(move || {
                let _c = g.acquire_low(Duration::from_secs(5)).unwrap();
                order.lock().unwrap().push("enrol");
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        let high = {
            let (g, order) = (g.clone(), order.clone());
            std::thread::spawn(move || {
                let _c = g.acquire(Duration::from_secs(5)).unwrap();
                order.lock().unwrap().push("login");
                std::thread::sleep(Duration::from_millis(20));
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        drop(held);
        high.join().unwrap();
        low.join().unwrap();
        assert_eq!(*order.lock().unwrap(), ["login", "enrol"]);
        // A login that gives up does not keep enrolment out.
        let held = g.acquire(Duration::ZERO).unwrap();
        assert!(g.acquire(Duration::from_millis(10)).is_none());
        drop(held);
        assert!(g.acquire_low(Duration::ZERO).is_some());
    }

    #[test]
    fn lid_states() {
        let d = tempfile::tempdir().unwrap();
        assert!(!lid_closed(&d.path().join("absent")));
        std::fs::create_dir(d.path().join("LID0")).unwrap();
        std::fs::write(d.path().join("LID0/state"), "state:      open\n").unwrap();
        assert!(!lid_closed(d.path()));
        std::fs::write(d.path().join("LID0/state"), "state:      closed\n").unwrap();
        assert!(lid_closed(d.path()));
    }
}
