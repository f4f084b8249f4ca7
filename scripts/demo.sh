#!/usr/bin/env bash
# `make demo`: AuthNet end to end, without a camera.
#
# Installs what is missing (`make setup`), builds the workspace (debug), then, in a temporary
# directory: starts authnetd on its own socket and state directory with a recorded-frames camera
# (`dir:`), enrols a demo user from clips through the daemon's `enroll` request, and runs
# pamtester through the real target/debug/libpam_authnet.so (under pam_wrapper, so no file in
# /etc/pam.d is touched) for genuine and impostor attempts, switching the camera's clip between
# attempts. Prints each decision with its latency; the daemon is stopped and the directory
# removed on exit.
#
# Frames:
#   DATA=/path/to/miracl-vc1 (default ../shared/data/miracl-vc1, if present): real MIRACL-VC1
#     face crops of speaker F02. The other-person attempt is speaker F01, whose full frames are
#     cut to face crops by authnet-demo's face detector at demo time (in the temp directory).
#   otherwise, or with SYNTH=1: synthetic clips made by `authnet-demo synth` from the 1927
#     Solvay photo shipped in rustface's crate (mouth region animated; see README.md).
#
# Variables: DATA, SYNTH=1, DEMO_USER (default nobody), KEEP=1 (keep the temp dir), FPS (30).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEMO_USER=${DEMO_USER:-nobody}
FPS=${FPS:-30}
CARGO=${CARGO:-cargo}
export AUTHNET_ORT_LIB=${AUTHNET_ORT_LIB:-$REPO/vendor/onnxruntime/lib/libonnxruntime.so.1.22.1}

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: enrolling from clip folders is a root-only daemon request"

# --- setup and build -------------------------------------------------------------------------
if [ "${DEMO_NO_SETUP:-0}" != 1 ]; then
    say "make setup (installs only what is missing)"
    make -s -C "$REPO" setup
fi
say "cargo build --workspace"
(cd "$REPO" && "$CARGO" build --workspace --quiet)
BIN=${CARGO_TARGET_DIR:-$REPO/target}/debug
for f in authnetd authnet-client authnet-demo libpam_authnet.so; do
    [ -f "$BIN/$f" ] || die "$BIN/$f is missing after the build"
done
command -v pamtester >/dev/null || die "pamtester is missing (apt-get install pamtester)"
PAM_WRAPPER_LIB=$(dpkg -L libpam-wrapper 2>/dev/null | grep -m1 '/libpam_wrapper\.so$' || true)
[ -n "$PAM_WRAPPER_LIB" ] || die "libpam_wrapper.so is missing (apt-get install libpam-wrapper)"

# --- temporary directory, stopped and removed on exit ---------------------------------------
TMP=$(mktemp -d /tmp/authnet-demo.XXXXXX)
DAEMON_PID=
cleanup() {
    if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        kill "$DAEMON_PID" 2>/dev/null || true
        wait "$DAEMON_PID" 2>/dev/null || true
    fi
    if [ "${KEEP:-0}" = 1 ]; then
        echo "demo: kept $TMP (daemon log: $TMP/authnetd.log)"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- clips ------------------------------------------------------------------------------------
DATA=${DATA:-$REPO/../shared/data/miracl-vc1}
# Each attempt: "label|expected|clip dir".
ATTEMPTS=()
ENROL=()
OTHERS=()
if [ "${SYNTH:-0}" != 1 ] && [ -d "$DATA/faces/F02/words" ]; then
    DATA=$(cd "$DATA" && pwd)
    MODE="MIRACL-VC1 at $DATA (real frames)"
    w() { echo "$DATA/faces/$1/words/$2/$3"; }
    for i in 01 02 03 04 05 06 07; do ENROL+=("$(w F02 01 "$i")"); done
    for wd in 02 03 04 06 07 08 09 10; do
        for i in 01 02 03; do OTHERS+=("$(w F02 "$wd" "$i")"); done
    done
    say "cutting face crops of speaker F01 with the face detector (temp dir only)"
    "$BIN/authnet-demo" crop "$REPO/models/seeta_fd_frontal_v1.0.bin" \
        "$(w F01 01 01)" "$TMP/clips/F01-w01-01"
    FROZEN_SRC=$(w F02 01 10)
    ATTEMPTS+=("genuine: F02 says word 01 (held-out take 09)|accept|$(w F02 01 09)")
    ATTEMPTS+=("genuine: F02 says word 01 (held-out take 10)|accept|$(w F02 01 10)")
    ATTEMPTS+=("impostor: F02 says another word (05)|reject|$(w F02 05 09)")
    ATTEMPTS+=("impostor: another person (F01) says word 01|reject|$TMP/clips/F01-w01-01")
else
    [ "${SYNTH:-0}" = 1 ] || echo "demo: no MIRACL-VC1 at $DATA: using synthetic clips (pass DATA=... for real frames)"
    CARGO_HOME_DIR=${CARGO_HOME:-$HOME/.cargo}
    PHOTO=$(ls "$CARGO_HOME_DIR"/registry/src/*/rustface-*/test.png 2>/dev/null | head -n1 || true)
    [ -n "$PHOTO" ] || die "rustface's test.png (the 1927 Solvay photo) is not in $CARGO_HOME_DIR/registry/src: run \`cargo fetch\` in $REPO, or pass DATA=/path/to/miracl-vc1"
    MODE="SYNTHETIC clips: Solvay 1927 photo faces with an animated mouth (not real speech)"
    say "generating synthetic clips from $PHOTO"
    S=$TMP/clips/synth
    "$BIN/authnet-demo" synth "$PHOTO" "$S"
    s() { echo "$S/p$1/w$2/$3"; }
    for i in 01 02 03 04 05 06 07; do ENROL+=("$(s 01 1 "$i")"); done
    for wd in 2 3 4 5; do
        for i in 01 02 03; do OTHERS+=("$(s 01 "$wd" "$i")"); done
    done
    FROZEN_SRC=$(s 01 1 10)
    ATTEMPTS+=("genuine: face 1 says word 1 (held-out take 09)|accept|$(s 01 1 09)")
    ATTEMPTS+=("genuine: face 1 says word 1 (held-out take 10)|accept|$(s 01 1 10)")
    ATTEMPTS+=("impostor: face 1 says another word (3)|reject|$(s 01 3 09)")
    ATTEMPTS+=("impostor: another person (face 5) says word 1|reject|$(s 05 1 09)")
fi
# A photo held up to the camera: one genuine frame (mid-utterance) repeated for the clip's length.
frames=("$FROZEN_SRC"/*)
n=${#frames[@]}
mid=${frames[$((n / 2))]}
mkdir -p "$TMP/clips/frozen"
for ((i = 1; i <= n; i++)); do
    cp "$mid" "$TMP/clips/frozen/color_$(printf %03d "$i").${mid##*.}"
done
ATTEMPTS+=("impostor: frozen frame (genuine frame x$n)|reject|$TMP/clips/frozen")

# --- daemon -----------------------------------------------------------------------------------
mkdir -p "$TMP/camera" "$TMP/pam.d"
SOCK=$TMP/authnetd.sock
cat >"$TMP/authnetd.toml" <<EOF
socket = "$SOCK"
state_dir = "$TMP/state"
onnxruntime_lib = "$AUTHNET_ORT_LIB"
models_dir = "$REPO/models"
crop = "none"
ort_threads = 2
auth_timeout = 15.0
abort_if_ssh = false
abort_if_lid_closed = false

[camera]
source = "dir:$TMP/camera"
fps = $FPS

[throttle]
failures_before_delay = 20
lockout_after = 100
EOF
play() { # the camera plays $1 from the next attempt on (atomic rename)
    printf '%s\n' "$1" >"$TMP/camera/.current.tmp"
    mv -f "$TMP/camera/.current.tmp" "$TMP/camera/current"
}
play "${ENROL[0]}"

say "starting authnetd (socket $SOCK, log $TMP/authnetd.log)"
"$BIN/authnetd" --config "$TMP/authnetd.toml" --foreground </dev/null 2>"$TMP/authnetd.log" &
DAEMON_PID=$!
for _ in $(seq 600); do
    [ -S "$SOCK" ] && break
    kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$TMP/authnetd.log" >&2; die "authnetd exited"; }
    sleep 0.1
done
[ -S "$SOCK" ] || { cat "$TMP/authnetd.log" >&2; die "authnetd did not listen within 60 s"; }

# --- enrolment --------------------------------------------------------------------------------
json_list() { local first=1; printf '['; for p in "$@"; do
    [ $first = 1 ] || printf ','; first=0; printf '"%s"' "$p"; done; printf ']'; }
say "enrolling $DEMO_USER from ${#ENROL[@]} clips of the password word + ${#OTHERS[@]} clips of other words"
REQ=$(printf '{"type":"enroll","user":"%s","password":null,"clips":%s,"other_word_clips":%s,"clip_count":0}' \
    "$DEMO_USER" "$(json_list "${ENROL[@]}")" "$(json_list "${OTHERS[@]}")")
t0=$(date +%s%N)
OUT=$("$BIN/authnet-client" "$SOCK" "$REQ") || { echo "$OUT" >&2; die "enrolment failed"; }
t1=$(date +%s%N)
LAST=$(printf '%s\n' "$OUT" | tail -n1)
case $LAST in
    *'"enrolled"'*) ;;
    *) echo "$OUT" >&2; die "enrolment failed: $LAST" ;;
esac
echo "    enrolled in $(((t1 - t0) / 1000000)) ms: $(printf '%s' "$LAST" | sed 's/.*"summary"://; s/}}$/}/')"

# --- attempts through PAM ---------------------------------------------------------------------
printf 'auth sufficient %s socket=%s timeout=20\nauth required pam_deny.so\n' \
    "$BIN/libpam_authnet.so" "$SOCK" >"$TMP/pam.d/authnet-demo"
say "pamtester authnet-demo $DEMO_USER authenticate, via $BIN/libpam_authnet.so (pam_wrapper)"
echo "    frames: $MODE"
echo "    LATENCY is the whole pamtester run; the camera plays each clip at $FPS fps, so it includes"
echo "    the capture. AFTER CAPTURE is the daemon's own time from the last frame to the decision."
echo
fmt='%-47s %-8s %-25s %8s  %-22s %s\n'
# shellcheck disable=SC2059
printf "$fmt" ATTEMPT EXPECTED "PAM RESULT" LATENCY "DAEMON DECISION" "AFTER CAPTURE"
# shellcheck disable=SC2059
printf "$fmt" "$(printf '%.0s-' {1..47})" "--------" "-------------------------" "--------" \
    "----------------------" "-------------"
ok=0
for a in "${ATTEMPTS[@]}"; do
    IFS='|' read -r label expect clip <<<"$a"
    play "$clip"
    before=$(wc -l <"$TMP/authnetd.log")
    t0=$(date +%s%N)
    if LD_PRELOAD=$PAM_WRAPPER_LIB PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR=$TMP/pam.d \
        pamtester authnet-demo "$DEMO_USER" authenticate </dev/null >"$TMP/pam.out" 2>&1; then
        got=accept; pam="accepted by pam_authnet"
    else
        got=reject; pam="fell through to pam_deny"
    fi
    t1=$(date +%s%N)
    # The daemon's log line for this attempt: decision, reason code, scoring time after capture.
    line=$(tail -n +"$((before + 1))" "$TMP/authnetd.log" | grep 'decision=' | tail -n1 || true)
    decision=$(sed -n 's/.*decision=\([a-z_]*\).*/\1/p' <<<"$line")
    reason=$(sed -n 's/.*reason="\([^"]*\)".*/\1/p' <<<"$line")
    post=$(sed -n 's/.*post_capture_ms=\([0-9.]*\).*/\1/p' <<<"$line")
    [ "$got" = "$expect" ] && ok=$((ok + 1))
    # shellcheck disable=SC2059
    printf "$fmt" "$label" "$expect" "$pam" "$(((t1 - t0) / 1000000)) ms" \
        "${decision:-?} (${reason:-see log})" "${post:+$post ms}"
done
echo
echo "$ok/${#ATTEMPTS[@]} attempts decided as expected."
[ "$ok" = "${#ATTEMPTS[@]}" ] || { echo "demo: daemon log: (KEEP=1 keeps $TMP)"; tail -n 30 "$TMP/authnetd.log"; exit 1; }
