//! Opt-in snapshots of failed attempts, through the real daemon and its `dir:` camera playing
//! recorded MIRACL-VC1 clips: rejected attempts write root-only JPEG files, accepted and
//! "unavailable" ones write none, and retention keeps the newest `snapshot_keep`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![deny(unsafe_code)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use authnet_ipc::{Outcome, Request, Response, UnavailableReason};
use authnet_tests::{blank_clip, data, Daemon, DaemonConfig};

const USER: &str = "nobody";

fn snapshots(state: &Path) -> Vec<PathBuf> {
    let dir = state.join("snapshots");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd.map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

fn reset_throttle(d: &Daemon) {
    let (_, r) = d
        .client()
        .call(&Request::ResetThrottle { user: USER.into() });
    assert!(matches!(r, Response::Done { .. }), "{r:?}");
}

#[test]
fn rejected_attempts_leave_root_only_snapshots_within_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        tmp.path(),
        &DaemonConfig {
            extra: "snapshots = true\nsnapshot_keep = 4\n".into(),
            ..Default::default()
        },
    );
    d.enrol(USER);

    d.camera.play(&data::word("F02", 1, 8));
    assert_eq!(d.authenticate(USER), Outcome::Accept);
    assert!(
        snapshots(&d.state).is_empty(),
        "a genuine attempt writes none"
    );

    // An impostor: the same person mouthing another word.
    d.camera.play(&data::word("F02", 2, 8));
    assert_eq!(d.authenticate(USER), Outcome::Reject);
    let first = snapshots(&d.state);
    assert_eq!(first.len(), 3, "{first:?}");
    let dir = d.state.join("snapshots");
    assert_eq!(
        std::fs::symlink_metadata(&dir).unwrap().mode() & 0o777,
        0o700
    );
    for p in &first {
        let md = std::fs::symlink_metadata(p).unwrap();
        assert!(md.is_file());
        assert_eq!(md.mode() & 0o777, 0o600, "{}", p.display());
        assert_eq!(md.uid(), 0);
        let name = p.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("snap-") && name.ends_with(".jpg") && name.contains(USER));
        let img = authnet_core::image::open(p).unwrap();
        assert!(img.width() > 0 && img.height() > 0);
    }

    // A second reject: six written, the oldest two removed.
    reset_throttle(&d);
    d.camera.play(&data::word("F02", 3, 8));
    assert_eq!(d.authenticate(USER), Outcome::Reject);
    let second = snapshots(&d.state);
    assert_eq!(second.len(), 4, "{second:?}");
    assert!(!second.contains(&first[0]) && !second.contains(&first[1]));
    assert!(second.contains(&first[2]));

    // Unavailable (too dark) is not a failed face: nothing new.
    let dark = blank_clip(10, 640, 480, 5, &tmp.path().join("dark"));
    d.camera.play(&dark);
    assert_eq!(
        d.authenticate(USER),
        Outcome::Unavailable {
            reason: UnavailableReason::TooDark
        }
    );
    assert_eq!(snapshots(&d.state), second);
    let log = d.log_text();
    assert!(
        log.contains("snapshot of the failed attempt: 3 frames"),
        "{log}"
    );
    assert!(log.contains("frames dark (mean luma < 25)"), "{log}");
}

#[test]
fn snapshots_are_off_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(tmp.path(), &DaemonConfig::default());
    d.enrol(USER);
    d.camera.play(&data::word("F02", 2, 8));
    assert_eq!(d.authenticate(USER), Outcome::Reject);
    assert!(!d.state.join("snapshots").exists());
}
