from common import *
def nz(v):
    m = v.max(axis=-1, keepdims=True) if v.ndim>1 else v.max()
    return v/np.maximum(m,1e-12)
def yearago_pop(s,lo,hi):
    m=(s.rows_t> s.c-lo*DAY)&(s.rows_t<=s.c-hi*DAY)
    return np.bincount(s.rows_i[m],minlength=s.d.ni).astype(float)
def pop_cust(s,days):
    m=s.rows_t>=s.c-days*DAY
    k=np.unique(np.stack([s.rows_u[m].astype(np.int64),s.rows_i[m]]),axis=1)
    return np.bincount(k[1],minlength=s.d.ni).astype(float)

def visits_norm_vec(s, hl):
    D = s.decayed(hl,'basket')
    vt = np.unique(np.stack([s.rows_u.astype(np.int64), s.rows_t]),axis=1)
    w = np.ones(vt.shape[1]) if hl is None else np.exp(-LN2*(s.c-vt[1])/DAY/hl)
    tot = np.bincount(vt[0], weights=w, minlength=s.d.nc); tot[tot==0]=1
    return (sp.diags(1/tot) @ D).tocsr()

def l2rows(P):
    nrm = np.sqrt(np.asarray(P.multiply(P).sum(1)).ravel()); nrm[nrm==0]=1
    return (sp.diags(1/nrm) @ P).tocsr()

_cache={}
def user_knn(s, hl, k, weighted=False, simvec=None):
    """mean (or sim-weighted mean) of neighbours' visit-normalised decayed vectors, for s.U rows"""
    key=('uknn',s.c,hl,k,weighted,simvec)
    if key in _cache: return _cache[key]
    P = visits_norm_vec(s, hl)
    Q = P if simvec is None else visits_norm_vec(s, simvec)
    Pn = l2rows(Q)
    sim = (Pn[s.U] @ Pn.T).toarray()
    sim[np.arange(len(s.U)), s.U] = -1
    idx = np.argpartition(-sim, k, axis=1)[:, :k]
    W = np.zeros_like(sim)
    vals = np.take_along_axis(sim, idx, 1)
    np.put_along_axis(W, idx, vals if weighted else 1.0, 1)
    W = W / np.maximum(W.sum(1, keepdims=True), 1e-12)
    out = (sp.csr_matrix(W) @ P).toarray()
    _cache[key]=out
    return out

def item_sim(s, kind='bin', hl=None, topm=None, alpha=0.5):
    """item-item cosine on customer-level co-purchase. kind: bin (customer sets) or decayed."""
    key=('isim',s.c,kind,hl,topm,alpha)
    if key in _cache: return _cache[key]
    X = s.Bin if kind=='bin' else s.decayed(hl,'basket')
    X = X.tocsc().astype(np.float64)
    co = (X.T @ X).toarray()
    n = np.sqrt(np.diag(co)).copy(); n[n==0]=1
    # asymmetric cosine: co / (n_i^(2a) n_j^(2(1-a))) ; a=0.5 -> cosine
    S = co / (n[:,None]**(2*alpha)) / (n[None,:]**(2*(1-alpha)))
    np.fill_diagonal(S, 0)
    if topm:
        idx = np.argpartition(-S, topm, axis=1)[:, topm:]
        np.put_along_axis(S, idx, 0.0, 1)
    _cache[key]=S
    return S

def item_knn_score(s, S, wvec='bin', hl=90):
    W = s.Bin[s.U] if wvec=='bin' else s.decayed(hl,'basket')[s.U]
    return np.asarray(W @ S)

def snap_pseudo(d, c):
    return Snap(d, c - 30*DAY)
