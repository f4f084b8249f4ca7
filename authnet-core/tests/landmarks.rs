//! The face mesh on real faces: MIRACL-VC1 F01 full frames (640×480, small faces) and the GRID
//! clips (other people, another camera), F02's face crops, the tracker's detector economy, the
//! mesh feature layout and its liveness and quality signals, and the landmark model's refusals
//! (missing, truncated, wrong-hash file).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![deny(unsafe_code)]

use std::path::{Path, PathBuf};

use authnet_core::capture::{self, DirSource, Frame};
use authnet_core::features::{
    aligned_lips, lip_opening_range, FeatureError, FeatureExtractor, FeatureLayout, MESH_MOUTH_DIM,
    PRESENCE_QUALITY,
};
use authnet_core::testdata;
use authnet_core::vision::detect::{DetectOutcome, DetectorConfig, FaceBox, FaceDetector};
use authnet_core::vision::embed::{init_runtime, EmbedError};
use authnet_core::vision::landmarks::{
    FaceTracker, LandmarkModel, TrackOutcome, TrackerConfig, INNER_LIP, NUM_POINTS, OUTER_LIP,
};
use authnet_core::vision::CropMode;

fn models() -> PathBuf {
    testdata::repo_root().join("models")
}

fn runtime() {
    let cfg = testdata::repo_pipeline(CropMode::Detect);
    init_runtime(&cfg.ort_lib).expect("ONNX Runtime loads (run `make setup`)");
}

fn detector() -> FaceDetector {
    FaceDetector::load(
        &models().join("seeta_fd_frontal_v1.0.bin"),
        DetectorConfig::default(),
    )
    .unwrap()
}

fn tracker() -> FaceTracker {
    runtime();
    FaceTracker::new(
        LandmarkModel::load(&models(), 1).expect("landmark model loads"),
        TrackerConfig::default(),
    )
}

fn f01_frames(word: u32, inst: u32) -> Vec<Frame> {
    let dir = testdata::utterance("faces", "F01", word, inst).expect("MIRACL-VC1 data present");
    DirSource::open(&dir).unwrap().read_all().unwrap()
}

fn grid_clips() -> Vec<PathBuf> {
    let dir = testdata::miracl()
        .expect("shared data present")
        .join("../grid-samples");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("GRID samples at {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "mpg"))
        .collect();
    v.sort();
    assert_eq!(v.len(), 10, "ten GRID clips in {}", dir.display());
    v
}

/// The centroid of the outer and inner lip points.
fn lip_centre(m: &authnet_core::vision::Mesh) -> (f32, f32) {
    let idx: Vec<usize> = OUTER_LIP.iter().chain(&INNER_LIP).copied().collect();
    let n = idx.len() as f32;
    let x = idx.iter().map(|&i| m.points[i][0]).sum::<f32>() / n;
    let y = idx.iter().map(|&i| m.points[i][1]).sum::<f32>() / n;
    (x, y)
}

/// Whether (x, y) lies in the lower half of `b`.
fn in_lower_half(b: FaceBox, (x, y): (f32, f32)) -> bool {
    let (x0, y0) = (b.x as f32, b.y as f32);
    x >= x0 && x <= x0 + b.w as f32 && y >= y0 + b.h as f32 / 2.0 && y <= y0 + b.h as f32
}

#[test]
fn mesh_tracks_f01_full_frames_with_lips_in_the_lower_face_box() {
    let mut tr = tracker();
    let mut det = detector();
    let mut reference = detector();
    let (mut frames, mut meshes, mut lips_in_box, mut boxes, mut utts) = (0, 0, 0, 0, 0);
    for word in 1..=10 {
        for inst in [1, 6] {
            utts += 1;
            tr.reset();
            for f in f01_frames(word, inst) {
                frames += 1;
                let TrackOutcome::Mesh(m) = tr.track(&f, &mut det).unwrap() else {
                    continue;
                };
                meshes += 1;
                assert_eq!(m.points.len(), NUM_POINTS);
                assert!(m.presence >= 0.5 && m.presence <= 1.0);
                // The detector, run fresh on the same frame, gives the reference face box.
                reference.reset();
                if let DetectOutcome::Face(b) = reference.detect(&f) {
                    boxes += 1;
                    if in_lower_half(b, lip_centre(&m)) {
                        lips_in_box += 1;
                    }
                }
            }
        }
    }
    let rate = meshes as f64 / frames as f64;
    eprintln!(
        "F01: mesh on {meshes}/{frames} frames, lips in the lower face box on {lips_in_box}/{boxes}, detector ran {} times for {utts} utterances",
        tr.detector_runs()
    );
    assert!(frames > 150, "only {frames} frames read");
    assert!(rate >= 0.95, "mesh on {meshes}/{frames} = {rate:.3}");
    assert!(boxes > 0 && lips_in_box as f64 >= 0.98 * boxes as f64);
    // Tracking: the detector runs once per utterance, plus rare re-acquisitions.
    assert!(
        tr.detector_runs() <= utts + utts / 4,
        "detector ran {} times for {utts} utterances",
        tr.detector_runs()
    );
}

#[test]
fn mesh_finds_every_grid_speaker_and_the_lips_move() {
    let mut tr = tracker();
    let mut det = detector();
    for clip in grid_clips() {
        tr.reset();
        let mut src = capture::open_utterance(&clip, false).unwrap();
        let frames = capture::read_all(src.as_mut()).unwrap();
        let mut openings = Vec::new();
        for f in &frames {
            if let TrackOutcome::Mesh(m) = tr.track(f, &mut det).unwrap() {
                assert!(
                    m.eye_distance() > 20.0,
                    "{}: eyes too close",
                    clip.display()
                );
                openings.push(m.lip_opening());
            }
        }
        let found = openings.len() as f64 / frames.len() as f64;
        let (lo, hi) = openings
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        eprintln!(
            "{}: mesh on {}/{} frames, lip opening {lo:.3}..{hi:.3} eye distances",
            clip.file_name().unwrap().to_string_lossy(),
            openings.len(),
            frames.len()
        );
        assert!(frames.len() >= 30, "{} frames", frames.len());
        assert!(found >= 0.95, "{}: mesh on {found:.3}", clip.display());
        // A spoken sentence opens and closes the mouth: the liveness veto's signal.
        assert!(hi - lo > 0.05, "{}: lips do not move", clip.display());
    }
}

#[test]
fn frames_without_a_face_are_no_face_never_features() {
    let mut tr = tracker();
    let mut det = detector();
    // Smooth grey gradients and random noise: bright enough, but nobody there.
    let grad = Frame::new(
        640,
        480,
        (0..640 * 480)
            .flat_map(|i| {
                let v = (60 + (i % 640) / 8) as u8;
                [v, v, v]
            })
            .collect(),
    )
    .unwrap();
    let mut seed = 12345u32;
    let noise = Frame::new(
        640,
        480,
        (0..640 * 480 * 3)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (seed >> 24) as u8
            })
            .collect(),
    )
    .unwrap();
    for f in [&grad, &noise] {
        assert_eq!(tr.track(f, &mut det).unwrap(), TrackOutcome::NoFace);
    }
    // Through the extractor in the mesh layout: no frame, hence nothing to score.
    let mut ex = FeatureExtractor::from_config(&testdata::repo_pipeline(CropMode::Detect)).unwrap();
    ex.set_layout(FeatureLayout::Mesh).unwrap();
    let (u, r) = ex.extract(&[grad.clone(), noise.clone(), grad]).unwrap();
    assert_eq!(r.frames, 3);
    assert_eq!(r.no_face, 3);
    assert!(u.frames.is_empty());
}

#[test]
fn mesh_layout_features_of_a_real_utterance() {
    let mut ex = FeatureExtractor::from_config(&testdata::repo_pipeline(CropMode::Detect)).unwrap();
    ex.set_layout(FeatureLayout::Mesh).unwrap();
    let dir = testdata::utterance("faces", "F01", 3, 2).unwrap();
    let runs_before = ex.detector_runs();
    let (u, r) = ex.extract_dir(&dir, None).unwrap();
    assert_eq!(
        ex.detector_runs() - runs_before,
        1,
        "detector only on frame 1"
    );
    assert_eq!(u.mouth_dim, MESH_MOUTH_DIM);
    assert_eq!(r.faces_found, r.frames);
    assert!(u.frames.iter().all(|f| f.mouth.len() == MESH_MOUTH_DIM));
    assert!(u.frames.iter().all(|f| f.identity.len() == u.identity_dim));
    let m = authnet_core::vision::mouth::MOUTH_DIM;
    let lips = 2 * (OUTER_LIP.len() + INNER_LIP.len());
    // First frame: zero velocity; later frames: the lips move.
    assert!(u.frames[0].mouth[m + lips..].iter().all(|&v| v == 0.0));
    let moved = u.frames[1..]
        .iter()
        .filter(|f| f.mouth[m + lips..].iter().any(|&v| v.abs() > 1e-4))
        .count();
    assert!(moved * 2 > u.frames.len(), "lips moved on {moved} frames");
    // Aligned lips sit below the eyes (positive y), about one eye distance wide at most.
    for f in &u.frames {
        let shape = &f.mouth[m..m + lips];
        assert!(shape.iter().all(|v| v.is_finite() && v.abs() < 3.0));
        assert!(shape.chunks(2).all(|p| p[1] > 0.2), "lips below the eyes");
    }
    // The identity embedding of the mesh crop still says "F01": close to the box layout's.
    ex.set_layout(FeatureLayout::Box).unwrap();
    let (b, _) = ex.extract_dir(&dir, None).unwrap();
    let cos = authnet_core::features::cosine(&u.mean_identity(), &b.mean_identity());
    eprintln!("mesh vs box layout: mean identity cosine {cos:.3}");
    assert!(cos > 0.8, "mesh vs box identity cosine {cos}");
}

#[test]
fn mesh_layout_on_face_crops_and_the_lip_opening_signal() {
    // F02's 84×84 face crops: the mesh runs on the whole crop (no detector), the identity crop
    // stays the frame, and the features have the mesh layout's length, as full frames do.
    let mut ex = FeatureExtractor::from_config(&testdata::repo_pipeline(CropMode::None)).unwrap();
    ex.set_layout(FeatureLayout::Mesh).unwrap();
    let runs_before = ex.detector_runs();
    let (mut frames, mut faces, mut low) = (0, 0, 0);
    let mut ranges = Vec::new();
    for (word, inst) in [(1, 1), (4, 3), (7, 5), (10, 9)] {
        let dir = testdata::utterance("faces", "F02", word, inst).unwrap();
        let (u, r) = ex.extract_dir(&dir, None).unwrap();
        frames += r.frames;
        faces += r.faces_found;
        low += r.low_presence;
        assert_eq!(u.mouth_dim, MESH_MOUTH_DIM);
        let range = lip_opening_range(&u).unwrap();
        assert_eq!(lip_opening_range(&u.frozen()), Some(0.0));
        ranges.push(range);
    }
    assert_eq!(ex.detector_runs(), runs_before, "no detector on face crops");
    eprintln!(
        "F02 crops: mesh on {faces}/{frames} frames, {low} with presence under \
         {PRESENCE_QUALITY}, lip opening ranges {ranges:.3?}"
    );
    assert!(faces as f64 >= 0.9 * frames as f64, "{faces}/{frames}");
    // Mouthing a word opens and closes the lips: the lip-opening veto's signal.
    assert!(ranges.iter().all(|&r| r > 0.02), "{ranges:?}");
    // The quality signal: real, frontal faces are mostly clear views.
    assert!(
        (low as f64) < 0.5 * faces as f64,
        "{low} of {faces} low presence"
    );

    // F01 full frames in the mesh layout: the same signals.
    ex.set_crop_mode(CropMode::Detect).unwrap();
    let dir = testdata::utterance("faces", "F01", 5, 4).unwrap();
    let (u, r) = ex.extract_dir(&dir, None).unwrap();
    let range = lip_opening_range(&u).unwrap();
    eprintln!(
        "F01 05/04: {} low-presence of {} faces, lip opening range {range:.3}",
        r.low_presence, r.faces_found
    );
    assert!(range > 0.02, "F01 lip opening range {range}");
    assert!(r.low_presence_share() < 0.5);

    // Mouth crops have no face to mesh: box-length features in either layout.
    ex.set_crop_mode(CropMode::Mouth).unwrap();
    let dir = testdata::utterance("lips", "F01", 1, 1).unwrap();
    let (m, _) = ex.extract_dir(&dir, None).unwrap();
    ex.set_layout(FeatureLayout::Box).unwrap();
    let (b, _) = ex.extract_dir(&dir, None).unwrap();
    assert_eq!(m, b, "mouth crops are untouched by the layout");
    assert_eq!(lip_opening_range(&m), None);
}

#[test]
fn aligned_lips_ignore_translation_rotation_and_scale() {
    let mut tr = tracker();
    let mut det = detector();
    let frames = f01_frames(1, 1);
    let TrackOutcome::Mesh(m) = tr.track(&frames[0], &mut det).unwrap() else {
        panic!("no mesh on F01 01/01 frame 1");
    };
    let a = aligned_lips(&m).unwrap();
    let (ang, k, (tx, ty)) = (0.3f32, 1.7f32, (40.0f32, -25.0f32));
    let mut moved = m.clone();
    for p in &mut moved.points {
        let (x, y) = (p[0], p[1]);
        p[0] = k * (ang.cos() * x - ang.sin() * y) + tx;
        p[1] = k * (ang.sin() * x + ang.cos() * y) + ty;
    }
    let b = aligned_lips(&moved).unwrap();
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(worst < 1e-4, "aligned lips moved by {worst}");
}

#[test]
fn mesh_layout_needs_the_tracker() {
    runtime();
    let cfg = testdata::repo_pipeline(CropMode::Detect);
    let manifest = authnet_core::vision::Manifest::load(&cfg.models_dir, "mobilefacenet").unwrap();
    let emb = authnet_core::vision::Embedder::load(&cfg.models_dir, manifest, 1).unwrap();
    let mut ex = FeatureExtractor::new(emb, Some(detector()), CropMode::Detect).unwrap();
    assert!(matches!(
        ex.set_layout(FeatureLayout::Mesh),
        Err(FeatureError::NoLandmarks)
    ));
}

/// A models directory holding a copy of the landmark model, altered by `alter`.
fn landmark_copy(alter: impl Fn(&Path)) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for f in ["face_landmark.toml", "face_landmark.onnx"] {
        std::fs::copy(models().join(f), d.path().join(f)).unwrap();
    }
    alter(d.path());
    d
}

#[test]
fn missing_truncated_or_wrong_hash_landmark_model_is_an_error_naming_the_file() {
    runtime();
    let missing = landmark_copy(|d| std::fs::remove_file(d.join("face_landmark.onnx")).unwrap());
    let e = LandmarkModel::load(missing.path(), 1).unwrap_err();
    assert!(matches!(e, EmbedError::ModelIo { .. }), "{e}");
    assert!(e.to_string().contains("face_landmark.onnx"), "{e}");

    let truncated = landmark_copy(|d| {
        let p = d.join("face_landmark.onnx");
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    });
    let e = LandmarkModel::load(truncated.path(), 1).unwrap_err();
    assert!(matches!(e, EmbedError::Checksum { .. }), "{e}");
    assert!(e.to_string().contains("face_landmark.onnx"), "{e}");

    let flipped = landmark_copy(|d| {
        let p = d.join("face_landmark.onnx");
        let mut bytes = std::fs::read(&p).unwrap();
        let n = bytes.len();
        bytes[n - 100] ^= 0x55;
        std::fs::write(&p, bytes).unwrap();
    });
    let e = LandmarkModel::load(flipped.path(), 1).unwrap_err();
    assert!(matches!(e, EmbedError::Checksum { .. }), "{e}");
    assert!(e.to_string().contains("face_landmark.onnx"), "{e}");

    let no_manifest =
        landmark_copy(|d| std::fs::remove_file(d.join("face_landmark.toml")).unwrap());
    let e = LandmarkModel::load(no_manifest.path(), 1).unwrap_err();
    assert!(e.to_string().contains("face_landmark.toml"), "{e}");

    // The whole pipeline refuses to start on a models dir without the landmark model.
    let d = tempfile::tempdir().unwrap();
    for f in [
        "mobilefacenet.toml",
        "mobilefacenet.onnx",
        "seeta_fd_frontal_v1.0.bin",
    ] {
        std::fs::copy(models().join(f), d.path().join(f)).unwrap();
    }
    let mut cfg = testdata::repo_pipeline(CropMode::Detect);
    cfg.models_dir = d.path().into();
    let e = FeatureExtractor::from_config(&cfg).unwrap_err();
    assert!(e.to_string().contains("face_landmark.toml"), "{e}");
}

/// The segmenter on the mesh layout's lip contour ([`authnet_core::segment::motion_view`]):
/// real F02 face utterances padded with still copies of their first and last frames are cut
/// back within 2 frames, and the quietest real utterance moves well above the stillness floor.
#[test]
fn the_segmenter_finds_real_utterances_on_the_mesh_lip_contour() {
    use authnet_core::segment::{motion_view, mouth_motion, SegmentConfig};
    let cfg = SegmentConfig::default();
    // The shared faces are face crops of varying size, as the faces evaluation reads them.
    let mut ex = FeatureExtractor::from_config(&testdata::repo_pipeline(CropMode::None)).unwrap();
    ex.set_layout(FeatureLayout::Mesh).unwrap();
    let (mut worst, mut quietest) = (0usize, f32::INFINITY);
    for word in 1..=10 {
        for inst in [1, 4, 7, 10] {
            let dir = testdata::utterance("faces", "F02", word, inst).unwrap();
            let frames = DirSource::open(&dir)
                .unwrap()
                .allow_mixed_sizes()
                .read_all()
                .unwrap();
            let (u, _) = ex.extract(&frames).unwrap();
            let m = motion_view(&u);
            assert!(m
                .iter()
                .all(|v| v.len() == 2 * authnet_core::features::LIP_POINTS));
            let mut d = mouth_motion(&m);
            d.sort_by(f32::total_cmp);
            let active = d[((d.len() - 1) as f32 * cfg.active_percentile).round() as usize];
            quietest = quietest.min(active);
            let (before, after) = (8 + (word as usize % 3) * 5, 6 + (inst as usize % 4) * 4);
            let (span, err) = testdata::trim_padded(&m, before, after, &cfg).unwrap();
            worst = worst.max(err);
            assert!(
                err <= 2,
                "word {word:02}/{inst:02}: {} frames padded {before}+{after}: got {span:?}",
                m.len()
            );
        }
    }
    eprintln!("MEASURED 40 F02 face words, mesh lip contour: worst span error {worst} frames; lowest active motion {quietest:.3}");
    assert!(
        quietest > 4.0 * cfg.min_active_contour,
        "floor too close: {quietest}"
    );
}
