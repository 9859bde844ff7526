"""The momentum update right after one GEMM of each case's shapes: one compiled pass (jit.py) against
three BLAS level-1 calls (scal, axpy, axpy) on numpy's own OpenBLAS, alternating, medians of 200 each.
Tried for the optimiser's share of the step; see README.md here.  PYTHONPATH=. python axpy.py"""
import ctypes, time, statistics, sys
import numpy as np
from fastbp import jit
from fastbp.machine import blas
lib = ctypes.CDLL(blas()["blas_file"])
saxpy = lib.scipy_cblas_saxpy64_; saxpy.argtypes = [ctypes.c_int64, ctypes.c_float, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64]
sscal = lib.scipy_cblas_sscal64_; sscal.argtypes = [ctypes.c_int64, ctypes.c_float, ctypes.c_void_p, ctypes.c_int64]
mod = jit._load(jit._HEAD + jit._OPTIMIZERS)
f = np.float32
def case(name, gemm_shape, nparams):
    m, k, n = gemm_shape
    A = np.random.rand(m, k).astype(f); B = np.random.rand(k, n).astype(f); C = np.empty((m, n), f)
    p = np.random.rand(nparams).astype(f); g = np.random.rand(nparams).astype(f) * 1e-3; v = np.zeros(nparams, f)
    P, G, V = (a.ctypes.data for a in (p, g, v))
    def fused(): mod.momentum_step(p, g, nparams, f(0), f(0.01), v, f(0.9))
    def blas3():
        sscal(nparams, 0.9, V, 1); saxpy(nparams, -0.01, G, 1, V, 1); saxpy(nparams, 1.0, V, 1, P, 1)
    fused(); blas3()
    res = {"fused": [], "blas": [], "gemm": []}
    for i in range(400):
        np.matmul(A, B, out=C)
        which = ("fused", "blas")[i % 2]
        t = time.perf_counter(); (fused if which == "fused" else blas3)(); res[which].append(time.perf_counter() - t)
    print(f"{name}: {nparams} params, after a {m}x{k}x{n} GEMM: fused {statistics.median(res['fused'])*1e6:.0f} µs, "
          f"3 BLAS calls {statistics.median(res['blas'])*1e6:.0f} µs")
case("medium", (128, 784, 100), 79510)
case("time-to-98", (128, 784, 192), 152650)
case("time-to-99", (128, 1200, 1200), 2395210)
case("large", (512, 1024, 1024), 1863690)
