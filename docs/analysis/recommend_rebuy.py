#!/usr/bin/env python3
"""Ranking a customer's own items by how likely they are bought again: the analysis behind
docs/model.md ("Recommendations").

For each cutoff C of `persona evaluate --json` on a log whose events name items, every (customer,
item bought by C) pair gets features (log purchase count, days since its last purchase, days
between its first and last, mean days between purchases, "due" = days since last / mean
interval, the item's 90-day popularity, the customer's days since last purchase and purchase
count); a logistic regression and gradient-boosted trees are fitted on the same pairs as of
C - 30 days labelled by a purchase in (C - 30 days, C], then rank each customer's pairs at C.
Lists are filled up with the 90-day bestsellers; recall and NDCG at 10 as in the backtest.
Prints {model: (recall, ndcg, customers)} per cutoff.

Usage: recommend_rebuy.py LOG.csv EVALUATE.json   (needs numpy and scikit-learn)
"""
import sys
LOG, REPORT = sys.argv[1], sys.argv[2]
import csv, math, collections, json
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.ensemble import HistGradientBoostingClassifier
DAY=86400000; H=30*DAY
rows=[]
with open(LOG) as f:
    for x in csv.DictReader(f):
        if x['kind']=='purchase' and x['item']: rows.append((int(x['timestamp']), x['customer_id'], x['item']))
rows.sort()
cutoffs=[c['cutoff_ms'] for c in json.load(open(REPORT))['cutoffs']]
def feats(c):
    st=collections.defaultdict(lambda: [0,0,0])  # count, first, last per (cu,it)
    pop=collections.Counter(); cust_n=collections.Counter(); cust_last={}
    for t,cu,it in rows:
        if t>c: break
        s=st[(cu,it)]
        if s[0]==0: s[1]=t
        s[0]+=1; s[2]=t
        if t>c-90*DAY: pop[it]+=1
        cust_n[cu]+=1; cust_last[cu]=t
    X=[];keys=[]
    for (cu,it),(n,first,last) in st.items():
        rec=(c-last)/DAY; span=(last-first)/DAY
        interval=span/(n-1) if n>1 else 0
        due=(rec/interval) if interval>0 else 0
        X.append([math.log1p(n), math.log1p(rec), math.log1p(span), math.log1p(interval), min(due,20), math.log1p(pop[it]), math.log1p((c-cust_last[cu])/DAY), math.log1p(cust_n[cu])])
        keys.append((cu,it))
    return np.array(X), keys, st
def after(c):
    a=collections.defaultdict(set)
    for t,cu,it in rows:
        if c<t<=c+H: a[cu].add(it)
    return a
def metrics(lst, rel):
    hits=0; dcg=0
    for k,it in enumerate(lst[:10]):
        if it in rel: hits+=1; dcg+=1/math.log2(k+2)
    ideal=sum(1/math.log2(k+2) for k in range(min(len(rel),10)))
    return hits/len(rel), dcg/ideal
for c in cutoffs:
    Xtr,ktr,_=feats(c-H); atr=after(c-H)
    ytr=np.array([1 if it in atr.get(cu,()) else 0 for cu,it in ktr])
    Xte,kte,st=feats(c); ate=after(c)
    pop=collections.Counter(it for t,cu,it in rows if c-90*DAY<t<=c)
    popl=[i for i,_ in pop.most_common(100)]
    res={}
    for name,model in [('lr',LogisticRegression(max_iter=500,C=1.0)),('gbm',HistGradientBoostingClassifier(max_iter=200))]:
        mu=Xtr.mean(0); sd=Xtr.std(0)+1e-9
        model.fit((Xtr-mu)/sd,ytr)
        p=model.predict_proba((Xte-mu)/sd)[:,1]
        by=collections.defaultdict(list)
        for (cu,it),pi in zip(kte,p): by[cu].append((pi,it))
        sc=[0,0]; n=0
        for cu,rel in ate.items():
            cand=sorted(by.get(cu,[]),reverse=True)
            if not by.get(cu): continue  # only customers seen by c
            lst=[it for _,it in cand][:10]
            lst=(lst+[x for x in popl if x not in lst])[:10]
            r,g=metrics(lst,rel); sc[0]+=r; sc[1]+=g; n+=1
        res[name]=(sc[0]/n, sc[1]/n, n)
    print(c, {k:(round(v[0],3),round(v[1],3),v[2]) for k,v in res.items()})
