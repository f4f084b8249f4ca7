#!/usr/bin/env bash
# One-command development setup for AuthNet on Debian 12 (`make setup` runs this).
#
# Idempotent: when everything is already in place it only checks hashes and returns (< 2 s).
#   1. Debian packages the build and the tests need (apt only when one is missing).
#   2. ONNX Runtime 1.22.1: the PyPI wheel (a zip) is fetched with pip into .cache/ and
#      libonnxruntime.so.1.22.1 is extracted to vendor/onnxruntime/lib/. Both are pinned by sha256.
#   3. The committed models are checked against their manifests and .sha256 files.
#
# Environment:
#   AUTHNET_SETUP_SKIP_APT=1   do not check or install Debian packages (non-Debian hosts)
#
# Runs as root, or through sudo for apt. Exits non-zero with a message on any failure.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# libav*-dev: FFmpeg 5.1 for video-file input (authnet-core feature `video`, ffmpeg-next).
# The tool tests fail without these under AUTHNET_REQUIRE_TOOLS=1: binutils (nm), systemd
# (systemd-socket-activate), bsdutils (script), and the real PAM clients sudo, login
# (login, su) and passwd (useradd, chpasswd) for tests/tests/real_clients.rs.
APT_PACKAGES=(libpam0g-dev libclang1-14 libclang-dev pkg-config pamtester libpam-wrapper mandoc
    libavcodec-dev libavformat-dev libswscale-dev libavutil-dev libavfilter-dev libavdevice-dev
    binutils systemd bsdutils sudo login util-linux passwd)

ORT_VERSION=1.22.1
ORT_WHEEL=onnxruntime-1.22.1-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl
ORT_WHEEL_SHA256=f6effa1299ac549a05c784d50292e3378dbbf010346ded67400193b09ddc2f04
ORT_LIB_IN_WHEEL=onnxruntime/capi/libonnxruntime.so.1.22.1
ORT_LIB_SHA256=ad9665887025474170d3e71cd28021e7e811c5bf201bc365f953e34a2c4989cc
ORT_DIR="$REPO/vendor/onnxruntime"
ORT_LIB="$ORT_DIR/lib/libonnxruntime.so.$ORT_VERSION"
ORT_CACHE="$REPO/.cache/onnxruntime"

MODELS="$REPO/models"

log() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }
sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

# --- 1. Debian packages -----------------------------------------------------------------------
setup_apt() {
    if [[ ${AUTHNET_SETUP_SKIP_APT:-0} == 1 ]]; then
        log "skipping Debian packages (AUTHNET_SETUP_SKIP_APT=1)"
        return
    fi
    command -v dpkg-query >/dev/null \
        || die "dpkg-query not found: this script targets Debian 12. Install the equivalents of
       ${APT_PACKAGES[*]} and re-run with AUTHNET_SETUP_SKIP_APT=1"

    local wanted=("${APT_PACKAGES[@]}") missing=() pkg status
    # pip fetches the ONNX Runtime wheel; the rust machine image has it, bare Debian does not.
    python3 -m pip --version >/dev/null 2>&1 || wanted+=(python3-pip)
    for pkg in "${wanted[@]}"; do
        status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
        [[ $status == ii* ]] || missing+=("$pkg")
    done
    if ((${#missing[@]} == 0)); then
        log "Debian packages present: ${APT_PACKAGES[*]}"
        return
    fi
    log "installing Debian packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q \
        || die "apt-get update failed"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}" </dev/null || die "apt-get install ${missing[*]} failed"
}

# --- 2. ONNX Runtime --------------------------------------------------------------------------
setup_ort() {
    if [[ -f $ORT_LIB && $(sha256_of "$ORT_LIB") == "$ORT_LIB_SHA256" ]]; then
        log "ONNX Runtime $ORT_VERSION present: $ORT_LIB"
        return
    fi
    [[ $(uname -m) == x86_64 ]] \
        || die "the pinned ONNX Runtime wheel is x86_64 only; on $(uname -m) set AUTHNET_ORT_LIB to a libonnxruntime.so >= 1.17 of your own"
    command -v python3 >/dev/null || die "python3 not found (Debian: apt-get install python3-pip)"

    mkdir -p "$ORT_CACHE"
    local wheel="$ORT_CACHE/$ORT_WHEEL"
    if [[ ! -f $wheel || $(sha256_of "$wheel") != "$ORT_WHEEL_SHA256" ]]; then
        rm -f "$wheel"
        log "downloading onnxruntime==$ORT_VERSION wheel from PyPI into $ORT_CACHE"
        # --no-cache-dir: keep every download inside the repository.
        PIP_DISABLE_PIP_VERSION_CHECK=1 python3 -m pip download --quiet --no-cache-dir \
            --no-deps --only-binary=:all: --python-version 3.11 \
            --platform manylinux_2_28_x86_64 --dest "$ORT_CACHE" "onnxruntime==$ORT_VERSION" \
            </dev/null || die "pip download onnxruntime==$ORT_VERSION failed"
        [[ -f $wheel ]] || die "pip did not produce $wheel (got: $(ls "$ORT_CACHE"))"
    fi
    local got
    got=$(sha256_of "$wheel")
    [[ $got == "$ORT_WHEEL_SHA256" ]] \
        || die "$ORT_WHEEL sha256 is $got, expected $ORT_WHEEL_SHA256"

    # The wheel is a zip; python3's zipfile avoids depending on unzip.
    local tmp="$ORT_DIR/.extract.$$"
    rm -rf "$tmp" && mkdir -p "$tmp"
    python3 - "$wheel" "$tmp" "$ORT_LIB_IN_WHEEL" <<'EOF' || { rm -rf "$tmp"; die "extracting $ORT_LIB_IN_WHEEL failed"; }
import sys, zipfile
wheel, dest, lib = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    for name in (lib, "onnxruntime/LICENSE", "onnxruntime/ThirdPartyNotices.txt"):
        z.extract(name, dest)
EOF
    got=$(sha256_of "$tmp/$ORT_LIB_IN_WHEEL")
    if [[ $got != "$ORT_LIB_SHA256" ]]; then
        rm -rf "$tmp"
        die "extracted libonnxruntime.so.$ORT_VERSION sha256 is $got, expected $ORT_LIB_SHA256"
    fi
    mkdir -p "$ORT_DIR/lib"
    mv -f "$tmp/onnxruntime/LICENSE" "$ORT_DIR/LICENSE"
    mv -f "$tmp/onnxruntime/ThirdPartyNotices.txt" "$ORT_DIR/ThirdPartyNotices.txt"
    chmod 0644 "$tmp/$ORT_LIB_IN_WHEEL"
    mv -f "$tmp/$ORT_LIB_IN_WHEEL" "$ORT_LIB" # same filesystem: atomic
    rm -rf "$tmp"
    log "installed ONNX Runtime $ORT_VERSION: $ORT_LIB"
}

# --- 3. Models --------------------------------------------------------------------------------
# Reads one `key = "value"` string from a flat TOML manifest (the schema has no tables).
manifest_get() {
    sed -n "s/^$2[[:space:]]*=[[:space:]]*\"\(.*\)\"[[:space:]]*\$/\1/p" "$1" | head -n1
}

check_models() {
    local f
    for f in "$MODELS"/*.sha256; do
        [[ -e $f ]] || die "no .sha256 files in $MODELS"
        (cd "$MODELS" && sha256sum --quiet --strict -c "$(basename "$f")") \
            || die "model hash mismatch: $f (re-checkout the file, or see models/README.md)"
    done
    local manifest file want path
    for manifest in "$MODELS"/*.toml; do
        file=$(manifest_get "$manifest" file)
        want=$(manifest_get "$manifest" sha256)
        [[ -n $file ]] || die "$manifest: no file = \"...\""
        path="$MODELS/$file"
        if [[ $want == REPLACE_WITH_* ]]; then
            if [[ -f $path ]]; then
                log "NOTE: $path exists but $(basename "$manifest") still has a placeholder sha256;"
                log "      the runtime refuses it until you set sha256 = \"$(sha256_of "$path")\""
            else
                log "optional model not supplied: $file (see models/README.md)"
            fi
            continue
        fi
        [[ $want =~ ^[0-9a-f]{64}$ ]] || die "$manifest: sha256 must be 64 lowercase hex digits"
        [[ -f $path ]] || die "$manifest names $path, which is missing"
        [[ $(sha256_of "$path") == "$want" ]] \
            || die "$path does not match the sha256 in $(basename "$manifest")"
        log "model ok: $file ($want)"
    done
}

# --- main -------------------------------------------------------------------------------------
command -v cargo >/dev/null \
    || log "WARNING: cargo not found on PATH; install the Rust toolchain (rustup) to build"
setup_apt
setup_ort
check_models

data="$(cd "$REPO/.." && pwd)/shared/data"
[[ -d $data ]] || log "WARNING: $data not found: tests that need the real data will say so and fail"

cat <<EOF
setup: done.
  ONNX Runtime     $ORT_LIB
                   export AUTHNET_ORT_LIB=$ORT_LIB   (make test does this for you)
  models           $MODELS
  face detector    $MODELS/seeta_fd_frontal_v1.0.bin
  face landmarks   $MODELS/face_landmark.onnx (checked above with the other models)
  data             $data
  pam_wrapper      $(dpkg -L libpam-wrapper 2>/dev/null | grep -m1 '/libpam_wrapper\.so$' || echo 'not found')
EOF
