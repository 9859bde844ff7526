"""Forward+backward+step at batch 10 and 128 (784-30-10 sigmoid / 784-100-10 relu), best of 7 x N, one tree."""
import sys, timeit, json
import numpy as np
from threadpoolctl import threadpool_limits
from fastbp.nn.network import Network
from fastbp.nn import optim
out = {}
with threadpool_limits(1, "blas"):
    for sizes, hidden, out_act, cost, n, reps in [((784, 30, 10), "sigmoid", "sigmoid", "cross_entropy", 10, 2000),
                                                  ((784, 100, 10), "relu", "softmax", "log_likelihood", 128, 500)]:
        net = Network(list(sizes), hidden, out_act, cost, init="glorot")
        opt = optim.make("momentum", net)
        rng = np.random.default_rng(0)
        X = rng.random((n, 784), dtype=np.float32); Y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)]
        def step():
            net.forward(X, train=True); net.batch_cost(Y); net.backward(X, Y); opt.step(0.1)
        t = min(timeit.repeat(step, number=reps, repeat=7)) / reps
        out[f"b{n}"] = t * 1e6
print(json.dumps(out))
