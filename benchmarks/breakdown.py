"""Where one training step's time goes, for fastbp on numpy.

    python -m benchmarks.breakdown [CASE ...] [--epochs N] [--threads N] [--numpy] [--out DIR]

For each case (small, medium, large: the nets of cases.py) it trains epochs
with timers around the phases of the step (the network's forward and
backward, the batch cost, the optimiser step; or, where numba compiles the
step (fastbp/jit.py), that one call, "compiled"; "loop" is the rest:
gathering and scaling the batch, the running accuracy, Python; --numpy: the
numpy code even where numba is installed), and times the step's
GEMMs alone on the same shapes (flops.GemmCeiling) in the same process. The
gap between the two is the work that is not matrix products: the floor that
no BLAS can remove. Medians over the epochs, in microseconds per step.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from dataclasses import replace

from fastbp import jit
from fastbp.backend import get_backend

from . import cases, contenders, harness
from .flops import GemmCeiling

PHASES = ("forward", "batch_cost", "backward", "compiled", "step")


def _timed(obj, name, sink, key=None):
    f = getattr(obj, name)

    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        out = f(*args, **kwargs)
        sink[key or name] += time.perf_counter() - t0
        return out

    setattr(obj, name, wrapper)
    return f


def breakdown(name, epochs=3, threads=0, numpy=False):
    """threads > 0 caps numpy's BLAS threads for the run (the GEMMs alone too);
    numpy: the numpy code, not jit.py's compiled step."""
    if threads:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=threads, user_api="blas"):
            return breakdown(name, epochs, numpy=numpy)
    bk = get_backend("numpy")
    compiled, bk.jit = bk.jit, bk.jit and not numpy
    call = jit.TrainStep.__call__
    try:
        return _breakdown(name, epochs)
    finally:
        bk.jit, jit.TrainStep.__call__ = compiled, call


def spec_of(name):
    """What fastbp trains in case `name`: for a time-to-target case, its recipe (case.spec is only the base)."""
    case = cases.CASES[name]
    if isinstance(case, cases.Target):
        return replace(case.spec, **case.recipes[contenders.FastbpNumpy.recipe])
    return case.spec


def _breakdown(name, epochs):
    spec = replace(spec_of(name), threads=harness.blas_threads())
    runner = contenders.FastbpNumpy(spec)
    setup = runner.setup
    steps = len(setup.batches)
    ceiling = GemmCeiling(replace(spec, rep_samples=runner.samples))
    sink = defaultdict(float)
    for obj, attr in ((setup.net, "forward"), (setup.net, "batch_cost"), (setup.net, "backward"), (setup.opt, "step")):
        _timed(obj, attr, sink)
    _timed(jit.TrainStep, "__call__", sink, "compiled")  # the class's: train_epoch makes its step; breakdown restores it
    runner.epoch()  # warm-up
    ceiling.epoch()
    rows = defaultdict(list)
    for _ in range(epochs):  # interleaved: step, GEMMs alone, step, ...
        sink.clear()
        t0 = time.perf_counter()
        runner.epoch()
        total = time.perf_counter() - t0
        for phase in PHASES:
            rows[phase].append(sink[phase] / steps * 1e6)
        rows["loop"].append((total - sum(sink.values())) / steps * 1e6)
        rows["total"].append(total / steps * 1e6)
        t0 = time.perf_counter()
        ceiling.epoch()
        rows["gemms_alone"].append((time.perf_counter() - t0) / steps * 1e6)
    out = {k: statistics.median(v) for k, v in rows.items()}
    out["not_gemm"] = out["total"] - out["gemms_alone"]
    return {"case": name, "about": cases.CASES[name].about, "blas_threads": spec.threads, "steps_per_epoch": steps,
            "path": "compiled" if out["compiled"] else "numpy", "us_per_step": out}


COLUMNS = ("forward", "batch_cost", "backward", "compiled", "step", "loop", "total", "gemms_alone", "not_gemm")


def markdown(results):
    lines = ["| case | " + " | ".join(COLUMNS) + " |", "|---|" + "---|" * len(COLUMNS)]
    for r in results:
        lines.append(f"| {r['case']}, {r['path']} ({r['blas_threads']} BLAS thr.) | " + " | ".join(f"{r['us_per_step'][c]:.0f}" for c in COLUMNS) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.breakdown", description=__doc__.splitlines()[0])
    p.add_argument("cases", nargs="*", default=["small", "medium", "large"])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="cap numpy's BLAS threads (default: as numpy has them)")
    p.add_argument("--numpy", action="store_true", help="time the numpy code, not the compiled step where numba is installed")
    p.add_argument("--both", action="store_true", help="each case on both paths, compiled then numpy, in turn")
    p.add_argument("--out", default="", help="also write breakdown-<stamp>.json and .md into this folder")
    args = p.parse_args(argv)
    paths = (False, True) if args.both else (args.numpy,)
    results = [breakdown(c, args.epochs, args.threads, numpy) for c in args.cases for numpy in paths]
    text = f"µs per training step, fastbp-numpy (medians of {args.epochs} epochs)\n\n" + markdown(results)
    print(text)
    if args.out:
        report = {"created": harness.run_stamp(), "command": harness.argv("benchmarks.breakdown"), "machine": harness.machine(),
                  "versions": harness.versions(), "results": results}
        stem = harness.write(report, text, args.out, prefix="breakdown")
        print(f"\nwrote {stem}.json and {stem}.md")
    return results


if __name__ == "__main__":
    main()
