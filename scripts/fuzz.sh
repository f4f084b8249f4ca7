#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time (default 60 s each) and fails on the
# first crash. .ci/run calls it; `make fuzz` too.
#
#   scripts/fuzz.sh [SECONDS]      FUZZ_TARGETS="decode_frame bank_file" to pick targets
#
# cargo-fuzz comes from crates.io and is installed inside the checkout (.cache/cargo-tools),
# so nothing outside the repository is cached. The only toolchain here is stable: cargo-fuzz's
# -Z sanitizer flags are accepted through RUSTC_BOOTSTRAP=1, confined to this script.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECONDS_EACH=${1:-60}
CARGO_FUZZ_VERSION=0.13.2
TOOLS="$REPO/.cache/cargo-tools"
log() { printf 'fuzz: %s\n' "$*"; }

if ! "$TOOLS/bin/cargo-fuzz" --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    log "installing cargo-fuzz $CARGO_FUZZ_VERSION into $TOOLS"
    cargo install --quiet --locked --root "$TOOLS" --version "$CARGO_FUZZ_VERSION" cargo-fuzz
fi
export PATH="$TOOLS/bin:$PATH" RUSTC_BOOTSTRAP=1
unset CARGO_TARGET_DIR CARGO_BUILD_TARGET_DIR

cd "$REPO/fuzz"
targets=${FUZZ_TARGETS:-$(cargo fuzz list)}
for t in $targets; do
    mkdir -p "corpus/$t"
    log "building $t"
    cargo fuzz build --release "$t"
done
for t in $targets; do
    log "running $t for ${SECONDS_EACH} s"
    # -max_len bounds one input (64 KiB, the IPC frame limit; the file harnesses edit small
    # samples); -rss_limit_mb bounds memory. libFuzzer exits non-zero on a crash, leak or OOM,
    # and leaves the input in fuzz/artifacts/<target>/.
    out="$REPO/fuzz/artifacts/$t.log"
    mkdir -p "$(dirname "$out")"
    status=0
    cargo fuzz run --release "$t" "corpus/$t" -- \
        -max_total_time="$SECONDS_EACH" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$out" 2>&1 || status=$?
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY)' "$out" || true
    if [[ $status -ne 0 ]]; then
        tail -n 40 "$out"
        log "FAILED: $t exited $status (crash input in fuzz/artifacts/$t/)"
        exit 1
    fi
    log "$t: no crash in ${SECONDS_EACH} s"
done
