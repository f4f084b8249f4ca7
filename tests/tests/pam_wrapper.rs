//! The real `libpam_authnet.so`, loaded by libpam through `pam_wrapper` and driven by
//! `pamtester`, against a scripted daemon or none at all.
//!
//! The stack under test is the recommended one:
//!
//! ```text
//! auth sufficient libpam_authnet.so socket=… timeout=…
//! auth required   pam_deny.so
//! ```
//!
//! so pamtester succeeds only if the module answers `PAM_SUCCESS`, and any other answer falls
//! through to `pam_deny`. These tests need the `pamtester` and `libpam-wrapper` packages; when
//! either is missing they fail under `AUTHNET_REQUIRE_TOOLS=1` (CI) and are ignored, loudly,
//! otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![deny(unsafe_code)]

use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use authnet_ipc::{read_frame, write_frame, Outcome, Request, Response, PROTOCOL_VERSION};
use authnet_tests::{
    pam_authenticated, pam_module, pam_service, require_pam_tools, require_tool, run_pamtester,
    tool_at,
};

const SERVICE: &str = "authnet-test";
const USER: &str = "alice";

/// Runs `pamtester authnet-test alice authenticate` with the module configured by `args`.
fn pamtester(dir: &Path, args: &str) -> Output {
    run_pamtester(&pam_service(dir, args), USER)
}

/// A daemon that answers hello and one authenticate with `outcome`, and returns the
/// authenticate request it received.
fn daemon(dir: &Path, outcome: Outcome) -> (PathBuf, JoinHandle<Request>) {
    let socket = dir.join("authnetd.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let thread = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let hello: Request = read_frame(&mut s).unwrap();
        assert_eq!(
            hello,
            Request::Hello {
                protocol_version: PROTOCOL_VERSION
            }
        );
        write_frame(
            &mut s,
            &Response::Hello {
                protocol_version: PROTOCOL_VERSION,
            },
        )
        .unwrap();
        let auth: Request = read_frame(&mut s).unwrap();
        write_frame(
            &mut s,
            &Response::Info {
                text: "Look at the camera".into(),
            },
        )
        .unwrap();
        write_frame(&mut s, &Response::Result { outcome }).unwrap();
        auth
    });
    (socket, thread)
}

#[cfg_attr(
    authnet_missing_tools,
    ignore = "needs a missing tool: see the build warning"
)]
#[test]
fn exports_the_pam_entry_points() {
    let Some(nm) = require_tool(tool_at("/usr/bin/nm", "binutils")) else {
        return;
    };
    let out = Command::new(nm)
        .args(["-D", "--defined-only"])
        .arg(pam_module())
        .output()
        .unwrap();
    let symbols = String::from_utf8_lossy(&out.stdout);
    for sym in ["pam_sm_authenticate", "pam_sm_setcred"] {
        assert!(
            symbols.lines().any(|l| l.ends_with(&format!(" T {sym}"))),
            "{sym} missing"
        );
    }
}

#[cfg_attr(
    authnet_missing_tools,
    ignore = "needs a missing tool: see the build warning"
)]
#[test]
fn daemon_absent_falls_through_to_the_next_module_fast() {
    require_pam_tools!();
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let out = pamtester(dir.path(), "socket=/nonexistent/authnetd.sock timeout=5");
    assert!(!out.status.success(), "pam_deny must have decided: {out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Authentication failure"),
        "{out:?}"
    );
    // Fast means well under the 5 s budget: the module never waits for an absent daemon.
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "took {:?}",
        start.elapsed()
    );
}

#[cfg_attr(
    authnet_missing_tools,
    ignore = "needs a missing tool: see the build warning"
)]
#[test]
fn bad_option_falls_through() {
    require_pam_tools!();
    let dir = tempfile::tempdir().unwrap();
    let out = pamtester(dir.path(), "no-such-option");
    assert!(!out.status.success(), "{out:?}");
}

#[cfg_attr(
    authnet_missing_tools,
    ignore = "needs a missing tool: see the build warning"
)]
#[test]
fn daemon_accept_authenticates() {
    require_pam_tools!();
    let dir = tempfile::tempdir().unwrap();
    let (socket, thread) = daemon(dir.path(), Outcome::Accept);
    let out = pamtester(
        dir.path(),
        &format!("socket={} timeout=5", socket.display()),
    );
    let request = thread.join().unwrap();
    assert!(pam_authenticated(&out), "{out:?}");
    match request {
        Request::Authenticate {
            user,
            service,
            rhost: _,
            tty: _,
        } => {
            assert_eq!(user, USER);
            assert_eq!(service, SERVICE);
        }
        other => panic!("expected authenticate, got {other:?}"),
    }
}

#[cfg_attr(
    authnet_missing_tools,
    ignore = "needs a missing tool: see the build warning"
)]
#[test]
fn daemon_reject_falls_through_to_deny() {
    require_pam_tools!();
    let dir = tempfile::tempdir().unwrap();
    let (socket, thread) = daemon(dir.path(), Outcome::Reject);
    let out = pamtester(
        dir.path(),
        &format!("socket={} timeout=5", socket.display()),
    );
    assert!(matches!(
        thread.join().unwrap(),
        Request::Authenticate { .. }
    ));
    assert!(!out.status.success(), "{out:?}");
}
