import timeit, numpy as np
def t(f, n=20):
    return min(timeit.repeat(f, number=n, repeat=9, timer=__import__("time").process_time)) / n * 1e6
rng = np.random.default_rng(0)
for shape in [(512, 1024), (128, 100), (10, 30)]:
    z = rng.standard_normal(shape).astype(np.float32); a = np.empty_like(z); m = np.empty(shape, bool); d = z.copy(); zeros = np.zeros_like(z); mf = np.empty_like(z)
    zrow = np.zeros(shape[1], np.float32)
    zero = np.float32(0)
    print(shape)
    n = 20 if shape[0] > 200 else 2000
    for name, f in [("maximum(z,0)", lambda: np.maximum(z, 0, out=a)), ("maximum(z,zeros)", lambda: np.maximum(z, zeros, out=a)), ("maximum(z,zrow)", lambda: np.maximum(z, zrow, out=a)),
                    ("fmax(z,zeros)", lambda: np.fmax(z, zeros, out=a)),
                    ("d*=(a>0)", lambda: np.multiply(d, a > 0, out=d)), ("sign(a)->mf", lambda: np.sign(a, out=mf)), ("d*=mf", lambda: np.multiply(d, mf, out=d)),
                    ("greater->mf f32", lambda: np.greater(a, 0, out=mf, casting='unsafe')),
                    ("d*=sign(a) 2 calls", lambda: (np.sign(a, out=mf), np.multiply(d, mf, out=d))),
                    ("where", lambda: np.copyto(d, 0, where=a <= 0)),
                    ]:
        print(f"  {name:18s} {t(f, n):8.1f}")
