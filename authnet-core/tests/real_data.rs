//! Tests on the real MIRACL-VC1 frames in `../shared/data` and the real models: detection rate,
//! identity separation, the embedder's refusals, and enrolment of a real user + password.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![deny(unsafe_code)]

use std::path::{Path, PathBuf};

use authnet_core::features::{FeatureExtractor, UtteranceFeatures};
use authnet_core::metrics;
use authnet_core::model::bank::{BankEntry, ImpostorBank};
use authnet_core::model::password::{enroll, EnrollConfig, EnrollInput, ThresholdPolicy};
use authnet_core::testdata;
use authnet_core::vision::embed::{init_runtime, EmbedError, Embedder, Manifest};
use authnet_core::vision::CropMode;

fn extractor(crop: CropMode) -> FeatureExtractor {
    FeatureExtractor::from_config(&testdata::repo_pipeline(crop))
        .expect("pipeline loads (run `make setup`)")
}

fn utt(speaker: &str, word: u32, inst: u32) -> PathBuf {
    testdata::utterance("faces", speaker, word, inst).expect("MIRACL-VC1 data present")
}

#[test]
fn detects_faces_in_95_percent_of_f01_word_frames() {
    let mut ex = extractor(CropMode::Detect);
    let (mut frames, mut found) = (0, 0);
    for w in 1..=10 {
        for i in 1..=10 {
            let (_, r) = ex.extract_dir(&utt("F01", w, i), None).unwrap();
            frames += r.frames;
            found += r.faces_found;
        }
    }
    let rate = found as f64 / frames as f64;
    eprintln!("F01 words: face found in {found}/{frames} frames ({rate:.4})");
    assert!(frames > 500, "only {frames} frames read");
    assert!(rate >= 0.95, "face found in {found}/{frames} = {rate:.3}");
}

#[test]
fn same_speaker_embeddings_are_closer_than_different_speakers() {
    let mut det = extractor(CropMode::Detect);
    let mut none = extractor(CropMode::None);
    let f01: Vec<Vec<f32>> = (1..=10)
        .map(|w| {
            det.extract_dir(&utt("F01", w, 1), None)
                .unwrap()
                .0
                .mean_identity()
        })
        .collect();
    let f02: Vec<Vec<f32>> = (1..=10)
        .map(|w| {
            none.extract_dir(&utt("F02", w, 1), None)
                .unwrap()
                .0
                .mean_identity()
        })
        .collect();
    let cos = authnet_core::features::cosine;
    let (mut wins, mut pairs) = (0, 0);
    for a in 0..10 {
        for b in 0..10 {
            if a == b {
                continue;
            }
            // Each same-speaker pair against each cross-speaker pair sharing its first clip.
            for f02c in &f02 {
                pairs += 1;
                if cos(&f01[a], &f01[b]) > cos(&f01[a], f02c) {
                    wins += 1;
                }
            }
        }
    }
    assert!(
        wins as f64 / pairs as f64 > 0.99,
        "{wins}/{pairs} same-speaker pairs closer"
    );
}

#[test]
fn f02_crops_assemble_to_20_timesteps() {
    let mut ex = extractor(CropMode::None);
    let (f, r) = ex.extract_dir(&utt("F02", 1, 1), None).unwrap();
    assert_eq!(r.faces_found, r.frames);
    let seq = authnet_core::sequence::assemble(&f.identity_seq(), 20, Default::default());
    assert_eq!(seq.len(), 20);
    assert_eq!(f.identity_dim, 192);
}

#[test]
fn the_backbone_thread_keeps_frames_in_order_and_drops_an_abandoned_utterance() {
    use authnet_core::capture::{DirSource, Frame};
    use authnet_core::vision::detect::{crop, FaceBox};
    let read = |word, inst| -> Vec<Frame> {
        // F02's face crops differ in size from frame to frame, as `extract_dir` allows.
        DirSource::open(&utt("F02", word, inst))
            .unwrap()
            .allow_mixed_sizes()
            .read_all()
            .unwrap()
    };
    let mut ex = extractor(CropMode::None);
    let frames = read(1, 1);
    assert!(frames.len() > 4, "{} frames", frames.len());
    let crops: Vec<_> = frames.iter().map(|f| crop(f, FaceBox::full(f))).collect();
    // One crop at a time, so no batch padding is involved: the reference embeddings.
    let direct: Vec<Vec<f32>> = crops
        .iter()
        .map(|c| ex.embed_crops(std::slice::from_ref(c)).unwrap().remove(0))
        .collect();
    let (u, _) = ex.extract(&frames).unwrap();
    assert_eq!(u.frames.len(), frames.len());
    for (i, (f, d)) in u.frames.iter().zip(&direct).enumerate() {
        assert_eq!(&f.identity, d, "frame {i}: embedding of another frame");
    }
    // An utterance abandoned after a few frames (its batches still owed by the thread) must not
    // hand its embeddings to the next one.
    let other = read(2, 1);
    {
        let mut inc = ex.begin();
        for f in other.iter().take(5) {
            inc.push(f).unwrap();
        }
    }
    let (again, _) = ex.extract(&frames).unwrap();
    assert_eq!(again.frames.len(), frames.len());
    for (i, (f, d)) in again.frames.iter().zip(&direct).enumerate() {
        assert_eq!(&f.identity, d, "frame {i} after an abandoned utterance");
    }
}

/// A temporary models dir holding a (possibly altered) copy of MobileFaceNet and its manifest.
fn models_copy(
    alter_model: impl Fn(&mut Vec<u8>),
    alter_manifest: impl Fn(&mut Manifest),
) -> tempfile::TempDir {
    let root = testdata::repo_root().join("models");
    let d = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(root.join("mobilefacenet.onnx")).unwrap();
    alter_model(&mut bytes);
    std::fs::write(d.path().join("mobilefacenet.onnx"), &bytes).unwrap();
    let mut m = Manifest::load(&root, "mobilefacenet").unwrap();
    alter_manifest(&mut m);
    std::fs::write(d.path().join("mobilefacenet.toml"), toml_of(&m)).unwrap();
    d
}

fn toml_of(m: &Manifest) -> String {
    format!(
        "name = {:?}\nfile = {:?}\nsha256 = {:?}\ninput_name = {:?}\noutput_name = {:?}\ninput_height = {}\ninput_width = {}\nlayout = \"nchw\"\nchannel_order = \"rgb\"\nmean = [127.5, 127.5, 127.5]\nstd = [128.0, 128.0, 128.0]\nbatch = {}\noutput_dim = {}\n",
        m.name, m.file, m.sha256, m.input_name, m.output_name, m.input_height, m.input_width, m.batch, m.output_dim
    )
}

fn load(dir: &Path) -> Result<Embedder, EmbedError> {
    init_runtime(&testdata::repo_pipeline(CropMode::None).ort_lib).unwrap();
    let m = Manifest::load(dir, "mobilefacenet")?;
    Embedder::load(dir, m, 1)
}

#[test]
fn embedder_refuses_missing_truncated_and_wrong_models() {
    // Missing model file.
    let d = models_copy(|_| {}, |_| {});
    std::fs::remove_file(d.path().join("mobilefacenet.onnx")).unwrap();
    let e = load(d.path()).unwrap_err();
    assert!(matches!(e, EmbedError::ModelIo { .. }), "{e}");
    assert!(e.to_string().contains("mobilefacenet.onnx"));
    // Truncated: sha256 no longer matches.
    let d = models_copy(|b| b.truncate(b.len() / 2), |_| {});
    let e = load(d.path()).unwrap_err();
    assert!(matches!(e, EmbedError::Checksum { .. }), "{e}");
    // Wrong sha256 in the manifest.
    let d = models_copy(|_| {}, |m| m.sha256 = "0".repeat(64));
    assert!(matches!(
        load(d.path()).unwrap_err(),
        EmbedError::Checksum { .. }
    ));
    // Truncated with a matching sha256: ONNX Runtime itself refuses it.
    let d = models_copy(
        |b| b.truncate(b.len() / 2),
        |m| {
            let root = testdata::repo_root().join("models/mobilefacenet.onnx");
            let mut b = std::fs::read(root).unwrap();
            b.truncate(b.len() / 2);
            m.sha256 = hex_sha(&b);
        },
    );
    assert!(matches!(
        load(d.path()).unwrap_err(),
        EmbedError::Ort { .. }
    ));
    // Output dimension disagreeing with the manifest.
    let d = models_copy(|_| {}, |m| m.output_dim = 128);
    let e = load(d.path()).unwrap_err();
    assert!(
        matches!(
            e,
            EmbedError::Shape {
                what: "output dim",
                ..
            }
        ),
        "{e}"
    );
    // Placeholder sha256 (the VGGFace manifest before the user fills it in).
    let e = Manifest::load(&testdata::repo_root().join("models"), "vggface").unwrap_err();
    assert!(matches!(e, EmbedError::ManifestValue { .. }), "{e}");
}

fn hex_sha(b: &[u8]) -> String {
    use sha2_shim::digest;
    digest(b)
}

mod sha2_shim {
    pub fn digest(b: &[u8]) -> String {
        let d = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(d.path(), b).unwrap();
        authnet_core::vision::embed::sha256_file(d.path()).unwrap()
    }
}

fn features(ex: &mut FeatureExtractor, speaker: &str, word: u32, inst: u32) -> UtteranceFeatures {
    ex.extract_dir(&utt(speaker, word, inst), None).unwrap().0
}

/// Issue 3's acceptance test: enrol F02 word 01 from 7 clips (other F02 words and F01 clips as
/// negatives), score 3 held-out genuine clips against held-out other words and F01 clips.
#[test]
fn enrols_f02_word01_and_rejects_others_and_photos() {
    let mut none = extractor(CropMode::None);
    let mut det = extractor(CropMode::Detect);
    let positives: Vec<_> = (1..=7).map(|i| features(&mut none, "F02", 1, i)).collect();
    let held_genuine: Vec<_> = (8..=10).map(|i| features(&mut none, "F02", 1, i)).collect();
    // Same person, other words: words 2..=6 train, 7..=10 are held out.
    let other_train: Vec<_> = (2..=6)
        .flat_map(|w| (1..=5).map(move |i| (w, i)))
        .map(|(w, i)| features(&mut none, "F02", w, i))
        .collect();
    let other_test: Vec<_> = (7..=10)
        .flat_map(|w| (1..=3).map(move |i| (w, i)))
        .map(|(w, i)| features(&mut none, "F02", w, i))
        .collect();
    // Other person: F01 words 1..=5 instances 1..=5 train; instances 6..=10 are held out.
    let mut bank = ImpostorBank::new(
        "mobilefacenet",
        &"0".repeat(64),
        192,
        positives[0].mouth_dim,
    );
    for w in 1..=5 {
        for i in 1..=5 {
            bank.entries.push(BankEntry {
                speaker: "F01".into(),
                word: format!("{w:02}"),
                instance: format!("{i:02}"),
                features: features(&mut det, "F01", w, i),
            });
        }
    }
    let f01_test: Vec<_> = (1..=10)
        .flat_map(|w| (6..=8).map(move |i| (w, i)))
        .map(|(w, i)| features(&mut det, "F01", w, i))
        .collect();

    let input = EnrollInput {
        positives: &positives,
        other_words: &other_train,
        other_word_labels: &[],
        bank: Some(&bank),
    };
    let (model, report) = enroll(&input, &EnrollConfig::default(), &mut |_, _, _| {}).unwrap();
    assert!(report.validation_eer < 0.2, "{report:?}");

    let score = |u: &UtteranceFeatures| model.score(u).unwrap();
    let genuine: Vec<f64> = held_genuine.iter().map(|u| score(u).ranked()).collect();
    let impostor: Vec<f64> = other_test
        .iter()
        .chain(&f01_test)
        .map(|u| score(u).ranked())
        .collect();
    let auc = metrics::auc(&genuine, &impostor).unwrap();
    eprintln!(
        "F02 word 01: AUC {auc:.4}, validation EER {:.4}, thresholds {:?}",
        report.validation_eer,
        model.meta().thresholds
    );
    assert!(auc >= 0.95, "AUC {auc:.3}; genuine {genuine:?}");
    for policy in [ThresholdPolicy::Eer, ThresholdPolicy::Fmr] {
        for u in &held_genuine {
            let s = score(&u.frozen());
            assert!(
                s.veto.is_some() && !model.accepts(&s, policy),
                "frozen accepted: {s:?}"
            );
        }
    }
}
