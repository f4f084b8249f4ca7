//! `authnetd`: the AuthNet daemon. It owns the camera, the face pipeline and the per-user
//! models, and answers `pam_authnet` (and `authnet-enroll`) over a Unix socket. See
//! authnetd(8) and authnetd.toml(5).
//!
//! Modules: [`config`] (raw TOML, then a validated struct), [`server`] (accept loop,
//! `SO_PEERCRED`), [`seat`] (the peer's logind session), [`session`] (the attempt state machine and the other requests), [`camera`]
//! (clips and the camera queue), [`store`] (per-user files), [`throttle`], [`enroll`] (with the
//! enrolment password check in [`pam_check`]), [`log`]
//! and [`sys`] (the crate's one FFI file: all its unsafe code).

// Unsafe code lives in `sys` only, which allows it for itself.
#![deny(unsafe_code)]

mod camera;
mod check;
mod config;
mod enroll;
mod log;
mod pam_check;
mod seat;
mod server;
mod session;
mod snapshot;
mod store;
mod sys;
mod throttle;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use authnet_core::features::{FeatureExtractor, PipelineConfig};
use authnet_core::model::bank::ImpostorBank;
use authnet_core::model::password::WordModelKind;
use authnet_core::model::pretrained::PretrainedLstm;
use clap::Parser;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "authnetd",
    version,
    about = "AuthNet face + mouthed-password daemon"
)]
struct Args {
    /// Configuration file.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Stay in the foreground (authnetd never forks; accepted for clarity in unit files and
    /// scripts) and log to stderr.
    #[arg(long)]
    foreground: bool,
    /// Log to stderr instead of syslog.
    #[arg(long)]
    log_stderr: bool,
    /// Also log scores (debug level).
    #[arg(long)]
    debug: bool,
    /// Check the configuration and exit.
    #[arg(long)]
    check_config: bool,
    /// The doctor: check config, models, ONNX Runtime, camera, PAM stacks, bank and
    /// enrolment, print a table with a fix for each problem, exit 1 on any FAIL.
    #[arg(long)]
    check: bool,
    /// With --check: also check this user's enrolment.
    #[arg(long, value_name = "NAME", requires = "check")]
    user: Option<String>,
    /// With --check: the PAM configuration directory to read.
    #[arg(long, value_name = "DIR", requires = "check", default_value = check::DEFAULT_PAM_DIR)]
    pam_dir: PathBuf,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("authnetd: {}", log::chain(e.as_ref()));
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let explicit = args.config.is_some();
    let path = args
        .config
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_CONFIG));
    if args.check {
        std::process::exit(check::run(&check::Options {
            config: path,
            explicit,
            user: args.user,
            pam_dir: args.pam_dir,
        }));
    }
    let cfg = config::load(&path, explicit)?;
    if args.check_config {
        println!("{}: OK", path.display());
        return Ok(());
    }
    let log = log::Logger::new(args.log_stderr || args.foreground, args.debug);

    let detector = authnet_core::vision::detect::DetectorConfig {
        dark_threshold: cfg.dark_frame_threshold,
        ..Default::default()
    };
    let pc = PipelineConfig {
        ort_lib: cfg.onnxruntime_lib.clone(),
        models_dir: cfg.models_dir.clone(),
        backbone: cfg.backbone.clone(),
        crop: cfg.crop,
        threads: cfg.ort_threads,
        detector,
        layout: cfg.feature_layout,
    };
    let pipeline = FeatureExtractor::from_config(&pc).with_context(|| {
        format!(
            "loading the pipeline (onnxruntime {}, models {})",
            pc.ort_lib.display(),
            pc.models_dir.display()
        )
    })?;
    let bank = match &cfg.impostor_bank {
        Some(p) => Some(
            ImpostorBank::load(
                p,
                &pipeline.embedder().manifest().name,
                pipeline.embedder().dim(),
            )
            .and_then(|b| b.check_layout(cfg.feature_layout).map(|()| b))
            .with_context(|| format!("loading impostor bank {}", p.display()))?,
        ),
        None => None,
    };
    let word = cfg.word_model.name();
    let pretrained = match cfg.pretrained_in_use() {
        Some(p) => {
            let m = pipeline.embedder().manifest();
            let expect = authnet_core::model::pretrained::Expect {
                backbone: &m.name,
                backbone_sha256: m.embeddings_sha256(),
                feature_layout: pipeline.layout(),
                identity_dim: pipeline.embedder().dim(),
                mouth_dim: pipeline.layout().mouth_dim(),
            };
            let pre = PretrainedLstm::load(p, &expect)
                .with_context(|| format!("loading pretrained word model {}", p.display()))?;
            log.info(&format!(
                "word model {word}, from the pretrained backbone {}: {} speakers, {} classes",
                p.display(),
                pre.training.speakers.len(),
                pre.training.classes
            ));
            Some(pre)
        }
        None => {
            match (&cfg.pretrained_model, cfg.word_model) {
                (Some(p), _) => log.warn(&format!(
                    "pretrained_model {} is not loaded: word_model = {word} does not use it \
                     (set word_model = lstm, ensemble or encoded to fine-tune from it)",
                    p.display()
                )),
                (None, WordModelKind::Linear) => {
                    log.info("word model linear: the ridge, trained from the enrolment clips")
                }
                (None, _) => log.info(&format!(
                    "word model {word}: no pretrained_model, so the LSTM is trained from scratch \
                     on the enrolment clips"
                )),
            }
            None
        }
    };
    let store = store::Store::open(&cfg.state_dir)
        .with_context(|| format!("state directory {}", cfg.state_dir.display()))?;
    let (listener, activated) = server::listen(&cfg.socket)?;
    log.info(&format!(
        "authnetd {} ready: {} ({}), camera {}, crop {:?}, feature layout {}, policy {}",
        env!("CARGO_PKG_VERSION"),
        if activated {
            "socket from systemd".to_string()
        } else {
            cfg.socket.display().to_string()
        },
        pc.backbone,
        cfg.camera.source,
        cfg.crop,
        cfg.feature_layout,
        cfg.threshold_policy.name()
    ));
    let daemon =
        Arc::new(session::Daemon::new(cfg, log, pipeline, bank, store).with_pretrained(pretrained));
    server::serve(listener, daemon)
}
