"""Shared loader + evaluation protocol (replicates the production evaluator)."""
import csv, os, math
import numpy as np

DAY = 86400000
H = 30 * DAY
CUTOFFS = [1291544250000, 1301310500000, 1311076750000]
K = 10
STUDY = os.environ.get('STUDY_DIR', '.')
ITEMS = os.environ.get('ITEMS', 'items.csv')
CACHE = os.path.join(STUDY, 'data.npz')


def load():
    if os.path.exists(CACHE):
        z = np.load(CACHE, allow_pickle=True)
        return (z['cust'], z['ts'], z['pur'], z['item'], z['val'],
                list(z['item_names']), list(z['cust_names']))
    cmap, imap = {}, {}
    cust, ts, pur, item, val = [], [], [], [], []
    with open(ITEMS) as f:
        r = csv.reader(f)
        next(r)
        for row in r:
            _, c, t, k, v, _, it = row
            cust.append(cmap.setdefault(c, len(cmap)))
            ts.append(int(t))
            pur.append(k == 'purchase')
            item.append(imap.setdefault(it, len(imap)) if it else -1)
            val.append(float(v) if v else 0.0)
    inames = [None] * len(imap)
    for k2, v2 in imap.items():
        inames[v2] = k2
    cnames = [None] * len(cmap)
    for k2, v2 in cmap.items():
        cnames[v2] = k2
    a = dict(cust=np.array(cust, np.int32), ts=np.array(ts, np.int64),
             pur=np.array(pur, bool), item=np.array(item, np.int32),
             val=np.array(val), item_names=np.array(inames, dtype=object),
             cust_names=np.array(cnames, dtype=object))
    order = np.argsort(a['ts'], kind='stable')
    for k2 in ['cust', 'ts', 'pur', 'item', 'val']:
        a[k2] = a[k2][order]
    np.savez(CACHE, **a)
    return load()


class Data:
    def __init__(self):
        (self.cust, self.ts, self.pur, self.item, self.val,
         self.inames, self.cnames) = load()
        self.nc = len(self.cnames)
        self.ni = len(self.inames)
        # name rank for tie-breaking by name
        order = sorted(range(self.ni), key=lambda i: self.inames[i])
        self.name_rank = np.empty(self.ni, np.int64)
        self.name_rank[order] = np.arange(self.ni)
        self.pm = self.pur & (self.item >= 0)  # purchase rows with item

    def first_event(self):
        fe = np.full(self.nc, np.iinfo(np.int64).max)
        np.minimum.at(fe, self.cust, self.ts)
        return fe

    def hist_mask(self, c):
        return self.pm & (self.ts <= c)

    def truth(self, c):
        """customer -> set(items) in (c, c+30d] for customers with an event <= c."""
        fe = self.first_event()
        m = self.pm & (self.ts > c) & (self.ts <= c + H)
        out = {}
        for u, i in zip(self.cust[m], self.item[m]):
            if fe[u] <= c:
                out.setdefault(int(u), set()).add(int(i))
        return out

    def owned(self, c):
        m = self.hist_mask(c)
        out = {}
        for u, i in zip(self.cust[m], self.item[m]):
            out.setdefault(int(u), set()).add(int(i))
        return out

    def popular(self, c, days=90):
        m = self.pm & (self.ts >= c - days * DAY) & (self.ts <= c)
        cnt = np.bincount(self.item[m], minlength=self.ni)
        # rank by count desc, then name
        order = np.lexsort((self.name_rank, -cnt))
        return order, cnt

    def own_stats(self, c):
        """per (u,i): count rows, last ts, first ts, distinct days/baskets"""
        m = self.hist_mask(c)
        u, i, t = self.cust[m], self.item[m], self.ts[m]
        key = u.astype(np.int64) * self.ni + i
        uk, inv = np.unique(key, return_inverse=True)
        cnt = np.bincount(inv)
        last = np.full(len(uk), -1, np.int64)
        np.maximum.at(last, inv, t)
        first = np.full(len(uk), np.iinfo(np.int64).max)
        np.minimum.at(first, inv, t)
        # baskets = distinct timestamps per (u,i)
        k2 = np.unique(np.stack([inv, t]), axis=1)
        nb = np.bincount(k2[0], minlength=len(uk))
        return dict(u=(uk // self.ni).astype(np.int32), i=(uk % self.ni).astype(np.int32),
                    cnt=cnt, last=last, first=first, nb=nb)


def own_purchase_lists(d, c, st=None):
    st = st or d.own_stats(c)
    order = np.lexsort((d.name_rank[st['i']], -st['last'], -st['cnt'], st['u']))
    lists = {}
    for idx in order:
        u = int(st['u'][idx])
        l = lists.setdefault(u, [])
        if len(l) < K:
            l.append(int(st['i'][idx]))
    return lists


def metrics(lists, truth, custs=None):
    custs = custs if custs is not None else truth.keys()
    R = N = Hh = 0.0
    n = 0
    for u in custs:
        rel = truth[u]
        l = lists.get(u, [])[:K]
        hits = [r for r, it in enumerate(l) if it in rel]
        R += len(hits) / len(rel)
        idcg = sum(1 / math.log2(r + 2) for r in range(min(len(rel), K)))
        N += sum(1 / math.log2(r + 2) for r in hits) / idcg
        Hh += 1.0 if hits else 0.0
        n += 1
    return dict(recall=R / n, ndcg=N / n, hit=Hh / n, n=n)


def topk_from_scores(scores, exclude=None, k=K, fill=None):
    """scores: dict item->score (or array). Returns top-k list; fill with `fill` ordering."""
    pass


def disc_truth(truth, owned):
    out = {}
    for u, rel in truth.items():
        new = rel - owned.get(u, set())
        if new:
            out[u] = new
    return out


def popular_lists(d, c, custs, exclude=None):
    order, _ = d.popular(c)
    top = [int(x) for x in order[:200]]
    lists = {}
    for u in custs:
        ex = exclude.get(u, set()) if exclude else set()
        l = []
        for it in top:
            if it not in ex:
                l.append(it)
                if len(l) == K:
                    break
        if len(l) < K:
            for it in order[200:]:
                it = int(it)
                if it not in ex:
                    l.append(it)
                    if len(l) == K:
                        break
        lists[u] = l
    return lists


# ---------------- vectorised machinery ----------------
import scipy.sparse as sp
LN2 = math.log(2)


class Snap:
    """State of the world at cutoff c (features as of c), labels from (c, c+30d]."""

    def __init__(self, d, c, with_labels=True):
        self.d, self.c = d, c
        m = d.pm & (d.ts <= c)
        u, i, t = d.cust[m], d.item[m], d.ts[m]
        self.rows_u, self.rows_i, self.rows_t = u, i, t
        shape = (d.nc, d.ni)
        self.shape = shape
        self.C = sp.csr_matrix((np.ones(len(u)), (u, i)), shape=shape)  # row counts
        # baskets: distinct (u,i,t)
        key = np.unique(np.stack([u.astype(np.int64), i.astype(np.int64), t]), axis=1)
        self.bu, self.bi, self.bt = key[0].astype(np.int32), key[1].astype(np.int32), key[2]
        self.B = sp.csr_matrix((np.ones(key.shape[1]), (self.bu, self.bi)), shape=shape)
        # last/first time (as days before c) stored as sparse with +1 offset
        st = d.own_stats(c)
        self.st = st
        age_last = (c - st['last']) / DAY
        age_first = (c - st['first']) / DAY
        self.Llast = sp.csr_matrix((age_last + 1e-3, (st['u'], st['i'])), shape=shape)
        self.Lfirst = sp.csr_matrix((age_first + 1e-3, (st['u'], st['i'])), shape=shape)
        self.Bin = (self.C > 0).astype(np.float64).tocsr()
        # customers that exist at c (any event)
        fe = d.first_event()
        self.exists = fe <= c
        # customer total baskets / last visit
        ub = np.unique(np.stack([u.astype(np.int64), t]), axis=1)
        self.n_visits = np.bincount(ub[0], minlength=d.nc)
        lv = np.full(d.nc, -1, np.int64)
        np.maximum.at(lv, u, t)
        self.last_visit_age = np.where(lv >= 0, (c - lv) / DAY, 9999.0)
        fv = np.full(d.nc, np.iinfo(np.int64).max)
        np.minimum.at(fv, u, t)
        self.first_visit_age = np.where(lv >= 0, (c - fv) / DAY, 0.0)
        if with_labels:
            tr = d.truth(c)
            self.truth = tr
            self.U = np.array(sorted(tr.keys()), np.int32)
            r, cidx = [], []
            for k, uu in enumerate(self.U):
                for it in tr[uu]:
                    r.append(k); cidx.append(it)
            self.T = sp.csr_matrix((np.ones(len(r)), (r, cidx)), shape=(len(self.U), d.ni)).toarray() > 0
            own = self.Bin[self.U].toarray() > 0
            self.own = own
            self.Tnew = self.T & ~own
            self.dmask = self.Tnew.any(1)
        self._pop = {}

    def decayed(self, hl_days, per='basket'):
        if hl_days is None:
            return self.B if per == 'basket' else self.C
        if per == 'basket':
            w = np.exp(-LN2 * (self.c - self.bt) / DAY / hl_days)
            return sp.csr_matrix((w, (self.bu, self.bi)), shape=self.shape)
        w = np.exp(-LN2 * (self.c - self.rows_t) / DAY / hl_days)
        return sp.csr_matrix((w, (self.rows_u, self.rows_i)), shape=self.shape)

    def pop(self, days=90, hl=None):
        k = (days, hl)
        if k not in self._pop:
            m = self.rows_t >= self.c - days * DAY
            w = np.ones(m.sum()) if hl is None else np.exp(-LN2 * (self.c - self.rows_t[m]) / DAY / hl)
            self._pop[k] = np.bincount(self.rows_i[m], weights=w, minlength=self.d.ni).astype(float)
        return self._pop[k]

    def pop_rank_score(self):
        """monotone score reproducing popular_90d order (count desc, then name)."""
        order, _ = self.d.popular(self.c)
        s = np.empty(self.d.ni)
        s[order] = -np.arange(self.d.ni, dtype=float)
        return (s - s.min()) / (s.max() - s.min())  # in [0,1], 1 best


def eval_scores(S, snap, mask_rows=None, disc=False, k=K, valid=None, per=False):
    """S: (len(snap.U), ni) dense scores. valid: boolean same shape, items allowed (others -inf).
    For disc=True, owned items are excluded and relevant = new items, customers with new items."""
    T = snap.Tnew if disc else snap.T
    rows = snap.dmask if disc else np.ones(len(snap.U), bool)
    if mask_rows is not None:
        rows = rows & mask_rows
    S = S[rows].astype(float).copy()
    T = T[rows]
    if disc:
        S[snap.own[rows]] = -np.inf
    if valid is not None:
        S[~valid[rows]] = -np.inf
    top = np.argpartition(-S, k, axis=1)[:, :k]
    ts = np.take_along_axis(S, top, 1)
    o = np.argsort(-ts, axis=1, kind='stable')
    top = np.take_along_axis(top, o, 1)
    ts = np.take_along_axis(ts, o, 1)
    hits = np.take_along_axis(T, top, 1) & np.isfinite(ts)
    nrel = T.sum(1)
    disc_w = 1 / np.log2(np.arange(k) + 2)
    idcg = np.array([disc_w[:min(n, k)].sum() for n in nrel])
    if per:
        return dict(recall=hits.sum(1) / nrel, ndcg=(hits * disc_w).sum(1) / idcg, hit=hits.any(1).astype(float))
    return dict(recall=float((hits.sum(1) / nrel).mean()),
                ndcg=float(((hits * disc_w).sum(1) / idcg).mean()),
                hit=float(hits.any(1).mean()), n=int(rows.sum()))
