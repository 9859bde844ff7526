import timeit, numpy as np
from concurrent.futures import ThreadPoolExecutor
def t(f, n=200):
    return min(timeit.repeat(f, number=n, repeat=9)) / n * 1e6
rng = np.random.default_rng(0)
raw = (rng.random((60000, 784)) * 255).astype(np.uint8); perm = rng.permutation(60000); s = np.float32(1/255)
for B in (10, 320, 128, 512, 4096):
    rb = np.empty((B, 784), np.uint8); xb = np.empty((B,784), np.float32); rows = perm[:B]
    n = 20000 if B <= 10 else 500
    print(B, "take", round(t(lambda: np.take(raw, rows, axis=0, out=rb), n), 2), "mul u8", round(t(lambda: np.multiply(rb, s, out=xb), n), 2),
          "copyto+mul", round(t(lambda: (np.copyto(xb, rb), np.multiply(xb, s, out=xb)), n), 2), "copyto", round(t(lambda: np.copyto(xb, rb), n), 2))
pool = ThreadPoolExecutor(1)
for N in (79510, 500000, 1863690):
    P = rng.random(N, dtype=np.float32); G = P.copy(); V = P.copy(); h = N // 2
    def upd(s):
        p, g, v = P[s], G[s], V[s]
        np.multiply(v, 0.9, out=v); np.multiply(g, 0.01, out=g); np.subtract(v, g, out=v); np.add(p, v, out=p)
    def split():
        f = pool.submit(upd, slice(h, N)); upd(slice(0, h)); f.result()
    n = 200 if N < 1e5 else 20
    print(N, "one", round(t(lambda: upd(slice(0, N)), n), 1), "split2", round(t(split, n), 1), "noop submit", round(t(lambda: pool.submit(int).result(), n), 1))
