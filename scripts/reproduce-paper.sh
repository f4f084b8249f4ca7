#!/usr/bin/env bash
# Reproduces the evaluation tables of README.md ("Reproducing the paper") on MIRACL-VC1.
#
#   scripts/reproduce-paper.sh [DATA_DIR] [OUT_DIR]
#
# DATA_DIR defaults to ../shared/data/miracl-vc1; OUT_DIR to reports/ (gitignored: the reports
# hold only aggregate figures, but they are regenerated, not committed). Every run uses seed 0
# and the protocol defaults (half the speakers unseen, 3 held-out words per training speaker,
# split before oversampling) unless its line says otherwise.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
data=${1:-../shared/data/miracl-vc1}
out=${2:-reports}
[ -d "$data/faces" ] && [ -d "$data/lips" ] || { echo "reproduce-paper: no MIRACL-VC1 frames at $data" >&2; exit 1; }
make -s setup
cargo build --release -p authnet-eval
export AUTHNET_ORT_LIB=${AUTHNET_ORT_LIB:-$PWD/vendor/onnxruntime/lib/libonnxruntime.so.1.22.1}
export AUTHNET_MODELS_DIR=${AUTHNET_MODELS_DIR:-$PWD/models}
eval_bin=target/release/authnet-eval
mkdir -p "$out"
run() { # name, then authnet-eval run arguments
    local name=$1; shift
    echo "== $name"
    local t0=$SECONDS
    "$eval_bin" run --seed 0 "$@" \
        --report "$out/$name.json" --markdown "$out/$name.md" --plots "$out/$name-plots"
    echo "   wall $((SECONDS - t0)) s"
}
run faces            --dataset "$data/faces" --modality face
run faces-paper      --dataset "$data/faces" --modality face --paper-split
run lips             --dataset "$data/lips"  --modality lips
run lips-paper       --dataset "$data/lips"  --modality lips --paper-split
run lips-lstm        --dataset "$data/lips"  --modality lips --word-model lstm
run faces-lstm       --dataset "$data/faces" --modality face --word-model lstm
run faces-lstm-paper --dataset "$data/faces" --modality face --word-model lstm --lstm paper
run faces-fmr        --dataset "$data/faces" --modality face --threshold-policy fmr
run lips-fmr         --dataset "$data/lips"  --modality lips --threshold-policy fmr
echo "reports in $out/"
