import numpy as np, time, statistics, sys
from fastbp.nn.network import Network
from fastbp.train.loop import step_of
sizes = eval(sys.argv[1]); B = int(sys.argv[2]); drop = float(sys.argv[3]); reps = int(sys.argv[4])
rng = np.random.default_rng(0)
X = rng.random((B, sizes[0])).astype(np.float32); lab = rng.integers(0, 10, B); Y = np.eye(10, dtype=np.float32)[lab]
net = Network(sizes, hidden="relu", output="softmax", cost="log_likelihood", dropout=drop)
st = step_of(net); hits = np.zeros(B, bool)
Ws = net.weights
acts = [X] + [np.random.default_rng(1).random((B, n)).astype(np.float32) for n in sizes[1:]]
outs = [np.empty((B, n), np.float32) for n in sizes[1:]]
gws = [np.empty_like(W) for W in Ws]
below = [np.empty((B, n), np.float32) for n in sizes[1:-1]]
def gemms():
    for l, W in enumerate(Ws):
        np.matmul(acts[l], W.T, out=outs[l])
    for l in range(len(Ws) - 1, -1, -1):
        np.matmul(outs[l].T, acts[l], out=gws[l])
        if l: np.matmul(outs[l], Ws[l], out=below[l - 1])
res = {"step": [], "gemms": []}
for r in range(7):
    t = time.perf_counter()
    for _ in range(reps): st(X, Y, lab, hits)
    res["step"].append((time.perf_counter() - t) / reps * 1e6)
    t = time.perf_counter()
    for _ in range(reps): gemms()
    res["gemms"].append((time.perf_counter() - t) / reps * 1e6)
print(sizes, B, drop, {k: round(statistics.median(v), 1) for k, v in res.items()})
