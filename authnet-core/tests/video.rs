//! Video files as utterances: real MIRACL-VC1 F02 frames are encoded at test time (into a
//! temporary directory, never committed) with FFmpeg's encoders, then read back through
//! `VideoSource` and the feature pipeline and compared with the frame folder they came from.
#![cfg(feature = "video")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![deny(unsafe_code)]

use std::path::{Path, PathBuf};

use authnet_core::capture::video::{VideoError, VideoOptions, VideoSource};
use authnet_core::capture::{self, CaptureError, DirSource};
use authnet_core::features::{cosine, FeatureExtractor, UtteranceFeatures};
use authnet_core::image::{imageops, RgbImage};
use authnet_core::testdata;
use authnet_core::vision::CropMode;

/// F02's face crops are 84×84 (a few 69×68); a video needs one size, so every frame is resized.
const SIDE: u32 = 84;

fn utt(word: u32, inst: u32) -> PathBuf {
    testdata::utterance("faces", "F02", word, inst).expect("MIRACL-VC1 data present")
}

fn upright_frames(dir: &Path) -> Vec<RgbImage> {
    DirSource::open(dir)
        .unwrap()
        .allow_mixed_sizes()
        .read_all()
        .unwrap()
        .iter()
        .map(|f| imageops::resize(&f.to_image(), SIDE, SIDE, imageops::FilterType::Triangle))
        .collect()
}

#[path = "support/encode.rs"]
mod encode_support;
use encode_support::{encode, mp4_encoder, Clip, Rotate};

fn extractor() -> FeatureExtractor {
    FeatureExtractor::from_config(&testdata::repo_pipeline(CropMode::None))
        .expect("pipeline loads (run `make setup`)")
}

/// Mean frame-by-frame cosine of identity embeddings, and of mouth descriptors.
fn match_scores(a: &UtteranceFeatures, b: &UtteranceFeatures) -> (f32, f32) {
    assert_eq!(a.frames.len(), b.frames.len(), "frame counts differ");
    let n = a.frames.len() as f32;
    let id = a
        .frames
        .iter()
        .zip(&b.frames)
        .map(|(x, y)| cosine(&x.identity, &y.identity))
        .sum::<f32>()
        / n;
    let mouth = a
        .frames
        .iter()
        .zip(&b.frames)
        .map(|(x, y)| cosine(&x.mouth, &y.mouth))
        .sum::<f32>()
        / n;
    (id, mouth)
}

/// Identity embeddings of a decoded clip against the frame folder, frame by frame: mean cosine
/// at least this. Measured 0.993 for libx264 (mp4, mkv at 30 fps) and libvpx (webm) on F02
/// word 05/03: the resize to 84×84, YUV 4:2:0 and a near-lossless encode cost about 0.007.
const MIN_ID_COSINE: f32 = 0.97;
/// Mouth descriptors (HOG + intensity patch) react more to chroma subsampling and compression
/// blocking than the identity network: measured 0.976–0.979.
const MIN_MOUTH_COSINE: f32 = 0.94;

fn check_matches_folder(ext: &str, clip: Clip) {
    let dir = utt(5, 3);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(format!("clip.{ext}"));
    encode(&upright_frames(&dir), &path, clip);
    let mut ex = extractor();
    let (folder, _) = ex.extract_path(&dir, None).unwrap();
    let (video, report) = ex.extract_path(&path, None).unwrap();
    assert_eq!(
        report.frames,
        folder.frames.len(),
        "15 fps resampling keeps every frame"
    );
    let (id, mouth) = match_scores(&folder, &video);
    eprintln!(
        "{ext} ({}, {} fps x{}): {} frames, identity cosine {id:.4}, mouth cosine {mouth:.4}",
        clip.encoder, clip.fps, clip.repeat, report.frames
    );
    assert!(id >= MIN_ID_COSINE, "identity cosine {id}");
    assert!(mouth >= MIN_MOUTH_COSINE, "mouth cosine {mouth}");
}

#[test]
fn mp4_features_match_the_frame_folder() {
    check_matches_folder("mp4", Clip::new(mp4_encoder()));
}

#[test]
fn webm_features_match_the_frame_folder() {
    check_matches_folder("webm", Clip::new("libvpx"));
}

#[test]
fn a_30fps_clip_is_resampled_to_15fps() {
    check_matches_folder(
        "mkv",
        Clip {
            fps: 30,
            repeat: 2,
            ..Clip::new(mp4_encoder())
        },
    );
}

/// Frames of a clip written rotated by `stored` (clockwise) with metadata `rotate` that turns
/// them upright, decoded, against the upright frames: same size, pixels close.
fn check_rotation(ext: &str, rotate: Rotate) {
    let dir = utt(5, 3);
    let upright = upright_frames(&dir);
    // Make the clip non-square so a missed rotation also shows up as a size mismatch.
    let upright: Vec<RgbImage> = upright
        .iter()
        .map(|f| imageops::resize(f, SIDE, SIDE + 28, imageops::FilterType::Triangle))
        .collect();
    let deg = match rotate {
        Rotate::Tag(d) | Rotate::Matrix(d) => d,
        Rotate::None => 0,
    };
    // Stored picture = upright turned counter-clockwise by `deg`, so that the display rotation
    // (clockwise by `deg`) restores it.
    let stored: Vec<RgbImage> = upright
        .iter()
        .map(|f| match deg {
            90 => imageops::rotate270(f),
            180 => imageops::rotate180(f),
            270 => imageops::rotate90(f),
            _ => f.clone(),
        })
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(format!("rotated.{ext}"));
    encode(
        &stored,
        &path,
        Clip {
            rotate,
            ..Clip::new(mp4_encoder())
        },
    );
    let mut src = VideoSource::open(&path).unwrap();
    assert_eq!(src.rotation(), deg, "rotation metadata read back");
    let got = capture::read_all(&mut src).unwrap();
    assert_eq!(got.len(), upright.len());
    for (g, u) in got.iter().zip(&upright) {
        assert_eq!(
            (g.width, g.height),
            u.dimensions(),
            "frames come back upright"
        );
        let mad = g
            .rgb
            .iter()
            .zip(u.as_raw())
            .map(|(a, b)| (*a as f64 - *b as f64).abs())
            .sum::<f64>()
            / g.rgb.len() as f64;
        // A rotated-wrong frame of the same size differs by ~40 grey levels; codec noise ~3.
        assert!(
            mad < 8.0,
            "mean abs difference {mad:.2} to the upright frame"
        );
    }
    // And the features agree with the folder's.
    let mut ex = extractor();
    let (folder, _) = ex.extract_path(&dir, None).unwrap();
    let (video, _) = ex.extract_path(&path, None).unwrap();
    let (id, _) = match_scores(&folder, &video);
    assert!(
        id >= MIN_ID_COSINE,
        "identity cosine {id} of the rotated clip"
    );
}

#[test]
fn mp4_display_matrix_rotation_is_honoured() {
    for deg in [90, 180, 270] {
        check_rotation("mp4", Rotate::Matrix(deg));
    }
}

#[test]
fn mkv_rotate_tag_is_honoured() {
    check_rotation("mkv", Rotate::Tag(90));
}

fn open_err(path: &Path) -> VideoError {
    match VideoSource::open(path).and_then(|mut s| capture::read_all(&mut s).map(|_| ())) {
        Err(CaptureError::Video(e)) => e,
        Err(e) => panic!("expected a video error, got {e}"),
        Ok(()) => panic!("{} read without error", path.display()),
    }
}

#[test]
fn truncated_empty_and_non_video_files_give_clear_errors() {
    let frames = upright_frames(&utt(5, 3));
    // A longer clip (the utterance three times) so that half of it is clearly missing.
    let long: Vec<RgbImage> = frames
        .iter()
        .cycle()
        .take(frames.len() * 3)
        .cloned()
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    for (ext, clip) in [
        ("mp4", Clip::new(mp4_encoder())),
        ("webm", Clip::new("libvpx")),
    ] {
        let full = tmp.path().join(format!("full.{ext}"));
        encode(&long, &full, clip);
        let bytes = std::fs::read(&full).unwrap();
        let cut = tmp.path().join(format!("cut.{ext}"));
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let e = open_err(&cut);
        eprintln!(
            "{ext} cut in half: {e} ({:?})",
            std::error::Error::source(&e).map(|s| s.to_string())
        );
        assert!(
            matches!(
                e,
                VideoError::Truncated { .. } | VideoError::EndedEarly { .. }
            ),
            "{ext}: {e}"
        );
        assert!(e.to_string().contains("truncated"), "{e}");
    }

    let empty = tmp.path().join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    let e = open_err(&empty);
    assert!(matches!(e, VideoError::Empty { .. }), "{e}");
    assert!(e.to_string().contains("empty"), "{e}");

    let text = tmp.path().join("notes.mp4");
    std::fs::write(&text, "these are my notes, not a video\n".repeat(40)).unwrap();
    let e = open_err(&text);
    assert!(matches!(e, VideoError::NotVideo { .. }), "{e}");
    assert!(e.to_string().contains("not a video"), "{e}");
}

#[test]
fn duration_and_size_limits_are_enforced() {
    let frames = upright_frames(&utt(5, 3));
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("long.mp4");
    // 2 s of video against a 1 s limit.
    let long: Vec<RgbImage> = frames.iter().cycle().take(30).cloned().collect();
    encode(&long, &path, Clip::new(mp4_encoder()));
    let opts = VideoOptions {
        max_duration_s: 1.0,
        ..Default::default()
    };
    let e = VideoSource::open_with(&path, opts)
        .and_then(|mut s| capture::read_all(&mut s).map(|_| ()))
        .unwrap_err();
    assert!(
        matches!(e, CaptureError::Video(VideoError::TooLong { .. })),
        "{e}"
    );
    // Downscaling: the longer side is bounded by max_side, aspect kept.
    let opts = VideoOptions {
        max_side: 42,
        ..Default::default()
    };
    let got = capture::read_all(&mut VideoSource::open_with(&path, opts).unwrap()).unwrap();
    assert_eq!(got.len(), 30);
    assert!(got.iter().all(|f| (f.width, f.height) == (42, 42)));
}

#[test]
fn open_utterance_takes_directories_and_videos() {
    let dir = utt(5, 3);
    let n = capture::read_all(capture::open_utterance(&dir, true).unwrap().as_mut())
        .unwrap()
        .len();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("clip.webm");
    encode(&upright_frames(&dir), &path, Clip::new("libvpx"));
    let mut src = capture::open_utterance(&path, false).unwrap();
    assert!(src.describe().starts_with("video:"));
    assert_eq!(capture::read_all(src.as_mut()).unwrap().len(), n);
}

#[test]
fn segmentation_trims_still_frames_around_an_encoded_utterance() {
    use authnet_core::segment::{trim, SegmentConfig};
    let dir = utt(5, 3);
    let frames = upright_frames(&dir);
    let (before, after) = (12, 9);
    let mut padded = vec![frames[0].clone(); before];
    padded.extend(frames.iter().cloned());
    padded.extend(std::iter::repeat_n(frames[frames.len() - 1].clone(), after));
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("padded.mp4");
    encode(&padded, &path, Clip::new(mp4_encoder()));
    let (u, _) = extractor().extract_path(&path, None).unwrap();
    assert_eq!(u.frames.len(), padded.len());
    // Codec noise makes the still frames differ slightly; the clip-relative thresholds hold.
    // Codec noise on the still frames stays under half the stillness floor of the features'
    // units (the mesh layout's lip contour, or the descriptor).
    let cfg = SegmentConfig::default();
    let floor = if u.mouth_dim == authnet_core::features::MESH_MOUTH_DIM {
        cfg.min_active_contour
    } else {
        cfg.min_active
    };
    let d = authnet_core::segment::mouth_motion(&authnet_core::segment::motion_view(&u));
    let still = d[..before - 1].iter().chain(&d[d.len() + 1 - after..]);
    let noise = still.copied().fold(0.0f32, f32::max);
    assert!(
        noise < floor / 2.0,
        "still-frame motion {noise}, floor {floor}"
    );
    let (t, span) = trim(&u, &cfg).unwrap();
    let want = before..before + frames.len();
    assert!(
        span.start.abs_diff(want.start) <= 2 && span.end.abs_diff(want.end) <= 2,
        "span {span:?}, want {want:?}"
    );
    assert_eq!(t.frames.len(), span.len());
}
