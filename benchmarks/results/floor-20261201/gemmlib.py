"""The large case's floor: the same five GEMMs of one training step (784-1024-1024-10, batch 512:
forward a1 = x W1ᵀ, a2 = a1 W2ᵀ; BP4 gW2 = δ2ᵀ a1, gW1 = δ1ᵀ x; BP2 δ1 = δ2 W2) through numpy's
OpenBLAS (into preallocated outputs, as fastbp calls them) and through XLA's CPU GEMMs (one jitted
function), in turns of 15 steps each for `SECONDS`, so that both see the same phases of a noisy
machine. Prints each turn's medians and, at the end, the medians over all turns and the median of
the per-turn ratios.
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/results/floor-20261201/gemmlib.py [SECONDS]"""
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

B, f = 512, np.float32
rng = np.random.default_rng(0)
x = rng.standard_normal((B, 784), f)
W1, W2 = rng.standard_normal((1024, 784), f), rng.standard_normal((1024, 1024), f)
d2 = rng.standard_normal((B, 1024), f)
a1, a2, d1 = (np.empty((B, 1024), f) for _ in range(3))
g2, g1 = np.empty((1024, 1024), f), np.empty((1024, 784), f)


def numpy_step():
    np.matmul(x, W1.T, out=a1)
    np.matmul(a1, W2.T, out=a2)
    np.matmul(d2.T, a1, out=g2)
    np.matmul(d2, W2, out=d1)
    np.matmul(d1.T, x, out=g1)


@jax.jit
def xla(x, W1, W2, d2):
    a1 = x @ W1.T
    a2 = a1 @ W2.T
    d1 = d2 @ W2
    return a2, d2.T @ a1, d1.T @ x


args = tuple(map(jnp.asarray, (x, W1, W2, d2)))


def xla_step():
    jax.block_until_ready(xla(*args))


def turn(f, n=15):
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


numpy_step(), xla_step()
seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 120
end, rows = time.time() + seconds, []
while time.time() < end:
    rows.append((turn(numpy_step), turn(xla_step)))
    print("numpy %.2f ms  xla %.2f ms  ratio %.3f" % (*rows[-1], rows[-1][0] / rows[-1][1]), flush=True)
gflop = 2 * B * (784 * 1024 * 2 + 1024 * 1024 * 3) / 1e9
n, j = statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows)
print(f"{len(rows)} turns: numpy (OpenBLAS) {n:.2f} ms = {gflop / n * 1e3:.0f} GFLOP/s, XLA {j:.2f} ms = "
      f"{gflop / j * 1e3:.0f} GFLOP/s; median per-turn ratio numpy/XLA {statistics.median(r[0] / r[1] for r in rows):.3f}")
