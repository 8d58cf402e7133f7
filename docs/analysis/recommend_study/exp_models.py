"""Ranking models on cached features. Train on pseudo-cutoffs k=1..NP (labels end <= c), test at c (k=0)."""
from common import *
from features import *
import pickle, sys, json, time, warnings
warnings.filterwarnings('ignore')
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.pipeline import make_pipeline
import lightgbm as lgb
TOPK = sys.argv[1] if len(sys.argv) > 1 else 'None'
NP = int(sys.argv[2]) if len(sys.argv) > 2 else 6
only = sys.argv[3].split(',') if len(sys.argv) > 3 else None
d = Data()
base_rec = [0.2012758, 0.1643240, 0.1907712]; base_disc = [0.2815057, 0.3221477, 0.3444909]
A = FEATS_A; B = FEATS_B; C = FEATS_C
NODUE = [f for f in A if f not in ('ldue', 'ldue2', 'due_in', 'lint', 'hasint', 'x_due_cdue')]
PERS = ['owned','lcnt','lnb','lsince','lfirst','ldec30','ldec90','ldec365','share','lint','hasint','ldue','ldue2','due_in','own_rank','in_last_basket','l_since_minus_lv']
configs = {
  'LR_pers_only': (PERS, 'lr'),
  'LR_A_nodue': (NODUE, 'lr'),
  'LR_A': (A, 'lr'),
  'LR_AB': (A + B, 'lr'),
  'LR_ABC': (A + B + C, 'lr'),
  'GBM_A': (A, 'gbm'),
  'GBM_ABC': (A + B + C, 'gbm'),
  'RANK_A': (A, 'rank'),
  'RANK_ABC': (A + B + C, 'rank'),
}
if only: configs = {k: v for k, v in configs.items() if k in only}

def fit(kind, X, y, w, grp):
    if kind == 'lr':
        m = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=3000))
        m.fit(X, y, logisticregression__sample_weight=w * len(w) / w.sum())
        return lambda Z: m.decision_function(Z)
    if kind == 'gbm':
        m = lgb.LGBMClassifier(n_estimators=300, learning_rate=0.03, num_leaves=31, min_child_samples=200,
                               subsample=0.8, subsample_freq=1, colsample_bytree=0.8, reg_lambda=1.0, verbose=-1, n_jobs=2)
        m.fit(X, y, sample_weight=w * len(w) / w.sum())
        return lambda Z: m.predict_proba(Z)[:, 1]
    if kind == 'rank':
        m = lgb.LGBMRanker(objective='lambdarank', n_estimators=300, learning_rate=0.03, num_leaves=31,
                           min_child_samples=200, subsample=0.8, subsample_freq=1, colsample_bytree=0.8,
                           lambdarank_truncation_level=20, verbose=-1, n_jobs=2)
        m.fit(X, y.astype(int), group=grp)
        return lambda Z: m.predict(Z)

def groups(b):
    # rows are sorted by r (np.nonzero order) -> group sizes
    return np.bincount(b['r'])[np.unique(b['r'])]

out = {}
for ci, c in enumerate(CUTOFFS):
    bs = [pickle.load(open(f'{STUDY}/cache/c{ci}_k{k}_top{TOPK}.pkl', 'rb')) for k in range(NP + 1)]
    te, trs = bs[0], bs[1:]
    st = Snap(d, c)
    print(f'cutoff {ci+1}: candidate recall ceiling {te["cand_recall_ceiling"]:.3f}', flush=True)
    # discovery-only training subsets: non-owned rows of customers with >=1 new relevant
    for name, (feats, kind) in configs.items():
        t0 = time.time()
        X = np.vstack([to_X(b, feats) for b in trs]); y = np.concatenate([b['y'] for b in trs])
        w = np.concatenate([1.0 / b['nrel'] for b in trs])
        grp = np.concatenate([groups(b) for b in trs])
        f = fit(kind, X, y, w, grp)
        p = f(to_X(te, feats))
        S = scores_dense(st, te, p)
        m = eval_scores(S, st); md = eval_scores(S, st, disc=True)
        # discovery-specific model (non-owned rows only)
        Xd, yd, wd, gd = [], [], [], []
        for b in trs:
            no = b['F']['owned'] == 0
            Xd.append(to_X(b, feats)[no]); yd.append(b['y'][no]); wd.append(np.ones(no.sum()))
            gd.append(np.bincount(b['r'][no])[np.unique(b['r'][no])])
        fd = fit(kind, np.vstack(Xd), np.concatenate(yd), np.concatenate(wd), np.concatenate(gd))
        no = te['F']['owned'] == 0
        pdsc = fd(to_X(te, feats)[no])
        Sd = np.full((len(st.U), d.ni), -1e6) + 1e-3 * st.pop_rank_score()
        Sd[te['r'][no], te['it'][no]] = pdsc
        md2 = eval_scores(Sd, st, disc=True)
        rec = dict(rec=m['recall'], ndcg=m['ndcg'], hit=m['hit'], ratio=m['recall'] / base_rec[ci],
                   dhit_joint=md['hit'], dratio_joint=md['hit'] / base_disc[ci],
                   dhit=md2['hit'], drec=md2['recall'], dratio=md2['hit'] / base_disc[ci])
        out.setdefault(name, []).append(rec)
        print(f'  {name:14s} R{m["recall"]:.4f} N{m["ndcg"]:.4f} ratio {rec["ratio"]:.3f} | disc(joint) {rec["dratio_joint"]:.3f} | disc model H{md2["hit"]:.3f} R{md2["recall"]:.4f} ratio {rec["dratio"]:.3f}  [{time.time()-t0:.0f}s]', flush=True)
json.dump(out, open(f'res_models_top{TOPK}_np{NP}.json', 'w'), indent=1)
