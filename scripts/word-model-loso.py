#!/usr/bin/env python3
"""Compare word models on leave-one-speaker-out dumps (the selection protocol: each seed's
training speakers, one of them held out in turn; no clip of the seed's unseen speakers).

    scripts/word-model-loso.py NAME=GLOB [NAME=GLOB ...]

Each GLOB matches the `--report` JSON files of one word model's runs (their `--dump-scores`
files sit beside them as *.scores.json). Prints, per model, the pooled FMR / FNMR at the
deployed FMR-policy thresholds (FMR weighted to the evaluation's impostor mix, as
threshold-rules.py does), the mean pooled EER and the mean validation EER."""
import glob, importlib.util, json, os, sys

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("rules", os.path.join(here, "threshold-rules.py"))
rules = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rules)

for arg in sys.argv[1:]:
    name, pat = arg.split("=", 1)
    reports = sorted(f for f in glob.glob(pat) if not f.endswith(".scores.json"))
    dumps = [f[: -len(".json")] + ".scores.json" for f in reports]
    r = rules.judge(lambda t: t["threshold_fmr"], dumps, 30 / 530)
    eers = [json.load(open(f))["eer"] for f in reports]
    vals = [json.load(open(f))["validation_eer_mean"] for f in reports]
    print(f"{name:22s} runs {len(reports):2d} | FMR {r['fmr']:.4f} FNMR {r['fnmr']:.3f} "
          f"ratio {r['ratio']:.2f} | own {r['fa_own']}/{r['n_own']} other {r['fa_other']}/{r['n_other']} "
          f"missed {r['fr']}/{r['genuine']} | mean pooled EER {sum(eers)/len(eers):.4f} "
          f"| mean validation EER {sum(vals)/len(vals):.4f}")
