"""Final table: fixed hyperparameters, all three cutoffs, per-customer metrics + paired bootstrap CIs of ratios."""
from common import *
from exp_lib import *
from features import *
import pickle, json, warnings, time
warnings.filterwarnings('ignore')
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.pipeline import make_pipeline
import lightgbm as lgb
d = Data(); NP = 6
rng = np.random.default_rng(0)
def fit(kind, X, y, w, grp):
    if kind == 'lr':
        m = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=3000))
        m.fit(X, y, logisticregression__sample_weight=w * len(w) / w.sum()); return m, (lambda Z: m.decision_function(Z))
    if kind == 'gbm':
        m = lgb.LGBMClassifier(n_estimators=300, learning_rate=0.03, num_leaves=31, min_child_samples=200, subsample=0.8,
                               subsample_freq=1, colsample_bytree=0.8, reg_lambda=1.0, verbose=-1, n_jobs=1, random_state=0)
        m.fit(X, y, sample_weight=w * len(w) / w.sum()); return m, (lambda Z: m.predict_proba(Z)[:, 1])
    m = lgb.LGBMRanker(objective='lambdarank', n_estimators=300, learning_rate=0.03, num_leaves=31, min_child_samples=200,
                       subsample=0.8, subsample_freq=1, colsample_bytree=0.8, lambdarank_truncation_level=20, verbose=-1, n_jobs=1, random_state=0)
    m.fit(X, y.astype(int), group=grp); return m, (lambda Z: m.predict(Z))
def groups(r): return np.bincount(r)[np.unique(r)]
def tifu(s, hl=90, k=300, a=0.5):
    P = visits_norm_vec(s, hl); N = user_knn(s, hl, k)
    return a * P[s.U].toarray() + (1 - a) * N + 1e-9 * s.pop_rank_score()
def learned(ci, topk, feats, kind, disc):
    bs = [pickle.load(open(f'{STUDY}/cache/c{ci}_k{k}_top{topk}.pkl', 'rb')) for k in range(NP + 1)]
    te, trs = bs[0], bs[1:]
    Xs, ys, ws, gs = [], [], [], []
    for b in trs:
        sel = (b['F']['owned'] == 0) if disc else np.ones(len(b['r']), bool)
        Xs.append(to_X(b, feats)[sel]); ys.append(b['y'][sel]); ws.append(np.ones(sel.sum()) if disc else 1.0 / b['nrel'][sel]); gs.append(groups(b['r'][sel]))
    m, f = fit(kind, np.vstack(Xs), np.concatenate(ys), np.concatenate(ws), np.concatenate(gs))
    sel = (te['F']['owned'] == 0) if disc else np.ones(len(te['r']), bool)
    return m, te, sel, f(to_X(te, feats)[sel])
import sys, os
ci = int(sys.argv[1]); part = sys.argv[2]
os.makedirs(f'{STUDY}/final', exist_ok=True)
c = CUTOFFS[ci]
t0 = time.time()
s = Snap(d, c)
res = {}; imp = {}
if part == 'rec':
    C_ = s.C[s.U].toarray(); L = s.Llast[s.U].toarray()
    own = np.where(C_ > 0, C_ * 1e6 - L - d.name_rank / d.ni * 1e-3, -np.inf)
    R = {'own_purchases (baseline)': own,
         'basket count + popular pad': s.decayed(None)[s.U].toarray() + 1e-9 * s.pop_rank_score(),
         'TIFU-KNN hl90 k300 a0.5': tifu(s)}
    for name, topk, feats, kind in [('LR feats A, state 32', '32A', FEATS_A, 'lr'), ('LambdaMART feats A, state 32', '32A', FEATS_A, 'rank'),
                                    ('LambdaMART feats A+B, state 32', 32, FEATS_A + FEATS_B, 'rank'),
                                    ('LambdaMART feats A+B+C, full history', None, FEATS_A + FEATS_B + FEATS_C, 'rank')]:
        m, te, sel, p = learned(ci, topk, feats, kind, False)
        S = np.full((len(s.U), d.ni), -1e6) + 1e-3 * s.pop_rank_score(); S[te['r'], te['it']] = p; R[name] = S
    for name, S in R.items():
        res[name] = eval_scores(S, s, per=True)
else:
    G = np.broadcast_to(nz(s.pop(7)), (len(s.U), d.ni))
    Dm = {'popular_90d minus owned (baseline)': np.broadcast_to(s.pop_rank_score(), (len(s.U), d.ni)),
          'popular_7d minus owned': G + 1e-9 * s.pop_rank_score(),
          'userKNN(hl30,k100) + 0.5*pop7': nz(user_knn(s, 30, 100)) + 0.5 * G + 1e-9 * s.pop_rank_score()}
    for name, topk, feats, kind in [('LR feats A, state 32 (disc model)', '32A', FEATS_A, 'lr'), ('GBM feats A, state 32 (disc model)', '32A', FEATS_A, 'gbm'),
                                    ('LR feats A+B, state 32 (disc model)', 32, FEATS_A + FEATS_B, 'lr'),
                                    ('GBM feats A+B+C, full (disc model)', None, FEATS_A + FEATS_B + FEATS_C, 'gbm')]:
        m, te, sel, p = learned(ci, topk, feats, kind, True)
        S = np.full((len(s.U), d.ni), -1e6) + 1e-3 * s.pop_rank_score(); S[te['r'][sel], te['it'][sel]] = p; Dm[name] = S
        if kind == 'gbm':
            gi = m.booster_.feature_importance('gain'); imp[name] = dict(zip(feats, (gi / gi.sum()).round(3).tolist()))
        else:
            coef = m[-1].coef_.ravel(); imp[name] = dict(zip(feats, coef.round(3).tolist()))
    for name, S in Dm.items():
        res[name] = eval_scores(S, s, disc=True, per=True)
pickle.dump(dict(res=res, imp=imp), open(f'{STUDY}/final/{part}_{ci}.pkl', 'wb'))
print(part, ci, f'{time.time()-t0:.0f}s')
