#!/usr/bin/env python3
"""Labels fresher than one horizon: the experiment of docs/model.md ("Open problems", fresher
labels). For each default cutoff C of a log it compares, on the vectors `persona evaluate
--vectors` writes (numpy only, L2 1e-3 per example as the batch LR baseline):

  batch   the same-run batch LR: vectors as of C - H labelled by (C - H, C];
  fresh   an LR on vectors as of C - H/2 (or C - H/4) labelled by the half (quarter) horizon
          after them, (C - H/2, C]: fresher examples, shorter labels; its logit is then
          calibrated to the full horizon on the batch LR's training set (Platt scaling);
  stack   an LR on the full-horizon training set over the two logits;
  mean    the mean of the batch and fresh probabilities;

and prints, per cutoff, AUC / Brier of persona, batch and each variant.

Usage: fresh_labels.py PERSONA LOG [HALF_HORIZONS, e.g. 15,7.5]   (needs numpy)
"""
import json, os, subprocess, sys, tempfile
import numpy as np


def load(path, skip):
    rows = np.genfromtxt(path, delimiter=",", skip_header=1, ndmin=2)[:, 1:]
    return rows[:, 0], rows[:, skip:]


def lr_fit(x, y, l2=1e-3, iters=50):
    n, d = x.shape
    xb = np.hstack([x, np.ones((n, 1))])
    w = np.zeros(d + 1)
    for _ in range(iters):
        p = 1 / (1 + np.exp(-xb @ w))
        g = xb.T @ (p - y) / n + l2 * np.r_[w[:-1], 0]
        h = (xb * (p * (1 - p))[:, None]).T @ xb / n + l2 * np.diag(np.r_[np.ones(d), 0])
        step = np.linalg.solve(h, g)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return w


def auc(s, y):
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    ss = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and ss[j + 1] == ss[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    pos = y == 1
    n1, n0 = pos.sum(), len(y) - pos.sum()
    return (ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)


def logit(w, x):
    return np.hstack([x, np.ones((len(x), 1))]) @ w


def standardise(x):
    mu, sd = x.mean(0), x.std(0)
    sd[sd == 0] = 1
    return lambda z: (z - mu) / sd


def vectors(persona, log, cutoffs, out, horizon=None):
    args = [persona, "evaluate", log, "--json", "--vectors", out]
    if horizon is not None:
        args += ["--horizon-days", str(horizon)]
    for c in cutoffs:
        args += ["--cutoff", str(c)]
    return json.loads(subprocess.run(args, check=True, capture_output=True).stdout)


def main():
    persona, log = sys.argv[1], sys.argv[2]
    halves = [float(x) for x in (sys.argv[3] if len(sys.argv) > 3 else "15,7.5").split(",")]
    with tempfile.TemporaryDirectory() as d:
        rep = json.loads(subprocess.run([persona, "evaluate", log, "--json"], check=True, capture_output=True).stdout)
        cuts = [c["cutoff_ms"] for c in rep["cutoffs"]]
        vectors(persona, log, cuts, f"{d}/full")
        for h in halves:
            vectors(persona, log, cuts, f"{d}/h{h}", h)
        for c in cuts:
            score = np.genfromtxt(f"{d}/full/score-{c}.csv", delimiter=",", skip_header=1, ndmin=2)[:, 1:]
            yc, pers, xc = score[:, 0], score[:, 1], score[:, 2:]
            ya, xa = load(f"{d}/full/train-{c}.csv", 1)
            sa = standardise(xa)
            wa = lr_fit(sa(xa), ya)
            pa = 1 / (1 + np.exp(-logit(wa, sa(xc))))
            line = [os.path.basename(log), str(c), f"persona {auc(pers, yc):.4f}/{((pers - yc) ** 2).mean():.5f}",
                    f"batch {auc(pa, yc):.4f}/{((pa - yc) ** 2).mean():.5f}"]
            for h in halves:
                yf, xf = load(f"{d}/h{h}/train-{c}.csv", 1)
                sf = standardise(xf)
                wf = lr_fit(sf(xf), yf)
                za, zc = logit(wf, sf(xa)), logit(wf, sf(xc))
                wc = lr_fit(za[:, None], ya, l2=0)
                pf = 1 / (1 + np.exp(-(wc[0] * zc + wc[1])))
                ws = lr_fit(np.c_[logit(wa, sa(xa)), za], ya, l2=0)
                ps = 1 / (1 + np.exp(-(np.c_[logit(wa, sa(xc)), zc] @ ws[:2] + ws[2])))
                pm = (pa + pf) / 2
                line.append(" ".join(f"{n} {auc(p, yc):.4f}/{((p - yc) ** 2).mean():.5f}"
                                     for n, p in ((f"fresh{h:g}", pf), ("stack", ps), ("mean", pm))))
            print(" | ".join(line), flush=True)


if __name__ == "__main__":
    main()
