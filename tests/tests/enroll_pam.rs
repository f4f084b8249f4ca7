//! Issue 6's end-to-end check: a user enrolled with `authnet-enroll --from` (F02 mouthing word
//! 01, seven clips) is then accepted through the real `pam_authnet.so` under pam_wrapper +
//! pamtester on a held-out genuine clip, and refused (pamtester exits non-zero) on another
//! word, another person, and a frozen frame of a genuine clip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![deny(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use authnet_core::capture::DirSource;
use authnet_core::vision::detect::{crop, DetectOutcome, DetectorConfig, FaceDetector};
use authnet_tests::{data, Daemon, DaemonConfig};

const USER: &str = "nobody";

/// Face crops of a full-frame clip (another person for a `crop = "none"` daemon), cut with
/// the project's own detector into `out`.
fn face_crops(clip: &Path, out: &Path) -> PathBuf {
    std::fs::create_dir_all(out).unwrap();
    let mut det = FaceDetector::load(
        &authnet_tests::models_dir().join("seeta_fd_frontal_v1.0.bin"),
        DetectorConfig::default(),
    )
    .unwrap();
    let frames = DirSource::open(clip).unwrap().read_all().unwrap();
    let mut n = 0;
    for f in &frames {
        if let DetectOutcome::Face(b) = det.detect(f) {
            n += 1;
            crop(f, b)
                .save(out.join(format!("color_{n:03}.png")))
                .unwrap();
        }
    }
    assert!(n >= 4, "only {n} faces found in {}", clip.display());
    out.into()
}

#[cfg_attr(
    authnet_missing_tools,
    ignore = "needs a missing tool: see the build warning"
)]
#[test]
fn enrolled_with_the_cli_then_pam_accepts_the_user_and_refuses_impostors() {
    if let Err(why) = authnet_tests::pam_tools() {
        panic!("PAM tools missing: {why} (make setup installs them)");
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(tmp.path(), &DaemonConfig::default());
    let mut args: Vec<String> = vec!["--user".into(), USER.into()];
    for i in authnet_tests::ENROLL_INSTANCES {
        args.push("--from".into());
        args.push(data::word("F02", 1, i).display().to_string());
    }
    for w in 2..=6 {
        for i in 1..=3 {
            args.push("--other-word".into());
            args.push(data::word("F02", w, i).display().to_string());
        }
    }
    let out = Command::new(authnet_tests::binary("authnet-enroll"))
        .args(&args)
        .env("AUTHNET_SOCKET", &d.socket)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let services = d.pam_service(20);
    let attempt = |clip: &Path| -> bool {
        d.camera.play(clip);
        authnet_tests::run_pamtester(&services, USER)
            .status
            .success()
    };
    let other_person = face_crops(&data::word("F01", 1, 9), &tmp.path().join("f01-crops"));
    let frozen = authnet_tests::frozen_clip(
        &data::word("F02", 1, 9).join("color_004.jpg"),
        8,
        &tmp.path().join("frozen"),
    );
    assert!(
        attempt(&data::word("F02", 1, 9)),
        "held-out genuine clip refused"
    );
    assert!(!attempt(&data::word("F02", 8, 2)), "another word accepted");
    assert!(!attempt(&other_person), "another person accepted");
    assert!(!attempt(&frozen), "frozen frame accepted");
}
