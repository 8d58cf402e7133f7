"""TIFU-KNN style: personal time-decayed item vector + user-KNN neighbour mean."""
from common import *
import itertools, json, sys
d=Data()
snaps=[Snap(d,c) for c in CUTOFFS]
base_rec=[0.2012758, 0.1643240, 0.1907712]; base_disc=[0.2815057, 0.3221477, 0.3444909]

def pvec(s, hl, norm):
    D = s.decayed(hl,'basket')
    if norm=='visits':   # TIFU: average of decayed basket vectors
        vt = np.unique(np.stack([s.rows_u.astype(np.int64), s.rows_t]),axis=1)
        w = np.ones(vt.shape[1]) if hl is None else np.exp(-LN2*(s.c-vt[1])/DAY/hl)
        tot = np.bincount(vt[0], weights=w, minlength=d.nc)
        tot[tot==0]=1
        return sp.diags(1/tot) @ D
    return D

def knn_mean(s, P, k, weighted=False):
    Pn = P.copy().tocsr()
    nrm = np.sqrt(np.asarray(Pn.multiply(Pn).sum(1)).ravel()); nrm[nrm==0]=1
    Pn = sp.diags(1/nrm) @ Pn
    sim = (Pn[s.U] @ Pn.T).toarray()
    sim[np.arange(len(s.U)), s.U] = -1
    idx = np.argpartition(-sim, k, axis=1)[:, :k]
    W = np.zeros_like(sim)
    vals = np.take_along_axis(sim, idx, 1)
    np.put_along_axis(W, idx, vals if weighted else 1.0, 1)
    W = W / np.maximum(W.sum(1, keepdims=True), 1e-12)
    return np.asarray(sp.csr_matrix(W) @ P.toarray()) if False else (sp.csr_matrix(W) @ P).toarray()

res=[]
for hl in [30,90,180,365,None]:
    for norm in ['visits']:
        Ps=[pvec(s,hl,norm) for s in snaps]
        pers=[P[s.U].toarray() for P,s in zip(Ps,snaps)]
        for k in [50,100,300]:
            nb=[knn_mean(s,P,k) for s,P in zip(snaps,Ps)]
            for a in [1.0,0.9,0.8,0.7,0.6,0.5,0.3]:
                r=[];dd=[]
                for s,pe,nn in zip(snaps,pers,nb):
                    S=a*pe+(1-a)*nn+1e-9*s.pop_rank_score()
                    r.append(eval_scores(S,s))
                for s,nn in zip(snaps,nb):
                    dd.append(eval_scores(nn+1e-9*s.pop_rank_score(),s,disc=True))
                rr=[x['recall']/b for x,b in zip(r,base_rec)]
                dr=[x['hit']/b for x,b in zip(dd,base_disc)]
                line=dict(hl=hl,norm=norm,k=k,a=a,rec=[x['recall'] for x in r],ndcg=[x['ndcg'] for x in r],ratio=rr,disc_hit=[x['hit'] for x in dd],disc_ratio=dr)
                res.append(line)
                print(f"hl={hl} k={k} a={a}: rec "+' '.join(f"{x['recall']:.4f}" for x in r)+"  ratio "+' '.join(f"{x:.3f}" for x in rr)+ "  | disc(nbr only) hit ratio "+' '.join(f"{x:.3f}" for x in dr),flush=True)
json.dump(res,open(f'{STUDY}/res_tifu.json','w'))
