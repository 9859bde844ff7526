"""Where one training step's time goes, for fastbp on cupy.

    python -m benchmarks.gpu_breakdown [CASE ...] [--steps N] [--quick] [--out DIR]

A GPU step is bound either by the host (Python issuing some 20 to 50 kernel
launches, a few microseconds each) or by the device. For each case (the nets
of cases.py), with the fused kernels on and off (FASTBP_FUSED), in
microseconds per step:

  epoch         whole epochs of fastbp's loop (train_epoch: gather, metrics,
                synchronize at the end), divided by the steps
  host_*        host time inside forward, batch_cost, backward and the
                optimiser step, no synchronize: the time to issue their launches
                (the rest, host_loop, is the batch gather, metrics and Python)
  step          forward + cost + backward + optimiser step on one fixed batch,
                `--steps` times between two synchronizes
  epoch_graph   whole epochs again, each full batch's forward, cost, running
                sums and backward replayed as one CUDA graph (loop.GraphStep)
  graph         the same step recorded once as a CUDA graph (backend.capture)
                and replayed `--steps` times: the device's own time, with no
                host in the way (None if recording failed, with the reason)
  gemms_alone   the step's matrix products alone (flops.CupyGemmCeiling)

--tf32 adds a row per case with cuBLAS's float32 products in TF32
(backend.set_tf32), the fused kernels on.

step ≈ sum of host_* means the host bounds the step; step ≈ graph means the
device does. graph − gemms_alone is the elementwise and launch floor.
"""

from __future__ import annotations

import argparse
import statistics
import time
import traceback
from collections import defaultdict
from dataclasses import replace

from . import cases, contenders, harness
from .breakdown import PHASES, _timed
from .flops import CupyGemmCeiling

def _per_step(fn, bk, steps, reps=3):
    """Median µs per call of fn over `reps` runs of `steps` calls, synchronized around each run."""
    out = []
    for _ in range(reps):
        bk.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        bk.synchronize()
        out.append((time.perf_counter() - t0) / steps * 1e6)
    return statistics.median(out)


def breakdown(name, fused=True, steps=200, quick=False, tf32=False):
    from fastbp.backend import get_backend

    bk = get_backend("cupy")
    bk.fused = fused  # read when the network and optimiser are made
    bk.set_tf32(tf32)
    spec = cases.CASES[name].spec
    if quick:
        spec = replace(spec, rep_samples=max(1024, 4 * spec.batch))
    runner = contenders.FastbpCupy(spec)
    s = runner.setup
    n_steps = len(s.batches)
    sink = defaultdict(float)
    plain = {}
    for obj, attr in ((s.net, "forward"), (s.net, "batch_cost"), (s.net, "backward"), (s.opt, "step")):
        plain[attr] = _timed(obj, attr, sink)
    runner.epoch()  # warm-up: kernels compile, the pool fills
    rows = defaultdict(list)
    for _ in range(2 if quick else 3):
        sink.clear()
        t0 = time.perf_counter()
        runner.epoch()
        total = time.perf_counter() - t0
        for phase in PHASES:
            rows["host_" + phase].append(sink[phase] / n_steps * 1e6)
        rows["host_loop"].append((total - sum(sink.values())) / n_steps * 1e6)
        rows["epoch"].append(total / n_steps * 1e6)
    out = {k: statistics.median(v) for k, v in rows.items()}
    out["epoch_graph"] = None
    try:
        from fastbp.train import loop

        graph = loop.GraphStep(s.net, s.batches)
        epochs = []
        for _ in range(3 if quick else 4):  # the first records the graph: not timed
            t0 = time.perf_counter()
            loop.train_epoch(s.net, s.opt, s.lr_at, s.batches, runner.state, graph=graph)
            runner.state.next_epoch()
            epochs.append((time.perf_counter() - t0) / n_steps * 1e6)
        out["epoch_graph"] = statistics.median(epochs[1:])
    except Exception as exc:
        out["epoch_graph_error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        traceback.print_exc()

    # One fixed batch, the untimed methods: the step alone, then as a graph.
    _, x, y, _ = next(iter(s.batches.epoch(0)))
    lr = s.lr_at(0)
    forward, batch_cost, backward, opt_step = plain["forward"], plain["batch_cost"], plain["backward"], plain["step"]

    def one_step():
        forward(x, train=True)
        batch_cost(y)
        backward(x, y)
        opt_step(lr)

    out["step"] = _per_step(one_step, bk, steps)
    out["graph"] = None
    try:
        replay = bk.capture(one_step)
        if replay is None:
            out["graph_error"] = f"backend {bk.name} records no graphs"
        else:
            out["graph"] = _per_step(replay, bk, steps)
    except Exception as exc:  # what stops the recording is itself the finding
        out["graph_error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        traceback.print_exc()
    gemm = CupyGemmCeiling(replace(spec, rep_samples=runner.samples))
    gemm.epoch()
    out["gemms_alone"] = statistics.median(_time_epoch(gemm) for _ in range(3)) / n_steps * 1e6
    out["host_total"] = sum(out["host_" + p] for p in (*PHASES, "loop"))
    bk.set_tf32(False)
    return {"case": name, "fused": fused, "tf32": tf32, "about": cases.CASES[name].about, "steps_per_epoch": n_steps,
            "batch": spec.batch, "us_per_step": out}


def _time_epoch(runner):
    t0 = time.perf_counter()
    runner.epoch()
    return time.perf_counter() - t0


COLUMNS = ("epoch", "epoch_graph", "host_forward", "host_batch_cost", "host_backward", "host_step", "host_loop", "host_total", "step",
           "graph", "gemms_alone")


def markdown(results):
    lines = ["| case | fused | " + " | ".join(COLUMNS) + " |", "|---|---|" + "---|" * len(COLUMNS)]
    for r in results:
        u = r["us_per_step"]
        cells = [harness.fmt(u.get(c), ".0f") for c in COLUMNS]
        tf32 = ", TF32" if r.get("tf32") else ""
        lines.append(f"| {r['case']} (batch {r['batch']}{tf32}) | {'on' if r['fused'] else 'off'} | " + " | ".join(cells) + " |")
    errors = [f"- {r['case']} ({'fused' if r['fused'] else 'unfused'}): {key} not measured: {r['us_per_step'][key + '_error']}"
              for r in results for key in ("epoch_graph", "graph") if r["us_per_step"].get(key + "_error")]
    return "\n".join(lines + ([""] + errors if errors else []))


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_breakdown", description=__doc__.splitlines()[0])
    p.add_argument("cases", nargs="*", default=["medium", "large"])
    p.add_argument("--steps", type=int, default=200, help="steps per timed run of the fixed-batch step (default 200)")
    p.add_argument("--quick", action="store_true", help="a few batches per epoch: proves the script runs")
    p.add_argument("--tf32", action="store_true", help="also each case with float32 products in TF32 (fused on)")
    p.add_argument("--out", default="", help="also write gpu-breakdown-<stamp>.json and .md into this folder")
    args = p.parse_args(argv)
    from fastbp.backend import cupy_status

    usable, why = cupy_status()
    if not usable:
        print(f"gpu_breakdown: nothing to measure: {why}")
        return []
    results = []
    for case in args.cases:
        for fused, tf32 in ((True, False), (False, False), *([(True, True)] if args.tf32 else [])):
            results.append(breakdown(case, fused, args.steps, args.quick, tf32))
            print(markdown(results[-1:]).splitlines()[2], flush=True)
    text = "µs per training step, fastbp-cupy (medians; see the module's docstring)\n\n" + markdown(results)
    print("\n" + text)
    if args.out:
        report = {"created": harness.run_stamp(), "command": harness.argv("benchmarks.gpu_breakdown"),
                  "machine": harness.machine(), "versions": harness.versions(), "results": results}
        stem = harness.write(report, text, args.out, prefix="gpu-breakdown")
        print(f"\nwrote {stem}.json and {stem}.md")
    return results


if __name__ == "__main__":
    main()
