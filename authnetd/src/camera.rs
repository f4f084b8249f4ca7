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
//! The clip is dropped, and so the device released, at the end of every attempt.
//!
//! [`Gate`] serialises attempts: one holder at a time, others wait up to a bound and then get
//! `camera_busy`.

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use authnet_core::capture::{CaptureError, Frame, FrameSource};
use authnet_core::vision::CropMode;

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

/// One clip being captured: frames at most every `1/fps`, at most `max_frames` of them.
pub struct Clip {
    src: Box<dyn FrameSource>,
    interval: Duration,
    started: Instant,
    delivered: usize,
    max_frames: usize,
    /// Recorded frames are paced to the configured rate; a live camera paces itself.
    paced: bool,
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
        Ok(Self {
            src,
            interval,
            started: Instant::now(),
            delivered: 0,
            max_frames,
            paced,
        })
    }

    /// The next frame, or `None` at the end of the clip. Waits for the frame's time slot, but
    /// never past `deadline` (then `Ok(None)`, the clip counting as timed out).
    pub fn next_frame(&mut self, deadline: Instant) -> Result<Option<Frame>, CaptureError> {
        if self.delivered >= self.max_frames || Instant::now() >= deadline {
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
        let f = self.src.next_frame()?;
        if f.is_some() {
            self.delivered += 1;
        }
        Ok(f)
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
