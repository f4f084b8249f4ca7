//! Live-camera enrolment against the real daemon, its camera being the `dir:` camera.
//!
//! The test plays the user in front of the camera: it reads the daemon's prompts as they
//! arrive and, on each one, switches the camera to the matching MIRACL-VC1 clip. There is no
//! race: the daemon counts down ("3", "2", "1", 0.3 s apart) *after* a prompt and opens the clip
//! only then, re-reading the camera's `current` file, so a switch made on seeing the prompt is
//! always the clip recorded.
//!
//! - **Enrol, retake, authenticate**: `authnet-enroll --user nobody` (the real client, its
//!   `info` lines read from stderr; the default 7 clips, since 5 clips against 3 other words
//!   gave a model that refused the held-out instance 9); clip 1 is first a frozen frame, refused with "no lip movement"
//!   and retaken; password clip k is F02 word 01 instance k, round r of other word i (river,
//!   window, orange, pencil) is F02 word 03+i instance r.
//!   The model then accepts the held-out instance 9 and rejects word 05.
//! - **Rounds**: `enroll_other_word_rounds = 1` records each other word once, labelled.
//! - **Retakes run out**: a clip frozen on every take fails the enrolment with the reason.
//! - **Disconnect**: a client that leaves mid-enrolment frees the camera at once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![deny(unsafe_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use authnet_ipc::{ErrorKind, Outcome, Request, Response};
use authnet_tests::{data, frozen_clip, Daemon, DaemonConfig};

const USER: &str = "nobody";

/// The other words the daemon prompts, in its order.
const OTHER_WORDS: [&str; 4] = ["river", "window", "orange", "pencil"];

/// The clip the camera should play for a prompt, if `text` is one: password clip k is F02
/// word 01 instance k; other-word clip j ("Now mouth: window (6/8)"), the r-th of word i of
/// [`OTHER_WORDS`], is F02 word 03+i instance r (a distinct recording of that word each time).
fn clip_for(text: &str) -> Option<(u32, PathBuf)> {
    let counted = |prefix: &str| -> Option<(&str, u32)> {
        let (head, rest) = text.strip_prefix(prefix)?.rsplit_once('(')?;
        Some((head.trim(), rest.split_once('/')?.0.parse().ok()?))
    };
    if let Some((_, k)) = counted("Mouth your password now ") {
        return Some((k, data::word("F02", 1, k)));
    }
    let (word, j) = counted("Now mouth: ")?;
    let i = OTHER_WORDS.iter().position(|w| *w == word)? as u32;
    let round = (j - 1) / OTHER_WORDS.len() as u32 + 1;
    Some((j + 100, data::word("F02", 3 + i, round)))
}

/// A daemon whose camera waits at most 5 s (a camera left held shows up fast).
fn daemon(tmp: &tempfile::TempDir) -> Daemon {
    daemon_with(tmp, "")
}

/// [`daemon`], with `extra` appended to its configuration.
fn daemon_with(tmp: &tempfile::TempDir, extra: &str) -> Daemon {
    Daemon::start(
        tmp.path(),
        &DaemonConfig {
            camera_wait: 5.0,
            extra: extra.into(),
            ..DaemonConfig::default()
        },
    )
}

fn live_request(clip_count: u32) -> Request {
    Request::Enroll {
        user: USER.into(),
        password: None,
        clips: vec![],
        other_word_clips: vec![],
        other_word_labels: None,
        clip_count,
    }
}

fn frozen(tmp: &tempfile::TempDir) -> PathBuf {
    frozen_clip(
        &data::word("F02", 1, 1).join("color_003.jpg"),
        10,
        &tmp.path().join("frozen"),
    )
}

/// Plays `clip` on the daemon's camera and asserts it authenticates [`USER`] with `want`.
fn assert_auth(d: &Daemon, clip: PathBuf, want: Outcome) {
    d.camera.play(&clip);
    assert_eq!(d.authenticate(USER), want, "{}", clip.display());
}

#[test]
fn live_enrolment_retakes_a_frozen_clip_then_authenticates() {
    let tmp = tempfile::tempdir().unwrap();
    let d = daemon(&tmp);
    let frozen = frozen(&tmp);
    let mut child = Command::new(authnet_tests::binary("authnet-enroll"))
        .arg("--socket")
        .arg(&d.socket)
        .args(["--user", USER])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut lines = Vec::new();
    let mut first_take_of_1 = true;
    for line in stderr.lines() {
        let line = line.unwrap();
        if let Some((k, clip)) = clip_for(&line) {
            if k == 1 && std::mem::take(&mut first_take_of_1) {
                d.camera.play(&frozen);
            } else {
                d.camera.play(&clip);
            }
        }
        lines.push(line);
    }
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let status = child.wait().unwrap();
    let text = lines.join("\n");
    assert!(
        status.success(),
        "{status}\nstderr:\n{text}\nstdout:\n{stdout}\nlog:\n{}",
        d.log_text()
    );

    // Every prompt in order, clip 1 twice, each after its countdown.
    let prompts: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .filter(|l| clip_for(l).is_some())
        .collect();
    let mut want = vec!["Mouth your password now (1/7)".to_owned()];
    want.extend((1..=7).map(|k| format!("Mouth your password now ({k}/7)")));
    want.extend(
        OTHER_WORDS
            .iter()
            .cycle()
            .take(8)
            .enumerate()
            .map(|(j, w)| format!("Now mouth: {w} ({}/8)", j + 1)),
    );
    assert_eq!(prompts, want, "{text}");
    let rejected = lines
        .iter()
        .position(|l| l.starts_with("password clip 1/7 rejected: no lip movement"))
        .unwrap_or_else(|| panic!("no retake reason in:\n{text}"));
    assert!(lines[rejected].contains("retake 1 of 3"), "{text}");
    for (i, l) in lines.iter().enumerate() {
        if clip_for(l).is_some() {
            assert_eq!(lines[i + 1..i + 4], ["3", "2", "1"], "{text}");
        }
    }
    assert!(stdout.contains("Enrolled nobody from 7 clips"), "{stdout}");
    assert!(stdout.contains("validation EER"), "{stdout}");
    assert!(d.state.join(USER).join("model.safetensors").is_file());
    // Every other-word clip reached the enrolment with its word.
    let log = d.log_text();
    assert!(log.contains("(8 other-word, 8 labelled,"), "{log}");

    assert_auth(&d, data::word("F02", 1, 9), Outcome::Accept);
    assert_auth(&d, data::word("F02", 5, 9), Outcome::Reject);
}

#[test]
fn a_clip_failing_every_retake_fails_the_enrolment_and_frees_the_camera() {
    let tmp = tempfile::tempdir().unwrap();
    let d = daemon(&tmp);
    d.enrol(USER);
    d.camera.play(&frozen(&tmp));
    let (interim, last) = d.client().call(&live_request(3));
    let texts: Vec<&str> = interim
        .iter()
        .filter_map(|m| match m {
            Response::Info { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    let prompts = texts
        .iter()
        .filter(|t| **t == "Mouth your password now (1/3)")
        .count();
    assert_eq!(prompts, 4, "one take and three retakes: {texts:?}");
    match last {
        Response::Error { kind, message } => {
            assert_eq!(kind, ErrorKind::BadRequest, "{message}");
            assert!(
                message.contains("password clip 1/3 failed the quality checks 4 times")
                    && message.contains("no lip movement detected"),
                "{message}"
            );
        }
        o => panic!("expected an error, got {o:?}"),
    }
    // The earlier model is untouched, and the camera is free for it at once.
    assert_auth(&d, data::word("F02", 1, 9), Outcome::Accept);
}

#[test]
fn enroll_other_word_rounds_sets_how_often_each_other_word_is_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let d = daemon_with(&tmp, "enroll_other_word_rounds = 1\n");
    let mut c = d.client();
    c.send(&live_request(3));
    let mut prompts = Vec::new();
    let last = loop {
        match c.recv() {
            Response::Info { text } => {
                if let Some((_, clip)) = clip_for(&text) {
                    d.camera.play(&clip);
                    prompts.push(text);
                }
            }
            Response::Progress { .. } => {}
            o => break o,
        }
    };
    let mut want: Vec<String> = (1..=3)
        .map(|k| format!("Mouth your password now ({k}/3)"))
        .collect();
    want.extend(
        OTHER_WORDS
            .iter()
            .enumerate()
            .map(|(j, w)| format!("Now mouth: {w} ({}/4)", j + 1)),
    );
    assert_eq!(prompts, want);
    assert!(matches!(last, Response::Enrolled { .. }), "{last:?}");
    let log = d.log_text();
    assert!(log.contains("(4 other-word, 4 labelled,"), "{log}");
}

#[test]
fn a_client_leaving_mid_enrolment_frees_the_camera() {
    let tmp = tempfile::tempdir().unwrap();
    let d = daemon(&tmp);
    d.enrol(USER);
    let mut c = d.client();
    c.send(&live_request(0));
    loop {
        match c.recv() {
            Response::Info { text } if text == "Mouth your password now (1/7)" => break,
            Response::Info { .. } => {}
            o => panic!("expected the first prompt, got {o:?}"),
        }
    }
    drop(c);
    // Were the camera still held, this would wait camera_wait (5 s) and be camera_busy.
    assert_auth(&d, data::word("F02", 1, 9), Outcome::Accept);
}
