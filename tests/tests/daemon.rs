//! The real `authnetd` on a temporary socket and state directory, fed recorded MIRACL-VC1
//! frames through its `dir:` camera, driven over its socket.
//!
//! The model owner is `nobody` (an account that exists everywhere); the tests run as root, who
//! may ask about any user. The model is trained at test time from F02 word-01 clips 1–7;
//! clips 8–10 are held out.
//!
//! F01 clips are full 640×480 frames with a small face, so they are played to a daemon with
//! `crop = "detect"`: that is how a real camera feeds it, and a `crop = "none"` daemon would
//! embed the whole room as if it were a face, which proves nothing about a different person.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![deny(unsafe_code)]

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use authnet_ipc::{ErrorKind, Outcome, Request, Response, UnavailableReason as U};
use authnet_tests::{
    as_nobody, assert_error, auth_request, blank_clip, data, frozen_clip, Client, Daemon,
    DaemonConfig,
};

const USER: &str = "nobody";

fn unavailable(reason: U) -> Outcome {
    Outcome::Unavailable { reason }
}

fn reset_throttle(d: &Daemon, user: &str) {
    let (_, r) = d
        .client()
        .call(&Request::ResetThrottle { user: user.into() });
    assert!(matches!(r, Response::Done { .. }), "{r:?}");
}

fn test_request(d: &Daemon, user: &str) -> (Outcome, Option<f64>) {
    let (interim, last) = d.client().call(&Request::Test { user: user.into() });
    match last {
        Response::TestResult { outcome, score } => {
            if score.is_some() {
                assert!(
                    interim.iter().any(|m| matches!(m, Response::Info { .. })),
                    "the user is prompted before the camera runs"
                );
            }
            (outcome, score)
        }
        o => panic!("expected test_result, got {o:?}"),
    }
}

#[test]
fn genuine_is_accepted_and_impostors_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(tmp.path(), &DaemonConfig::default());
    d.enrol(USER);

    for i in 8..=10 {
        d.camera.play(&data::word("F02", 1, i));
        assert_eq!(d.authenticate(USER), Outcome::Accept, "held-out clip {i}");
    }
    let (outcome, score) = test_request(&d, USER);
    assert_eq!(outcome, Outcome::Accept);
    assert!(score.is_some_and(f64::is_finite), "root sees the score");

    // The same person mouthing every other word.
    for w in 2..=10 {
        reset_throttle(&d, USER);
        d.camera.play(&data::word("F02", w, 8));
        assert_eq!(d.authenticate(USER), Outcome::Reject, "F02 word {w}");
    }

    // A photo: one genuine frame repeated.
    reset_throttle(&d, USER);
    let frozen = frozen_clip(
        &data::word("F02", 1, 9).join("color_004.jpg"),
        7,
        &tmp.path().join("frozen"),
    );
    d.camera.play(&frozen);
    assert_eq!(d.authenticate(USER), Outcome::Reject, "frozen frame");

    let log = d.log_text();
    assert!(
        log.contains("user=nobody service=authnet-test uid=0 decision=accept"),
        "{log}"
    );
    assert!(log.contains("decision=reject"), "{log}");
}

#[test]
fn another_person_and_no_face_with_detection() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        tmp.path(),
        &DaemonConfig {
            crop: "detect",
            auth_timeout: 8.0,
            ..Default::default()
        },
    );
    d.enrol(USER);
    for i in [1, 5] {
        reset_throttle(&d, USER);
        d.camera.play(&data::word("F01", 1, i));
        assert_eq!(
            d.authenticate(USER),
            Outcome::Reject,
            "F01 word 01 clip {i}"
        );
    }

    let blank = blank_clip(10, 640, 480, 128, &tmp.path().join("blank"));
    d.camera.play(&blank);
    let t = Instant::now();
    assert_eq!(d.authenticate(USER), unavailable(U::NoFace));
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "answered within auth_timeout"
    );

    let dark = blank_clip(10, 640, 480, 5, &tmp.path().join("dark"));
    d.camera.play(&dark);
    assert_eq!(d.authenticate(USER), unavailable(U::TooDark));
}

#[test]
fn users_that_cannot_use_the_face_path_are_answered_fast() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(tmp.path(), &DaemonConfig::default());
    d.camera.play(&data::word("F02", 1, 8));

    let t = Instant::now();
    assert_eq!(d.authenticate("root"), unavailable(U::NotEnrolled));
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());

    let (_, r) = d.client().call(&auth_request("no-such-user-authnet"));
    assert_error(&r, ErrorKind::UnknownUser, "");
    let (_, r) = d.client().call(&auth_request("../etc"));
    assert_error(&r, ErrorKind::InvalidUserName, "");

    d.enrol(USER);
    let (_, r) = d.client().call(&Request::Authenticate {
        user: USER.into(),
        service: "sshd".into(),
        rhost: Some("203.0.113.7".into()),
        tty: Some("ssh".into()),
    });
    assert_eq!(
        r,
        Response::Result {
            outcome: unavailable(U::RemoteSession)
        }
    );
}

#[test]
fn corrupt_model_is_unavailable_and_logged() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(tmp.path(), &DaemonConfig::default());
    d.enrol(USER);
    let p = d.state.join(USER).join("model.safetensors");
    let mut bytes = std::fs::read(&p).unwrap();
    let n = bytes.len();
    bytes.truncate(n / 2);
    std::fs::write(&p, &bytes).unwrap();
    d.camera.play(&data::word("F02", 1, 8));
    assert_eq!(d.authenticate(USER), unavailable(U::ModelError));
    let log = d.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("user=nobody model") && l.contains("unusable")),
        "{log}"
    );
}

#[test]
fn a_model_of_the_other_feature_layout_is_refused_at_load_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(tmp.path(), &DaemonConfig::default());
    // A model enrolled in the default (mesh) layout.
    d.enrol(USER);
    d.camera.play(&data::word("F02", 1, 8));
    assert_eq!(d.authenticate(USER), Outcome::Accept);
    // The admin switches the daemon to the box layout without re-enrolling.
    let mut cfg = std::fs::read_to_string(&d.config).unwrap();
    assert!(!cfg.contains("feature_layout"));
    cfg.insert_str(0, "feature_layout = \"box\"\n");
    std::fs::write(&d.config, cfg).unwrap();
    d.restart();
    assert_eq!(d.authenticate(USER), unavailable(U::ModelError));
    let log = d.log_text();
    assert!(
        log.lines().any(|l| l.contains("user=nobody model")
            && l.contains("(mesh feature layout)")
            && l.contains("enrol again")),
        "{log}"
    );
}

#[test]
fn non_root_peers_may_only_ask_about_themselves() {
    let tmp = tempfile::tempdir().unwrap();
    // nobody must be able to reach the socket; access control is SO_PEERCRED, not the path.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = Daemon::start(tmp.path(), &DaemonConfig::default());
    d.enrol(USER);
    d.enrol("root");
    d.camera.play(&data::word("F02", 1, 8));

    for req in [
        auth_request("root"),
        Request::Test {
            user: "root".into(),
        },
        Request::ResetThrottle { user: USER.into() },
        Request::Remove {
            user: Some("root".into()),
            all: false,
            password: None,
        },
    ] {
        assert_error(&as_nobody(&d, &req), ErrorKind::PermissionDenied, "");
    }

    // Its own account is fine, and so is listing its own model.
    let r = as_nobody(&d, &auth_request(USER));
    assert_eq!(
        r,
        Response::Result {
            outcome: Outcome::Accept
        }
    );
    let r = as_nobody(&d, &Request::List { user: None });
    match r {
        Response::Models { entries } => {
            assert_eq!(entries.len(), 1);
            assert_eq!(entries[0].user, USER);
        }
        o => panic!("{o:?}"),
    }
    // Root sees everyone, and may remove.
    let (_, r) = d.client().call(&Request::List { user: None });
    assert!(
        matches!(&r, Response::Models { entries } if entries.len() == 2),
        "{r:?}"
    );
    let (_, r) = d.client().call(&Request::Remove {
        user: Some("root".into()),
        all: false,
        password: None,
    });
    assert!(matches!(r, Response::Done { .. }), "{r:?}");
    assert_eq!(d.authenticate("root"), unavailable(U::NotEnrolled));
}

#[test]
fn throttling_after_failures_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(tmp.path(), &DaemonConfig::default());
    d.enrol(USER);
    d.camera.play(&data::word("F02", 2, 9));
    for i in 1..=5 {
        assert_eq!(d.authenticate(USER), Outcome::Reject, "failure {i}");
    }
    // The sixth consecutive attempt is refused before the camera runs, genuine or not.
    d.camera.play(&data::word("F02", 1, 8));
    assert_eq!(d.authenticate(USER), unavailable(U::Throttled));

    d.restart();
    assert_eq!(d.authenticate(USER), unavailable(U::Throttled));
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.state.join(USER).join("throttle.json")).unwrap())
            .unwrap();
    assert_eq!(st["consecutive_failures"], 5);

    reset_throttle(&d, USER);
    assert_eq!(d.authenticate(USER), Outcome::Accept);
}

/// `max_tries` is the one retry budget (issue 13), and no way around the throttle (issue 15):
/// every rejected clip of one attempt counts as a failure, and the retries stop once the
/// throttle would refuse the next attempt.
#[test]
fn every_retried_clip_counts_in_the_throttle() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        tmp.path(),
        &DaemonConfig {
            extra: "max_tries = 3\n".into(),
            ..DaemonConfig::default()
        },
    );
    d.enrol(USER);
    d.camera.play(&data::word("F02", 2, 9));
    let failures = || -> serde_json::Value {
        serde_json::from_slice::<serde_json::Value>(
            &std::fs::read(d.state.join(USER).join("throttle.json")).unwrap(),
        )
        .unwrap()["consecutive_failures"]
            .clone()
    };
    assert_eq!(d.authenticate(USER), Outcome::Reject);
    assert_eq!(failures(), 3, "three clips, three failures");
    // Two more clips reach the delay (failures_before_delay = 5): the third is not captured.
    assert_eq!(d.authenticate(USER), Outcome::Reject);
    assert_eq!(failures(), 5);
    assert_eq!(d.authenticate(USER), unavailable(U::Throttled));
    assert_eq!(failures(), 5);
}

#[test]
fn fifty_concurrent_clients_are_all_answered() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        tmp.path(),
        &DaemonConfig {
            fps: 1000,
            camera_wait: 60.0,
            auth_timeout: 60.0,
            ..Default::default()
        },
    );
    d.enrol(USER);
    d.enrol("root");
    d.camera.play(&data::word("F02", 3, 8));
    let socket = d.socket.clone();
    let threads: Vec<_> = (0..50)
        .map(|i| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let user = if i % 2 == 0 { USER } else { "root" };
                Client::connect(&socket).authenticate(user)
            })
        })
        .collect();
    let outcomes: Vec<Outcome> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(outcomes.len(), 50);
    assert!(!outcomes.contains(&Outcome::Accept), "{outcomes:?}");
    let rejects = outcomes.iter().filter(|o| **o == Outcome::Reject).count();
    // One attempt per user is in flight at a time (issue 16: a queued attempt could capture
    // the victim's face), so each user's first attempt is decided and concurrent ones are told
    // the camera is busy at once; each user is throttled after 5 failures.
    assert!(
        (2..=10).contains(&rejects),
        "{rejects} rejects: {outcomes:?}"
    );
    assert!(
        outcomes.iter().all(|o| matches!(
            o,
            Outcome::Reject
                | Outcome::Unavailable {
                    reason: U::Throttled | U::CameraBusy
                }
        )),
        "{outcomes:?}"
    );
}

#[test]
fn bad_clients_do_not_stop_the_daemon() {
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(tmp.path(), &DaemonConfig::default());
    d.enrol(USER);
    d.camera.play(&data::word("F02", 1, 8));

    // Raw bytes the daemon must answer with bad_request (and then close the connection).
    let bad_request_for = |bytes: &[u8]| {
        let mut s = UnixStream::connect(&d.socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(bytes).unwrap();
        let r: Response = authnet_ipc::read_frame(&mut s).unwrap();
        assert_error(&r, ErrorKind::BadRequest, "");
    };
    // Garbage.
    bad_request_for(b"\x00\x00\x00\x05hello");
    // Oversized length prefix: refused without reading 4 GiB.
    bad_request_for(&[0xff, 0xff, 0xff, 0xff, b'{']);

    // Requests before hello are refused.
    let mut s = UnixStream::connect(&d.socket).unwrap();
    authnet_ipc::write_frame(&mut s, &auth_request(USER)).unwrap();
    let r: Response = authnet_ipc::read_frame(&mut s).unwrap();
    assert_error(&r, ErrorKind::BadRequest, "");

    // A slow client: one byte a second of a valid hello.
    let sock = d.socket.clone();
    let slow = std::thread::spawn(move || {
        let frame = authnet_ipc::encode_frame(&Request::Hello {
            protocol_version: 1,
        })
        .unwrap();
        let mut s = UnixStream::connect(&sock).unwrap();
        let t = Instant::now();
        for b in frame {
            if s.write_all(&[b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        let mut buf = [0u8; 64];
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = s.read(&mut buf).unwrap_or(0);
        (t.elapsed(), n)
    });
    std::thread::sleep(Duration::from_millis(300));
    // Meanwhile others are served.
    let t = Instant::now();
    assert_eq!(d.authenticate(USER), Outcome::Accept);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let (held, n) = slow.join().unwrap();
    assert_eq!(n, 0, "the slow client is cut off, not answered");
    assert!(held < Duration::from_secs(20), "{held:?}");

    // A client that disconnects mid-attempt, and one that cancels.
    let mut c = d.client();
    c.send(&auth_request(USER));
    drop(c);
    // The dropped client's attempt holds the user's one attempt slot until the daemon sees the
    // peer gone; until then a new attempt is told the camera is busy. It must be freed soon.
    let freed_by = Instant::now() + Duration::from_secs(10);
    let last = loop {
        let mut c = d.client();
        c.send(&auth_request(USER));
        c.send(&Request::Cancel {});
        let mut last = c.recv();
        while matches!(last, Response::Info { .. }) {
            last = c.recv();
        }
        let busy = Response::Result {
            outcome: unavailable(U::CameraBusy),
        };
        if last == busy && Instant::now() < freed_by {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        break last;
    };
    assert_eq!(
        last,
        Response::Result {
            outcome: unavailable(U::Cancelled)
        }
    );
    assert!(d.alive());
    assert_eq!(d.authenticate(USER), Outcome::Accept);
}

#[test]
fn bad_configs_fail_to_start_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    for (text, key) in [
        ("camera_source = \"dir:/x\"\n", "camera_source"),
        ("[camera]\nfps = 0\n", "camera.fps"),
        ("threshold_policy = \"far\"\n", "threshold_policy"),
        ("word_model = \"encoded\"\n", "pretrained_model"),
        ("word_model = \"svm\"\n", "word_model"),
        ("[throttle]\nbase_delay = \"soon\"\n", "base_delay"),
    ] {
        let p = tmp.path().join("bad.toml");
        std::fs::write(&p, text).unwrap();
        let out = Command::new(authnet_tests::binary("authnetd"))
            .arg("--config")
            .arg(&p)
            .arg("--log-stderr")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{text}: {err}");
    }
}

#[test]
fn a_pretrained_model_is_read_only_by_the_word_models_that_use_it() {
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("words.pretrained");
    std::fs::write(&junk, b"not a pretrained model").unwrap();
    let pre = format!("pretrained_model = \"{}\"\n", junk.display());
    // The default word model, the ridge, does not read it: the daemon starts, says so and
    // still answers.
    let mut d = Daemon::start(
        tmp.path(),
        &DaemonConfig {
            extra: pre.clone(),
            ..Default::default()
        },
    );
    d.enrol(USER);
    d.camera.play(&data::word("F02", 1, 10));
    assert_eq!(d.authenticate(USER), Outcome::Accept);
    let log = d.log_text();
    assert!(
        log.contains("is not loaded: word_model = linear does not use it"),
        "{log}"
    );
    d.kill();
    // A word model that fine-tunes from it refuses to start on a broken file, naming it.
    for word in ["lstm", "ensemble", "encoded"] {
        let camera = authnet_tests::Camera::new(&tmp.path().join("camera"));
        let config = authnet_tests::write_config(
            tmp.path(),
            &DaemonConfig {
                extra: format!("{pre}word_model = \"{word}\"\n"),
                ..Default::default()
            },
            &camera,
        );
        let out = Command::new(authnet_tests::binary("authnetd"))
            .arg("--config")
            .arg(&config)
            .arg("--log-stderr")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{word}: {err}");
        assert!(err.contains("words.pretrained"), "{word}: {err}");
    }
}

#[test]
fn enrol_from_clips_over_the_socket() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(tmp.path(), &DaemonConfig::default());
    let s = |p: std::path::PathBuf| p.display().to_string();
    let clips: Vec<String> = authnet_tests::ENROLL_INSTANCES
        .map(|i| s(data::word("F02", 1, i)))
        .collect();
    let others: Vec<String> = (2..=10)
        .flat_map(|w| (1..=3).map(move |i| s(data::word("F02", w, i))))
        .collect();
    let (interim, last) = d.client().call(&Request::Enroll {
        user: USER.into(),
        password: None,
        clips,
        other_word_clips: others,
        other_word_labels: None,
        clip_count: 0,
    });
    assert!(
        interim
            .iter()
            .any(|m| matches!(m, Response::Progress { stage, .. } if stage == "features")),
        "{interim:?}"
    );
    match last {
        Response::Enrolled { summary } => {
            assert_eq!(summary.clips, 7);
            assert_eq!(summary.threshold_policy, "fmr");
            assert!(summary.margin > 0.0, "{summary:?}");
        }
        o => panic!("{o:?}"),
    }
    assert!(d.state.join(USER).join("model.safetensors").is_file());
    d.camera.play(&data::word("F02", 1, 10));
    assert_eq!(d.authenticate(USER), Outcome::Accept);
    d.camera.play(&data::word("F02", 4, 10));
    assert_eq!(d.authenticate(USER), Outcome::Reject);

    // Relative paths and live-camera enrolment are refused.
    let (_, r) = d.client().call(&Request::Enroll {
        user: USER.into(),
        password: None,
        clips: vec!["relative/clip".into()],
        other_word_clips: vec![],
        other_word_labels: None,
        clip_count: 0,
    });
    assert_error(&r, ErrorKind::BadRequest, "");
    // Other-word labels come one per clip, or not at all.
    let (_, r) = d.client().call(&Request::Enroll {
        user: USER.into(),
        password: None,
        clips: vec![s(data::word("F02", 1, 1))],
        other_word_clips: vec![s(data::word("F02", 2, 1)), s(data::word("F02", 2, 2))],
        other_word_labels: Some(vec!["w02".into()]),
        clip_count: 0,
    });
    assert_error(
        &r,
        ErrorKind::BadRequest,
        "1 other-word labels for 2 other-word clips",
    );
}

#[cfg_attr(
    authnet_missing_tools,
    ignore = "needs a missing tool: see the build warning"
)]
#[test]
fn socket_activation_uses_the_passed_socket() {
    let Some(_) = authnet_tests::require_tool(authnet_tests::tool_at(
        "/usr/bin/systemd-socket-activate",
        "systemd",
    )) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let camera = authnet_tests::Camera::new(&tmp.path().join("camera"));
    let config = authnet_tests::write_config(tmp.path(), &DaemonConfig::default(), &camera);
    let activated = tmp.path().join("activated.sock");
    let mut child = Command::new("/usr/bin/systemd-socket-activate")
        .arg("-l")
        .arg(&activated)
        .arg(authnet_tests::binary("authnetd"))
        .arg("--config")
        .arg(&config)
        .arg("--log-stderr")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !activated.exists() {
        assert!(t.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(10));
    }
    // The first connection starts the daemon, which serves it on fd 3.
    let mut c = Client::connect(&activated);
    assert_eq!(c.authenticate("root"), unavailable(U::NotEnrolled));
    assert!(
        !tmp.path().join("authnetd.sock").exists(),
        "the configured socket is not bound under activation"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn one_camera_busy_and_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    // 2 fps: a 7-frame clip needs 3.5 s, longer than the 2 s budget.
    let d = Daemon::start(
        tmp.path(),
        &DaemonConfig {
            fps: 2,
            auth_timeout: 2.0,
            camera_wait: 0.3,
            ..Default::default()
        },
    );
    d.enrol(USER);
    d.camera.play(&data::word("F02", 1, 8));
    let socket = d.socket.clone();
    let first = std::thread::spawn(move || Client::connect(&socket).authenticate(USER));
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    assert_eq!(d.authenticate(USER), unavailable(U::CameraBusy));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(first.join().unwrap(), unavailable(U::Timeout));
    // The camera was released: the next attempt gets it (and times out the same way).
    assert_eq!(d.authenticate(USER), unavailable(U::Timeout));
}
