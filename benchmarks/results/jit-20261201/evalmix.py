import time, statistics, sys
from benchmarks import cases, contenders
from fastbp.train import loop
name = sys.argv[1]
if "--np-dot" in sys.argv:  # the compiled step's GEMMs through numba's np.dot (scipy's BLAS), as first written
    from fastbp import jit
    jit.numpy_gemm = lambda dtype: 0
spec = cases.CASES[name].spec
a = contenders.FastbpNumpy(spec); b = contenders.FastbpNumpyPlain(spec)
for r in (a, b): r.epoch()
res = {"jit": [], "plain": [], "jit-eval": [], "plain-eval": []}
for rep in range(4):
    for key, r in (("jit", a), ("plain", b)):
        t = time.perf_counter(); r.epoch(); res[key].append(time.perf_counter() - t)
        t = time.perf_counter(); r.accuracy(); res[key + "-eval"].append(time.perf_counter() - t)
print(name, {k: round(statistics.median(v), 3) for k, v in res.items()})
