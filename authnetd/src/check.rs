//! `authnetd --check [--user NAME] [--pam-dir DIR]`: the doctor. It runs the same loaders the
//! daemon runs at start (config, ONNX Runtime, backbone with its sha256, detector, impostor
//! bank, per-user model), opens the camera for one frame, reads which PAM services stack
//! `pam_authnet`, and prints one row per check:
//!
//! ```text
//! CHECK              STATUS  DETAIL                                   FIX
//! config             OK      /etc/authnet/authnetd.toml               -
//! camera             FAIL    camera /dev/video0: no such device       plug the camera in, ...
//! ```
//!
//! It exits 1 when any row is FAIL, else 0. It changes nothing, except that an existing state
//! directory gets mode 0700 as at the daemon's start; no directory is created and no daemon is
//! contacted (the camera is opened only for one frame, as an attempt would).

use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use authnet_core::capture::v4l2::{classify, CameraFault, V4l2Config, V4l2Source};
use authnet_core::capture::{CaptureError, FrameSource};
use authnet_core::features::DETECTOR_FILE;
use authnet_core::model::bank::ImpostorBank;
use authnet_core::model::file::Expect;
use authnet_core::vision::detect::{DetectorConfig, FaceDetector};
use authnet_core::vision::embed::{init_runtime, sha256_file, Embedder, Manifest};

use crate::camera::Clip;
use crate::config::{self, CameraSource, Config};
use crate::store::{self, Store};
use crate::throttle::{self, Verdict};

/// Default PAM configuration directory.
pub const DEFAULT_PAM_DIR: &str = "/etc/pam.d";

/// A row's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Fine.
    Ok,
    /// Works, but risky or degraded.
    Warn,
    /// Broken: face authentication cannot work.
    Fail,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Warn => "WARN",
            Self::Fail => "FAIL",
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// What was checked.
    pub check: String,
    /// The verdict.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do about it (`-` when nothing).
    pub fix: String,
}

fn row(check: impl Into<String>, status: Status, detail: impl Into<String>, fix: &str) -> Row {
    Row {
        check: check.into(),
        status,
        detail: detail.into(),
        fix: if fix.is_empty() {
            "-".into()
        } else {
            fix.into()
        },
    }
}

/// What to check.
#[derive(Debug, Clone)]
pub struct Options {
    /// The config file, and whether it was named on the command line.
    pub config: PathBuf,
    /// See [`config::load`].
    pub explicit: bool,
    /// Whose enrolment to check.
    pub user: Option<String>,
    /// The PAM configuration directory.
    pub pam_dir: PathBuf,
}

/// Runs every check, prints the table to stdout and returns the exit status.
pub fn run(opts: &Options) -> i32 {
    let rows = checks(opts);
    print!("{}", table(&rows));
    i32::from(rows.iter().any(|r| r.status == Status::Fail))
}

/// The table as text: aligned columns, a header line.
pub fn table(rows: &[Row]) -> String {
    let w_check = rows.iter().map(|r| r.check.len()).max().unwrap_or(0).max(5);
    let w_detail = rows
        .iter()
        .map(|r| r.detail.len())
        .max()
        .unwrap_or(0)
        .max(6);
    let mut out = String::new();
    let mut line = |c: &str, s: &str, d: &str, f: &str| {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{c:<w_check$}  {s:<6}  {d:<w_detail$}  {f}");
    };
    line("CHECK", "STATUS", "DETAIL", "FIX");
    for r in rows {
        line(&r.check, r.status.label(), &r.detail, &r.fix);
    }
    out
}

/// Every check, in order. A config that does not load stops the rest (they depend on it).
pub fn checks(opts: &Options) -> Vec<Row> {
    let mut rows = Vec::new();
    let cfg = match config::load(&opts.config, opts.explicit) {
        Ok(c) => {
            rows.push(row(
                "config",
                Status::Ok,
                format!("{} parses and validates", opts.config.display()),
                "",
            ));
            c
        }
        Err(e) => {
            let e = crate::log::chain(&e);
            rows.push(row(
                "config",
                Status::Fail,
                e,
                "fix the named key (see authnetd.toml(5)); `authnetd --check-config` re-checks",
            ));
            return rows;
        }
    };
    let runtime_ok = check_runtime(&cfg, &mut rows);
    let embedder = if runtime_ok {
        check_backbone(&cfg, &mut rows)
    } else {
        rows.push(row(
            format!("model:{}", cfg.backbone),
            Status::Fail,
            "not checked: ONNX Runtime did not load",
            "fix the onnxruntime row first",
        ));
        None
    };
    check_detector(&cfg, &mut rows);
    check_camera(&cfg, &mut rows);
    check_pam(&opts.pam_dir, &mut rows);
    check_bank(&cfg, embedder.as_ref(), &mut rows);
    check_pretrained(&cfg, embedder.as_ref(), &mut rows);
    check_state(&cfg, opts.user.as_deref(), embedder.as_ref(), &mut rows);
    rows
}

fn check_runtime(cfg: &Config, rows: &mut Vec<Row>) -> bool {
    match init_runtime(&cfg.onnxruntime_lib) {
        Ok(()) => {
            rows.push(row(
                "onnxruntime",
                Status::Ok,
                format!("loaded {}", cfg.onnxruntime_lib.display()),
                "",
            ));
            true
        }
        Err(e) => {
            let e = crate::log::chain(&e);
            rows.push(row(
                "onnxruntime",
                Status::Fail,
                e,
                "install ONNX Runtime (`make setup`) or set onnxruntime_lib to libonnxruntime.so",
            ));
            false
        }
    }
}

fn check_backbone(cfg: &Config, rows: &mut Vec<Row>) -> Option<Embedder> {
    let name = format!("model:{}", cfg.backbone);
    let loaded = Manifest::load(&cfg.models_dir, &cfg.backbone)
        .and_then(|m| Embedder::load(&cfg.models_dir, m, 1));
    match loaded {
        Ok(e) => {
            let m = e.manifest();
            rows.push(row(
                name,
                Status::Ok,
                format!(
                    "{} matches its manifest sha256 {}…, {}-d embeddings",
                    m.file,
                    m.sha256.get(..12).unwrap_or(&m.sha256),
                    e.dim()
                ),
                "",
            ));
            Some(e)
        }
        Err(e) => {
            let e = crate::log::chain(&e);
            rows.push(row(
                name,
                Status::Fail,
                e,
                "reinstall the models (`make install`, see models/README.md)",
            ));
            None
        }
    }
}

fn check_detector(cfg: &Config, rows: &mut Vec<Row>) {
    let path = cfg.models_dir.join(DETECTOR_FILE);
    let sidecar = cfg.models_dir.join(format!("{DETECTOR_FILE}.sha256"));
    let fix = "reinstall the models (`make install`, see models/README.md)";
    if let Err(e) = FaceDetector::load(&path, DetectorConfig::default()) {
        rows.push(row("model:detector", Status::Fail, format!("{e}"), fix));
        return;
    }
    let expected = std::fs::read_to_string(&sidecar)
        .ok()
        .and_then(|t| t.split_whitespace().next().map(str::to_ascii_lowercase));
    let found = sha256_file(&path).map(|h| h.to_ascii_lowercase());
    let r = match (expected, found) {
        (Some(want), Ok(got)) if want == got => row(
            "model:detector",
            Status::Ok,
            format!("{DETECTOR_FILE} loads and matches {}", sidecar.display()),
            "",
        ),
        (Some(want), Ok(got)) => row(
            "model:detector",
            Status::Fail,
            format!("{} has sha256 {got}, expected {want}", path.display()),
            fix,
        ),
        (None, _) => row(
            "model:detector",
            Status::Warn,
            format!(
                "{DETECTOR_FILE} loads, but {} is missing",
                sidecar.display()
            ),
            fix,
        ),
        (_, Err(e)) => row(
            "model:detector",
            Status::Fail,
            format!("{}: {e}", path.display()),
            fix,
        ),
    };
    rows.push(r);
}

/// The fix line for a camera that failed.
pub fn camera_fix(e: &CaptureError) -> &'static str {
    match classify(e) {
        CameraFault::Missing => {
            "plug the camera in, or set camera.source to a node listed by `ls -l /dev/v4l/by-id/`"
        }
        CameraFault::Busy => "close the program using the camera (`fuser -v /dev/video*`)",
        CameraFault::Denied => "run authnetd (and --check) as root",
        CameraFault::NotADevice => {
            "set camera.source to v4l2:/dev/videoN or its /dev/v4l/by-id/ symlink"
        }
        CameraFault::Stalled => "replug the camera; `dmesg` shows driver errors",
        CameraFault::Other => {
            "list the formats with `v4l2-ctl --list-formats-ext -d DEVICE` (MJPG, YUYV, GREY or Y16 are needed)"
        }
    }
}

fn check_camera(cfg: &Config, rows: &mut Vec<Row>) {
    let got = match &cfg.camera.source {
        CameraSource::V4l2(dev) => V4l2Source::open(&V4l2Config {
            device: dev.display().to_string(),
            width: cfg.camera.width,
            height: cfg.camera.height,
            fps: cfg.camera.fps,
        })
        .and_then(|mut s| {
            let (px, w, h) = s.format();
            let f = s.next_frame()?;
            Ok((
                format!("{} {w}x{h}", String::from_utf8_lossy(&px.fourcc()).trim()),
                f,
            ))
        }),
        CameraSource::Dir(_) => Clip::open(&cfg.camera, cfg.crop).and_then(|mut c| {
            let f = c.next_frame(Instant::now() + Duration::from_secs(5))?;
            Ok(("recorded frames".to_string(), f))
        }),
    };
    let r = match got {
        Ok((fmt, Some(f))) => {
            let luma = f.mean_luma();
            let dark = luma < cfg.dark_frame_threshold;
            row(
                "camera",
                if dark { Status::Warn } else { Status::Ok },
                format!(
                    "{} gives frames: {fmt}, {}x{}, mean luma {luma:.0}",
                    cfg.camera.source, f.width, f.height
                ),
                if dark {
                    "the frame is dark: light the face, or check the IR emitter (dark_frame_threshold)"
                } else {
                    ""
                },
            )
        }
        Ok((_, None)) => row(
            "camera",
            Status::Fail,
            format!("{} opened but gave no frame", cfg.camera.source),
            "check the recorded clip folder, or replug the camera",
        ),
        Err(e) => row(
            "camera",
            Status::Fail,
            crate::log::chain(&e),
            camera_fix(&e),
        ),
    };
    rows.push(r);
}

/// One `auth` entry of a PAM stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PamEntry {
    /// The control field as written (`sufficient`, `[success=2 default=ignore]`, …).
    pub control: String,
    /// The module, or the included service for `include`/`substack`/`@include`.
    pub module: String,
}

impl PamEntry {
    fn is(&self, module: &str) -> bool {
        Path::new(&self.module)
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n == module || n.strip_suffix(".so") == Some(module))
    }
}

/// Splits a PAM line into type, control and module, keeping `[...]` controls whole.
fn parse_pam_line(line: &str) -> Option<(String, String, String)> {
    let line = line.split('#').next()?.trim();
    if line.is_empty() {
        return None;
    }
    if let Some(svc) = line.strip_prefix("@include") {
        return Some(("@include".into(), "include".into(), svc.trim().into()));
    }
    let (ty, rest) = line.split_once(char::is_whitespace)?;
    let rest = rest.trim_start();
    let (control, rest) = if rest.starts_with('[') {
        let end = rest.find(']')?;
        (rest[..=end].to_string(), &rest[end + 1..])
    } else {
        let (c, r) = rest.split_once(char::is_whitespace)?;
        (c.to_string(), r)
    };
    let module = rest.split_whitespace().next()?.to_string();
    Some((ty.trim_start_matches('-').to_string(), control, module))
}

/// The `auth` stack of `service` in `dir`, with `include`, `substack` and `@include` expanded
/// (to a depth of 8, which no real configuration needs).
pub fn auth_stack(dir: &Path, service: &str) -> Vec<PamEntry> {
    let mut out = Vec::new();
    expand(dir, service, 0, &mut out);
    out
}

fn expand(dir: &Path, service: &str, depth: usize, out: &mut Vec<PamEntry>) {
    if depth > 8 || service.contains('/') {
        return;
    }
    let Ok(text) = std::fs::read_to_string(dir.join(service)) else {
        return;
    };
    for (ty, control, module) in text.lines().filter_map(parse_pam_line) {
        let include = ty == "@include" || matches!(control.as_str(), "include" | "substack");
        if include && (ty == "@include" || ty == "auth") {
            expand(dir, &module, depth + 1, out);
        } else if ty == "auth" {
            out.push(PamEntry { control, module });
        }
    }
}

/// Judges how `pam_authnet` sits in an auth stack: `(status, detail, fix)`.
pub fn judge_stack(stack: &[PamEntry]) -> Option<(Status, String, &'static str)> {
    let at = stack.iter().position(|e| e.is("pam_authnet"))?;
    let unix = stack.iter().position(|e| e.is("pam_unix"));
    let control = stack[at].control.as_str();
    let order = match unix {
        Some(u) if u < at => {
            return Some((
                Status::Warn,
                format!(
                    "pam_authnet ({control}) comes after pam_unix: the password is asked first"
                ),
                "move the pam_authnet line above pam_unix",
            ))
        }
        Some(_) => "before pam_unix",
        None => "no pam_unix in the stack",
    };
    let bracket: Vec<(&str, &str)> = control
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let value = |k: &str| bracket.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
    let grants = |v: Option<&str>| {
        v.is_some_and(|v| v == "done" || v == "end" || v.parse::<u32>().is_ok_and(|n| n > 0))
    };
    let verdict = match control {
        "sufficient" => (Status::Ok, "safe"),
        "required" | "requisite" => (
            Status::Warn,
            "lockout risk: a failed face fails the whole stack",
        ),
        "optional" => (
            Status::Warn,
            "a matched face does not end the stack, the password is still asked",
        ),
        c if c.starts_with('[') && grants(value("success")) => {
            let fallback = value("default");
            let refuses = ["auth_err", "authinfo_unavail", "default"]
                .iter()
                .any(|k| matches!(value(k), Some("bad" | "die")));
            if refuses || fallback.is_none() {
                (
                    Status::Warn,
                    "lockout risk: a failed face is not ignored (set default=ignore)",
                )
            } else {
                (Status::Ok, "safe")
            }
        }
        _ => (
            Status::Warn,
            "a matched face does not end the stack, the password is still asked",
        ),
    };
    let fix = match verdict.0 {
        Status::Ok => "",
        _ => "use `auth sufficient pam_authnet.so` (or [success=end default=ignore] in a pam-auth-update profile) before pam_unix",
    };
    Some((verdict.0, format!("{control}, {order}: {}", verdict.1), fix))
}

fn check_pam(dir: &Path, rows: &mut Vec<Row>) {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.') && !n.ends_with('~'))
            .collect(),
        Err(e) => {
            let e = crate::log::chain(&e);
            rows.push(row(
                "pam",
                Status::Warn,
                format!("cannot read {}: {e}", dir.display()),
                "run as root, or name the directory with --pam-dir",
            ));
            return;
        }
    };
    names.sort();
    let mut found = 0;
    for n in &names {
        // common-auth and friends are included by the services; report the services.
        if n.starts_with("common-") || n.ends_with("-auth") {
            continue;
        }
        if let Some((status, detail, fix)) = judge_stack(&auth_stack(dir, n)) {
            found += 1;
            rows.push(row(format!("pam:{n}"), status, detail, fix));
        }
    }
    if found == 0 {
        rows.push(row(
            "pam",
            Status::Warn,
            format!("no service in {} stacks pam_authnet", dir.display()),
            "`pam-auth-update --enable authnet`, or add `auth sufficient pam_authnet.so` above pam_unix (etc/README.md)",
        ));
    }
}

fn expect(e: &Embedder, layout: authnet_core::features::FeatureLayout) -> Expect<'_> {
    Expect {
        backbone: &e.manifest().name,
        backbone_sha256: e.manifest().embeddings_sha256(),
        identity_dim: e.dim(),
        layout: Some(layout),
        owner: None,
    }
}

fn check_bank(cfg: &Config, embedder: Option<&Embedder>, rows: &mut Vec<Row>) {
    let Some(p) = &cfg.impostor_bank else {
        rows.push(row(
            "impostor_bank",
            Status::Ok,
            "not configured (enrolment uses its built-in negatives)",
            "",
        ));
        return;
    };
    let Some(e) = embedder else {
        rows.push(row(
            "impostor_bank",
            Status::Fail,
            format!("{}: not checked, the backbone did not load", p.display()),
            "fix the model row first",
        ));
        return;
    };
    let loaded = ImpostorBank::load(p, &e.manifest().name, e.dim())
        .and_then(|b| b.check_layout(cfg.feature_layout).map(|()| b));
    let r = match loaded {
        Ok(b) => row(
            "impostor_bank",
            Status::Ok,
            format!("{} loads: {} entries", p.display(), b.entries.len()),
            "",
        ),
        Err(err) => row(
            "impostor_bank",
            Status::Fail,
            format!("{}: {err}", p.display()),
            "rebuild it with `authnet-eval bank` for this backbone, or remove impostor_bank",
        ),
    };
    rows.push(r);
}

fn check_pretrained(cfg: &Config, embedder: Option<&Embedder>, rows: &mut Vec<Row>) {
    const NAME: &str = "pretrained_model";
    let word = cfg.word_model.name();
    let Some(p) = &cfg.pretrained_model else {
        rows.push(row(
            NAME,
            Status::Ok,
            format!("not configured (enrolment trains word_model = {word} from the clips alone)"),
            "",
        ));
        return;
    };
    if cfg.pretrained_in_use().is_none() {
        rows.push(row(
            NAME,
            Status::Warn,
            format!("{}: not loaded, word_model = {word} does not use it", p.display()),
            "set word_model = lstm, ensemble or encoded to fine-tune from it, or remove pretrained_model",
        ));
        return;
    }
    let Some(e) = embedder else {
        rows.push(row(
            NAME,
            Status::Fail,
            format!("{}: not checked, the backbone did not load", p.display()),
            "fix the model row first",
        ));
        return;
    };
    let m = e.manifest();
    let expect = authnet_core::model::pretrained::Expect {
        backbone: &m.name,
        backbone_sha256: m.embeddings_sha256(),
        feature_layout: cfg.feature_layout,
        identity_dim: e.dim(),
        mouth_dim: cfg.feature_layout.mouth_dim(),
    };
    rows.push(
        match authnet_core::model::pretrained::PretrainedLstm::load(p, &expect) {
            Ok(pre) => row(
                NAME,
                Status::Ok,
                format!(
                    "{} loads: {} speakers, {} classes; word_model = {word} fine-tunes from it",
                    p.display(),
                    pre.training.speakers.len(),
                    pre.training.classes
                ),
                "",
            ),
            Err(err) => row(
                NAME,
                Status::Fail,
                format!("{}: {err}", p.display()),
                "rebuild it with `authnet-eval pretrain` for this backbone and layout, or remove pretrained_model",
            ),
        },
    );
}

fn check_state(cfg: &Config, user: Option<&str>, embedder: Option<&Embedder>, rows: &mut Vec<Row>) {
    let dir = &cfg.state_dir;
    let md = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) => {
            let e = crate::log::chain(&e);
            rows.push(row(
                "state_dir",
                Status::Warn,
                format!("{}: {e}", dir.display()),
                "start authnetd once (it creates the directory, mode 0700) and enrol",
            ));
            return;
        }
    };
    let mode = md.mode() & 0o777;
    rows.push(if !md.is_dir() {
        row(
            "state_dir",
            Status::Fail,
            format!("{} is not a directory", dir.display()),
            "point state_dir at a root-owned directory",
        )
    } else if mode & 0o077 != 0 || md.uid() != 0 {
        row(
            "state_dir",
            Status::Warn,
            format!("{} is mode {mode:o}, owner uid {}", dir.display(), md.uid()),
            "chown root: and chmod 0700 it (authnetd tightens the mode at start)",
        )
    } else {
        row(
            "state_dir",
            Status::Ok,
            format!("{} is root-only", dir.display()),
            "",
        )
    });
    if !md.is_dir() {
        return;
    }
    // The directory exists, so this only tightens its mode to 0700, as the daemon's start does.
    let store = match Store::open(dir) {
        Ok(s) => s,
        Err(e) => {
            let e = crate::log::chain(&e);
            rows.push(row("state_dir", Status::Fail, e, "run as root"));
            return;
        }
    };
    let Some(user) = user else {
        let n = store.enrolled_users().map(|v| v.len()).unwrap_or(0);
        rows.push(row(
            "enrolment",
            Status::Ok,
            format!("{n} users enrolled (name one with --user)"),
            "",
        ));
        return;
    };
    let name = format!("enrolment:{user}");
    if !store::valid_user_name(user) {
        rows.push(row(
            name,
            Status::Fail,
            "not a valid user name",
            "check the name",
        ));
        return;
    }
    let acct = match crate::sys::account_by_name(user) {
        Ok(Some(a)) => a,
        _ => {
            rows.push(row(name, Status::Fail, "no such account", "check the name"));
            return;
        }
    };
    let model = store.model_path(user);
    if !model.is_file() {
        rows.push(row(
            name,
            Status::Fail,
            format!("{} does not exist", model.display()),
            "enrol: `authnet-enroll add` as that user",
        ));
        return;
    }
    let Some(e) = embedder else {
        rows.push(row(
            name,
            Status::Fail,
            "not checked: the backbone did not load",
            "fix the model row first",
        ));
        return;
    };
    let owner = crate::session::Daemon::owner_of(&acct);
    let bound = Expect {
        owner: Some(&owner),
        ..expect(e, cfg.feature_layout)
    };
    let r = match store.load_model(user, &bound) {
        Ok(m) => {
            let mode = std::fs::metadata(&model)
                .map(|m| m.mode() & 0o777)
                .unwrap_or(0);
            if mode & 0o077 != 0 {
                row(
                    name,
                    Status::Warn,
                    format!("{} loads but is mode {mode:o}", model.display()),
                    "chmod 0600 it",
                )
            } else {
                row(
                    name,
                    Status::Ok,
                    format!(
                        "{} loads (created {}, backbone {})",
                        model.display(),
                        m.meta().created,
                        m.meta().backbone
                    ),
                    "",
                )
            }
        }
        Err(err) => row(
            name,
            Status::Fail,
            format!("{}: {err}", model.display()),
            "enrol again: `authnet-enroll add` (the model is of another backbone, feature layout or feature version, damaged, or another account's)",
        ),
    };
    rows.push(r);
    let th = match throttle::check_user(&store, user, &cfg.throttle) {
        Ok(Verdict::Allowed) => None,
        Ok(Verdict::Delayed(d)) => Some(format!("throttled for {} more seconds", d.as_secs())),
        Ok(Verdict::LockedOut) => Some("locked out after too many failures".into()),
        Err(e) => {
            let e = crate::log::chain(&e);
            Some(format!("throttle state unusable: {e}"))
        }
    };
    if let Some(t) = th {
        rows.push(row(
            format!("throttle:{user}"),
            Status::Warn,
            t,
            "`authnet-enroll reset-throttle USER` as root",
        ));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn stack(lines: &[(&str, &str)]) -> Vec<PamEntry> {
        lines
            .iter()
            .map(|(c, m)| PamEntry {
                control: (*c).into(),
                module: (*m).into(),
            })
            .collect()
    }

    #[test]
    fn controls_are_judged() {
        let ok = |c: &str| {
            judge_stack(&stack(&[
                (c, "pam_authnet.so"),
                ("required", "pam_unix.so"),
            ]))
            .unwrap()
            .0
        };
        assert_eq!(ok("sufficient"), Status::Ok);
        assert_eq!(ok("[success=end default=ignore]"), Status::Ok);
        assert_eq!(ok("[success=2 default=ignore]"), Status::Ok);
        assert_eq!(ok("required"), Status::Warn);
        assert_eq!(ok("requisite"), Status::Warn);
        assert_eq!(ok("optional"), Status::Warn);
        assert_eq!(ok("[success=done default=die]"), Status::Warn);
        assert_eq!(ok("[success=done]"), Status::Warn);
        let after = judge_stack(&stack(&[
            ("required", "pam_unix.so"),
            ("sufficient", "/lib/security/pam_authnet.so"),
        ]))
        .unwrap();
        assert_eq!(after.0, Status::Warn);
        assert!(after.1.contains("after pam_unix"));
        assert!(judge_stack(&stack(&[("required", "pam_unix.so")])).is_none());
    }

    #[test]
    fn includes_are_expanded() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("common-auth"),
            "auth [success=2 default=ignore] pam_authnet.so timeout=10 # face\n\
             auth [success=1 default=ignore] pam_unix.so nullok try_first_pass\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("sudo"),
            "#%PAM-1.0\n@include common-auth\naccount include common-account\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("su"),
            "auth sufficient pam_rootok.so\nauth include common-auth\n",
        )
        .unwrap();
        let s = auth_stack(d.path(), "sudo");
        assert_eq!(s.len(), 2);
        assert!(s[0].is("pam_authnet") && s[1].is("pam_unix"));
        assert_eq!(s[0].control, "[success=2 default=ignore]");
        assert_eq!(auth_stack(d.path(), "su").len(), 3);
        let mut rows = Vec::new();
        check_pam(d.path(), &mut rows);
        let names: Vec<&str> = rows.iter().map(|r| r.check.as_str()).collect();
        assert_eq!(names, ["pam:su", "pam:sudo"]);
        assert!(rows.iter().all(|r| r.status == Status::Ok), "{rows:?}");
    }

    #[test]
    fn the_table_is_aligned() {
        let t = table(&[
            row("config", Status::Ok, "fine", ""),
            row("camera", Status::Fail, "no such device", "plug it in"),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("CHECK "));
        assert!(
            lines[2].starts_with("camera  FAIL    no such device  plug it in"),
            "{t}"
        );
        assert!(lines[1].ends_with("  -"));
    }
}
