//! `authnet-eval bench`: per-frame detect and embed time on real frames.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use authnet_core::capture::DirSource;
use authnet_core::features::{FeatureExtractor, PipelineConfig};
use authnet_core::vision::detect::{crop, DetectOutcome};

/// Arguments of `bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Utterance directories of full frames (default: F01 word 01 of ../shared/data).
    #[arg(long)]
    frames: Vec<PathBuf>,
    /// Frames to time (cycled through the directories).
    #[arg(long, default_value_t = 200)]
    n: usize,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        0.0
    } else {
        v[v.len() / 2]
    }
}

pub fn run(args: &BenchArgs, cfg: PipelineConfig) -> anyhow::Result<()> {
    let dirs = if args.frames.is_empty() {
        let base = PathBuf::from("../shared/data/miracl-vc1/faces/F01/words/01");
        (1..=10)
            .map(|i| base.join(format!("{i:02}")))
            .filter(|p| p.is_dir())
            .collect()
    } else {
        args.frames.clone()
    };
    anyhow::ensure!(!dirs.is_empty(), "no frame directories (pass --frames DIR)");
    let mut frames = Vec::new();
    for d in &dirs {
        frames.extend(
            DirSource::open(d)?
                .read_all()
                .with_context(|| d.display().to_string())?,
        );
    }
    let mut ex = FeatureExtractor::from_config(&cfg)?;
    let batch = ex.embedder().manifest().batch.max(1);
    let (mut det_ms, mut emb_ms) = (Vec::new(), Vec::new());
    let mut found = 0;
    // Warm-up.
    for f in frames.iter().take(4) {
        let _ = ex.detect(f);
    }
    let mut pending = Vec::new();
    for i in 0..args.n {
        let f = &frames[i % frames.len()];
        let t = Instant::now();
        let out = ex.detect(f);
        det_ms.push(t.elapsed().as_secs_f64() * 1e3);
        if let DetectOutcome::Face(b) = out {
            found += 1;
            pending.push(crop(f, b));
        }
        if pending.len() == batch {
            let t = Instant::now();
            let crops = std::mem::take(&mut pending);
            let _ = ex_embed(&mut ex, &crops)?;
            emb_ms.push(t.elapsed().as_secs_f64() * 1e3 / batch as f64);
        }
    }
    let (w, h) = (frames[0].width, frames[0].height);
    let d = median(&mut det_ms);
    let e = median(&mut emb_ms);
    println!("frames: {} ({}x{}), faces found: {found}", args.n, w, h);
    println!("| stage | median ms/frame |");
    println!("|---|---|");
    println!(
        "| detect (rustface, downscaled to {} px) | {d:.2} |",
        ex_cfg_side(&cfg)
    );
    println!("| embed ({}, batch {batch}) | {e:.2} |", cfg.backbone);
    println!("| detect + embed | {:.2} |", d + e);
    Ok(())
}

fn ex_cfg_side(cfg: &PipelineConfig) -> u32 {
    cfg.detector.max_side
}

fn ex_embed(
    ex: &mut FeatureExtractor,
    crops: &[authnet_core::image::RgbImage],
) -> anyhow::Result<usize> {
    Ok(ex.embed_crops(crops)?.len())
}
