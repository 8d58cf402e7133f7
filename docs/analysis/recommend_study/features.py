"""Candidate generation + feature matrix for the ranking models."""
from common import *
from exp_lib import *

def sparse_lookup(M, u, i):
    M = M.tocsr()
    return np.asarray(M[u, i]).ravel()

FEATS_A = ['owned','lcnt','lnb','lsince','lfirst','ldec30','ldec90','ldec365','share','lint','hasint',
           'ldue','ldue2','due_in','c_lvis','c_lsincevis','c_lten','c_lnitems',
           'g_lpop7','g_lpop30','g_lpop90','g_lcust90','g_trend','g_rep','g_rep2','own_rank',
           'iknn','liknn','iknn_dec','in_last_basket','l_since_minus_lv','c_lint','c_ldue','x_due_cdue','x_share_csince']
FEATS_B = ['uknn30','uknn90','luknn30','luknn90']
FEATS_C = ['p_yago','g_yago','lpop365']

def build(s, topk_own=None, n_nonowned=50, engage_hl=90, with_uknn=True):
    d = s.d
    U = s.U
    uidx = {int(u): k for k, u in enumerate(U)}
    st = s.st
    m = np.isin(st['u'], U)
    ou, oi = st['u'][m], st['i'][m]
    cnt, nb, last, first = st['cnt'][m], st['nb'][m], st['last'][m], st['first'][m]
    if topk_own:
        eng = sparse_lookup(s.decayed(engage_hl, 'basket'), ou, oi)
        # keep top-k per customer by engagement
        order = np.lexsort((-eng, ou))
        ou_s = ou[order]
        start = np.r_[0, np.flatnonzero(np.diff(ou_s)) + 1]
        rank = np.arange(len(ou_s)) - np.repeat(start, np.diff(np.r_[start, len(ou_s)]))
        keep = np.zeros(len(ou), bool); keep[order[rank < topk_own]] = True
        ou, oi, cnt, nb, last, first = ou[keep], oi[keep], cnt[keep], nb[keep], last[keep], first[keep]
    ownset = np.zeros((len(U), d.ni), bool)
    rows_own = np.array([uidx[int(u)] for u in ou])
    ownset[rows_own, oi] = True
    # collaborative scores (dense, U x ni)
    Wown = sp.csr_matrix((np.ones(len(ou)), (rows_own, oi)), shape=(len(U), d.ni))
    Sbin = item_sim(s, 'bin')
    iknn = np.asarray(Wown @ Sbin)
    dec90 = s.decayed(90, 'basket')
    wdec = sparse_lookup(dec90, ou, oi)
    iknn_dec = np.asarray(sp.csr_matrix((wdec, (rows_own, oi)), shape=(len(U), d.ni)) @ Sbin)
    if with_uknn:
        uk30 = user_knn(s, 30, 300); uk90 = user_knn(s, 90, 100)
    else:
        uk30 = uk90 = np.zeros((len(U), d.ni))
    pop7, pop14, pop30, pop90, pop365 = s.pop(7), s.pop(14), s.pop(30), s.pop(90), s.pop(365)
    # non-owned candidates
    gen = nz(uk30) + 0.5 * nz(np.broadcast_to(pop14, uk30.shape)) + 0.5 * nz(iknn)
    gen = np.where(ownset, -np.inf, gen)
    top = np.argpartition(-gen, n_nonowned, axis=1)[:, :n_nonowned]
    # also include top pop items
    popord = np.argsort(-pop14)[:n_nonowned]
    cand = ownset.copy()
    np.put_along_axis(cand, top, True, 1)
    cand[:, popord] = True
    r, it = np.nonzero(cand)
    u = U[r]
    F = {}
    own = ownset[r, it]
    F['owned'] = own.astype(float)
    # personal features from the (possibly truncated) state
    key_state = {(int(a), int(b)): k for k, (a, b) in enumerate(zip(rows_own, oi))}
    kidx = np.array([key_state.get((int(a), int(b)), -1) for a, b in zip(r, it)])
    has = kidx >= 0
    def take(arr, fill=0.0):
        out = np.full(len(r), fill, float); out[has] = arr[kidx[has]]; return out
    c = s.c
    cnt_f, nb_f = take(cnt), take(nb)
    since = take((c - last) / DAY); fst = take((c - first) / DAY)
    F['lcnt'] = np.log1p(cnt_f); F['lnb'] = np.log1p(nb_f)
    F['lsince'] = np.where(has, np.log1p(since), 0); F['lfirst'] = np.where(has, np.log1p(fst), 0)
    for hl in [30, 90, 365]:
        v = sparse_lookup(s.decayed(hl, 'basket'), u, it)
        F[f'ldec{hl}'] = np.log1p(v * has)
    nvis = s.n_visits[u].astype(float)
    F['share'] = nb_f / np.maximum(nvis, 1)
    interval = np.where(nb_f > 1, (fst - since) / np.maximum(nb_f - 1, 1), 0)
    F['lint'] = np.log1p(interval); F['hasint'] = (nb_f > 1).astype(float)
    due = np.where(nb_f > 1, (since + 1) / (interval + 1), 0)
    F['ldue'] = np.where(nb_f > 1, np.log(np.maximum(due,1e-9)), 0); F['ldue2'] = F['ldue'] ** 2
    # due within the next 30 days: since + 30 >= interval
    F['due_in'] = np.where(nb_f > 1, ((since + 30) >= interval).astype(float), 0)
    F['c_lvis'] = np.log1p(nvis); F['c_lsincevis'] = np.log1p(s.last_visit_age[u])
    F['c_lten'] = np.log1p(s.first_visit_age[u])
    nitems = np.asarray(s.Bin.sum(1)).ravel()
    F['c_lnitems'] = np.log1p(nitems[u])
    F['g_lpop7'] = np.log1p(pop7[it]); F['g_lpop30'] = np.log1p(pop30[it]); F['g_lpop90'] = np.log1p(pop90[it])
    F['g_lcust90'] = np.log1p(pop_cust(s, 90)[it])
    F['g_trend'] = np.log((pop30[it] + 1) / (pop90[it] / 3 + 1))
    # item repurchase propensity (global, from the whole history <= c)
    buyers = np.asarray(s.Bin.sum(0)).ravel(); baskets = np.asarray(s.B.sum(0)).ravel()
    rep2 = np.asarray((s.B >= 2).sum(0)).ravel()
    F['g_rep'] = np.log((baskets[it] + 1) / (buyers[it] + 1))
    F['g_rep2'] = (rep2[it] + 0.5) / (buyers[it] + 2)
    # own rank by (cnt desc, last desc) within the state
    orank = np.zeros(len(ou))
    order = np.lexsort((last * -1, -cnt, rows_own))
    ro = rows_own[order]
    start = np.r_[0, np.flatnonzero(np.diff(ro)) + 1]
    rk = np.arange(len(ro)) - np.repeat(start, np.diff(np.r_[start, len(ro)]))
    orank[order] = rk
    F['own_rank'] = np.where(has, np.log1p(take(orank)), np.log1p(50))
    F['iknn'] = iknn[r, it]; F['liknn'] = np.log1p(iknn[r, it] * 10); F['iknn_dec'] = np.log1p(iknn_dec[r, it])
    F['uknn30'] = uk30[r, it]; F['uknn90'] = uk90[r, it]
    F['luknn30'] = np.log(uk30[r, it] + 1e-3); F['luknn90'] = np.log(uk90[r, it] + 1e-3)
    # seasonal (offline-only in the bounded design)
    mm = (s.rows_t > c - 380 * DAY) & (s.rows_t <= c - 320 * DAY)
    Py = sp.csr_matrix((np.ones(mm.sum()), (s.rows_u[mm], s.rows_i[mm])), shape=s.shape)
    F['p_yago'] = np.log1p(sparse_lookup(Py, u, it))
    F['g_yago'] = np.log1p(yearago_pop(s, 365, 335)[it])
    F['lpop365'] = np.log1p(pop365[it])
    lva = s.last_visit_age[u]
    F['in_last_basket'] = (has & (np.abs(since - lva) < 1e-6)).astype(float)
    F['l_since_minus_lv'] = np.where(has, np.log1p(np.maximum(since - lva, 0)), 0)
    cint = s.first_visit_age[u] / np.maximum(nvis - 1, 1)
    F['c_lint'] = np.log1p(cint); F['c_ldue'] = np.where(nvis > 1, np.log((lva + 1) / (cint + 1)), 0)
    F['x_due_cdue'] = F['ldue'] * F['c_ldue']
    F['x_share_csince'] = F['share'] * F['c_lsincevis']
    y = s.T[r, it] if hasattr(s, 'T') else None
    return dict(r=r, it=it, F=F, y=y, nrel=s.T.sum(1)[r] if hasattr(s, 'T') else None)

def to_X(b, names):
    return np.column_stack([b['F'][n] for n in names]).astype(np.float64)

def scores_dense(s, b, p):
    S = np.full((len(s.U), s.d.ni), -1e6) + 1e-3 * s.pop_rank_score()
    S[b['r'], b['it']] = p
    return S
