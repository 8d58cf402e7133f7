"""Unconstrained offline ceiling: cached ABC features + EASE + windowed personal counts; LR/GBM/LambdaRank + ensemble."""
from common import *
from features import *
from exp_lib import *
import pickle, sys, json, time, warnings, os
warnings.filterwarnings('ignore')
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.pipeline import make_pipeline
import lightgbm as lgb
from scipy.stats import rankdata
NP = 6
d = Data()
base_rec = [0.2012758, 0.1643240, 0.1907712]; base_disc = [0.2815057, 0.3221477, 0.3444909]
EXTRA = ['ease', 'lease_rank', 'w30', 'w60', 'w180', 'nb_last3']

def ease(s, lam):
    X = s.Bin.astype(np.float64)
    G = (X.T @ X).toarray(); G[np.diag_indices_from(G)] += lam
    P = np.linalg.inv(G); B = P / (-np.diag(P)); np.fill_diagonal(B, 0)
    return np.asarray(s.Bin[s.U] @ B)

def add_extra(b, s, lam=300):
    r, it = np.array(b['r']), np.array(b['it']); u = np.array(s.U[r])
    E = ease(s, lam)
    b['F']['ease'] = E[r, it]
    rk = np.argsort(np.argsort(-E, axis=1), axis=1)
    b['F']['lease_rank'] = np.log1p(rk[r, it])
    for w in [30, 60, 180]:
        m = s.bt > s.c - w * DAY
        M = sp.csr_matrix((np.ones(m.sum()), (s.bu[m], s.bi[m])), shape=s.shape)
        b['F'][f'w{w}'] = np.log1p(sparse_lookup(M, u, it))
    # item in customer's last 3 baskets
    vt = np.unique(np.stack([s.rows_u.astype(np.int64), s.rows_t]), axis=1)
    uu = vt[0]; start = np.r_[0, np.flatnonzero(np.diff(uu)) + 1]; ends = np.r_[start[1:], len(uu)]
    pos_from_end = np.repeat(ends, ends - start) - 1 - np.arange(len(uu))
    last3 = {(int(a), int(t)) for a, t, p in zip(vt[0], vt[1], pos_from_end) if p < 3}
    mk = np.array([(int(a), int(t)) in last3 for a, t in zip(s.bu, s.bt)])
    M = sp.csr_matrix((np.ones(mk.sum()), (s.bu[mk], s.bi[mk])), shape=s.shape)
    b['F']['nb_last3'] = sparse_lookup(M, u, it)

def groups(b): return np.bincount(b['r'])[np.unique(b['r'])]

def fit(kind, X, y, w, grp, seed=0, leaves=31, n=300):
    if kind == 'lr':
        m = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=3000))
        m.fit(X, y, logisticregression__sample_weight=w * len(w) / w.sum()); return lambda Z: m.decision_function(Z)
    if kind == 'gbm':
        m = lgb.LGBMClassifier(n_estimators=n, learning_rate=0.03, num_leaves=leaves, min_child_samples=200, subsample=0.8,
                               subsample_freq=1, colsample_bytree=0.8, reg_lambda=1.0, verbose=-1, n_jobs=2, random_state=seed)
        m.fit(X, y, sample_weight=w * len(w) / w.sum()); return lambda Z: m.predict_proba(Z)[:, 1]
    m = lgb.LGBMRanker(objective='lambdarank', n_estimators=n, learning_rate=0.03, num_leaves=leaves, min_child_samples=200,
                       subsample=0.8, subsample_freq=1, colsample_bytree=0.8, lambdarank_truncation_level=20, verbose=-1, n_jobs=2, random_state=seed)
    m.fit(X, y.astype(int), group=grp); return lambda Z: m.predict(Z)

def perrow_rank(b, p):
    # per-customer percentile rank for ensembling
    out = np.empty_like(p)
    for rr in np.unique(b['r']):
        m = b['r'] == rr
        out[m] = rankdata(p[m]) / m.sum()
    return out

feats = FEATS_A + FEATS_B + FEATS_C + EXTRA
out = {}
ONLY = [int(x) for x in sys.argv[1].split(',')] if len(sys.argv) > 1 else [0, 1, 2]
for ci, c in enumerate(CUTOFFS):
    if ci not in ONLY: continue
    t0 = time.time()
    bs = []
    for k in range(NP + 1):
        b = pickle.load(open(f'{STUDY}/cache/c{ci}_k{k}_topNone.pkl', 'rb'))
        s = Snap(d, c - 30 * k * DAY, with_labels=True)
        add_extra(b, s); bs.append(b)
    st = Snap(d, c); te, trs = bs[0], bs[1:]
    print(f'cutoff {ci+1} features {time.time()-t0:.0f}s', flush=True)
    X = np.vstack([to_X(b, feats) for b in trs]); y = np.concatenate([b['y'] for b in trs])
    w = np.concatenate([1.0 / b['nrel'] for b in trs]); grp = np.concatenate([groups(b) for b in trs])
    Xt = to_X(te, feats)
    preds = {}
    for name, kind, kw in [('LR_all', 'lr', {}), ('GBM_all', 'gbm', {}), ('RANK_all', 'rank', {}),
                           ('RANK_all_63l_600', 'rank', dict(leaves=63, n=600)), ('RANK_all_15l', 'rank', dict(leaves=15, n=300))]:
        f = fit(kind, X, y, w, grp, **kw); p = f(Xt); preds[name] = p
        m = eval_scores(scores_dense(st, te, p), st)
        out.setdefault(name, []).append(dict(rec=m['recall'], ndcg=m['ndcg'], ratio=m['recall'] / base_rec[ci]))
        print(f'  {name:18s} R{m["recall"]:.4f} N{m["ndcg"]:.4f} ratio {m["recall"]/base_rec[ci]:.3f}', flush=True)
    ens = sum(perrow_rank(te, preds[k]) for k in ['LR_all', 'GBM_all', 'RANK_all'])
    m = eval_scores(scores_dense(st, te, ens), st)
    out.setdefault('ENSEMBLE', []).append(dict(rec=m['recall'], ndcg=m['ndcg'], ratio=m['recall'] / base_rec[ci]))
    print(f'  {"ENSEMBLE":18s} R{m["recall"]:.4f} N{m["ndcg"]:.4f} ratio {m["recall"]/base_rec[ci]:.3f}', flush=True)
    # discovery-specific GBM/rank with all features
    for name, kind in [('DISC_GBM_all', 'gbm'), ('DISC_RANK_all', 'rank')]:
        Xd, yd, gd = [], [], []
        for b in trs:
            no = b['F']['owned'] == 0
            Xd.append(to_X(b, feats)[no]); yd.append(b['y'][no]); gd.append(np.bincount(b['r'][no])[np.unique(b['r'][no])])
        yy = np.concatenate(yd)
        f = fit(kind, np.vstack(Xd), yy, np.ones(len(yy)), np.concatenate(gd))
        no = te['F']['owned'] == 0
        Sd = np.full((len(st.U), d.ni), -1e6) + 1e-3 * st.pop_rank_score(); Sd[te['r'][no], te['it'][no]] = f(Xt[no])
        md = eval_scores(Sd, st, disc=True)
        out.setdefault(name, []).append(dict(dhit=md['hit'], drec=md['recall'], dratio=md['hit'] / base_disc[ci]))
        print(f'  {name:18s} disc H{md["hit"]:.3f} R{md["recall"]:.4f} ratio {md["hit"]/base_disc[ci]:.3f}', flush=True)
json.dump(out, open(f'res_offline_max_{"".join(map(str,ONLY))}.json', 'w'), indent=1)
