import timeit, numpy as np, sys
from threadpoolctl import threadpool_limits
def t(f, n=5):
    return min(timeit.repeat(f, number=n, repeat=9)) / n * 1e6
rng = np.random.default_rng(0)
thr = int(sys.argv[1])
B=512
with threadpool_limits(thr, "blas"):
    X = rng.random((B, 784), dtype=np.float32); W0 = rng.random((1024, 784), dtype=np.float32); W1 = rng.random((1024,1024), dtype=np.float32); W2 = rng.random((10,1024), dtype=np.float32)
    z0 = np.empty((B,1024), np.float32); z1 = z0.copy(); a0 = z0.copy(); z2 = np.empty((B,10), np.float32)
    g0 = np.empty_like(W0); g1 = np.empty_like(W1); g2 = np.empty_like(W2); b = np.zeros(1024, np.float32); gb = b.copy(); ones = np.ones(B, np.float32)
    P = rng.random(1863690, dtype=np.float32); G = P.copy(); V = P.copy()
    raw = (rng.random((60000, 784)) * 255).astype(np.uint8); perm = rng.permutation(60000); rb = np.empty((B, 784), np.uint8); xb = np.empty((B,784), np.float32)
    tot = {}
    for name, kind, f in [
      ("fwd0", "g", lambda: np.matmul(X, W0.T, out=z0)), ("fwd1", "g", lambda: np.matmul(a0, W1.T, out=z1)), ("fwd2", "g", lambda: np.matmul(z1, W2.T, out=z2)),
      ("bp4_2", "g", lambda: np.matmul(z2.T, z1, out=g2)), ("bp2_2", "g", lambda: np.matmul(z2, W2, out=a0)),
      ("bp4_1", "g", lambda: np.matmul(z1.T, a0, out=g1)), ("bp2_1", "g", lambda: np.matmul(z1, W1, out=a0)), ("bp4_0", "g", lambda: np.matmul(z0.T, X, out=g0)),
      ("bias add x2", "e", lambda: (np.add(z0, b, out=z0), np.add(z1, b, out=z1))),
      ("relu x2", "e", lambda: (np.maximum(z0, 0, out=a0), np.maximum(z1, 0, out=a0))),
      ("relu' x2", "e", lambda: (np.multiply(z0, a0 > 0, out=z0), np.multiply(z1, a0 > 0, out=z1))),
      ("bp3 sum x2", "e", lambda: (z0.sum(axis=0, out=gb), z1.sum(axis=0, out=gb))),
      ("bp3 gemv x2", "x", lambda: (np.matmul(ones, z0, out=gb), np.matmul(ones, z1, out=gb))),
      ("momentum 4 passes", "e", lambda: (np.multiply(V, 0.9, out=V), np.multiply(G, 0.01, out=G), np.subtract(V, G, out=V), np.add(P, V, out=P))),
      ("gather take+mul", "e", lambda: (np.take(raw, perm[:B], axis=0, out=rb), np.multiply(rb, np.float32(1/255), out=xb))),
    ]:
        tot[name] = t(f); 
        print(f"{name:20s} {tot[name]:9.1f} us", flush=True)
    print("GEMMs", round(sum(v for k, v in tot.items() if len(k) < 6)), "elementwise", round(sum(v for k,v in tot.items() if not k.startswith(('fwd','bp4','bp2','bp3 gemv')))))
