import time, numpy as np
n = 1863690
rng = np.random.default_rng(0)
P, G, V = (rng.standard_normal(n).astype(np.float32) for _ in range(3))
junk = np.ones(64 << 20 >> 2, np.float32)  # 64 MB: evicts the L3
def upd(p, g, v, mu=0.9, lr=0.02):
    np.multiply(v, mu, out=v); np.multiply(g, lr, out=g); np.subtract(v, g, out=v); np.add(p, v, out=p)
def blocked(bs):
    def f(p, g, v):
        for i in range(0, n, bs):
            upd(p[i:i+bs], g[i:i+bs], v[i:i+bs])
    return f
a = [x.copy() for x in (P, G, V)]; b = [x.copy() for x in (P, G, V)]
upd(*a); blocked(65536)(*b); print("bit-identical", all(x.tobytes() == y.tobytes() for x, y in zip(a, b)))
for name, f in [("plain", upd), ("blocks 16K", blocked(16384)), ("blocks 64K", blocked(65536)), ("blocks 256K", blocked(262144))]:
    cold, hot = [], []
    for _ in range(15):
        junk += 1.0  # stream 64 MB through the caches
        t0 = time.process_time(); f(P, G, V); cold.append(time.process_time() - t0)
        t0 = time.process_time(); f(P, G, V); hot.append(time.process_time() - t0)
    print(f"{name:12s} cold {min(cold)*1e6:7.0f} us (median {np.median(cold)*1e6:7.0f})  hot {min(hot)*1e6:7.0f} us")
