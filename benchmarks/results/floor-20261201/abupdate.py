"""Needs blas-update.patch applied (git apply; the change was not kept). A/B, one process: a whole training step (compiled step + optimiser) with the optimiser's
update as BLAS level-1 calls on numpy's own BLAS (jit.BLAS_UPDATE_MIN as set) against one
compiled pass (the threshold out of reach), the two taking turns step by step; medians of
N steps each, µs.  PYTHONPATH=. python benchmarks/results/floor-20261201/abupdate.py [N]"""
import statistics, sys, time

import numpy as np

from fastbp import jit
from fastbp.backend import get_backend
from fastbp.nn import optim
from fastbp.nn.network import Network
from fastbp.train.loop import step_of

N = int(sys.argv[1]) if len(sys.argv) > 1 else 300
bk = get_backend("numpy")
bk.jit = True
CASES = {  # name: sizes, batch, dropout, optimiser, its parameters
    "medium": ((784, 100, 10), 128, 0.0, "momentum", {}),
    "time-to-98": ((784, 192, 10), 128, 0.0, "momentum", {}),
    "large": ((784, 1024, 1024, 10), 512, 0.0, "momentum", {}),
    "time-to-99": ((784, 1200, 1200, 10), 128, 0.3, "momentum", {"weight_decay": 5e-5}),
}
blas_min = jit.BLAS_UPDATE_MIN
for name, (sizes, B, dropout, opt_name, kw) in CASES.items():
    rng = np.random.default_rng(0)
    X = rng.random((B, sizes[0])).astype(np.float32); lab = rng.integers(0, 10, B); Y = np.eye(10, dtype=np.float32)[lab]
    net = Network(sizes, hidden="relu", output="softmax", cost="log_likelihood", dropout=dropout)
    opt, st, hits = optim.make(opt_name, net, **kw), step_of(net), np.zeros(B, bool)
    res = {"blas": [], "compiled": []}
    for i in range(2 * N + 10):
        which = ("blas", "compiled")[i % 2]
        jit.BLAS_UPDATE_MIN = blas_min if which == "blas" else 1 << 62
        t = time.perf_counter()
        st(X, Y, lab, hits)
        opt.step(0.01)
        if i >= 10:
            res[which].append((time.perf_counter() - t) * 1e6)
    a, b = statistics.median(res["blas"]), statistics.median(res["compiled"])
    print(f"{name:10s} {net.n_params:>9,} params: step with BLAS update {a:8.0f} µs, compiled update {b:8.0f} µs, ratio {a / b:.3f}"
          f"{'' if net.n_params >= blas_min else '  (below BLAS_UPDATE_MIN: both compiled)'}", flush=True)
jit.BLAS_UPDATE_MIN = blas_min
