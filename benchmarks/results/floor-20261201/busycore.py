"""The large step's GEMMs (allocating outputs) through numpy and XLA; run once alone and once beside
`python -c "while True: pass"` (one core busy): medians and 90th percentiles, ms."""
import time, sys, numpy as np, os
os.environ.setdefault("XLA_FLAGS", "")
import jax, jax.numpy as jnp
rng = np.random.default_rng(0)
B=512
X = rng.standard_normal((B,784),dtype=np.float32)
W1 = rng.standard_normal((784,1024),dtype=np.float32); W2 = rng.standard_normal((1024,1024),dtype=np.float32)
D = rng.standard_normal((B,1024),dtype=np.float32)
def np_step():
    a = X@W1; b = a@W2; g2 = a.T@D; d1 = D@W2.T; g1 = X.T@d1
    return g1
@jax.jit
def jx_step(X,W1,W2,D):
    a = X@W1; b = a@W2; g2 = a.T@D; d1 = D@W2.T; g1 = X.T@d1
    return g1, g2, b
jX,jW1,jW2,jD = map(jnp.asarray,(X,W1,W2,D))
def jax_step():
    jax.block_until_ready(jx_step(jX,jW1,jW2,jD))
def t(f,n=30):
    f(); ts=[]
    for _ in range(n):
        t0=time.perf_counter(); f(); ts.append(time.perf_counter()-t0)
    return np.median(ts)*1e3, np.percentile(ts,90)*1e3
for r in range(3):
    print("numpy %.2f ms (p90 %.2f)  jax %.2f ms (p90 %.2f)" % (*t(np_step), *t(jax_step)), flush=True)
