//! Locating the real MIRACL-VC1 frames and the repository's models for tests, benchmarks and
//! `authnet-eval` defaults. The data is never part of this repository: it lives at
//! `../shared/data/miracl-vc1` beside the checkout, or wherever `AUTHNET_DATA` points.

use std::path::{Path, PathBuf};

use crate::features::PipelineConfig;
use crate::vision::CropMode;

/// The repository root (this crate's parent directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| ".".into())
}

/// The MIRACL-VC1 directory (holding `faces/` and `lips/`): `$AUTHNET_DATA`, else
/// `<repo>/../shared/data/miracl-vc1`. Errors with a message saying where it looked.
pub fn miracl() -> Result<PathBuf, String> {
    let p = match std::env::var_os("AUTHNET_DATA") {
        Some(p) => PathBuf::from(p),
        None => repo_root().join("../shared/data/miracl-vc1"),
    };
    if p.join("faces").is_dir() || p.join("lips").is_dir() {
        Ok(p)
    } else {
        Err(format!(
            "MIRACL-VC1 frames not found at {} (set AUTHNET_DATA, or place the shared data beside the checkout)",
            p.display()
        ))
    }
}

/// One utterance folder: `<miracl>/<modality>/<speaker>/words/<word>/<instance>`.
pub fn utterance(
    modality: &str,
    speaker: &str,
    word: u32,
    instance: u32,
) -> Result<PathBuf, String> {
    Ok(miracl()?
        .join(modality)
        .join(speaker)
        .join("words")
        .join(format!("{word:02}"))
        .join(format!("{instance:02}")))
}

/// A pipeline configuration on the repository's models and vendored ONNX Runtime
/// (`$AUTHNET_ORT_LIB` wins when set).
pub fn repo_pipeline(crop: CropMode) -> PipelineConfig {
    let root = repo_root();
    PipelineConfig {
        ort_lib: std::env::var_os("AUTHNET_ORT_LIB")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(crate::features::locate::REPO_ORT)),
        models_dir: root.join("models"),
        backbone: "mobilefacenet".into(),
        crop,
        threads: 2,
        detector: Default::default(),
        layout: Default::default(),
    }
}

/// `m` (one mouth vector per frame) padded with `before` still copies of its first frame and
/// `after` of its last, as a clip recorded before and after the utterance; the span
/// [`crate::segment::find_utterance`] finds in it, and by how many frames that span's ends miss
/// the utterance's.
pub fn trim_padded(
    m: &[Vec<f32>],
    before: usize,
    after: usize,
    cfg: &crate::segment::SegmentConfig,
) -> Result<(crate::segment::Span, usize), crate::segment::SegmentError> {
    let mut p = vec![m[0].clone(); before];
    p.extend(m.iter().cloned());
    p.extend(std::iter::repeat_n(m[m.len() - 1].clone(), after));
    let span = crate::segment::find_utterance(&p, cfg)?;
    let err = span
        .start
        .abs_diff(before)
        .max(span.end.abs_diff(before + m.len()));
    Ok((span, err))
}
