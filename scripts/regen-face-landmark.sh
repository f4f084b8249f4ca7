#!/usr/bin/env bash
# Regenerate models/face_landmark.onnx from its registry package and check it.
#
#   scripts/regen-face-landmark.sh           regenerate into .cache/, compare with models/
#   scripts/regen-face-landmark.sh --write   also (over)write models/face_landmark.onnx{,.sha256}
#
# Steps: `pip download --no-deps mediapipe==0.10.21` (the CPython 3.11 manylinux x86_64 wheel;
# sha256 pinned) -> extract mediapipe/modules/face_landmark/face_landmark.tflite (sha256 and
# size pinned) -> convert with scripts/tflite_to_onnx_landmark.py (our own converter on the
# `tflite` and `onnx` packages, in a throwaway venv under .cache/) -> compare the sha256 with
# models/face_landmark.onnx.sha256 (strict: the conversion is byte-reproducible with the pinned
# Python packages) -> run the new ONNX with onnxruntime and the .tflite with LiteRT on the same
# inputs and require max abs difference <= 1e-3.
#
# Needs: python3 with pip and venv support (Debian: python3-venv), unzip, network access to
# PyPI. Not part of `make setup`: the converted model is committed.
set -euo pipefail

REGEN=regen-face-landmark
MODEL=face_landmark.onnx
WHEEL_SPEC=mediapipe==0.10.21
WHEEL_FILE=mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl
WHEEL_SHA256=05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3
TFLITE_IN_WHEEL=mediapipe/modules/face_landmark/face_landmark.tflite
TFLITE_BYTES=1242398
TFLITE_SHA256=1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814
# Exact versions the committed file was produced with. Other onnx/protobuf versions may
# serialise differently; if you change these, expect a new sha256 and re-pin it.
PY_PINS=(
    tflite==2.18.0 onnx==1.23.2 protobuf==7.36.2 numpy==2.4.6
    onnxruntime==1.22.1 ai-edge-litert==2.3.0
)

# shellcheck source=scripts/lib/regen-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/regen-common.sh" "$@"

command -v unzip >/dev/null || die "unzip not found (Debian: apt-get install unzip)"

mkdir -p "$WORK/wheel"

# 1. The wheel, straight from PyPI, for CPython 3.11 on manylinux x86_64 whatever this host is.
wheel="$WORK/wheel/$WHEEL_FILE"
if [[ ! -f $wheel || $(sha256_of "$wheel") != "$WHEEL_SHA256" ]]; then
    log "downloading $WHEEL_SPEC"
    rm -f "$wheel"
    PIP_DISABLE_PIP_VERSION_CHECK=1 python3 -m pip download --quiet --no-deps --no-cache-dir \
        --only-binary=:all: --python-version 3.11 --implementation cp \
        --platform manylinux_2_28_x86_64 -d "$WORK/wheel" "$WHEEL_SPEC" \
        || die "pip download $WHEEL_SPEC failed"
fi
[[ -f $wheel ]] || die "pip did not produce $WHEEL_FILE"
got=$(sha256_of "$wheel")
[[ $got == "$WHEEL_SHA256" ]] || die "$WHEEL_FILE sha256 is $got, expected $WHEEL_SHA256"
log "wheel sha256 ok: $got"

# 2. The .tflite out of it.
rm -rf "$WORK/extract"
unzip -q -o "$wheel" "$TFLITE_IN_WHEEL" -d "$WORK/extract" || die "$TFLITE_IN_WHEEL not in $WHEEL_FILE"
tflite="$WORK/extract/$TFLITE_IN_WHEEL"
size=$(stat -c %s "$tflite")
[[ $size == "$TFLITE_BYTES" ]] || die "face_landmark.tflite is $size bytes, expected $TFLITE_BYTES"
got=$(sha256_of "$tflite")
[[ $got == "$TFLITE_SHA256" ]] || die "face_landmark.tflite sha256 is $got, expected $TFLITE_SHA256"
log "tflite ok: $size bytes, sha256 $got"

# 3. A throwaway venv with the pinned converter and checkers.
regen_venv

# 4. Convert, check numerically, compare.
regen_convert tflite_to_onnx_landmark.py "$tflite"
regen_finish
