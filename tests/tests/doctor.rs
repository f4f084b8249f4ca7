//! `authnetd --check`, the doctor: the real binary on a temporary config, state directory,
//! recorded-frames camera and pam.d directory; the table's rows and the exit status.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![deny(unsafe_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use authnet_tests::{binary, data, write_config, Camera, DaemonConfig};

/// One parsed table row: (status, detail, fix).
fn rows(stdout: &str) -> Vec<(String, String, String)> {
    stdout
        .lines()
        .skip(1)
        .map(|l| {
            let mut it = l.split("  ").map(str::trim).filter(|s| !s.is_empty());
            let check = it.next().unwrap_or_default().to_string();
            let status = it.next().unwrap_or_default().to_string();
            let rest: Vec<&str> = it.collect();
            let fix = rest.last().copied().unwrap_or_default().to_string();
            let detail = rest[..rest.len().saturating_sub(1)].join("  ");
            (check, format!("{status}|{detail}"), fix)
        })
        .collect()
}

/// The (status, detail, fix) of `check`, or a failure showing the whole table.
fn find<'a>(
    table: &'a [(String, String, String)],
    check: &str,
    out: &str,
) -> (&'a str, &'a str, &'a str) {
    let r = table
        .iter()
        .find(|r| r.0 == check)
        .unwrap_or_else(|| panic!("no row {check}:\n{out}"));
    let (status, detail) = r.1.split_once('|').unwrap();
    (status, detail, r.2.as_str())
}

fn doctor(config: &Path, pam: &Path, user: Option<&str>) -> (i32, String) {
    let mut c = Command::new(binary("authnetd"));
    c.arg("--config")
        .arg(config)
        .arg("--check")
        .arg("--pam-dir")
        .arg(pam);
    if let Some(u) = user {
        c.arg("--user").arg(u);
    }
    let out = c.output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    (out.status.code().unwrap(), text)
}

fn pam_dir(root: &Path) -> std::path::PathBuf {
    let pam = root.join("pam.d");
    std::fs::create_dir_all(&pam).unwrap();
    // sudo: safe, before pam_unix, through an include.
    std::fs::write(
        pam.join("common-auth"),
        "auth\t[success=2 default=ignore]\tpam_authnet.so timeout=10\n\
         auth\t[success=1 default=ignore]\tpam_unix.so nullok try_first_pass\n\
         auth\trequisite\tpam_deny.so\nauth\trequired\tpam_permit.so\n",
    )
    .unwrap();
    std::fs::write(pam.join("sudo"), "#%PAM-1.0\n@include common-auth\n").unwrap();
    // login: `required`, a lockout risk.
    std::fs::write(
        pam.join("login"),
        "auth required pam_authnet.so\nauth required pam_unix.so\n",
    )
    .unwrap();
    // passwd: does not stack pam_authnet, so it has no row.
    std::fs::write(pam.join("passwd"), "password required pam_unix.so\n").unwrap();
    pam
}

#[test]
fn a_working_setup_passes_with_a_warning_for_a_required_stack() {
    let tmp = tempfile::tempdir().unwrap();
    let camera = Camera::new(&tmp.path().join("camera"));
    camera.play(&data::word("F02", 1, 8));
    let config = write_config(tmp.path(), &DaemonConfig::default(), &camera);
    let state = tmp.path().join("state");
    std::fs::create_dir_all(state.join("nobody")).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let model = state.join("nobody/model.safetensors");
    std::fs::write(&model, authnet_tests::model_for("nobody")).unwrap();
    std::fs::set_permissions(&model, std::fs::Permissions::from_mode(0o600)).unwrap();
    let pam = pam_dir(tmp.path());

    let (code, out) = doctor(&config, &pam, Some("nobody"));
    let t = rows(&out);
    assert!(out.starts_with("CHECK"), "{out}");
    for check in [
        "config",
        "onnxruntime",
        "model:mobilefacenet",
        "model:detector",
        "camera",
        "pam:sudo",
        "impostor_bank",
        "pretrained_model",
        "state_dir",
        "enrolment:nobody",
    ] {
        assert_eq!(find(&t, check, &out).0, "OK", "{check}:\n{out}");
    }
    let (_, detail, _) = find(&t, "camera", &out);
    assert!(detail.contains("gives frames"), "{out}");
    let (_, detail, _) = find(&t, "pam:sudo", &out);
    assert!(detail.contains("before pam_unix"), "{out}");
    let (status, detail, fix) = find(&t, "pam:login", &out);
    assert_eq!(status, "WARN", "{out}");
    assert!(detail.contains("lockout risk"), "{out}");
    assert!(fix.contains("sufficient"), "{out}");
    assert!(
        t.iter()
            .all(|r| r.0 != "pam:passwd" && r.0 != "pam:common-auth"),
        "{out}"
    );
    let (_, detail, _) = find(&t, "onnxruntime", &out);
    assert!(
        detail.contains("libonnxruntime"),
        "the library path is shown: {out}"
    );
    assert_eq!(code, 0, "warnings alone do not fail:\n{out}");

    // A user without a model fails, with a fix.
    let (code, out) = doctor(&config, &pam, Some("root"));
    let t = rows(&out);
    let (status, _, fix) = find(&t, "enrolment:root", &out);
    assert_eq!((status, code), ("FAIL", 1), "{out}");
    assert!(fix.contains("authnet-enroll"), "{out}");
}

#[test]
fn a_missing_camera_and_a_broken_model_fail_with_fixes() {
    let tmp = tempfile::tempdir().unwrap();
    let camera = Camera::new(&tmp.path().join("camera"));
    let config = write_config(tmp.path(), &DaemonConfig::default(), &camera);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &camera.source(),
        "v4l2:/dev/v4l/by-id/usb-authnet-doctor-no-such-camera-video-index0",
    );
    let junk = tmp.path().join("words.pretrained");
    std::fs::write(&junk, b"not a pretrained model").unwrap();
    let text = format!(
        "pretrained_model = \"{}\"\nword_model = \"lstm\"\n{text}",
        junk.display()
    );
    std::fs::write(&config, text).unwrap();
    let state = tmp.path().join("state");
    std::fs::create_dir_all(state.join("nobody")).unwrap();
    std::fs::write(state.join("nobody/model.safetensors"), b"not a model").unwrap();
    let pam = tmp.path().join("empty-pam.d");
    std::fs::create_dir_all(&pam).unwrap();

    let (code, out) = doctor(&config, &pam, Some("nobody"));
    let t = rows(&out);
    assert_eq!(code, 1, "{out}");
    let (status, detail, fix) = find(&t, "camera", &out);
    assert_eq!(status, "FAIL", "{out}");
    assert!(
        detail.contains("usb-authnet-doctor-no-such-camera"),
        "{out}"
    );
    assert!(fix.contains("/dev/v4l/by-id"), "{out}");
    assert_eq!(find(&t, "enrolment:nobody", &out).0, "FAIL", "{out}");
    let (status, _, fix) = find(&t, "pretrained_model", &out);
    assert_eq!(status, "FAIL", "{out}");
    assert!(fix.contains("authnet-eval pretrain"), "{out}");
    let (status, _, fix) = find(&t, "pam", &out);
    assert_eq!(status, "WARN", "{out}");
    assert!(fix.contains("pam-auth-update"), "{out}");
    // The state directory is 0755 here: a warning.
    assert_eq!(find(&t, "state_dir", &out).0, "WARN", "{out}");
}

#[test]
fn a_bad_config_fails_first() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("authnetd.toml");
    std::fs::write(&config, "[camera]\nfps = 0\n").unwrap();
    let (code, out) = doctor(&config, tmp.path(), None);
    let t = rows(&out);
    assert_eq!(code, 1, "{out}");
    assert_eq!(t.len(), 1, "nothing else is checked: {out}");
    let (status, detail, _) = find(&t, "config", &out);
    assert_eq!(status, "FAIL");
    assert!(detail.contains("camera.fps"), "{out}");
}

#[test]
fn a_pretrained_model_the_word_model_does_not_read_is_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let camera = Camera::new(&tmp.path().join("camera"));
    let junk = tmp.path().join("words.pretrained");
    std::fs::write(&junk, b"not a pretrained model").unwrap();
    let extra = format!("pretrained_model = \"{}\"\n", junk.display());
    let config = write_config(
        tmp.path(),
        &DaemonConfig {
            extra,
            ..Default::default()
        },
        &camera,
    );
    let pam = tmp.path().join("empty-pam.d");
    std::fs::create_dir_all(&pam).unwrap();
    let (_, out) = doctor(&config, &pam, None);
    let t = rows(&out);
    let (status, detail, fix) = find(&t, "pretrained_model", &out);
    assert_eq!(status, "WARN", "{out}");
    assert!(detail.contains("word_model = linear"), "{out}");
    assert!(fix.contains("word_model = lstm"), "{out}");
}
