import numpy as np, time, statistics, sys
from fastbp.nn.network import Network
from fastbp.nn import optim
from fastbp.backend import get_backend
from fastbp.train.loop import reference_step, step_of
sizes = eval(sys.argv[1]); B = int(sys.argv[2]); reps = int(sys.argv[3])
bk = get_backend("numpy")
rng = np.random.default_rng(0)
X = rng.random((B, sizes[0])).astype(np.float32); lab = rng.integers(0, 10, B); Y = np.eye(10, dtype=np.float32)[lab]
nets = {}
for name, jit in (("compiled", True), ("numpy", False)):
    bk.jit = jit
    net = Network(sizes, hidden="relu", output="softmax", cost="log_likelihood", dropout=float(sys.argv[4]) if len(sys.argv) > 4 else 0.0); opt = optim.make("momentum", net)
    nets[name] = (net, opt, step_of(net))
hits = np.zeros(B, bool)
res = {k: [] for k in nets}
for r in range(7):
    for name, (net, opt, st) in nets.items():
        t = time.perf_counter()
        for _ in range(reps):
            st(X, Y, lab, hits); opt.step(0.01)
        res[name].append((time.perf_counter() - t) / reps * 1e6)
print(sizes, B, {k: round(statistics.median(v), 1) for k, v in res.items()})
