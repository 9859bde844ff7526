import time, numpy as np
from fastbp.data import load_dataset
ds = load_dataset("mnist"); X = ds.X_train; s = np.float32(ds.scale)
perm = np.random.default_rng(0).permutation(len(X))
for B in (10, 128, 256):
    raw = np.empty((B, 784), np.uint8); x = np.empty((B, 784), np.float32)
    best_t, best_c = 1e9, 1e9
    for rep in range(5):
        t0 = time.process_time()
        for i in range(0, 60000 - B, B):
            np.take(X, perm[i:i + B], axis=0, out=raw)
        t1 = time.process_time()
        for i in range(0, 60000 - B, B):
            np.copyto(x, raw); np.multiply(x, s, out=x)
        t2 = time.process_time()
        best_t, best_c = min(best_t, t1 - t0), min(best_c, t2 - t1)
    n = (60000 - B) // B
    print(B, "take per batch", round(best_t / n * 1e6, 1), "us; scale per batch", round(best_c / n * 1e6, 1), "us")
