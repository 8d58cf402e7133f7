#!/usr/bin/env python3
"""What a learner that fits its examples exactly could reach: the ceiling analysis of
docs/model.md ("How far an exact fit gets").

For each default cutoff C of a log, this runs `persona evaluate --vectors` at C and at
C - k*horizon/2 (k = 1..10), so that `train-*.csv` holds, for every k, the vectors as of
C - horizon - k*horizon/2 labelled by the following horizon: examples that are complete by C,
i.e. data the online model could have learned from. It then fits, with scikit-learn:

  batch_lr   the same-run baseline (vectors as of C - horizon), to check it matches persona's;
  exact_all  an L2 logistic regression (same penalty per example) on every complete example
             (k = 1..10 pooled): what an exact optimiser of the online model's examples reaches;
  spline     the batch LR with a quadratic spline basis (5 quantile knots) on the 11 core features;
  gbm        gradient-boosted trees on the batch LR's training set;

and prints one markdown row per cutoff with persona's AUC and the best same-run baseline.

Usage: exact_fit.py PERSONA LOG [--truth T]   (needs numpy and scikit-learn)
"""
import json, os, subprocess, sys, tempfile, warnings
from datetime import datetime, timezone

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import SplineTransformer, StandardScaler

warnings.filterwarnings("ignore")
L2 = 1e-3  # BATCH_LR_L2 in src/evaluate/baselines.rs: per example
CORE = 11  # recency_days .. rating_mean


def evaluate(persona, log, cutoffs, out):
    args = [persona, "evaluate", log, "--json", "--vectors", out]
    for c in cutoffs:
        args += ["--cutoff", str(c)]
    return json.loads(subprocess.run(args, check=True, capture_output=True).stdout)


def load(path):
    if not os.path.exists(path):
        return None
    a = np.genfromtxt(path, delimiter=",", skip_header=1, ndmin=2)
    return a[:, 1:] if a.size and a.shape[1] > 2 else None  # drop customer_id


def lr(x, y, x_test):
    n = len(y)
    s = StandardScaler().fit(x)
    m = LogisticRegression(C=1 / (L2 * n), max_iter=5000).fit(s.transform(x), y)
    return m.predict_proba(s.transform(x_test))[:, 1]


def main():
    persona, log = sys.argv[1], sys.argv[2]
    report = json.loads(
        subprocess.run([persona, "evaluate", log, "--json"], check=True, capture_output=True).stdout
    )
    h = int(report["horizon_days"] * 86_400_000)
    for cut in report["cutoffs"]:
        c = cut["cutoff_ms"]
        s = cut["scores"]
        best = max(
            (s[k]["auc"], k) for k in ("neg_recency", "frequency", "monetary", "batch_lr") if s[k]["auc"] is not None
        )
        with tempfile.TemporaryDirectory() as d:
            ks = range(0, 11)
            evaluate(persona, log, [c - k * h // 2 for k in ks], d)
            score = load(f"{d}/score-{c}.csv")
            y, p, x = score[:, 0], score[:, 1], score[:, 2:]
            train = {k: load(f"{d}/train-{c - k * h // 2}.csv") for k in ks}
        t0 = train[0]
        res = {"persona": roc_auc_score(y, p), "batch_lr": roc_auc_score(y, lr(t0[:, 1:], t0[:, 0], x))}
        older = [train[k] for k in ks if k > 0 and train[k] is not None]
        if older:
            pooled = np.vstack(older)
            res["exact_all"] = roc_auc_score(y, lr(pooled[:, 1:], pooled[:, 0], x))
        st = SplineTransformer(n_knots=5, degree=2, knots="quantile", extrapolation="constant")
        st.fit(t0[:, 1 : 1 + CORE])
        expand = lambda a: np.hstack([a, st.transform(a[:, :CORE])])
        res["spline"] = roc_auc_score(y, lr(expand(t0[:, 1:]), t0[:, 0], expand(x)))
        gbm = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=50)
        res["gbm"] = roc_auc_score(y, gbm.fit(t0[:, 1:], t0[:, 0]).predict_proba(x)[:, 1])
        day = datetime.fromtimestamp(c / 1000, timezone.utc).strftime("%Y-%m-%d")
        cells = " | ".join(f"{res.get(k, float('nan')):.3f}" for k in ("persona", "exact_all", "spline", "gbm"))
        print(f"| {os.path.basename(log)} | {day} | {best[0]:.3f} ({best[1]}) | {cells} | {res['batch_lr']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
