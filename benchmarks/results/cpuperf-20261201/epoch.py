"""min-of-N short epochs (train_epoch over N samples) and GEMMs alone, per case, in the tree on PYTHONPATH.
usage: epoch.py THREADS CASE:N_SAMPLES:REPS ..."""
import sys, time, json, os
from dataclasses import replace
from threadpoolctl import threadpool_limits
from benchmarks import cases, contenders
from benchmarks.flops import GemmCeiling
thr = int(sys.argv[1])
if os.environ.get("GATHER_ROWS"):
    from fastbp.backend import NumpyBackend as _NB; _NB.gather_rows = int(os.environ["GATHER_ROWS"])
if os.environ.get("SPLIT_MIN"):
    from fastbp.backend import NumpyBackend; NumpyBackend.split_min = int(os.environ["SPLIT_MIN"])
import os
clock = time.perf_counter if thr > 1 else time.process_time
out = {}
with threadpool_limits(thr, "blas"):
    for arg in sys.argv[2:]:
        name, n, reps = arg.split(":")
        spec = replace(cases.CASES[name].spec, rep_samples=int(n), threads=thr)
        r = contenders.FastbpNumpy(spec); g = GemmCeiling(replace(spec, rep_samples=r.samples))
        steps = len(r.setup.batches)
        r.epoch(); g.epoch()
        te, tg = [], []
        for _ in range(int(reps)):
            t0 = clock(); r.epoch(); te.append(clock() - t0)
            t0 = clock(); g.epoch(); tg.append(clock() - t0)
        out[name] = {"step_us": round(min(te) / steps * 1e6, 1), "gemm_us": round(min(tg) / steps * 1e6, 1), "ratio": round(min(te) / min(tg), 3)}
print(json.dumps(out))
