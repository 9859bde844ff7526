"""A/B, one process: jit.gather_scaled as committed (each shuffled row's cache lines asked
for 4 rows ahead) against the same loop without the prefetch, taking turns epoch by epoch:
Batches.epoch alone (µs a batch), then whole training epochs of the small and medium cases
(fastbp-numpy, s). Medians of 7 turns each. One part a process (all three in one process
once ran medium at half speed, both variants: see README.md):
    FASTBP_DATA=... PYTHONPATH=. python benchmarks/results/floor-20261201/prefetch_ab.py batches|small|medium"""
import statistics, sys, time

from numba import njit

from fastbp import jit
from fastbp.backend import get_backend
from fastbp.data.datasets import load_dataset
from fastbp.train.build import Split
from fastbp.train.loop import Batches

from benchmarks import cases, contenders


@njit(cache=True)
def plain(X, rows, scale, out):
    for r in range(rows.shape[0]):
        src, dst = X[rows[r]], out[r]
        for j in range(src.shape[0]):
            dst[j] = src[j]
            dst[j] *= scale


module = jit._load(jit._HEAD + jit._OPTIMIZERS)
variants = {"prefetch": module.gather_scaled, "plain": plain}
bk = get_backend("numpy")
ds = load_dataset("mnist")
split = Split(bk, ds.X_train, ds.y_train, 10, ds.scale, "float32")
part = sys.argv[1] if len(sys.argv) > 1 else "batches"
for B in (10, 128) if part == "batches" else ():
    batches, res = Batches(split, B), {k: [] for k in variants}
    for turn in range(7):
        for name, f in variants.items():
            module.gather_scaled = f
            t = time.perf_counter()
            for _ in batches.epoch(turn):
                pass
            res[name].append((time.perf_counter() - t) / len(batches) * 1e6)
    print(f"Batches.epoch, batch {B}: " + ", ".join(f"{k} {statistics.median(v):.1f} µs a batch" for k, v in res.items()))
for case in (part,) if part in ("small", "medium") else ():
    runner, res = contenders.FastbpNumpy(cases.CASES[case].spec), {k: [] for k in variants}
    runner.epoch()
    for turn in range(7):
        for name, f in variants.items():
            module.gather_scaled = f
            t = time.perf_counter()
            runner.epoch()
            res[name].append(time.perf_counter() - t)
    a, b = (statistics.median(res[k]) for k in variants)
    print(f"{case} epoch: prefetch {a:.4f} s, plain {b:.4f} s, ratio {a / b:.3f}")
module.gather_scaled = variants["prefetch"]
