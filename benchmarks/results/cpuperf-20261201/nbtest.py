import time, timeit, numpy as np, numba
@numba.njit(cache=False, nogil=True)
def momentum(p, g, v, mu, lr):
    for i in range(p.shape[0]):
        vi = v[i] * mu
        gi = g[i] * lr
        vi = vi - gi
        v[i] = vi; g[i] = gi
        p[i] = p[i] + vi
@numba.njit(cache=False, nogil=True, parallel=True)
def momentum_par(p, g, v, mu, lr):
    for i in numba.prange(p.shape[0]):
        vi = v[i] * mu
        gi = g[i] * lr
        vi = vi - gi
        v[i] = vi; g[i] = gi
        p[i] = p[i] + vi
def ref(p, g, v, mu, lr):
    np.multiply(v, mu, out=v); np.multiply(g, lr, out=g); np.subtract(v, g, out=v); np.add(p, v, out=p)
rng = np.random.default_rng(0)
for n in (79510, 1863690):
    P = rng.standard_normal(n).astype(np.float32); G = rng.standard_normal(n).astype(np.float32); V = rng.standard_normal(n).astype(np.float32)
    a = [x.copy() for x in (P, G, V)]; b = [x.copy() for x in (P, G, V)]
    ref(*a, 0.9, 0.05); momentum(*b, np.float32(0.9), np.float32(0.05))
    print("bit-identical:", all(x.tobytes() == y.tobytes() for x, y in zip(a, b)))
    reps = 2000000 // n * 10
    for name, f in (("numpy 4 passes", lambda: ref(P, G, V, 0.9, 0.05)), ("numba 1 pass", lambda: momentum(P, G, V, np.float32(0.9), np.float32(0.05))),
                    ("numba prange", lambda: momentum_par(P, G, V, np.float32(0.9), np.float32(0.05)))):
        print(n, name, round(min(timeit.repeat(f, number=reps, repeat=7, timer=time.perf_counter)) / reps * 1e6, 1), "us wall", round(min(timeit.repeat(f, number=reps, repeat=7, timer=time.process_time)) / reps * 1e6, 1), "us cpu")
