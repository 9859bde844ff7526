import timeit, numpy as np, scipy.special
from threadpoolctl import threadpool_limits
def t(f, n=20000):
    return min(timeit.repeat(f, number=n, repeat=7)) / n * 1e6
rng = np.random.default_rng(0)
with threadpool_limits(1, "blas"):
  for B, H in [(10, 30), (128, 100)]:
    X = rng.random((B, 784), dtype=np.float32); W = rng.random((H, 784), dtype=np.float32); W2 = rng.random((10, H), dtype=np.float32)
    z = np.empty((B, H), np.float32); a = z.copy(); z2 = np.empty((B, 10), np.float32); a2 = z2.copy(); b = np.zeros(H, np.float32)
    Y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, B)]; lab = rng.integers(0,10,B); s = np.empty((B,1), np.float32)
    gW = np.empty((H, 784), np.float32); gb = np.empty(H, np.float32); ones = np.ones(B, np.float32)
    raw = (rng.random((60000, 784)) * 255).astype(np.uint8); perm = rng.permutation(60000); rb = np.empty((B, 784), np.uint8); xb = np.empty((B,784), np.float32)
    P = np.zeros(H*785+10*(H+1), np.float32); G = P.copy(); V = P.copy()
    print(f"--- batch {B} hidden {H}")
    for name, f in [
      ("mm fwd1", lambda: np.matmul(X, W.T, out=z)), ("mm fwd2", lambda: np.matmul(a, W2.T, out=z2)),
      ("mm bp4 l1", lambda: np.matmul(z.T, X, out=gW)), ("mm bp2", lambda: np.matmul(z2, W2, out=a)),
      ("add bias", lambda: np.add(z, b, out=z)), ("expit", lambda: scipy.special.expit(z, out=a)),
      ("maximum", lambda: np.maximum(z, 0, out=a)),
      ("max axis1 keepdims", lambda: z2.max(axis=1, keepdims=True)), ("subtract", lambda: np.subtract(z2, s, out=a2)),
      ("exp", lambda: np.exp(a2, out=a2)), ("sum axis1 keepdims", lambda: a2.sum(axis=1, keepdims=True)),
      ("log", lambda: np.log(s, out=s)),
      ("sum axis0 out", lambda: z.sum(axis=0, out=gb)), ("ones @ z", lambda: np.matmul(ones, z, out=gb)),
      ("sum all", lambda: z2.sum()), ("argmax", lambda: a2.argmax(axis=1)), ("== lab sum", lambda: (a2.argmax(axis=1) == lab).sum()),
      ("float(np scalar)", lambda: float(np.float32(1.0))),
      ("take X", lambda: np.take(raw, perm[:B], axis=0, out=rb)), ("mult scale", lambda: np.multiply(rb, np.float32(1/255), out=xb)),
      ("perm slice", lambda: perm[10:10+B]),
      ("mul flat P", lambda: np.multiply(G, 0.1, out=G)),
      ("a > 0 mult", lambda: np.multiply(z, a > 0, out=z)),
    ]:
        print(f"{name:22s} {t(f, 2000 if B > 100 else 20000):7.2f} us")
