//! Video files wherever a frame folder is accepted: `authnet-enroll --from clip.mp4` enrols, and
//! the daemon's recorded-frames camera plays an mp4 clip for `test`. The videos are encoded from
//! real MIRACL-VC1 F02 frames at test time, into a temporary directory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![deny(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use authnet_core::capture::DirSource;
use authnet_core::image::{imageops, RgbImage};
use authnet_tests::{data, Daemon, DaemonConfig};

#[path = "../../authnet-core/tests/support/encode.rs"]
mod encode_support;
use encode_support::{encode, mp4_encoder, Clip};

/// `clip` (a frame folder) as an mp4 in `dir`, frames resized to 84×84 (F02 crops vary).
fn mp4(clip: &Path, dir: &Path, name: &str) -> PathBuf {
    let frames: Vec<RgbImage> = DirSource::open(clip)
        .unwrap()
        .allow_mixed_sizes()
        .read_all()
        .unwrap()
        .iter()
        .map(|f| imageops::resize(&f.to_image(), 84, 84, imageops::FilterType::Triangle))
        .collect();
    let path = dir.join(format!("{name}.mp4"));
    encode(&frames, &path, Clip::new(mp4_encoder()));
    path
}

fn enroll_cli(socket: &Path, args: &[String]) -> std::process::Output {
    Command::new(authnet_tests::binary("authnet-enroll"))
        .args(args)
        .env("AUTHNET_SOCKET", socket)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn enrol_from_mp4_files_and_test_with_an_mp4_camera_clip() {
    let tmp = tempfile::tempdir().unwrap();
    let videos = tmp.path().join("videos");
    std::fs::create_dir_all(&videos).unwrap();
    let d = Daemon::start(tmp.path(), &DaemonConfig::default());
    let mut args: Vec<String> = vec!["--user".into(), "nobody".into()];
    for i in authnet_tests::ENROLL_INSTANCES {
        args.push("--from".into());
        args.push(
            mp4(&data::word("F02", 1, i), &videos, &format!("w01-{i}"))
                .display()
                .to_string(),
        );
    }
    for w in 2..=6 {
        for i in 1..=3 {
            args.push("--other-word".into());
            args.push(
                mp4(&data::word("F02", w, i), &videos, &format!("w{w:02}-{i}"))
                    .display()
                    .to_string(),
            );
        }
    }
    let out = enroll_cli(&d.socket, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let test = || {
        let args = ["test".to_string(), "--user".into(), "nobody".into()];
        enroll_cli(&d.socket, &args).status.code()
    };
    d.camera
        .play(&mp4(&data::word("F02", 1, 9), &videos, "held-out"));
    assert_eq!(test(), Some(0), "held-out genuine mp4 refused");
    d.camera
        .play(&mp4(&data::word("F02", 5, 2), &videos, "other-word"));
    assert_eq!(test(), Some(1), "another word accepted");

    // Not a video: a clear refusal naming the file.
    let bogus = videos.join("notes.mp4");
    std::fs::write(&bogus, "not a video").unwrap();
    let mut bad = args.clone();
    bad[3] = bogus.display().to_string();
    let out = enroll_cli(&d.socket, &bad);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("notes.mp4"), "{err}");
}
