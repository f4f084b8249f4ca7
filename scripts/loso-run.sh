#!/usr/bin/env bash
# The selection protocol in one command: for each seed, each of its training speakers in turn
# is the only unseen speaker and the other four train (no clip of the seed's own unseen speakers
# is read). Mouth crops, FMR policy; extra arguments go to every `authnet-eval run`.
#
#   scripts/loso-run.sh NAME [authnet-eval run options...]
#   scripts/word-model-loso.py NAME='reports/loso/NAME/*.json'
#
# Writes reports/loso/NAME/S-U.json and its --dump-scores file. SEEDS (default "0 1 2") and
# EVAL (default target/release/authnet-eval) may be set in the environment. The training
# speakers per seed are those `authnet-eval run` picks (as in scripts/operating-point-loso.py).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
name=${1:?usage: scripts/loso-run.sh NAME [run options...]}
shift
EVAL=${EVAL:-target/release/authnet-eval}
DATA=${DATA:-../shared/data/miracl-vc1/lips}
declare -A TRAIN=([0]=F01,F02,F07,F08,F10 [1]=F01,F06,F08,F09,F10 [2]=F01,F02,F08,F09,F10)
out=reports/loso/$name
mkdir -p "$out"
for s in ${SEEDS:-0 1 2}; do
    for u in ${TRAIN[$s]//,/ }; do
        "$EVAL" run --dataset "$DATA" --modality lips --seed "$s" --speakers "${TRAIN[$s]}" \
            --unseen-speakers "$u" --threshold-policy fmr "$@" \
            --report "$out/$s-$u.json" --dump-scores "$out/$s-$u.scores.json" >/dev/null
    done
done
