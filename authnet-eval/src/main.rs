//! `authnet-eval`: feature extraction, the paper's evaluation protocol, and benchmarks.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use authnet_core::features::{FeatureExtractor, FeatureLayout, PipelineConfig};
use authnet_core::sequence::{assemble, PadPolicy, DEFAULT_TIMESTEPS};
use authnet_core::vision::CropMode;

mod bench;
mod pretrain;
mod report;
mod run;

#[derive(Parser, Debug)]
#[command(
    name = "authnet-eval",
    version,
    about = "AuthNet evaluation, features and benchmarks"
)]
struct Cli {
    /// ONNX Runtime library (default: $AUTHNET_ORT_LIB, the installed one, or ./vendor/...).
    #[arg(long, global = true)]
    ort_lib: Option<PathBuf>,
    /// Models directory (default: $AUTHNET_MODELS_DIR, /usr/share/authnet/models, or ./models).
    #[arg(long, global = true)]
    models: Option<PathBuf>,
    /// Backbone manifest name.
    #[arg(long, global = true, default_value = "mobilefacenet")]
    backbone: String,
    /// Feature layout: box (detector box on every frame) or mesh (tracked face mesh, lip
    /// landmarks); must match the daemon's `feature_layout` for banks.
    #[arg(long, global = true, default_value = "mesh")]
    layout: FeatureLayout,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Extract the per-frame features of one utterance: a frame directory or a video file.
    Features {
        /// Utterance directory (frames in name order), or a video file (mp4, mov, webm, mkv,
        /// avi; resampled to 15 fps).
        dir: PathBuf,
        /// detect (face detector), none (frames are face crops), mouth (frames are mouth crops).
        #[arg(long, default_value = "detect")]
        crop: CropMode,
        /// Timesteps of the assembled sequence.
        #[arg(long, default_value_t = DEFAULT_TIMESTEPS)]
        timesteps: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measure per-frame detect and embed time on real frames.
    Bench(bench::BenchArgs),
    /// Run the paper's evaluation protocol.
    Run(Box<run::RunArgs>),
    /// Pretrain the word model's LSTM across the speakers of a corpus, for the daemon's
    /// `pretrained_model` setting.
    Pretrain(pretrain::PretrainArgs),
    /// Build an impostor bank (other people's feature sequences) for the daemon's
    /// `impostor_bank` setting from a folder of utterances `<SPK>/words/<WW>/<II>`.
    Bank {
        /// Dataset root: `<SPK>/words/<WW>/<II>` frame folders or `<II>.mp4` files.
        #[arg(long)]
        dataset: PathBuf,
        /// detect (full frames), none (face crops) or mouth (mouth crops); must match the
        /// daemon's `crop` setting.
        #[arg(long, default_value = "detect")]
        crop: CropMode,
        /// Where to write the bank.
        #[arg(long)]
        out: PathBuf,
    },
}

fn pipeline(cli: &Cli, crop: CropMode) -> PipelineConfig {
    let mut cfg = PipelineConfig::located();
    if let Some(p) = &cli.ort_lib {
        cfg.ort_lib = p.clone();
    }
    if let Some(p) = &cli.models {
        cfg.models_dir = p.clone();
    }
    cfg.backbone = cli.backbone.clone();
    cfg.crop = crop;
    cfg.layout = cli.layout;
    cfg
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    match &cli.cmd {
        Cmd::Features {
            dir,
            crop,
            timesteps,
            json,
        } => {
            let mut ex = FeatureExtractor::from_config(&pipeline(cli, *crop))?;
            let (feat, report) = ex
                .extract_path(dir, None)
                .with_context(|| format!("extracting features of {}", dir.display()))?;
            let seq = assemble(&feat.identity_seq(), *timesteps, PadPolicy::default());
            let dim = feat.identity_dim + feat.mouth_dim;
            if *json {
                let v = serde_json::json!({
                    "dir": dir,
                    "frames": report.frames,
                    "faces_found": report.faces_found,
                    "no_face": report.no_face,
                    "too_dark": report.too_dark,
                    "timesteps": seq.len(),
                    "dim": dim,
                    "identity_dim": feat.identity_dim,
                    "mouth_dim": feat.mouth_dim,
                    "backbone": feat.backbone,
                    "crop": crop,
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "{}: {} frames, {} faces, {} timesteps x {} features ({} identity + {} mouth), backbone {}",
                    dir.display(),
                    report.frames,
                    report.faces_found,
                    seq.len(),
                    dim,
                    feat.identity_dim,
                    feat.mouth_dim,
                    feat.backbone
                );
            }
            Ok(())
        }
        Cmd::Pretrain(args) => pretrain::run(args, pipeline(cli, args.crop)),
        Cmd::Bench(args) => bench::run(args, pipeline(cli, CropMode::Detect)),
        Cmd::Bank { dataset, crop, out } => {
            let mut ex = FeatureExtractor::from_config(&pipeline(cli, *crop))?;
            let m = ex.embedder().manifest().clone();
            let (dim, mouth) = (m.output_dim, ex.mouth_dim());
            let bank = authnet_core::model::bank::build_bank(
                dataset,
                &m.name,
                m.embeddings_sha256(),
                dim,
                mouth,
                |p| ex.extract_path(p, None).map(|(f, _)| f),
            )?;
            bank.save(out)
                .with_context(|| format!("writing {}", out.display()))?;
            let speakers: std::collections::BTreeSet<&str> =
                bank.entries.iter().map(|e| e.speaker.as_str()).collect();
            println!(
                "{}: {} utterances of {} speakers, backbone {}, {} feature layout",
                out.display(),
                bank.entries.len(),
                speakers.len(),
                bank.backbone,
                cli.layout
            );
            Ok(())
        }
        Cmd::Run(args) => {
            let report = run::run(args, pipeline(cli, CropMode::Detect))?;
            eprintln!("{}", report.summary());
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("authnet-eval: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
