import timeit, numpy as np
def t(f, n=200):
    return min(timeit.repeat(f, number=n, repeat=9)) / n * 1e6
rng = np.random.default_rng(0)
raw = (rng.random((60000, 784)) * 255).astype(np.uint8); perm = rng.permutation(60000); s = np.float32(1/255)
f32 = raw * s
for B in (10, 128, 512):
    rb = np.empty((B, 784), np.uint8); xb = np.empty((B,784), np.float32); rows = perm[:B]
    n = 20000 if B <= 10 else 1000
    print(B, "take u8", round(t(lambda: np.take(raw, rows, axis=0, out=rb), n), 2), "mul u8", round(t(lambda: np.multiply(rb, s, out=xb), n), 2),
          "copyto+mul", round(t(lambda: (np.copyto(xb, rb), np.multiply(xb, s, out=xb)), n), 2), "take f32", round(t(lambda: np.take(f32, rows, axis=0, out=xb), n), 2))
