"""The momentum update inside the same compiled call as the step (cache-hot, no Python between)
against the two calls the loop makes: does fusing pay at medium? `python fuseopt.py [WIDTH]`: the
hidden width of 784-WIDTH-10 (default 100, medium; 192 is time-to-98's net)."""
import numpy as np, time, statistics
from numba import njit
from fastbp import jit
from fastbp.nn.network import Network
from fastbp.nn import optim
from fastbp.train.loop import step_of
import sys
sizes, B, reps = [784, int(sys.argv[1]) if len(sys.argv) > 1 else 100, 10], 128, 300
rng = np.random.default_rng(0)
X = rng.random((B, 784)).astype(np.float32); lab = rng.integers(0, 10, B); Y = np.eye(10, dtype=np.float32)[lab]
net = Network(sizes, hidden="relu", output="softmax", cost="log_likelihood"); opt = optim.make("momentum", net)
st = step_of(net); hits = np.zeros(B, bool)
kern = st.kernel; mom = jit._load(jit._HEAD + jit._OPTIMIZERS).momentum_step
@njit
def both(x, y, labels, hits, params, grads, layers, Z, A, D, M, F, drop, keep, hs, os_, inv_n, gemm, v, lr, mu):
    c = kern(x, y, labels, hits, params, grads, layers, Z, A, D, M, F, drop, keep, hs, os_, inv_n, gemm)
    mom(params, grads, NW, np.float32(0), lr, v, mu)
    return c
NW = net.n_weights  # the weights' part of the flat buffer
cut = net.buffers(B).rows(B); Z, A, D = tuple(cut.z), tuple(cut.a), tuple(cut.delta)
args = (X, Y, lab, hits, net.params, net.grads, st.layers, Z, A, D, A, A, np.float32(0), np.float32(1), *st.slopes, 1.0 / B, st.gemm, opt.v, np.float32(0.05), np.float32(0.9))
both(*args)
res = {"two calls": [], "one call": []}
for r in range(7):
    t = time.perf_counter()
    for _ in range(reps): st(X, Y, lab, hits); opt.step(0.05)
    res["two calls"].append((time.perf_counter() - t) / reps * 1e6)
    t = time.perf_counter()
    for _ in range(reps): both(*args)
    res["one call"].append((time.perf_counter() - t) / reps * 1e6)
print({k: round(statistics.median(v), 1) for k, v in res.items()})
