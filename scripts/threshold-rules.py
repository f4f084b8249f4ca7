#!/usr/bin/env python3
"""Threshold rules studied offline on `authnet-eval run --dump-scores` files.

    scripts/threshold-rules.py select  DUMP...   # rank the rules on leave-one-speaker-out dumps
    scripts/threshold-rules.py apply RULE DUMP...  # one rule's figures on other dumps
    scripts/threshold-rules.py spread  DUMP...   # test scores in units of each target's OOF fit

Each dump holds, per target, the fused out-of-fold (OOF) scores enrolment placed its thresholds
on (genuine; negatives by source: other_word, bank, derived) and the ranked test scores. A rule
maps a target's OOF scores to a threshold; it never reads test scores. FMR is pooled over the
targets, with the two impostor groups weighted as in the evaluation protocol (`--own-share`,
default 30/530: 3 held-out words x 10 clips of the user against 5 unseen speakers x 100 clips),
so that leave-one-speaker-out runs, which have one unseen speaker, are judged on the same mix."""
import json, math, statistics, sys

OWN = "same_person_different_word"
VETO = 1000.0  # VETO_RANK_OFFSET: vetoed scores rank this far below the live ones


def stats(v):
    m = statistics.fmean(v)
    s = statistics.pstdev(v) if len(v) > 1 else 0.0
    return m, max(s, 1e-6)


def rule_fns():
    rules = {"deployed": lambda t: t["threshold_fmr"]}

    def gap(alpha):
        def f(t):
            lo = min(t["oof"]["genuine"])
            hi = max(x for x, _ in t["oof"]["impostor"])
            return hi + alpha * (lo - hi) if hi < lo else t["threshold_fmr"]
        return f

    def own_z(k):
        def f(t):
            own = [x for x, s in t["oof"]["impostor"] if s == "other_word"]
            if len(own) < 2:
                own = [x for x, s in t["oof"]["impostor"] if s != "derived"]
            m, s = stats(own)
            return m + k * s
        return f

    def gen_z(k):
        def f(t):
            m, s = stats(t["oof"]["genuine"])
            return m - k * s
        return f

    def meet(w, spread=lambda g, sg, own, si: (sg, si)):
        # Between the genuine and own-word Gaussians: w=0.5 is where the z-distances are equal.
        # `spread` may change the two fitted deviations first.
        def f(t):
            # Live (not vetoed) negatives: the user's other words, else the bank's.
            live = [(x, s) for x, s in t["oof"]["impostor"] if x > -VETO / 2]
            own = [x for x, s in live if s == "other_word"]
            if len(own) < 2:
                own = [x for x, s in live if s != "derived"]
            if len(own) < 2:
                return t["threshold_fmr"]
            g = t["oof"]["genuine"]
            mi, si = stats(own)
            mg, sg = stats(g)
            sg, si = spread(g, sg, own, si)
            z = (mg - mi) / (si + sg)
            if z <= 0:
                return t["threshold_fmr"]
            return mi + si * z * 2 * w if w <= 0.5 else mg - sg * z * 2 * (1 - w)
        return f

    for a in [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]:
        rules[f"gap{a:.1f}"] = gap(a)
    for k in [1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0]:
        rules[f"ownz{k:.1f}"] = own_z(k)
    for k in [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]:
        rules[f"genz{k:.1f}"] = gen_z(k)
    for w in [0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.9]:
        rules[f"meet{w:.2f}"] = meet(w)

    # meet(w) with the deviations widened (genuine times a, own-word times b): on held-out
    # speakers the test scores scatter wider than 7 out-of-fold clips suggest (`spread`).
    for w in [0.6, 0.7, 0.8]:
        for a in [1.5, 2.0, 3.0]:
            for b in [0.75, 1.0, 1.25]:
                rules[f"meet{w:.2f}x{a:.1f}/{b:.2f}"] = meet(
                    w, lambda g, sg, own, si, a=a, b=b: (sg * a, si * b))

    # meet(w) with each deviation shrunk toward the median over the leave-one-speaker-out
    # targets (0.55 genuine, 1.7 own-word), as if m_g and m_i more scores had that spread.
    def shrink(v, s, m, prior):
        return math.sqrt((len(v) * s * s + m * prior**2) / (len(v) + m))

    for w in [0.65, 0.7]:
        for m_g in [3, 7, 15]:
            for m_i in [0, 20]:
                rules[f"meet{w:.2f}~{m_g}/{m_i}"] = meet(
                    w, lambda g, sg, own, si, m_g=m_g, m_i=m_i:
                    (shrink(g, sg, m_g, 0.55), shrink(own, si, m_i, 1.7)))

    def floored(f):
        # Never below the highest out-of-fold impostor (the old target-FMR threshold's floor).
        return lambda t: max(f(t), max(x for x, _ in t["oof"]["impostor"]))

    for w in [0.6, 0.7, 0.8]:
        rules[f"meet{w:.2f}+floor"] = floored(meet(w))
    return rules


def eer(g, i):
    """Equal error rate of genuine scores `g` against impostor scores `i` (accept >= t)."""
    ev = sorted([(x, 1) for x in g] + [(x, 0) for x in i])
    below_g = below_i = 0  # scores under the threshold, which sits at ev[k]
    best, k = 1.0, 0
    while k < len(ev):
        t = ev[k][0]
        fnmr, fmr = below_g / len(g), (len(i) - below_i) / len(i)
        best = min(best, max(fnmr, fmr))
        while k < len(ev) and ev[k][0] == t:
            below_g += ev[k][1]; below_i += 1 - ev[k][1]; k += 1
    return best


def judge(f, dumps, own_share):
    fa_own = n_own = fa_oth = n_oth = fr = ng = 0
    pooled_g, pooled_i = [], []
    for path in dumps:
        for t in json.load(open(path)):
            thr = f(t)
            pooled_g += [x - thr for x in t["test_genuine"]]
            pooled_i += [x - thr for x, _ in t["test_impostor"]]
            ng += len(t["test_genuine"])
            fr += sum(x < thr for x in t["test_genuine"])
            for x, k in t["test_impostor"]:
                if k == OWN:
                    n_own += 1; fa_own += x >= thr
                else:
                    n_oth += 1; fa_oth += x >= thr
    fmr = own_share * fa_own / max(n_own, 1) + (1 - own_share) * fa_oth / max(n_oth, 1)
    fnmr = fr / max(ng, 1)
    return dict(fmr=fmr, fnmr=fnmr, ratio=max(fmr / 1e-3, fnmr / 0.05), eer=eer(pooled_g, pooled_i),
                fa_own=fa_own, n_own=n_own, fa_other=fa_oth, n_other=n_oth, fr=fr, genuine=ng)


def show(name, r):
    print(f"{name:16s} FMR {r['fmr']:.4f} FNMR {r['fnmr']:.3f} ratio {r['ratio']:6.2f} | "
          f"own {r['fa_own']}/{r['n_own']} other {r['fa_other']}/{r['n_other']} "
          f"missed {r['fr']}/{r['genuine']} | pooled EER {r['eer']:.4f}")


if __name__ == "__main__":
    args = sys.argv[1:]
    share = 30 / 530
    if "--own-share" in args:
        i = args.index("--own-share"); share = float(args[i + 1]); del args[i:i + 2]
    rules = rule_fns()
    if args[0] == "spread":
        # How test scores sit against each target's out-of-fold fit, in its own deviations.
        zg, zi = [], []
        for path in args[1:]:
            for t in json.load(open(path)):
                own = [x for x, s in t["oof"]["impostor"] if s == "other_word" and x > -VETO / 2]
                if len(own) < 2:
                    continue
                mg, sg = stats(t["oof"]["genuine"])
                mi, si = stats(own)
                zg += [(x - mg) / sg for x in t["test_genuine"]]
                zi += [(x - mi) / si for x, k in t["test_impostor"] if k == OWN and x > -VETO / 2]
        for name, z in [("test genuine vs out-of-fold genuine", zg),
                        ("test own-word vs out-of-fold own-word", zi)]:
            print(f"{name}: {len(z)} scores, mean {statistics.fmean(z):.2f} sd {statistics.pstdev(z):.2f}")
        sys.exit(0)
    if args[0] == "select":
        res = sorted(((judge(f, args[1:], share), n) for n, f in rules.items()),
                     key=lambda x: x[0]["ratio"])
        for r, n in res:
            show(n, r)
    else:
        show(args[1], judge(rules[args[1]], args[2:], share))
