//! The real `libpam_authnet.so`, loaded by libpam through `pam_wrapper` and driven by
//! `pamtester`, against the real `authnetd` playing recorded MIRACL-VC1 clips.
//!
//! The stack is the recommended one (`auth sufficient pam_authnet.so …` then
//! `auth required pam_deny.so`), so pamtester succeeds only when the face path accepts, and
//! everything else falls through to the password (here: `pam_deny`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![deny(unsafe_code)]

use std::time::{Duration, Instant};

use authnet_tests::{
    data, pam_authenticated, pam_service, pam_wrapper_lock, pamtester, require_pam_tools,
    run_pamtester, Daemon, DaemonConfig,
};

const USER: &str = "nobody";

#[cfg_attr(
    authnet_missing_tools,
    ignore = "needs a missing tool: see the build warning"
)]
#[test]
fn genuine_passes_and_an_impostor_falls_through() {
    require_pam_tools!();
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(tmp.path(), &DaemonConfig::default());
    d.enrol(USER);
    let services = d.pam_service(20);

    d.camera.play(&data::word("F02", 1, 9));
    let out = run_pamtester(&services, USER);
    assert!(
        pam_authenticated(&out),
        "genuine: {out:?}\n{}",
        d.log_text()
    );

    d.camera.play(&data::word("F02", 5, 9));
    let out = run_pamtester(&services, USER);
    assert!(!out.status.success(), "impostor word: {out:?}");
    assert!(d.log_text().contains("decision=reject"));
}

#[cfg_attr(
    authnet_missing_tools,
    ignore = "needs a missing tool: see the build warning"
)]
#[test]
fn no_daemon_falls_through_at_once() {
    require_pam_tools!();
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("authnetd.sock");
    let services = pam_service(
        tmp.path(),
        &format!("socket={} timeout=10", socket.display()),
    );
    // Warm the page cache so the figure is the module's, not the first exec's.
    let _ = run_pamtester(&services, USER);
    let t = Instant::now();
    let out = run_pamtester(&services, USER);
    let took = t.elapsed();
    assert!(!out.status.success(), "{out:?}");
    // The whole pamtester process, exec and libpam included; the module's own share is
    // measured by `authnet-bench`. Generous margin for a loaded 2-core CI machine.
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[cfg_attr(
    authnet_missing_tools,
    ignore = "needs a missing tool: see the build warning"
)]
#[test]
fn daemon_killed_mid_attempt_falls_through() {
    require_pam_tools!();
    let tmp = tempfile::tempdir().unwrap();
    // 2 fps: a 7-frame clip takes 3.5 s, so the kill lands mid-capture.
    let mut d = Daemon::start(
        tmp.path(),
        &DaemonConfig {
            fps: 2,
            ..Default::default()
        },
    );
    d.enrol(USER);
    d.camera.play(&data::word("F02", 1, 9));
    let services = d.pam_service(30);
    let wrapper = pam_wrapper_lock();
    let child = pamtester(&services, USER).spawn().unwrap();
    let t = Instant::now();
    while !d.log_text().contains("ready") {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(1200));
    d.kill();
    let out = child.wait_with_output().unwrap();
    drop(wrapper);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "pamtester returned {:?} after start, well before its 30 s timeout",
        t.elapsed()
    );
}
