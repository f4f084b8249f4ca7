# shellcheck shell=bash
# The steps scripts/regen-*.sh share: argument parsing, the throwaway venv, the convert-and-verify
# run of the converter, and writing or comparing the result with models/.
#
# Sourced with the caller's arguments (`source "$(dirname ...)/lib/regen-common.sh" "$@"`)
# after the caller sets:
#   REGEN    its name in messages (regen-face-landmark)
#   MODEL    the model's file under models/ (face_landmark.onnx; models/<stem>.toml pins it)
#   PY_PINS  the exact Python packages the committed file was produced with (array)
# Sets REPO, MODELS, WORK (.cache/$REGEN), OUT ($WORK/$MODEL) and `write` (1 with --write);
# --help prints the caller's header comment.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MODELS="$REPO/models"
WORK="$REPO/.cache/$REGEN"
OUT="$WORK/$MODEL"

die() { printf '%s: error: %s\n' "$REGEN" "$*" >&2; exit 1; }
log() { printf '%s: %s\n' "$REGEN" "$*"; }
sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

write=0
case "${1:-}" in
    "") ;;
    --write) write=1 ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
esac

command -v python3 >/dev/null || die "python3 not found"

# A throwaway venv, $venv, under $WORK with "${PY_PINS[@]}" installed.
regen_venv() {
    venv="$WORK/venv"
    if [[ ! -x $venv/bin/python ]]; then
        python3 -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    fi
    log "installing ${PY_PINS[*]} into $venv"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install --quiet --no-cache-dir \
        "${PY_PINS[@]}" || die "pip install into $venv failed"
}

# regen_convert CONVERTER TFLITE: scripts/CONVERTER (in $venv) converts TFLITE into $OUT and
# verifies it numerically against TFLITE; sets new_sha.
regen_convert() {
    local converter="$REPO/scripts/$1" tflite=$2
    # No __pycache__ of scripts/regen_common.py in the source tree.
    export PYTHONDONTWRITEBYTECODE=1
    rm -f "$OUT" "$OUT.raw"
    "$venv/bin/python" "$converter" convert "$tflite" "$OUT"
    new_sha=$(sha256_of "$OUT")
    log "produced $OUT"
    log "onnx sha256: $new_sha"

    "$venv/bin/python" "$converter" verify "$tflite" "$OUT" \
        || die "numeric check of the new ONNX against the tflite failed"
}

# With --write, copies $OUT to models/ with its .sha256; otherwise requires $OUT to be
# byte-identical to the committed models/$MODEL.
regen_finish() {
    local toml="${MODEL%.onnx}.toml"
    if ((write)); then
        cp "$OUT" "$MODELS/$MODEL"
        printf '%s  %s\n' "$new_sha" "$MODEL" >"$MODELS/$MODEL.sha256"
        log "wrote $MODELS/$MODEL and .sha256"
        grep -q "^sha256 = \"$new_sha\"$" "$MODELS/$toml" 2>/dev/null \
            || log "NOTE: update sha256 in models/$toml to $new_sha"
        exit 0
    fi

    [[ -f $MODELS/$MODEL.sha256 ]] || die "models/$MODEL.sha256 missing"
    local want_sha
    want_sha=$(cut -d' ' -f1 "$MODELS/$MODEL.sha256")
    if [[ $new_sha != "$want_sha" ]]; then
        die "regenerated onnx sha256 $new_sha != committed $want_sha (different Python package versions?)"
    fi
    if [[ -f $MODELS/$MODEL ]]; then
        cmp -s "$OUT" "$MODELS/$MODEL" \
            || die "models/$MODEL differs from its .sha256 and from the regenerated file"
    fi
    log "ok: regenerated file is byte-identical to the committed models/$MODEL"
}
