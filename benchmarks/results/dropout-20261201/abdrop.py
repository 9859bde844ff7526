"""A/B, one process, interleaved: time-to-99's step (784-1200-1200-10, batch 128,
dropout 0.3, momentum + weight decay) with dropout's draws from SplitMix64 (this
commit: backend.uniform, compiled where numba is) against numpy's PCG64 Generator
filling the same masks (the draws before it). µs per step, optimiser included;
the two fills take turns step by step (machine noise comes in phases of seconds), 
medians of 600 steps each.  PYTHONPATH=. python benchmarks/results/dropout-20261201/abdrop.py"""
import statistics, sys, time

import numpy as np

from fastbp.backend import NumpyBackend, get_backend
from fastbp.nn import optim
from fastbp.nn.network import Network
from fastbp.train.loop import step_of

sizes, B = (784, 1200, 1200, 10), 128
bk = get_backend("numpy")
rng = np.random.default_rng(0)
X = rng.random((B, 784)).astype(np.float32); lab = rng.integers(0, 10, B); Y = np.eye(10, dtype=np.float32)[lab]
splitmix = NumpyBackend.uniform
pcg = np.random.default_rng(1)
def pcg64(self, key, first, out):
    pcg.random(out=out, dtype=out.dtype)
    return out
runs = {}
for path in ("compiled", "numpy"):
    bk.jit = path == "compiled"
    net = Network(sizes, hidden="relu", output="softmax", cost="log_likelihood", dropout=0.3)
    runs[path] = (net, optim.make("momentum", net, weight_decay=5e-5), step_of(net), bk.jit)
hits = np.zeros(B, bool)
res = {}
fills = (("splitmix64", splitmix), ("pcg64", pcg64))
for path, (net, opt, st, jit) in runs.items():
    bk.jit = jit
    for _ in range(5):
        st(X, Y, lab, hits); opt.step(0.01)
    for i in range(1200):
        name, fill = fills[i % 2]
        NumpyBackend.uniform = fill
        t = time.perf_counter()
        st(X, Y, lab, hits); opt.step(0.01)
        res.setdefault((path, name), []).append((time.perf_counter() - t) * 1e6)
NumpyBackend.uniform = splitmix
for path in runs:
    a, b = (statistics.median(res[(path, n)]) for n in ("splitmix64", "pcg64"))
    print(f"{path:9s} splitmix64 {a:7.0f} µs  pcg64 {b:7.0f} µs  ratio {a / b:.3f}")
