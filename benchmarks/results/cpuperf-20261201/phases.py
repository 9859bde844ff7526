"""min-of-N per phase of a step, in the tree on PYTHONPATH. usage: phases.py THREADS CASE"""
import sys, timeit, json
from dataclasses import replace
import numpy as np
from threadpoolctl import threadpool_limits
from benchmarks import cases, contenders
thr, name = int(sys.argv[1]), sys.argv[2]
N = {"small": 3000, "medium": 300, "large": 3}[name]
with threadpool_limits(thr, "blas"):
    spec = replace(cases.CASES[name].spec, rep_samples=4096, threads=thr)
    r = contenders.FastbpNumpy(spec); s = r.setup; net, opt = s.net, s.opt
    b, x, y, labels = next(iter(s.batches.epoch(0)))
    x, y, labels = x.copy(), y.copy(), labels.copy()
    net.forward(x, train=True); net.backward(x, y)
    if "nogemm" in sys.argv:  # the work between the GEMMs only: matmul does nothing
        np.seterr(all="ignore"); net.bk.matmul = lambda a, b, out=None: out
    it = [None]
    def gather():
        if it[0] is None: it[0] = s.batches.epoch(0)
        try: next(it[0])
        except StopIteration: it[0] = None
    def t(f):
        return min(timeit.repeat(f, number=N, repeat=7, timer=(__import__("time").process_time if thr == 1 else __import__("time").perf_counter))) / N * 1e6
    res = {
      "forward": t(lambda: net.forward(x, train=True)),
      "batch_cost": t(lambda: net.batch_cost(y)),
      "metrics": t(lambda: (net.a_out.argmax(axis=1) == labels).sum()),
      "backward": t(lambda: net.backward(x, y)),
      "step": t(lambda: opt.step(0.01)),
      "gather": t(gather),
    }
    res["sum"] = sum(res.values())
    print(json.dumps({k: round(v, 1) for k, v in res.items()}))
