"""Build and cache feature tables for cutoffs and pseudo-cutoffs. argv: topk_own (0=full)"""
from common import *
from features import *
import pickle, sys, time, os
TOPK = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1] != '0' else None
NP = 6
d = Data()
os.makedirs(f'{STUDY}/cache', exist_ok=True)
for ci, c in enumerate(CUTOFFS):
    for k in range(0, NP + 1):
        fn = f'{STUDY}/cache/c{ci}_k{k}_top{TOPK}.pkl'
        if os.path.exists(fn): continue
        t0 = time.time()
        s = Snap(d, c - 30 * k * DAY)
        b = build(s, topk_own=TOPK)
        # candidate ceiling: share of relevant covered
        cov = np.zeros_like(s.T); cov[b['r'], b['it']] = True
        b['cand_recall_ceiling'] = float(((cov & s.T).sum(1) / s.T.sum(1)).mean())
        b['U'] = s.U; b['c'] = s.c
        pickle.dump(b, open(fn, 'wb'))
        print(ci, k, len(b['r']), f"{time.time()-t0:.0f}s cand-ceiling {b['cand_recall_ceiling']:.3f}", flush=True)
