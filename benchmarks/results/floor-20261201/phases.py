"""Six sets of the large step's GEMMs, each in newly allocated arrays, timed one after another in one
process (medians of 30 steps, ms): run it several times; the slow phases come and go within a process."""
import time, sys, numpy as np
B=512
def make():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((B,784),dtype=np.float32)
    W1 = rng.standard_normal((784,1024),dtype=np.float32); W2 = rng.standard_normal((1024,1024),dtype=np.float32)
    D = rng.standard_normal((B,1024),dtype=np.float32)
    a=np.empty((B,1024),np.float32); b=np.empty_like(a); d1=np.empty_like(a)
    g2=np.empty((1024,1024),np.float32); g1=np.empty((784,1024),np.float32)
    def np_step():
        np.matmul(X,W1,out=a); np.matmul(a,W2,out=b); np.matmul(a.T,D,out=g2); np.matmul(D,W2.T,out=d1); np.matmul(X.T,d1,out=g1)
    return np_step, [X,W1,W2,D,a,b,d1,g2,g1]
def t(f,n=30):
    f(); ts=[]
    for _ in range(n):
        t0=time.perf_counter(); f(); ts.append(time.perf_counter()-t0)
    return np.median(ts)*1e3
keep=[]
out=[]
for k in range(6):
    f, arrs = make(); keep.append(arrs)
    out.append("%.1f" % t(f))
print(" ".join(out), flush=True)
