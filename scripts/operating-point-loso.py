#!/usr/bin/env python3
"""Run from the repository root after `cargo build --release -p authnet-eval`:
    scripts/operating-point-loso.py [SEEDS]   (default 0,1,2; about 7 minutes on 2 cores)

Leave-one-speaker-out inside the training speakers of a seed: the selection protocol.

For seed s, the run's training speakers T (the speakers left after the seed's unseen half) are
split again: each u in T in turn is the only unseen speaker, the other 4 are training speakers.
No clip of the seed's unseen speakers is read. Pools the counts over every run of a variant.
TRAIN lists the training speakers `authnet-eval run` picks for each seed on the mouth-crop
data (a report's `speakers` minus its `unseen_speakers`)."""
import json, os, subprocess, sys

TRAIN = {0: "F01,F02,F07,F08,F10", 1: "F01,F06,F08,F09,F10", 2: "F01,F02,F08,F09,F10"}
VARIANTS = {"old": ("false", "false"), "grouped": ("true", "false"), "grouped+mid": ("true", "true")}
os.makedirs("reports/dev", exist_ok=True)
seeds = [int(x) for x in sys.argv[1].split(",")] if len(sys.argv) > 1 else [0, 1, 2]
for name, (g, m) in VARIANTS.items():
    tot = dict(g=0, i=0, fa=0, fr=0, fae=0, fre=0, val=[], sp=[])
    for s in seeds:
        for u in TRAIN[s].split(","):
            out = f"reports/dev/s{s}-{u}-{name}.json"
            subprocess.run(["target/release/authnet-eval", "run", "--dataset",
                            "../shared/data/miracl-vc1/lips", "--modality", "lips", "--seed", str(s),
                            "--speakers", TRAIN[s], "--unseen-speakers", u, "--threshold-policy", "fmr",
                            "--group-folds", g, "--gap-midpoint", m, "--report", out],
                           check=True, capture_output=True)
            r = json.load(open(out))
            a = r["at_deployed_threshold"]
            ng, ni = r["genuine_trials"], r["impostor_trials"]
            tot["g"] += ng; tot["i"] += ni
            tot["fa"] += round(a["fmr"]["fmr"] * ni); tot["fr"] += round(a["fmr"]["fnmr"] * ng)
            tot["fae"] += round(a["eer"]["fmr"] * ni); tot["fre"] += round(a["eer"]["fnmr"] * ng)
            tot["val"].append(r["validation_eer_mean"]); tot["sp"].append(r["eer"])
    fmr, fnmr = tot["fa"] / tot["i"], tot["fr"] / tot["g"]
    print(f"{name:12s} genuine {tot['g']} impostor {tot['i']} | FMR policy FMR {fmr:.4f} FNMR {fnmr:.3f}"
          f" | EER policy FMR {tot['fae']/tot['i']:.4f} FNMR {tot['fre']/tot['g']:.3f}"
          f" | val EER mean {sum(tot['val'])/len(tot['val']):.4f} pooled EER mean {sum(tot['sp'])/len(tot['sp']):.4f}"
          f" | goal ratio max(FMR/0.001, FNMR/0.05) {max(fmr/0.001, fnmr/0.05):.2f}", flush=True)
