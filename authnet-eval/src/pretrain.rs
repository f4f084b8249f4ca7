//! `authnet-eval pretrain`: trains the word model's LSTM backbone across the speakers of a
//! corpus (multi-class over speaker x word, see `authnet_core::model::pretrained`) and writes
//! the file the daemon's `pretrained_model` setting names.

use std::path::PathBuf;

use anyhow::{bail, Context};

use authnet_core::features::{FeatureCache, FeatureExtractor, PipelineConfig, UtteranceFeatures};
use authnet_core::model::bank::walk_utterances;
use authnet_core::model::password::LstmPreset;
use authnet_core::model::pretrained::{pretrain, LabelledClip, PretrainConfig, PretrainedLstm};
use authnet_core::vision::CropMode;

/// Arguments of `pretrain`.
#[derive(clap::Args, Debug, Clone)]
pub struct PretrainArgs {
    /// Dataset root: `<SPK>/words/<WW>/<II>` frame folders or `<II>.mp4` files.
    #[arg(long)]
    pub dataset: PathBuf,
    /// detect (full frames), none (face crops) or mouth (mouth crops); must match the
    /// daemon's `crop` setting.
    #[arg(long, default_value = "detect")]
    pub crop: CropMode,
    /// Speakers to pretrain on (default: all).
    #[arg(long, value_delimiter = ',')]
    pub speakers: Vec<String>,
    /// Seed of the initialisation, jitter and shuffling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// LSTM preset: compact or paper (the per-user models inherit it).
    #[arg(long, default_value = "compact")]
    pub lstm: LstmPreset,
    /// Feature cache directory.
    #[arg(long, default_value = ".cache/features")]
    pub cache: PathBuf,
    /// Where to write the pretrained model.
    #[arg(long)]
    pub out: PathBuf,
}

/// Extracts the features of the chosen speakers, pretrains, writes the file.
pub fn run(args: &PretrainArgs, mut cfg: PipelineConfig) -> anyhow::Result<()> {
    cfg.crop = args.crop;
    let refs = walk_utterances(&args.dataset)?;
    for s in &args.speakers {
        if !refs.iter().any(|r| &r.speaker == s) {
            bail!("speaker {s} not found under {}", args.dataset.display());
        }
    }
    let refs: Vec<_> = refs
        .into_iter()
        .filter(|r| args.speakers.is_empty() || args.speakers.contains(&r.speaker))
        .collect();
    let mut ex = FeatureExtractor::from_config(&cfg)?;
    let sha = ex.embedder().manifest().embeddings_sha256().to_owned();
    let layout = ex.layout();
    let cache = FeatureCache::new(&args.cache);
    let mut feats: Vec<(String, String, UtteranceFeatures)> = Vec::with_capacity(refs.len());
    for r in &refs {
        let (f, _) = ex
            .extract_path(&r.dir, Some(&cache))
            .with_context(|| format!("features of {}", r.dir.display()))?;
        feats.push((r.speaker.clone(), r.word.clone(), f));
    }
    let clips: Vec<LabelledClip> = feats.iter().map(LabelledClip::from).collect();
    let pc = PretrainConfig {
        lstm: args.lstm,
        seed: args.seed,
        ..PretrainConfig::default()
    };
    let model = pretrain(&clips, &sha, layout, &pc)?;
    model
        .save(&args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!("{}", summary(&model, &args.out.display().to_string()));
    Ok(())
}

/// One line: what was trained and how well it separates the held-out clips.
pub fn summary(m: &PretrainedLstm, what: &str) -> String {
    let t = &m.training;
    format!(
        "{what}: {} speakers, {} classes, {} training / {} validation sequences, validation \
         accuracy {}, {} epochs (best {}), {:.1} s, backbone {} {}+{}",
        t.speakers.len(),
        t.classes,
        t.train_sequences,
        t.val_sequences,
        t.report
            .best_val_accuracy
            .map_or("n/a".to_string(), |a| format!("{a:.3}")),
        t.report.epochs_run,
        t.report.best_epoch,
        t.report.seconds,
        m.backbone,
        m.identity_dim,
        m.mouth_dim
    )
}
