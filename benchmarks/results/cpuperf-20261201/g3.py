import timeit, numpy as np
def t(f, n=200):
    return min(timeit.repeat(f, number=n, repeat=9)) / n * 1e6
rng = np.random.default_rng(0)
raw = (rng.random((60000, 784)) * 255).astype(np.uint8); perm = rng.permutation(60000); s = np.float32(1/255)
Y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 60000)]; lab = rng.integers(0, 10, 60000)
for B, ks in ((10, (1, 8, 16, 32, 64, 128)), (128, (1, 2, 4, 8, 16))):
    for k in ks:
        R = B * k
        rb = np.empty((R, 784), np.uint8); xb = np.empty((R,784), np.float32); rows = perm[:R]; yb = np.empty((R, 10), np.float32); lb = np.empty(R, lab.dtype)
        def one():
            np.take(raw, rows, axis=0, out=rb); np.take(Y, rows, axis=0, out=yb); np.take(lab, rows, axis=0, out=lb)
            np.copyto(xb, rb); np.multiply(xb, s, out=xb)
        def mul():
            np.take(raw, rows, axis=0, out=rb); np.take(Y, rows, axis=0, out=yb); np.take(lab, rows, axis=0, out=lb)
            np.multiply(rb, s, out=xb)
        n = max(20, 20000 // k)
        print(B, k, "per batch copyto+mul", round(t(one, n) / k, 2), "mul u8", round(t(mul, n) / k, 2))
