//! The `authnet-eval` command line on real MIRACL-VC1 frames: the `features` contract, clear
//! errors for unreadable frames, and a reduced `run` whose report is complete, bounded and
//! deterministic for a seed whatever the thread count.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![deny(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use authnet_core::testdata;

fn eval(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_authnet-eval"))
        .args(args)
        .env("AUTHNET_MODELS_DIR", testdata::repo_root().join("models"))
        .env(
            "AUTHNET_ORT_LIB",
            testdata::repo_pipeline(authnet_core::vision::CropMode::None).ort_lib,
        )
        .output()
        .expect("authnet-eval runs")
}

/// `eval`, required to succeed (its stderr otherwise); its stdout.
fn eval_ok(args: &[&str]) -> String {
    let out = eval(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn data(p: &str) -> PathBuf {
    testdata::miracl().expect("MIRACL-VC1 data present").join(p)
}

#[test]
fn features_json_contract_on_f02_crops() {
    let dir = data("faces/F02/words/01/01");
    let out = eval_ok(&[
        "features",
        dir.to_str().unwrap(),
        "--crop",
        "none",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["timesteps"], 20);
    assert_eq!(v["frames"], v["faces_found"]);
    assert!(v["frames"].as_u64().unwrap() >= 4);
    assert_eq!(v["backbone"], "mobilefacenet");
    assert_eq!(
        v["dim"].as_u64().unwrap(),
        192 + v["mouth_dim"].as_u64().unwrap()
    );
}

#[test]
fn features_detects_faces_in_f01_frames() {
    let dir = data("faces/F01/words/02/03");
    let out = eval_ok(&["features", dir.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["faces_found"], v["frames"]);
}

#[test]
fn unreadable_frame_fails_naming_the_file() {
    let d = tempfile::tempdir().unwrap();
    let src = data("faces/F02/words/01/01/color_001.jpg");
    std::fs::copy(&src, d.path().join("color_001.jpg")).unwrap();
    std::fs::write(d.path().join("color_002.jpg"), b"\xFF\xD8\xFF not a jpeg").unwrap();
    let out = eval(&[
        "features",
        d.path().to_str().unwrap(),
        "--crop",
        "none",
        "--json",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("color_002.jpg"), "{err}");
    // An empty folder is an error too.
    let e = tempfile::tempdir().unwrap();
    let out = eval(&["features", e.path().to_str().unwrap(), "--json"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no image frames"));
}

/// The report's rates: every one in `[0, 1]`.
const RATES: &[&str] = &[
    "eer",
    "auc",
    "accuracy",
    "sensitivity",
    "specificity",
    "far",
    "frr",
    "fmr_at_threshold",
    "fnmr_at_threshold",
    "photo_attack_accept_rate",
];

/// The report's other keys.
const OTHER_KEYS: &[&str] = &[
    "targets",
    "threshold_policy",
    "specificity_by_impostor",
    "face_only_baseline",
    "motion_only",
    "train_seconds_mean",
    "score_ms_mean",
    "backbone",
    "seed",
];

fn reduced_run(cache: &Path, report: &Path, threads: &str) -> serde_json::Value {
    let lips = data("lips");
    eval_ok(&[
        "run",
        "--dataset",
        lips.to_str().unwrap(),
        "--modality",
        "lips",
        "--speakers",
        "F01,F02,F05",
        "--unseen-speakers",
        "F05",
        "--heldout-words",
        "3",
        "--max-targets",
        "3",
        "--seed",
        "7",
        "--threads",
        threads,
        "--cache",
        cache.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap()
}

#[test]
fn reduced_run_is_complete_bounded_and_deterministic() {
    let d = tempfile::tempdir().unwrap();
    let a = reduced_run(&d.path().join("cache"), &d.path().join("a.json"), "1");
    for k in RATES.iter().chain(OTHER_KEYS) {
        assert!(!a[k].is_null(), "missing key {k}");
    }
    for k in [
        "same_person_different_word",
        "different_person_same_word",
        "different_person_different_word",
    ] {
        let v = a["specificity_by_impostor"][k].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{k} = {v}");
    }
    for k in RATES {
        let v = a[k].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{k} = {v}");
    }
    for k in ["face_only_baseline", "motion_only"] {
        for m in ["eer", "auc"] {
            assert!((0.0..=1.0).contains(&a[k][m].as_f64().unwrap()));
        }
    }
    assert_eq!(a["targets"], 3);
    assert_eq!(a["photo_attack_accept_rate"], 0.0);
    // Same seed, another thread count (and a warm cache): identical results but for timings.
    let mut b = reduced_run(&d.path().join("cache"), &d.path().join("b.json"), "2");
    let mut a = a;
    for v in [&mut a, &mut b] {
        v["train_seconds_mean"] = serde_json::Value::Null;
        v["score_ms_mean"] = serde_json::Value::Null;
    }
    assert_eq!(a, b);
}

/// `authnet-eval <command> --dataset <corpus> --crop mouth <extra> --out <dir>/<out>` on a
/// small corpus of links into the real data under `dir` (2 speakers x 2 words x 10 instances
/// of mouth crops); its stdout and the output path.
fn on_small_corpus(command: &str, dir: &Path, extra: &[&str], out: &str) -> (String, PathBuf) {
    let corpus = dir.join("corpus");
    for spk in ["F01", "M01"] {
        let words = corpus.join(spk).join("words");
        std::fs::create_dir_all(&words).unwrap();
        for w in ["01", "02"] {
            std::os::unix::fs::symlink(data(&format!("lips/{spk}/words/{w}")), words.join(w))
                .unwrap();
        }
    }
    let out = dir.join(out);
    let mut args = vec![
        command,
        "--dataset",
        corpus.to_str().unwrap(),
        "--crop",
        "mouth",
    ];
    args.extend_from_slice(extra);
    args.extend(["--out", out.to_str().unwrap()]);
    (eval_ok(&args), out)
}

#[test]
fn bank_builds_from_a_dataset_and_loads_for_its_backbone_only() {
    use authnet_core::model::bank::{BankError, ImpostorBank};
    let d = tempfile::tempdir().unwrap();
    let (stdout, out) = on_small_corpus("bank", d.path(), &[], "imp.bank");
    assert!(stdout.contains("40 utterances of 2 speakers"), "{stdout}");
    let bank = ImpostorBank::load(&out, "mobilefacenet", 192).unwrap();
    assert_eq!(bank.entries.len(), 40);
    assert!(matches!(
        ImpostorBank::load(&out, "vggface", 2622),
        Err(BankError::BackboneMismatch { .. })
    ));
}

#[test]
fn pretrain_writes_a_model_that_loads_for_its_pipeline_only() {
    use authnet_core::features::FeatureLayout;
    use authnet_core::model::pretrained::{Expect, PretrainedError, PretrainedLstm};
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("cache");
    // 4 speaker x word classes.
    let (stdout, out) = on_small_corpus(
        "pretrain",
        d.path(),
        &["--cache", cache.to_str().unwrap()],
        "words.pretrained",
    );
    assert!(stdout.contains("2 speakers, 4 classes"), "{stdout}");
    let bytes = std::fs::read(&out).unwrap();
    let m = PretrainedLstm::from_bytes(&bytes).unwrap();
    assert_eq!(m.training.classes, 4);
    assert_eq!(m.backbone, "mobilefacenet");
    let sha = m.backbone_sha256.clone();
    let expect = Expect {
        backbone: "mobilefacenet",
        backbone_sha256: &sha,
        feature_layout: FeatureLayout::Mesh, // authnet-eval's default layout
        identity_dim: m.identity_dim,
        mouth_dim: m.mouth_dim,
    };
    assert!(PretrainedLstm::load(&out, &expect).is_ok());
    assert!(matches!(
        PretrainedLstm::load(
            &out,
            &Expect {
                backbone: "vggface",
                ..expect
            }
        ),
        Err(PretrainedError::Mismatch { .. })
    ));
}

#[test]
fn a_mesh_gain_scale_needs_two_non_negative_factors() {
    let d = tempfile::tempdir().unwrap();
    let report = d.path().join("r.json");
    let faces = data("faces");
    for bad in ["1", "1,2,3", "-1,1", "nan,1"] {
        let arg = format!("--mesh-gain-scale={bad}");
        let out = eval(&[
            "run",
            "--dataset",
            faces.to_str().unwrap(),
            "--modality",
            "face",
            &arg,
            "--report",
            report.to_str().unwrap(),
        ]);
        assert!(!out.status.success(), "{bad} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--mesh-gain-scale"), "{bad}: {err}");
        assert!(!report.exists(), "{bad}: a report was written");
    }
}
