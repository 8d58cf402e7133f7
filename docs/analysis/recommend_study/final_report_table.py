"""Aggregate $STUDY_DIR/final/*.pkl -> tables with paired bootstrap CIs."""
import pickle, numpy as np, json
import os
STUDY = os.environ.get("STUDY_DIR", ".")
rng = np.random.default_rng(0)
def boot(a, b, n=2000):
    idx = rng.integers(0, len(a), size=(n, len(a)))
    return np.percentile(a[idx].mean(1) / b[idx].mean(1), [2.5, 97.5])
out = {}
for part, base, key in [('rec', 'own_purchases (baseline)', 'recall'), ('disc', 'popular_90d minus owned (baseline)', 'hit')]:
    P = [pickle.load(open(f'{STUDY}/final/{part}_{ci}.pkl', 'rb')) for ci in range(3)]
    print(f'\n## {part}: {key}@10, ratio to {base}, [95% paired bootstrap CI]')
    for name in P[0]['res']:
        row = []
        for ci in range(3):
            v = P[ci]['res'][name]; b = P[ci]['res'][base]
            lo, hi = boot(v[key], b[key])
            row.append(dict(recall=float(v['recall'].mean()), ndcg=float(v['ndcg'].mean()), hit=float(v['hit'].mean()),
                            ratio=float(v[key].mean() / b[key].mean()), lo=float(lo), hi=float(hi), n=len(v[key])))
        out.setdefault(part, {})[name] = row
        if part == 'rec':
            print(f'| {name} | ' + ' | '.join(f"{x['recall']:.3f} / {x['ndcg']:.3f} / **{x['ratio']:.2f}x** [{x['lo']:.2f}-{x['hi']:.2f}]" for x in row) + ' |')
        else:
            print(f'| {name} | ' + ' | '.join(f"{x['hit']:.3f} / {x['recall']:.3f} / **{x['ratio']:.2f}x** [{x['lo']:.2f}-{x['hi']:.2f}]" for x in row) + ' |')
    if part == 'disc':
        out['importance'] = [P[ci]['imp'] for ci in range(3)]
json.dump(out, open(f'{STUDY}/res_final.json', 'w'), indent=1)
