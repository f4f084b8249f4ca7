//! Tests that need an external tool carry
//! `#[cfg_attr(authnet_missing_tools, ignore = "...")]`. This script sets that cfg when a tool
//! is missing, so such a test shows as *ignored* instead of passing without running; with
//! `AUTHNET_REQUIRE_TOOLS=1` (what `.ci/run` sets) it is never set, and the test runs and fails
//! on the missing tool.
#![deny(unsafe_code)]

include!("src/tools.rs");

fn main() {
    println!("cargo::rustc-check-cfg=cfg(authnet_missing_tools)");
    println!("cargo::rerun-if-env-changed=AUTHNET_REQUIRE_TOOLS");
    println!("cargo::rerun-if-changed=src/tools.rs");
    for (_, dirs, file) in TOOLS {
        // The path found, or every candidate when none is: a path that does not exist makes
        // cargo rerun this script on every build, so a tool installed later is noticed.
        let watch = match find(dirs, file) {
            Some(found) => vec![found],
            None => candidates(dirs, file),
        };
        for p in watch {
            println!("cargo::rerun-if-changed={}", p.display());
        }
    }
    let required = std::env::var("AUTHNET_REQUIRE_TOOLS").is_ok_and(|v| v == "1");
    let missing = missing_tools();
    if !missing.is_empty() && !required {
        println!(
            "cargo::warning=tests that need {} are ignored; `make setup` installs them",
            missing.join(", ")
        );
        println!("cargo::rustc-cfg=authnet_missing_tools");
    }
}
