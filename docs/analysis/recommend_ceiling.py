#!/usr/bin/env python3
"""Where the recommendation backtest of `persona evaluate` could go: the analysis behind
docs/model.md ("Recommendations").

For each cutoff C of `persona evaluate --json` on a log whose events name items, with the same
definitions as the backtest (customers with events by C who buy a named item in (C, C + 30 days];
recall, NDCG and hit rate at 10; lists filled up with the 90-day bestsellers), this prints:

  the ceiling     mean of min(10, |bought|) / |bought|: recall@10 of a perfect list, and of a
                  perfect list made only of items the customer had bought before (repeat buying);
  own_count       the customer's items by lifetime purchase count, ties by recency (the
                  backtest's own_purchases baseline);
  own_decay_H     by purchases decayed with half-life H days (None: undecayed, no tie-break);
  cooc_only       item-item co-occurrence of the customer's 30 most engaged items (cosine of
                  customer-level co-purchase counts over the last 365 days);
  blend_L         own (decayed 90 days, normalised) + L x co-occurrence (normalised).

Usage: recommend_ceiling.py LOG.csv EVALUATE.json   (standard library only; about a minute on
the 805k-line online_retail_2009_2011.items log)
"""
import collections
import csv
import json
import math
import sys
import time

DAY = 86_400_000
HORIZON = 30 * DAY


def metrics(ranked, relevant):
    hits, dcg = 0, 0.0
    for k, item in enumerate(ranked[:10]):
        if item in relevant:
            hits += 1
            dcg += 1 / math.log2(k + 2)
    ideal = sum(1 / math.log2(k + 2) for k in range(min(len(relevant), 10)))
    return hits / len(relevant), (dcg / ideal if ideal else 0.0), float(hits > 0)


def main(log, report):
    rows = []
    with open(log) as f:
        for x in csv.DictReader(f):
            if x["kind"] == "purchase" and x.get("item"):
                rows.append((int(x["timestamp"]), x["customer_id"], x["item"]))
    rows.sort()
    cutoffs = [c["cutoff_ms"] for c in json.load(open(report))["cutoffs"]]
    for c in cutoffs:
        before = [r for r in rows if r[0] <= c]
        seen = {cu for _, cu, _ in before}
        after = collections.defaultdict(set)
        for t, cu, it in rows:
            if c < t <= c + HORIZON and cu in seen:
                after[cu].add(it)
        owned = collections.defaultdict(collections.Counter)
        last = collections.defaultdict(dict)
        for t, cu, it in before:
            owned[cu][it] += 1
            last[cu][it] = t
        n = len(after)
        ceiling = sum(min(10, len(s)) / len(s) for s in after.values()) / n
        ceiling_owned = sum(min(10, len(s & set(owned[u]))) / len(s) for u, s in after.items()) / n

        def decayed(half_life):
            w = collections.defaultdict(collections.Counter)
            for t, cu, it in before:
                w[cu][it] += 0.5 ** ((c - t) / (half_life * DAY)) if half_life else 1
            return w

        weights = {h: decayed(h) for h in (30, 90, 180, None)}
        sets = collections.defaultdict(set)
        for t, cu, it in before:
            if t > c - 365 * DAY:
                sets[cu].add(it)
        popular = [i for i, _ in collections.Counter(
            it for t, _, it in before if t > c - 90 * DAY).most_common(200)]
        count, co = collections.Counter(), collections.defaultdict(collections.Counter)
        for s in sets.values():
            if len(s) > 200:
                continue
            for i in s:
                count[i] += 1
                for j in s:
                    if i != j:
                        co[i][j] += 1
        sums = collections.defaultdict(lambda: [0.0, 0.0, 0.0])
        for u, relevant in after.items():
            lists = {"own_count": [i for i, _ in sorted(
                owned[u].items(), key=lambda kv: (-kv[1], -last[u][kv[0]]))]}
            for h, w in weights.items():
                lists[f"own_decay_{h}"] = [i for i, _ in w[u].most_common()]
            cooc = collections.Counter()
            for i, wi in weights[90][u].most_common(30):
                for j, cij in co[i].most_common(50):
                    cooc[j] += wi * cij / math.sqrt(count[i] * count[j])
            lists["cooc_only"] = [j for j, _ in cooc.most_common(10)]
            total_own = sum(weights[90][u].values()) or 1
            total_co = sum(cooc.values()) or 1
            for lam in (0.5, 1, 2, 4):
                s = collections.Counter()
                for i, wi in weights[90][u].items():
                    s[i] += wi / total_own
                for j, v in cooc.most_common(100):
                    s[j] += lam * v / total_co
                lists[f"blend_{lam}"] = [j for j, _ in s.most_common(10)]
            for name, ranked in lists.items():
                ranked = (ranked + [p for p in popular if p not in ranked])[:10]
                for k, m in enumerate(metrics(ranked, relevant)):
                    sums[name][k] += m
        day = time.strftime("%Y-%m-%d", time.gmtime(c / 1000))
        print(f"{day}: {n} customers; recall@10 ceiling {ceiling:.3f}, "
              f"from items they had bought {ceiling_owned:.3f}")
        for name, (r, g, h) in sums.items():
            print(f"  {name:<16} recall {r / n:.3f}  ndcg {g / n:.3f}  hit rate {h / n:.3f}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
