//! Enrolment rules against the real daemon:
//!
//! - **Authorization**: a non-root peer (`nobody`) enrols and removes only its own model, and
//!   only with its login password, which the daemon checks through PAM. The daemon runs under
//!   pam_wrapper with `pam_matrix` as the `authnet-enroll` service, so the test owns the
//!   password database.
//! - **Quality checks**: a clip without a face and a frozen-frame clip are rejected, with the
//!   reason shown to the client.
//! - **Crash safety**: the daemon is SIGKILLed between staging and committing a re-enrolment
//!   (a debug-build hook, `AUTHNETD_TEST_PAUSE_BEFORE_COMMIT`, holds it in that window); the
//!   previous model is still the one loaded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![deny(unsafe_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use authnet_ipc::{read_frame, write_frame, ErrorKind, Outcome, Request, Response, Secret};
use authnet_tests::{
    as_nobody, assert_error, blank_clip, data, frozen_clip, output_as_nobody, Client, Daemon,
    DaemonConfig,
};

const USER: &str = "nobody";
const PASSWORD: &str = "correct horse";

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// F02 word 01 instances `pos` against F02 words 02..=04, instances 1..=2.
fn f02_clips(pos: std::ops::RangeInclusive<u32>) -> (Vec<String>, Vec<String>) {
    let clips = pos.map(|i| s(&data::word("F02", 1, i))).collect();
    let others = (2..=4)
        .flat_map(|w| (1..=2).map(move |i| s(&data::word("F02", w, i))))
        .collect();
    (clips, others)
}

fn enroll_request(
    user: &str,
    password: Option<&str>,
    clips: &[String],
    others: &[String],
) -> Request {
    Request::Enroll {
        user: user.into(),
        password: password.map(|p| Secret::new(p.into())),
        clips: clips.to_vec(),
        other_word_clips: others.to_vec(),
        other_word_labels: None,
        clip_count: 0,
    }
}

fn remove_request(user: &str, password: Option<&str>) -> Request {
    Request::Remove {
        user: Some(user.into()),
        all: false,
        password: password.map(|p| Secret::new(p.into())),
    }
}

/// A daemon whose `authnet-enroll` PAM service is pam_matrix with `nobody`'s password, in a
/// directory `nobody` can traverse (to reach the socket).
fn pam_daemon(tmp: &tempfile::TempDir) -> Option<Daemon> {
    authnet_tests::require_tool(authnet_tests::pam_matrix())?;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let env = authnet_tests::pam_matrix_env(tmp.path(), "authnet-enroll", &[(USER, PASSWORD)]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Some(Daemon::start_with_env(
        tmp.path(),
        &DaemonConfig::default(),
        &env,
    ))
}

#[cfg_attr(
    authnet_missing_tools,
    ignore = "needs a missing tool: see the build warning"
)]
#[test]
fn non_root_enrols_and_removes_only_itself_and_only_with_its_password() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(d) = pam_daemon(&tmp) else { return };
    let model = d.state.join(USER).join("model.safetensors");
    let (clips, others) = f02_clips(1..=5);

    // Another account: permission_denied, whatever the password.
    let r = as_nobody(&d, &enroll_request("root", Some(PASSWORD), &clips, &others));
    assert_error(&r, ErrorKind::PermissionDenied, "another user");
    // Its own account: no password, or a wrong one, is auth_failed.
    let r = as_nobody(&d, &enroll_request(USER, None, &clips, &others));
    assert_error(&r, ErrorKind::AuthFailed, "login password is needed");
    let r = as_nobody(&d, &enroll_request(USER, Some("wrong"), &clips, &others));
    assert_error(&r, ErrorKind::AuthFailed, "not accepted");
    assert!(!model.exists(), "nothing was enrolled");

    // The right password, through the real CLI (password read from the pipe).
    let mut args = vec!["enroll".to_string()];
    for c in &clips {
        args.extend(["--from".into(), c.clone()]);
    }
    for c in &others {
        args.extend(["--other-word".into(), c.clone()]);
    }
    let out = output_as_nobody(
        Command::new(authnet_tests::binary("authnet-enroll"))
            .args(&args)
            .env("AUTHNET_SOCKET", &d.socket)
            .env("USER", USER),
        &format!("{PASSWORD}\n"),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Enrolled nobody from 5 clips"), "{stdout}");
    assert!(model.is_file());

    // Remove: not root's, not with a wrong password; then with the right one.
    // Remove does not load the model, so any file stands in for root's.
    std::fs::create_dir_all(d.state.join("root")).unwrap();
    std::fs::write(d.state.join("root/model.safetensors"), b"root's model").unwrap();
    let r = as_nobody(&d, &remove_request("root", Some(PASSWORD)));
    assert_error(&r, ErrorKind::PermissionDenied, "another user");
    assert!(d.state.join("root/model.safetensors").is_file());
    let r = as_nobody(&d, &remove_request(USER, Some("wrong")));
    assert_error(&r, ErrorKind::AuthFailed, "not accepted");
    assert!(model.is_file(), "a wrong password removes nothing");
    let r = as_nobody(&d, &remove_request(USER, Some(PASSWORD)));
    assert!(
        matches!(&r, Response::Done { text } if text.contains("removed the model of nobody")),
        "{r:?}"
    );
    assert!(!model.exists());

    // Root needs no password.
    let (_, r) = d.client().call(&remove_request("root", None));
    assert!(matches!(r, Response::Done { .. }), "{r:?}");

    let log = d.log_text();
    assert!(
        !log.contains(PASSWORD),
        "the password is never logged:\n{log}"
    );
    assert!(log.contains("password check for enrol failed"), "{log}");
    assert!(
        log.contains("password accepted by PAM service authnet-enroll"),
        "{log}"
    );
}

#[test]
fn faceless_and_frozen_clips_are_rejected_with_their_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        tmp.path(),
        &DaemonConfig {
            crop: "detect",
            ..Default::default()
        },
    );
    let blank = blank_clip(10, 640, 480, 128, &tmp.path().join("blank"));
    let frozen = frozen_clip(
        &data::word("F01", 1, 6).join("color_005.jpg"),
        10,
        &tmp.path().join("frozen"),
    );
    let others: Vec<String> = (2..=3)
        .flat_map(|w| (1..=2).map(move |i| s(&data::word("F01", w, i))))
        .collect();
    // Enrols root from `good` genuine clips followed by the blank and the frozen one; the
    // info texts shown on the way (one a line) and the final response.
    let enrol_with_bad = |good: u32| -> (String, Response) {
        let mut clips: Vec<String> = (1..=good).map(|i| s(&data::word("F01", 1, i))).collect();
        clips.extend([s(&blank), s(&frozen)]);
        let (interim, r) = d
            .client()
            .call(&enroll_request("root", None, &clips, &others));
        let shown = interim
            .iter()
            .filter_map(|m| match m {
                Response::Info { text } => Some(text.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n");
        (shown, r)
    };

    // Two good clips and two bad ones: too few usable, and the error says why.
    let (shown, r) = enrol_with_bad(2);
    assert!(
        shown.contains(&format!(
            "clip 3 ({}) rejected: no face found: move closer",
            blank.display()
        )),
        "{shown}"
    );
    assert!(
        shown.contains(&format!(
            "clip 4 ({}) rejected: no lip movement detected",
            frozen.display()
        )),
        "{shown}\n{}",
        d.log_text()
    );
    assert_error(
        &r,
        ErrorKind::BadRequest,
        "only 2 of 4 password clips passed",
    );
    assert_error(&r, ErrorKind::BadRequest, "no lip movement detected");
    assert!(!d.state.join("root/model.safetensors").exists());

    // Enough good clips: the bad ones are dropped and enrolment goes on without them.
    let (shown, r) = enrol_with_bad(4);
    assert!(
        shown.contains("rejected: no face found: move closer"),
        "{shown}"
    );
    assert!(
        shown.contains("rejected: no lip movement detected"),
        "{shown}"
    );
    match r {
        Response::Enrolled { summary } => assert_eq!(summary.clips, 4),
        o => panic!("expected enrolled, got {o:?}\n{}", d.log_text()),
    }
    let log = d.log_text();
    assert!(log.contains("reason=no_face"), "{log}");
    assert!(log.contains("reason=no_motion"), "{log}");
}

/// Sends `req` on a fresh connection and reads until the daemon answers or goes away.
fn fire_and_forget(socket: PathBuf, req: Request) -> std::thread::JoinHandle<Option<Response>> {
    std::thread::spawn(move || {
        let mut c = Client::connect(&socket);
        write_frame(&mut c.stream, &req).ok()?;
        loop {
            match read_frame::<_, Response>(&mut c.stream).ok()? {
                Response::Info { .. } | Response::Progress { .. } => {}
                last => return Some(last),
            }
        }
    })
}

fn created(d: &Daemon, user: &str) -> String {
    match d.client().call(&Request::List {
        user: Some(user.into()),
    }) {
        (_, Response::Models { entries }) if entries.len() == 1 => entries[0].created.clone(),
        o => panic!("expected one model, got {o:?}"),
    }
}

#[test]
fn a_crash_while_committing_a_reenrolment_keeps_the_old_model() {
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Daemon::start_with_env(
        tmp.path(),
        &DaemonConfig::default(),
        &[("AUTHNETD_TEST_PAUSE_BEFORE_COMMIT", "60")],
    );
    d.enrol(USER);
    let model = d.state.join(USER).join("model.safetensors");
    let old = std::fs::read(&model).unwrap();
    let old_created = created(&d, USER);

    let (clips, others) = f02_clips(3..=7);
    let pending = fire_and_forget(
        d.socket.clone(),
        enroll_request(USER, None, &clips, &others),
    );
    let t = Instant::now();
    while !d.log_text().contains("pausing 60 s before commit") {
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "the re-enrolment never reached the commit; log:\n{}",
            d.log_text()
        );
        assert!(
            !pending.is_finished(),
            "enrolment ended early; log:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    d.kill();
    assert_eq!(
        pending.join().unwrap(),
        None,
        "the client saw the daemon die"
    );

    // The new model was fully staged beside the old one, which is untouched.
    let staged = d.state.join(USER).join(".model.safetensors.new");
    assert!(
        staged.is_file(),
        "the kill hit the window between staging and commit"
    );
    assert_eq!(std::fs::read(&model).unwrap(), old);

    // After a restart the old model is the one loaded, and it still works.
    d.restart();
    assert_eq!(created(&d, USER), old_created);
    d.camera.play(&data::word("F02", 1, 10));
    assert_eq!(d.authenticate(USER), Outcome::Accept);
}
