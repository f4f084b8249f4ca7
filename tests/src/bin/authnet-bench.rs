//! `authnet-bench [ATTEMPTS]`: the daemon's figures on this machine, against the targets of
//! issue 5.
//!
//! * warm daemon RSS (`VmRSS` of `/proc/<pid>/status` after the attempts; target ≤ 200 MB);
//! * decision latency after the last frame (the daemon's `post_capture_ms` log field, which
//!   times from the last frame captured to the decision; target ≤ 50 ms);
//! * PAM fall-through latency with no daemon: `pamtester` with `pam_authnet.so` pointing at an
//!   absent socket, minus `pamtester` with only `pam_deny.so` (target ≤ 50 ms).
//!
//! Run after `cargo build --workspace` (it spawns `target/debug/authnetd` and loads
//! `target/debug/libpam_authnet.so`), with the MIRACL-VC1 data in place:
//!
//! ```text
//! cargo run -p authnet-tests --bin authnet-bench -- 20
//! ```
//!
//! The camera plays held-out F02 word-01 clips at their recorded 15 fps.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![deny(unsafe_code)]

use std::time::Instant;

use authnet_ipc::Outcome;
use authnet_tests::{data, pam_service, pam_tools, run_pamtester, Daemon, DaemonConfig};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::MIN, f64::max)
}

fn main() {
    let attempts: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("ATTEMPTS is a number"))
        .unwrap_or(20);
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        tmp.path(),
        &DaemonConfig {
            fps: 15,
            ..Default::default()
        },
    );
    d.enrol("nobody");
    let mut wall = Vec::new();
    let mut accepted = 0;
    for i in 0..attempts {
        d.camera.play(&data::word("F02", 1, 8 + (i % 3) as u32));
        let t = Instant::now();
        if d.authenticate("nobody") == Outcome::Accept {
            accepted += 1;
        }
        wall.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let mut post: Vec<f64> = d
        .log_text()
        .lines()
        .filter_map(|l| l.split("post_capture_ms=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse().ok())
        .collect();
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).unwrap();
    let rss_kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS");
    println!("attempts: {attempts} (held-out genuine clips at 15 fps), accepted: {accepted}");
    println!(
        "warm daemon RSS: {:.1} MB (target <= 200 MB)",
        rss_kb / 1024.0
    );
    println!(
        "decision latency after last frame: median {:.1} ms, max {:.1} ms (target <= 50 ms)",
        median(&mut post),
        max(&post)
    );
    println!(
        "whole attempt seen by the client (capture included): median {:.0} ms",
        median(&mut wall)
    );

    if let Err(why) = pam_tools() {
        println!("PAM fall-through: not measured ({why})");
        return;
    }
    let absent = tmp.path().join("absent.sock");
    let with = pam_service(
        &tmp.path().join("with"),
        &format!("socket={} timeout=10", absent.display()),
    );
    let base = tmp.path().join("base/pam.d");
    std::fs::create_dir_all(&base).unwrap();
    std::fs::write(base.join("authnet-test"), "auth required pam_deny.so\n").unwrap();
    let run = |services: &std::path::Path| {
        let t = Instant::now();
        let out = run_pamtester(services, "nobody");
        assert!(!out.status.success());
        t.elapsed()
    };
    let _ = (run(&with), run(&base));
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        a.push(run(&with).as_secs_f64() * 1000.0);
        b.push(run(&base).as_secs_f64() * 1000.0);
    }
    let (ma, mb) = (median(&mut a), median(&mut b));
    println!(
        "PAM fall-through, daemon absent: pamtester {ma:.1} ms vs {mb:.1} ms without the module \
         => module {:.1} ms (target <= 50 ms)",
        (ma - mb).max(0.0)
    );
}
