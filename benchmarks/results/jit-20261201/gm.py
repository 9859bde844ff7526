import numpy as np, timeit
from numba import njit
@njit(cache=True)
def fwd(a, W, z): np.dot(a, W.T, z)
@njit(cache=True)
def bp4(d, a, g): np.dot(d.T, a, g)
@njit(cache=True)
def bp2(d, W, o): np.dot(d, W, o)
rng=np.random.default_rng(0)
for n, i, o in ((128, 784, 100), (512, 784, 1024), (512, 1024, 1024), (10, 784, 30)):
    a=rng.random((n,i),dtype=np.float32); W=rng.random((o,i),dtype=np.float32); z=np.empty((n,o),np.float32); d=rng.random((n,o),dtype=np.float32); g=np.empty((o,i),np.float32); b=np.empty((n,i),np.float32)
    fwd(a,W,z); bp4(d,a,g); bp2(d,W,b)
    N = max(3, 200000000 // (n*i*o))
    for rep in range(2):
        r = {}
        r['np fwd'] = min(timeit.repeat(lambda: np.matmul(a, W.T, out=z), number=N, repeat=5))/N*1e6
        r['nb fwd'] = min(timeit.repeat(lambda: fwd(a, W, z), number=N, repeat=5))/N*1e6
        r['np bp4'] = min(timeit.repeat(lambda: np.matmul(d.T, a, out=g), number=N, repeat=5))/N*1e6
        r['nb bp4'] = min(timeit.repeat(lambda: bp4(d, a, g), number=N, repeat=5))/N*1e6
        r['np bp2'] = min(timeit.repeat(lambda: np.matmul(d, W, out=b), number=N, repeat=5))/N*1e6
        r['nb bp2'] = min(timeit.repeat(lambda: bp2(d, W, b), number=N, repeat=5))/N*1e6
        print((n,i,o), {k: round(v,1) for k,v in r.items()})
