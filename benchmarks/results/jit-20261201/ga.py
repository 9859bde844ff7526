import numpy as np, timeit
from numba import njit
@njit(cache=True)
def gather_scaled(X, rows, scale, out):
    for r in range(rows.shape[0]):
        src = X[rows[r]]
        dst = out[r]
        for j in range(src.shape[0]):
            dst[j] = np.float32(src[j]) * scale
rng=np.random.default_rng(0)
X = rng.integers(0,256,(60000,784),dtype=np.uint8)
for m in (256, 1024):
    rows = rng.permutation(60000)[:m]
    raw = np.empty((m,784),np.uint8); out=np.empty((m,784),np.float32); out2=out.copy()
    sc = np.float32(1/255)
    def ref():
        np.take(X, rows, axis=0, out=raw); np.copyto(out, raw); np.multiply(out, sc, out=out)
    def nb(): gather_scaled(X, rows, sc, out2)
    ref(); nb(); print("equal", out.tobytes()==out2.tobytes())
    for _ in range(2):
        # new random rows each time to avoid cache
        print(m, "numpy", min(timeit.repeat(ref, number=200, repeat=5))/200*1e6, "numba", min(timeit.repeat(nb, number=200, repeat=5))/200*1e6)
