//! `authnet-enroll` against the real daemon: enrolment from MIRACL-VC1 clips (`--from`),
//! `test` on held-out and other-word clips through the `dir:` camera, `list`, `remove`,
//! refusals, `--help` and exit statuses, and the progress bar and summary under a
//! pseudo-terminal (util-linux `script`).
//!
//! Exit statuses checked: 0 success, 1 refusal or failure (and reject in `test`), 2 usage
//! error (clap's default, which also covers malformed user names).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![deny(unsafe_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use authnet_tests::{data, output_as_nobody, Daemon, DaemonConfig};

const USER: &str = "nobody";

/// `authnet-enroll ARGS` aimed at `socket` (through `$AUTHNET_SOCKET`), stdin closed.
fn cli(socket: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(authnet_tests::binary("authnet-enroll"));
    c.args(args)
        .env("AUTHNET_SOCKET", socket)
        .stdin(Stdio::null());
    c
}

/// What a finished run printed.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn of(o: Output) -> Self {
        Self {
            code: o.status.code().expect("exited, not signalled"),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    fn expect(self, code: i32) -> Self {
        assert_eq!(self.code, code, "{self:#?}");
        self
    }
}

fn run(socket: &Path, args: &[&str]) -> Run {
    Run::of(cli(socket, args).output().unwrap())
}

/// `run` as uid/gid 65534 (nobody), with `stdin` piped in.
fn run_as_nobody(socket: &Path, args: &[&str], stdin: &str) -> Run {
    Run::of(output_as_nobody(
        cli(socket, args).env("USER", "nobody"),
        stdin,
    ))
}

/// The `--from` / `--other-word` arguments for F02 word 01 (instances 1..=7) against F02's
/// other words 02..=10 (instances 1..=3), each named by its word (`--other-word wWW=PATH`).
fn enrol_args() -> Vec<String> {
    let s = |p: PathBuf| p.display().to_string();
    let mut a = Vec::new();
    for i in authnet_tests::ENROLL_INSTANCES {
        a.push("--from".into());
        a.push(s(data::word("F02", 1, i)));
    }
    for w in 2..=10 {
        for i in 1..=3 {
            a.push("--other-word".into());
            a.push(format!("w{w:02}={}", s(data::word("F02", w, i))));
        }
    }
    a
}

fn assert_summary(text: &str) {
    for needle in [
        "Enrolled nobody from 7 clips",
        "validation EER",
        "score margin",
        "genuine mean",
        "impostor mean",
        "threshold policy   fmr",
        "threshold  ",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
}

/// A daemon whose directory nobody can traverse (for the non-root checks).
fn daemon(tmp: &tempfile::TempDir) -> Daemon {
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    Daemon::start(tmp.path(), &DaemonConfig::default())
}

#[test]
fn enrol_test_list_remove() {
    let tmp = tempfile::tempdir().unwrap();
    let d = daemon(&tmp);
    let sock = d.socket.as_path();

    let mut args = vec!["--user", USER];
    let clips = enrol_args();
    args.extend(clips.iter().map(String::as_str));
    let r = run(sock, &args).expect(0);
    assert_summary(&r.stdout);
    // stderr is a pipe: progress comes as plain lines, no terminal escapes.
    assert!(r.stderr.contains("features: 34/34"), "{}", r.stderr);
    assert!(!r.stderr.contains('\x1b'), "{}", r.stderr);
    assert!(d.state.join(USER).join("model.safetensors").is_file());
    // The words named on the command line reached the enrolment.
    let log = d.log_text();
    assert!(log.contains("(27 other-word, 27 labelled,"), "{log}");

    // A held-out genuine clip is accepted, with its score; another word is rejected.
    d.camera.play(&data::word("F02", 1, 10));
    let r = run(sock, &["test", "--user", USER]).expect(0);
    assert!(r.stdout.contains("nobody: accept"), "{r:#?}");
    assert!(r.stdout.contains("score: "), "{r:#?}");
    d.camera.play(&data::word("F02", 4, 10));
    let r = run(sock, &["test", "--user", USER]).expect(1);
    assert!(r.stdout.contains("nobody: reject"), "{r:#?}");

    // Root without --user lists everyone; with --user, that user.
    for a in [&["list"][..], &["list", "--user", USER]] {
        let r = run(sock, a).expect(0);
        let lines: Vec<&str> = r.stdout.lines().collect();
        assert!(lines[0].starts_with("USER"), "{r:#?}");
        assert!(lines[0].contains("THRESHOLD POLICY"), "{r:#?}");
        let row = lines
            .iter()
            .find(|l| l.starts_with("nobody "))
            .expect("a row");
        assert!(
            row.contains("mobilefacenet") && row.ends_with("fmr"),
            "{row}"
        );
    }

    // nobody may not act on root, nor enrol itself with a wrong password (the daemon checks
    // it through PAM); the password is read from the pipe since stdin is not a terminal.
    let r = run_as_nobody(sock, &["test", "--user", "root"], "").expect(1);
    assert!(r.stderr.contains("authnetd refused"), "{r:#?}");
    let r = run_as_nobody(sock, &["remove", "--user", "root"], "pw\n").expect(1);
    assert!(
        r.stderr.contains("only root may ask about another user"),
        "{r:#?}"
    );
    let mut args = vec!["enroll"];
    args.extend(clips.iter().map(String::as_str));
    let r = run_as_nobody(sock, &args, "pw\n").expect(1);
    assert!(r.stderr.contains("was not accepted"), "{r:#?}");
    assert!(r.stderr.contains("Password for nobody"), "{r:#?}");
    let r = run_as_nobody(sock, &["remove", "--all"], "").expect(1);
    assert!(
        r.stderr.contains("only root may remove every model"),
        "{r:#?}"
    );
    // nobody's own list works without a password and shows only nobody.
    let r = run_as_nobody(sock, &["list"], "").expect(0);
    assert!(r.stdout.lines().any(|l| l.starts_with("nobody ")), "{r:#?}");

    // Admin: reset the throttle.
    let r = run(sock, &["reset-throttle", "--user", USER]).expect(0);
    assert!(r.stdout.contains("throttle of nobody reset"), "{r:#?}");
    run(sock, &["reset-throttle", "--user", "no-such-user-x"]).expect(1);

    // Remove: gone from the list; a second remove, and test, are refusals.
    let r = run(sock, &["remove", "--user", USER]).expect(0);
    assert!(r.stdout.contains("removed the model of nobody"), "{r:#?}");
    let r = run(sock, &["list"]).expect(0);
    assert!(
        !r.stdout.lines().any(|l| l.starts_with("nobody ")),
        "{r:#?}"
    );
    run(sock, &["remove", "--user", USER]).expect(1);
    let r = run(sock, &["test", "--user", USER]).expect(1);
    assert!(r.stdout.contains("unavailable: no face model"), "{r:#?}");
}

#[cfg_attr(
    authnet_missing_tools,
    ignore = "needs a missing tool: see the build warning"
)]
#[test]
fn enrolment_under_a_pty_shows_progress_and_summary() {
    let Some(_) =
        authnet_tests::require_tool(authnet_tests::tool_at("/usr/bin/script", "bsdutils"))
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(tmp.path(), &DaemonConfig::default());
    let mut cmd = format!(
        "{} enroll --user {USER}",
        authnet_tests::binary("authnet-enroll").display()
    );
    for a in enrol_args() {
        cmd.push(' ');
        cmd.push_str(&a);
    }
    let out = Command::new("/usr/bin/script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("AUTHNET_SOCKET", &d.socket)
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("Enrolling nobody from 7 recorded clips"),
        "{text}"
    );
    // indicatif's bar: the stage prefix, the bar brackets and a position of its length.
    assert!(text.contains("features ["), "{text}");
    assert!(text.contains("34/34"), "{text}");
    assert!(
        text.contains('\x1b'),
        "a terminal bar redraws with escapes: {text}"
    );
    assert_summary(&text);
}

#[test]
fn help_usage_errors_and_refusals() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(tmp.path(), &DaemonConfig::default());
    let sock = d.socket.as_path();

    let r = run(sock, &["--help"]).expect(0);
    for needle in [
        "Usage: authnet-enroll",
        "enroll",
        "list",
        "remove",
        "test",
        "reset-throttle",
        "--from <PATH>",
        "--other-word <[WORD=]PATH>",
        "--socket <SOCKET>",
        "Exit status",
    ] {
        assert!(r.stdout.contains(needle), "{needle:?}: {}", r.stdout);
    }
    let r = run(sock, &["remove", "--help"]).expect(0);
    assert!(r.stdout.contains("--all"), "{}", r.stdout);

    // Usage errors: exit 2, nothing sent.
    for args in [
        &["frobnicate"][..],
        &["list", "--bogus"],
        &["reset-throttle"],
        &["remove", "--all", "--user", "root"],
        &["--clips", "0"],
        &["--user", "root", "list"],
    ] {
        let r = run(sock, args).expect(2);
        assert!(r.stderr.contains("error:"), "{args:?}: {r:#?}");
    }

    // Malformed user names are usage errors (exit 2), refused before the daemon is asked.
    let long = "a".repeat(authnet_ipc::MAX_USER_NAME + 1);
    for bad in ["../x", "a/b", "a\u{1}b", ".hidden", "-x", long.as_str()] {
        let flag = format!("--user={bad}");
        for args in [
            vec![flag.as_str()],
            vec!["list", &flag],
            vec!["test", &flag],
        ] {
            let r = run(sock, &args).expect(2);
            assert!(
                r.stderr.contains("invalid value") && r.stderr.contains("user name"),
                "{args:?}: {r:#?}"
            );
        }
    }

    // Refusals and failures: exit 1 with the reason.
    // Live enrolment with a camera that has no clip to play (an empty `dir:` folder).
    let r = run(sock, &["--user", USER]).expect(1);
    assert!(
        r.stderr.contains("Mouth your password now (1/7)")
            && r.stderr.contains("the camera could not be opened"),
        "{r:#?}"
    );
    let r = run(sock, &["--user", USER, "--from", "/nonexistent/clip"]).expect(1);
    assert!(r.stderr.contains("clip /nonexistent/clip"), "{r:#?}");
    let r = run(sock, &["test", "--user", "no-such-user-x"]).expect(1);
    assert!(r.stderr.contains("no such user"), "{r:#?}");
    let r = run(sock, &["test", "--user", USER]).expect(1);
    assert!(r.stdout.contains("unavailable"), "{r:#?}");

    let gone = tmp.path().join("gone.sock");
    let r = run(&gone, &["list"]).expect(1);
    assert!(
        r.stderr
            .contains(&format!("cannot reach authnetd at {}", gone.display()))
            && r.stderr.contains("(is authnetd running?)"),
        "{r:#?}"
    );
}
