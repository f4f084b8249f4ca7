//! `/etc/authnet/authnetd.toml`: parsed into [`RawConfig`] (every key optional, unknown keys
//! refused by serde), then checked into [`Config`], where every value is in range and every
//! default is filled in. Errors name the offending key, so a typo fails the start with a message
//! that says what to fix.

use std::path::{Path, PathBuf};
use std::time::Duration;

use authnet_core::features::FeatureLayout;
use authnet_core::model::password::WordModelKind;
use authnet_core::vision::CropMode;
use serde::Deserialize;

/// Where the daemon reads its configuration unless `--config` says otherwise.
pub const DEFAULT_CONFIG: &str = "/etc/authnet/authnetd.toml";
/// Default socket path.
pub const DEFAULT_SOCKET: &str = "/run/authnet/authnetd.sock";
/// Default state directory (one subdirectory per user).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/authnet";
/// Default PAM service for the enrolment password check (`etc/pam.d/authnet-enroll`).
pub const DEFAULT_ENROLL_PAM_SERVICE: &str = "authnet-enroll";

/// Default directory of logind's session files.
pub const DEFAULT_SESSIONS_DIR: &str = "/run/systemd/sessions";

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key or a value of the wrong type (toml's message names the key).
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause, with line, column and key.
        #[source]
        source: toml::de::Error,
    },
    /// A value of the right type but out of range.
    #[error("key `{key}`: {why}")]
    Invalid {
        /// Dotted key name, e.g. `camera.fps`.
        key: &'static str,
        /// What is wrong with it.
        why: String,
    },
}

fn invalid(key: &'static str, why: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        why: why.into(),
    }
}

/// The file as written: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    socket: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    onnxruntime_lib: Option<PathBuf>,
    models_dir: Option<PathBuf>,
    backbone: Option<String>,
    crop: Option<String>,
    feature_layout: Option<String>,
    ort_threads: Option<u32>,
    impostor_bank: Option<PathBuf>,
    pretrained_model: Option<PathBuf>,
    word_model: Option<String>,
    auth_timeout: Option<f64>,
    camera_wait: Option<f64>,
    max_tries: Option<u32>,
    threshold_policy: Option<String>,
    target_fmr: Option<f64>,
    abort_if_ssh: Option<bool>,
    abort_if_lid_closed: Option<bool>,
    dark_frame_threshold: Option<f64>,
    min_face_fraction: Option<f64>,
    max_connections: Option<u32>,
    io_timeout: Option<f64>,
    enroll_pam_service: Option<String>,
    sessions_dir: Option<PathBuf>,
    camera_seat: Option<String>,
    without_logind: Option<String>,
    max_connections_per_uid: Option<u32>,
    root_connections: Option<u32>,
    enroll_camera_limit: Option<f64>,
    enroll_other_word_rounds: Option<u32>,
    snapshots: Option<bool>,
    snapshot_keep: Option<u32>,
    camera: Option<RawCamera>,
    throttle: Option<RawThrottle>,
}

/// `[camera]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCamera {
    source: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    fps: Option<u32>,
    clip_seconds: Option<f64>,
}

/// `[throttle]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThrottle {
    failures_before_delay: Option<u32>,
    base_delay: Option<u64>,
    lockout_after: Option<u32>,
}

/// Where frames come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraSource {
    /// A V4L2 device node.
    V4l2(PathBuf),
    /// A recorded-frames camera: an utterance folder, or a folder whose file `current` names
    /// the utterance folder to play (see [`crate::camera`]).
    Dir(PathBuf),
}

impl CameraSource {
    /// The kind of frames it gives, which chooses how an utterance is cut
    /// ([`authnet_core::attempt::TrimPolicy::for_source`]): a device records from before the
    /// user starts until the clip ends, a recorded-frames folder is already the utterance.
    pub fn kind(&self) -> authnet_core::attempt::SourceKind {
        match self {
            Self::V4l2(_) => authnet_core::attempt::SourceKind::Camera,
            Self::Dir(_) => authnet_core::attempt::SourceKind::Recording,
        }
    }
}

impl std::fmt::Display for CameraSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::V4l2(p) => write!(f, "v4l2:{}", p.display()),
            Self::Dir(p) => write!(f, "dir:{}", p.display()),
        }
    }
}

/// Which of the model's stored thresholds decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// The threshold meeting the target false-match rate (the secure default).
    Fmr,
    /// The equal-error-rate threshold.
    Eer,
}

impl Policy {
    /// The name used in the config file and on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fmr => "fmr",
            Self::Eer => "eer",
        }
    }
}

/// Camera settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraConfig {
    /// Where frames come from.
    pub source: CameraSource,
    /// Requested width.
    pub width: u32,
    /// Requested height.
    pub height: u32,
    /// Frames per second (the V4L2 request, and the pace at which a `dir:` camera plays).
    pub fps: u32,
    /// Longest clip one attempt records from a live camera.
    pub clip: Duration,
    /// Mean luma under which a frame counts as dark (the top-level `dark_frame_threshold`).
    pub dark_threshold: f32,
}

/// Failed-attempt throttling (NIST SP 800-63B 5.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Consecutive failures allowed before a delay applies.
    pub failures_before_delay: u32,
    /// Delay after the first failure past `failures_before_delay`, doubling with each further one.
    pub base_delay: Duration,
    /// Consecutive failures after which the face path stays off until an admin resets it.
    pub lockout_after: u32,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Socket path (ignored under socket activation).
    pub socket: PathBuf,
    /// State directory.
    pub state_dir: PathBuf,
    /// ONNX Runtime library.
    pub onnxruntime_lib: PathBuf,
    /// Models directory.
    pub models_dir: PathBuf,
    /// Backbone manifest name.
    pub backbone: String,
    /// Crop mode.
    pub crop: CropMode,
    /// Per-frame features: detector box or tracked face mesh. Enrolled models and the
    /// impostor bank carry the layout they were made with and must match it.
    pub feature_layout: FeatureLayout,
    /// ONNX Runtime intra-op threads.
    pub ort_threads: usize,
    /// Impostor bank for enrolment.
    pub impostor_bank: Option<PathBuf>,
    /// Pretrained word-model backbone that enrolment fine-tunes from.
    pub pretrained_model: Option<PathBuf>,
    /// The word classifier enrolment trains. `linear` (the default) does not read
    /// `pretrained_model`; `encoded` needs it; `lstm` and `ensemble` fine-tune from it when it
    /// is set and train from scratch when it is not.
    pub word_model: WordModelKind,
    /// Budget of one attempt's capture and scoring.
    pub auth_timeout: Duration,
    /// Longest wait for the camera before answering `camera_busy`.
    pub camera_wait: Duration,
    /// Clips captured per authenticate before answering reject / no_face.
    pub max_tries: u32,
    /// Which stored threshold decides.
    pub threshold_policy: Policy,
    /// FMR target used when enrolling.
    pub target_fmr: f64,
    /// Refuse remote sessions.
    pub abort_if_ssh: bool,
    /// Refuse when the lid is closed.
    pub abort_if_lid_closed: bool,
    /// Mean luma under which a frame counts as too dark.
    pub dark_frame_threshold: f32,
    /// Share of frames that must hold a face for a clip to be scored.
    pub min_face_fraction: f64,
    /// Connections served at once; more are refused with `busy`.
    pub max_connections: usize,
    /// Budget for reading one request or writing one response.
    pub io_timeout: Duration,
    /// PAM service that checks a non-root user's account password before they enrol or remove
    /// their own model (a file name under `/etc/pam.d`).
    pub enroll_pam_service: String,
    /// logind's per-session files (`/run/systemd/sessions`), see [`crate::seat`].
    pub sessions_dir: PathBuf,
    /// The seat the camera belongs to.
    pub camera_seat: String,
    /// What to do when there is no session information at all.
    pub without_logind: crate::seat::WithoutLogind,
    /// Connections one non-root uid may hold at once.
    pub max_connections_per_uid: usize,
    /// Of `max_connections`, the slots only root peers may take.
    pub root_connections: usize,
    /// Longest time one live enrolment may hold the camera, summed over its clips.
    pub enroll_camera_limit: Duration,
    /// How many rounds of the other words a live enrolment records
    /// (`enroll::live::OTHER_WORDS`, each round once each).
    pub enroll_other_word_rounds: usize,
    /// Save frames of failed attempts under `<state_dir>/snapshots` (off by default).
    pub snapshots: bool,
    /// Most snapshot files kept; the oldest are removed beyond it.
    pub snapshot_keep: usize,
    /// Camera.
    pub camera: CameraConfig,
    /// Throttling.
    pub throttle: ThrottleConfig,
}

impl Config {
    /// The pretrained backbone enrolment reads: `pretrained_model` unless the word model is
    /// `linear`, which does not use one.
    pub fn pretrained_in_use(&self) -> Option<&Path> {
        self.pretrained_model
            .as_deref()
            .filter(|_| self.word_model.reads_pretrained())
    }
}

fn seconds(key: &'static str, v: f64, min: f64, max: f64) -> Result<Duration, ConfigError> {
    if !v.is_finite() || v < min || v > max {
        return Err(invalid(
            key,
            format!("{v} is out of range (expected {min}..={max} seconds)"),
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

fn range_u32(key: &'static str, v: u32, min: u32, max: u32) -> Result<u32, ConfigError> {
    if v < min || v > max {
        return Err(invalid(
            key,
            format!("{v} is out of range (expected {min}..={max})"),
        ));
    }
    Ok(v)
}

fn absolute(key: &'static str, p: PathBuf) -> Result<PathBuf, ConfigError> {
    if !p.is_absolute() {
        return Err(invalid(
            key,
            format!("{} is not an absolute path", p.display()),
        ));
    }
    Ok(p)
}

/// Parses `camera.source`: `v4l2:/dev/videoN` or `dir:/path`.
pub fn parse_source(s: &str) -> Result<CameraSource, ConfigError> {
    let key = "camera.source";
    match s.split_once(':') {
        Some(("v4l2", p)) => Ok(CameraSource::V4l2(absolute(key, p.into())?)),
        Some(("dir", p)) => Ok(CameraSource::Dir(absolute(key, p.into())?)),
        _ => Err(invalid(
            key,
            format!("{s:?} is neither v4l2:/dev/videoN nor dir:/path"),
        )),
    }
}

impl RawConfig {
    /// Parses TOML text (`path` only names the file in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.into(),
            source,
        })
    }

    /// Checks every value and fills in defaults. `ort_env` is `$AUTHNET_ORT_LIB`, used only
    /// when the file has no `onnxruntime_lib`.
    pub fn validate(self, ort_env: Option<PathBuf>) -> Result<Config, ConfigError> {
        let crop = match self.crop.as_deref() {
            None | Some("detect") => CropMode::Detect,
            Some("none") => CropMode::None,
            Some(o) => {
                return Err(invalid(
                    "crop",
                    format!("{o:?} is not a crop mode (expected detect or none)"),
                ))
            }
        };
        let feature_layout = match self.feature_layout.as_deref() {
            None => FeatureLayout::default(),
            Some(s) => s
                .parse()
                .map_err(|why: String| invalid("feature_layout", why))?,
        };
        let word_model = match self.word_model.as_deref() {
            None => WordModelKind::default(),
            Some(s) => s
                .parse()
                .map_err(|why: String| invalid("word_model", why))?,
        };
        if word_model == WordModelKind::Encoded && self.pretrained_model.is_none() {
            return Err(invalid(
                "word_model",
                "\"encoded\" reads the LSTM backbone of pretrained_model, which is not set \
                 (set pretrained_model, or use word_model = \"linear\")",
            ));
        }
        let threshold_policy = match self.threshold_policy.as_deref() {
            None | Some("fmr") => Policy::Fmr,
            Some("eer") => Policy::Eer,
            Some(o) => {
                return Err(invalid(
                    "threshold_policy",
                    format!("{o:?} is not a policy (expected fmr or eer)"),
                ))
            }
        };
        let target_fmr = self.target_fmr.unwrap_or(0.001);
        if !(target_fmr > 0.0 && target_fmr < 1.0) {
            return Err(invalid(
                "target_fmr",
                format!("{target_fmr} is not in (0, 1)"),
            ));
        }
        let dark = self.dark_frame_threshold.unwrap_or(25.0);
        if !(0.0..=255.0).contains(&dark) {
            return Err(invalid(
                "dark_frame_threshold",
                format!("{dark} is not a mean luma in 0..=255"),
            ));
        }
        let min_face_fraction = self.min_face_fraction.unwrap_or(0.5);
        if !(min_face_fraction > 0.0 && min_face_fraction <= 1.0) {
            return Err(invalid(
                "min_face_fraction",
                format!("{min_face_fraction} is not in (0, 1]"),
            ));
        }
        let backbone = self.backbone.unwrap_or_else(|| "mobilefacenet".into());
        if backbone.is_empty()
            || !backbone
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(invalid(
                "backbone",
                format!("{backbone:?} is not a manifest name"),
            ));
        }
        let enroll_pam_service = self
            .enroll_pam_service
            .unwrap_or_else(|| DEFAULT_ENROLL_PAM_SERVICE.into());
        if enroll_pam_service.is_empty()
            || enroll_pam_service.len() > 64
            || enroll_pam_service.starts_with('.')
            || !enroll_pam_service
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(invalid(
                "enroll_pam_service",
                format!("{enroll_pam_service:?} is not a PAM service name"),
            ));
        }
        let camera_seat = self.camera_seat.unwrap_or_else(|| "seat0".into());
        if camera_seat.is_empty()
            || camera_seat.len() > 64
            || !camera_seat
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        {
            return Err(invalid(
                "camera_seat",
                format!("{camera_seat:?} is not a seat name"),
            ));
        }
        let without_logind = match self.without_logind.as_deref() {
            None | Some("allow") => crate::seat::WithoutLogind::Allow,
            Some("refuse") => crate::seat::WithoutLogind::Refuse,
            Some(o) => {
                return Err(invalid(
                    "without_logind",
                    format!("{o:?} is neither allow nor refuse"),
                ))
            }
        };
        let max_connections = range_u32(
            "max_connections",
            self.max_connections.unwrap_or(64),
            1,
            1024,
        )? as usize;
        let root_connections = range_u32(
            "root_connections",
            self.root_connections.unwrap_or(8),
            0,
            1024,
        )? as usize;
        if root_connections >= max_connections {
            return Err(invalid(
                "root_connections",
                format!("{root_connections} must be less than max_connections ({max_connections})"),
            ));
        }
        let max_connections_per_uid = range_u32(
            "max_connections_per_uid",
            self.max_connections_per_uid.unwrap_or(4),
            1,
            1024,
        )? as usize;
        let onnxruntime_lib = match self.onnxruntime_lib {
            Some(p) => absolute("onnxruntime_lib", p)?,
            None => ort_env
                .unwrap_or_else(|| PathBuf::from(authnet_core::features::locate::INSTALLED_ORT)),
        };
        let cam = self.camera.unwrap_or_default();
        let camera = CameraConfig {
            source: parse_source(cam.source.as_deref().unwrap_or("v4l2:/dev/video0"))?,
            width: range_u32("camera.width", cam.width.unwrap_or(640), 16, 4096)?,
            height: range_u32("camera.height", cam.height.unwrap_or(480), 16, 4096)?,
            fps: range_u32("camera.fps", cam.fps.unwrap_or(30), 1, 1000)?,
            clip: seconds(
                "camera.clip_seconds",
                cam.clip_seconds.unwrap_or(2.0),
                0.1,
                20.0,
            )?,
            dark_threshold: dark as f32,
        };
        let th = self.throttle.unwrap_or_default();
        let failures_before_delay = range_u32(
            "throttle.failures_before_delay",
            th.failures_before_delay.unwrap_or(5),
            1,
            100,
        )?;
        let base_delay = th.base_delay.unwrap_or(30);
        if !(1..=86_400).contains(&base_delay) {
            return Err(invalid(
                "throttle.base_delay",
                format!("{base_delay} is out of range (expected 1..=86400 seconds)"),
            ));
        }
        let lockout_after = range_u32(
            "throttle.lockout_after",
            th.lockout_after.unwrap_or(100),
            1,
            100,
        )?;
        if lockout_after <= failures_before_delay {
            return Err(invalid(
                "throttle.lockout_after",
                format!(
                    "{lockout_after} must exceed throttle.failures_before_delay ({failures_before_delay})"
                ),
            ));
        }
        Ok(Config {
            socket: absolute(
                "socket",
                self.socket.unwrap_or_else(|| DEFAULT_SOCKET.into()),
            )?,
            state_dir: absolute(
                "state_dir",
                self.state_dir.unwrap_or_else(|| DEFAULT_STATE_DIR.into()),
            )?,
            onnxruntime_lib,
            models_dir: absolute(
                "models_dir",
                self.models_dir
                    .unwrap_or_else(|| authnet_core::features::locate::INSTALLED_MODELS.into()),
            )?,
            backbone,
            crop,
            feature_layout,
            ort_threads: range_u32("ort_threads", self.ort_threads.unwrap_or(1), 1, 64)? as usize,
            impostor_bank: self
                .impostor_bank
                .map(|p| absolute("impostor_bank", p))
                .transpose()?,
            pretrained_model: self
                .pretrained_model
                .map(|p| absolute("pretrained_model", p))
                .transpose()?,
            word_model,
            auth_timeout: seconds(
                "auth_timeout",
                self.auth_timeout.unwrap_or(10.0),
                0.5,
                120.0,
            )?,
            camera_wait: seconds("camera_wait", self.camera_wait.unwrap_or(5.0), 0.0, 120.0)?,
            max_tries: range_u32("max_tries", self.max_tries.unwrap_or(1), 1, 10)?,
            threshold_policy,
            target_fmr,
            abort_if_ssh: self.abort_if_ssh.unwrap_or(true),
            abort_if_lid_closed: self.abort_if_lid_closed.unwrap_or(true),
            dark_frame_threshold: dark as f32,
            min_face_fraction,
            max_connections,
            max_connections_per_uid,
            root_connections,
            sessions_dir: absolute(
                "sessions_dir",
                self.sessions_dir
                    .unwrap_or_else(|| DEFAULT_SESSIONS_DIR.into()),
            )?,
            camera_seat,
            without_logind,
            enroll_camera_limit: seconds(
                "enroll_camera_limit",
                self.enroll_camera_limit.unwrap_or(90.0),
                1.0,
                600.0,
            )?,
            enroll_other_word_rounds: range_u32(
                "enroll_other_word_rounds",
                self.enroll_other_word_rounds
                    .unwrap_or(crate::enroll::live::DEFAULT_OTHER_WORD_ROUNDS as u32),
                1,
                crate::enroll::live::MAX_OTHER_WORD_ROUNDS as u32,
            )? as usize,
            io_timeout: seconds("io_timeout", self.io_timeout.unwrap_or(5.0), 0.1, 60.0)?,
            enroll_pam_service,
            snapshots: self.snapshots.unwrap_or(false),
            snapshot_keep: range_u32("snapshot_keep", self.snapshot_keep.unwrap_or(30), 1, 10_000)?
                as usize,
            camera,
            throttle: ThrottleConfig {
                failures_before_delay,
                base_delay: Duration::from_secs(base_delay),
                lockout_after,
            },
        })
    }
}

/// Reads and validates the file at `path`. A missing file at the default path means "all
/// defaults"; a missing file named by `--config` is an error.
pub fn load(path: &Path, explicit: bool) -> Result<Config, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => String::new(),
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.into(),
                source,
            })
        }
    };
    RawConfig::parse(&text, path)?.validate(std::env::var_os("AUTHNET_ORT_LIB").map(PathBuf::from))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        RawConfig::parse(text, Path::new("t.toml"))?.validate(None)
    }

    #[test]
    fn empty_file_gives_documented_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.socket, Path::new(DEFAULT_SOCKET));
        assert_eq!(c.state_dir, Path::new(DEFAULT_STATE_DIR));
        assert_eq!(c.crop, CropMode::Detect);
        assert_eq!(c.feature_layout, FeatureLayout::Mesh);
        assert_eq!(c.threshold_policy, Policy::Fmr);
        assert_eq!(c.camera.source, CameraSource::V4l2("/dev/video0".into()));
        assert_eq!(c.throttle.failures_before_delay, 5);
        assert_eq!(c.throttle.base_delay, Duration::from_secs(30));
        assert_eq!(c.throttle.lockout_after, 100);
        assert!(c.abort_if_ssh && c.abort_if_lid_closed);
        assert_eq!(c.enroll_pam_service, "authnet-enroll");
        assert_eq!(c.sessions_dir, Path::new(DEFAULT_SESSIONS_DIR));
        assert_eq!(c.camera_seat, "seat0");
        assert_eq!(c.without_logind, crate::seat::WithoutLogind::Allow);
        assert_eq!((c.max_connections_per_uid, c.root_connections), (4, 8));
        assert_eq!(c.enroll_camera_limit, Duration::from_secs(90));
        assert_eq!(c.enroll_other_word_rounds, 2);
        assert!(!c.snapshots);
        assert_eq!(c.snapshot_keep, 30);
        assert_eq!(c.word_model, WordModelKind::Linear);
        assert_eq!(c.pretrained_in_use(), None);
    }

    #[test]
    fn word_model_is_read_and_decides_whether_the_backbone_is_used() {
        let c = parse("word_model = \"lstm\"").unwrap();
        assert_eq!(
            (c.word_model, c.pretrained_in_use()),
            (WordModelKind::Lstm, None)
        );
        let c = parse("word_model = \"ensemble\"\npretrained_model = \"/p.lstm\"").unwrap();
        assert_eq!(c.word_model, WordModelKind::Ensemble);
        assert_eq!(c.pretrained_in_use(), Some(Path::new("/p.lstm")));
        let c = parse("word_model = \"encoded\"\npretrained_model = \"/p.lstm\"").unwrap();
        assert_eq!(c.word_model, WordModelKind::Encoded);
        assert_eq!(c.pretrained_in_use(), Some(Path::new("/p.lstm")));
        // The ridge, the default, reads no backbone even when one is configured.
        let c = parse("pretrained_model = \"/p.lstm\"").unwrap();
        assert_eq!(c.word_model, WordModelKind::Linear);
        assert_eq!(c.pretrained_model.as_deref(), Some(Path::new("/p.lstm")));
        assert_eq!(c.pretrained_in_use(), None);
        // `encoded` has nothing to encode with without a backbone.
        let e = parse("word_model = \"encoded\"").unwrap_err().to_string();
        assert!(
            e.contains("word_model") && e.contains("pretrained_model"),
            "{e}"
        );
    }

    #[test]
    fn a_device_is_cut_to_the_utterance_and_a_recording_is_kept_whole() {
        use authnet_core::attempt::{SourceKind, TrimPolicy};
        let dev = CameraSource::V4l2("/dev/video0".into());
        let rec = CameraSource::Dir("/tmp/clip".into());
        assert_eq!(dev.kind(), SourceKind::Camera);
        assert_eq!(rec.kind(), SourceKind::Recording);
        assert!(matches!(
            TrimPolicy::for_source(dev.kind()),
            TrimPolicy::Utterance(_)
        ));
        assert_eq!(TrimPolicy::for_source(rec.kind()), TrimPolicy::Whole);
    }

    #[test]
    fn the_shipped_example_parses() {
        let text = include_str!("../../etc/authnetd.toml");
        let c = parse(text).unwrap();
        let d = parse("").unwrap();
        assert_eq!(c.socket, d.socket);
        assert_eq!(c.camera, d.camera);
        assert_eq!(c.throttle, d.throttle);
        assert_eq!(c.enroll_pam_service, d.enroll_pam_service);
        assert_eq!(c.feature_layout, d.feature_layout);
        assert_eq!(c.word_model, d.word_model);
    }

    #[test]
    fn feature_layout_is_read() {
        let c = parse("feature_layout = \"mesh\"").unwrap();
        assert_eq!(c.feature_layout, FeatureLayout::Mesh);
        let c = parse("feature_layout = \"box\"").unwrap();
        assert_eq!(c.feature_layout, FeatureLayout::Box);
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = parse("sockett = \"/x\"").unwrap_err().to_string();
        assert!(e.contains("sockett"), "{e}");
        let e = parse("[camera]\nfsp = 3").unwrap_err().to_string();
        assert!(e.contains("fsp"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        for (text, key) in [
            ("crop = \"mouth\"", "crop"),
            ("feature_layout = \"lips\"", "feature_layout"),
            ("word_model = \"svm\"", "word_model"),
            ("threshold_policy = \"far\"", "threshold_policy"),
            ("target_fmr = 1.5", "target_fmr"),
            ("[camera]\nfps = 0", "camera.fps"),
            ("[camera]\nsource = \"usb:0\"", "camera.source"),
            ("[throttle]\nlockout_after = 3", "throttle.lockout_after"),
            ("auth_timeout = -1.0", "auth_timeout"),
            ("socket = \"relative.sock\"", "socket"),
            ("enroll_pam_service = \"../shadow\"", "enroll_pam_service"),
            ("enroll_pam_service = \"\"", "enroll_pam_service"),
            ("without_logind = \"maybe\"", "without_logind"),
            ("camera_seat = \"seat/0\"", "camera_seat"),
            ("root_connections = 64", "root_connections"),
            ("sessions_dir = \"run\"", "sessions_dir"),
            ("enroll_camera_limit = 0.0", "enroll_camera_limit"),
            ("enroll_other_word_rounds = 0", "enroll_other_word_rounds"),
            ("enroll_other_word_rounds = 6", "enroll_other_word_rounds"),
            ("snapshot_keep = 0", "snapshot_keep"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
        // A type error: toml names the key.
        let e = parse("max_tries = \"two\"").unwrap_err().to_string();
        assert!(e.contains("max_tries"), "{e}");
    }

    #[test]
    fn ort_env_applies_only_without_the_key() {
        let c = RawConfig::parse("", Path::new("t"))
            .unwrap()
            .validate(Some("/env/ort.so".into()))
            .unwrap();
        assert_eq!(c.onnxruntime_lib, Path::new("/env/ort.so"));
        let c = RawConfig::parse("onnxruntime_lib = \"/file/ort.so\"", Path::new("t"))
            .unwrap()
            .validate(Some("/env/ort.so".into()))
            .unwrap();
        assert_eq!(c.onnxruntime_lib, Path::new("/file/ort.so"));
    }
}
