import sys, time, json, warnings
import numpy as np
from threadpoolctl import threadpool_limits
from dataclasses import replace
from benchmarks import cases, contenders
warnings.simplefilter("ignore")
out = {}
with threadpool_limits(1, "blas"):
    for name, n, reps in (("small", 2560, 40), ("medium", 5120, 20)):
        spec = replace(cases.CASES[name].spec, rep_samples=n, threads=1)
        r = contenders.FastbpEstimator(spec); s = contenders.Sklearn(spec)
        r.epoch(); s.epoch()
        te, ts = [], []
        for _ in range(reps):
            t0 = time.process_time(); r.epoch(); te.append(time.process_time() - t0)
            t0 = time.process_time(); s.epoch(); ts.append(time.process_time() - t0)
        steps = -(-n // spec.batch)
        out[name] = {"est_us": round(min(te) / steps * 1e6, 1), "sk_us": round(min(ts) / steps * 1e6, 1), "ratio": round(min(te) / min(ts), 3)}
print(json.dumps(out))
