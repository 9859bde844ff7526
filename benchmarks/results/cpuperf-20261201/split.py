import timeit, numpy as np, time
from fastbp.backend import get_backend
from fastbp.nn import optim
from fastbp.nn.network import Network
bk = get_backend("numpy")
def t(f, n):
    return min(timeit.repeat(f, number=n, repeat=9)) / n * 1e6
for n_hidden in (25, 100, 400, 1000, 2400):
    net = Network([784, n_hidden, 10], "relu", "softmax", "log_likelihood"); opt = optim.make("momentum", net)
    reps = max(5, 2000000 // net.n_params)
    bk.split_min = 1 << 40; one = t(lambda: opt.step(0.01), reps)
    bk.split_min = 16; two = t(lambda: opt.step(0.01), reps)
    print(net.n_params, "one", round(one, 1), "halves", round(two, 1), round(two / one, 2), flush=True)
