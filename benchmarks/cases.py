"""The cases: what each one trains, how it is timed, its figures and targets."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace

from . import contenders as C
from .flops import flops_per_sample
from .harness import fmt, interleave, median, table

MNIST_LARGE = (784, 1024, 1024, 10)
SWEEP_WORK = 100e9  # FLOPs of training per repetition in the sweeps (a fraction of an epoch)
TARGET = 0.98


# -- what a repetition does (runs inside the worker process) ----------------------------------
class Epochs:
    """One timed call of epoch() per repetition."""

    def __init__(self, name, spec):
        self.name, self.spec, self.runner = name, spec, None

    def prepare(self):
        C.prepare(self.name, self.spec)

    def setup(self):
        self.runner = C.make(self.name, self.spec)

    def rep(self):
        t0 = time.perf_counter()
        self.runner.epoch()
        return {"seconds": time.perf_counter() - t0, "samples": self.runner.samples}

    warmup = rep

    def gpu_peak_mb(self):
        return self.runner.gpu_peak_mb()


class ToTarget(Epochs):
    """A fresh net per repetition, trained until its test accuracy reaches the
    target or the recipe's epochs run out. Only training is timed; the
    evaluation after each epoch is not. The warm-up is one epoch."""

    def setup(self):
        pass

    def warmup(self):
        self.runner = C.make(self.name, self.spec)
        return Epochs.rep(self)

    def rep(self):
        self.runner = None
        self.runner = C.make(self.name, self.spec)
        seconds, curve = 0.0, []
        for _ in range(self.spec.epochs):
            t0 = time.perf_counter()
            self.runner.epoch()
            seconds += time.perf_counter() - t0
            curve.append([round(seconds, 4), self.runner.accuracy()])
            if curve[-1][1] >= TARGET:
                break
        return {"seconds": seconds, "epochs": len(curve), "accuracy": curve[-1][1], "reached": curve[-1][1] >= TARGET,
                "curve": curve}


# -- the cases ----------------------------------------------------------------------------------
@dataclass
class Case:
    """Times one epoch of `spec` per repetition, for every contender."""

    about: str
    spec: C.Spec
    kind = "timing"

    def points(self, n_train, quick):
        spec = self.spec
        if quick:
            n = min(n_train, max(1024, 4 * spec.batch))
            spec = replace(spec, rep_samples=n, subset=min(spec.subset, 100))
        return [("", spec)]

    def tasks(self, spec, names, quick):
        tasks = {n: Epochs(n, spec) for n in names}
        return {**tasks, **{c: Epochs(c, spec) for c in dict.fromkeys(map(C.ceiling_for, tasks))}}


@dataclass
class Sweep(Case):
    """The large net with one setting varied. Each repetition trains on the
    first samples only, about SWEEP_WORK FLOPs (at least 4 batches)."""

    axis: str = "batch"
    values: tuple = ()

    def points(self, n_train, quick):
        points = []
        for v in self.values[:2] if quick else self.values:
            spec = replace(self.spec, batch=v) if self.axis == "batch" else replace(self.spec, sizes=(784, v, v, 10))
            want = SWEEP_WORK / flops_per_sample(spec.sizes) if not quick else 1024
            n = min(n_train, max(4 * spec.batch, spec.batch * round(want / spec.batch)))
            points.append((f"{self.axis} {v}", replace(spec, rep_samples=n, subset=min(spec.subset, n))))
        return points


@dataclass
class Target(Case):
    """Training seconds until test accuracy >= 98%, each contender with its own recipe."""

    recipes: dict = field(default_factory=dict)
    kind = "target"

    def points(self, n_train, quick):
        return [("", self.spec)]

    def tasks(self, spec, names, quick):
        specs = {n: replace(spec, **self.recipes[n]) for n in names if n in self.recipes}
        return {n: ToTarget(n, replace(s, epochs=1, rep_samples=4096) if quick else s) for n, s in specs.items()}


# Recipes for time-to-98, found by trying (see README): fastbp's and torch's are the same one.
FAST_RECIPE = {"sizes": (784, 192, 10), "batch": 128, "optimizer": "momentum", "lr": 0.2, "schedule": "one_cycle", "epochs": 4}
SKLEARN_RECIPE = {"sizes": (784, 256, 10), "batch": 128, "optimizer": "adam", "lr": 0.001, "epochs": 20}

CASES = {
    "small": Case("784-30-10 sigmoid, softmax + log-likelihood, batch 10, plain SGD lr 0.1",
                  C.Spec(sizes=(784, 30, 10), hidden="sigmoid", batch=10, optimizer="sgd", lr=0.1)),
    "medium": Case("784-100-10 relu + softmax, batch 128, SGD momentum 0.9 lr 0.05",
                   C.Spec(sizes=(784, 100, 10), batch=128, lr=0.05)),
    "large": Case("784-1024-1024-10 relu + softmax, batch 512, SGD momentum 0.9 lr 0.02",
                  C.Spec(sizes=MNIST_LARGE, batch=512, lr=0.02, subset=500)),
    "sweep-batch": Sweep("784-1024-1024-10 relu, momentum 0.9 lr 0.02, batch sizes 16 to 8192",
                         C.Spec(sizes=MNIST_LARGE, lr=0.02, subset=256), axis="batch", values=(16, 64, 256, 1024, 4096, 8192)),
    "sweep-width": Sweep("784-w-w-10 relu, batch 512, momentum 0.9 lr 0.02, widths 64 to 4096",
                         C.Spec(sizes=MNIST_LARGE, batch=512, lr=0.02, subset=256), axis="width", values=(64, 256, 1024, 4096)),
    "time-to-98": Target("training seconds to 98.0% MNIST test accuracy (evaluation after each epoch, not timed)",
                         C.Spec(), recipes={"fastbp-numpy": FAST_RECIPE, "fastbp-cupy": FAST_RECIPE, "torch-cpu": FAST_RECIPE,
                                            "torch-cuda": FAST_RECIPE, "sklearn": SKLEARN_RECIPE}),
    "smoke": Case("digits 64-32-10 relu, batch 32, momentum 0.9 (seconds; for CI)",
                  C.Spec(dataset="digits", sizes=(64, 32, 10), batch=32, lr=0.05, subset=200)),
}
MAIN = [name for name in CASES if name != "smoke"]


# -- figures -----------------------------------------------------------------------------------
def figures(raw, spec, n_train):
    """Per-runner figures of one point from the raw timings."""
    flops = flops_per_sample(spec.sizes)
    rows = {}
    for name, r in raw.items():
        secs = [rep["seconds"] for rep in r["reps"]]
        row = rows[name] = {"name": name, "reps": r["reps"], "warmup": r.get("warmup"), "memory": r.get("memory"),
                            "error": r.get("error")}
        if not secs:
            continue
        samples = r["reps"][0].get("samples") or spec.rep_samples or n_train
        mem = r.get("memory") or {}
        row.update(median_s=median(secs), min_s=min(secs), max_s=max(secs), samples_per_rep=samples,
                   peak_mb=mem.get("peak_mb"), gpu_peak_mb=mem.get("gpu_peak_mb"))
        if "reached" in r["reps"][0]:  # time-to-target
            row.update(reached=all(rep["reached"] for rep in r["reps"]), epochs=median([rep["epochs"] for rep in r["reps"]]),
                       accuracy=r["reps"][-1]["accuracy"])
            continue
        row.update(seconds_per_epoch=row["median_s"] * n_train / samples, samples_per_s=samples / row["median_s"],
                   gflops=flops * samples / row["median_s"] / 1e9)
    for name, row in rows.items():
        if "median_s" not in row:
            continue
        base, top = rows.get(C.fastbp_for(name), {}), rows.get(C.ceiling_for(name), {})
        key = "seconds_per_epoch" if "seconds_per_epoch" in row else "median_s"
        if base.get(key) and (row.get("reached", True) and base.get("reached", True)):
            row["ratio"] = row[key] / base[key]
        if top.get("gflops") and "gflops" in row:
            row["ceiling_fraction"] = row["gflops"] / top["gflops"]
    return rows


def _mb(row):
    gpu = f" (+{row['gpu_peak_mb']:.0f} GPU)" if row.get("gpu_peak_mb") is not None else ""
    return f"{row['peak_mb']:.0f}{gpu}" if row.get("peak_mb") is not None else "–"


TIMING_COLUMNS = [
    ("runner", "name", lambda r: r["name"] + (" (ceiling)" if r["name"] in C.CEILINGS else "")),
    ("s/epoch (median)", "seconds_per_epoch", ".3g"),
    ("min–max s/rep", "", lambda r: f"{r['min_s']:.3g}–{r['max_s']:.3g}"),
    ("samples/s", "samples_per_s", ",.0f"),
    ("GFLOP/s", "gflops", ".1f"),
    ("% of GEMM ceiling", "", lambda r: fmt(r.get("ceiling_fraction") and 100 * r["ceiling_fraction"], ".0f")),
    ("peak MB", "", _mb),
    ("× fastbp (time)", "ratio", ".2f"),
]
TARGET_COLUMNS = [
    ("runner", "name", "s"),
    ("recipe", "", lambda r: r["recipe"]),
    ("s to 98% (median)", "", lambda r: f"{r['median_s']:.3g}" if r["reached"] else f"not reached in {r['median_s']:.3g}"),
    ("min–max s", "", lambda r: f"{r['min_s']:.3g}–{r['max_s']:.3g}"),
    ("epochs", "epochs", "g"),
    ("test acc. (last)", "accuracy", ".4f"),
    ("peak MB", "", _mb),
    ("× fastbp (time)", "ratio", ".2f"),
]


def recipe_text(spec):
    sched = f", {spec.schedule}" if spec.schedule != "constant" else ""
    return f"{'-'.join(map(str, spec.sizes))} b{spec.batch} {spec.optimizer} lr {spec.lr:g}{sched}, ≤{spec.epochs} ep"


def run_case(name, n_train, names, reps, quick, threads, log=print):
    """Run every point of a case; returns (its JSON record, its Markdown)."""
    case = CASES[name]
    record = {"about": case.about, "kind": case.kind, "points": []}
    md = [f"## {name}: {case.about}\n"]
    for label, spec in case.points(n_train, quick):
        spec = replace(spec, threads=threads, rep_samples=spec.rep_samples or n_train)
        tasks = case.tasks(spec, names, quick)
        log(f"{name} {label}".strip() + f": {', '.join(tasks)}")
        rows = figures(interleave(tasks, reps, log), spec, n_train)
        for row in rows.values():
            row["recipe"] = recipe_text(tasks[row["name"]].spec)
        notes = _notes(case, spec, tasks, n_train)
        record["points"].append({"label": label, "spec": asdict(spec), "flops_per_sample": flops_per_sample(spec.sizes),
                                 "epoch_samples": n_train, "notes": notes, "results": rows,
                                 "recipes": {n: asdict(t.spec) for n, t in tasks.items()}})
        ok = [r for r in rows.values() if "median_s" in r]
        columns = TARGET_COLUMNS if case.kind == "target" else TIMING_COLUMNS
        md.append((f"### {label}\n\n" if label else "") + table(ok, columns) + "\n")
        md += [f"- {n}" for n in notes] + [f"- {r['name']} failed: {r['error']}" for r in rows.values() if r.get("error")]
        md.append("")
    return record, "\n".join(md)


def _notes(case, spec, tasks, n_train):
    notes = []
    if case.kind == "timing":
        if spec.rep_samples and spec.rep_samples < n_train:
            notes.append(f"each repetition trains on the first {spec.rep_samples:,} of {n_train:,} samples; "
                         "s/epoch is scaled to the full epoch")
        if "per-example" in tasks:
            k = tasks["per-example"].spec
            notes.append(f"per-example: timed on {min(k.subset, k.rep_samples or n_train):,} samples and scaled to the epoch")
        notes.append(f"{flops_per_sample(spec.sizes) / 1e6:.3g} MFLOP per training sample (forward + backward GEMMs)")
    else:
        notes.append("the per-example loop is left out (it cannot reach 98% in a sensible time)")
    return notes


# -- targets -----------------------------------------------------------------------------------
def _get(report, case, runner, key):
    try:
        return report["cases"][case]["points"][0]["results"][runner][key]
    except (KeyError, IndexError):
        return None


def _ratio(report, case, a, b):
    x, y = _get(report, case, a, "seconds_per_epoch"), _get(report, case, b, "seconds_per_epoch")
    return x / y if x and y else None


def _to98(report, runner):
    s = _get(report, "time-to-98", runner, "median_s")
    return s if s is None or _get(report, "time-to-98", runner, "reached") else math.inf


def _speedup(report, case, fast, slow):
    a, b = _get(report, case, fast, "samples_per_s"), _get(report, case, slow, "samples_per_s")
    return a / b if a and b else None


def _vs_peers(report):
    mine = _to98(report, "fastbp-numpy")
    results = (report["cases"].get("time-to-98") or {"points": [{"results": {}}]})["points"][0]["results"]
    peers = [_to98(report, n) for n in results if n != "fastbp-numpy" and not C.on_gpu(n)]
    peers = [p for p in peers if p is not None]
    if mine is None or not peers:
        return None
    return math.inf if mine == math.inf else mine / min(peers)


TARGETS = [
    ("medium: fastbp-numpy epoch <= 0.5 x sklearn", lambda r: _ratio(r, "medium", "fastbp-numpy", "sklearn"), "<=", 0.5),
    ("medium: fastbp-numpy epoch <= 0.6 x torch-cpu", lambda r: _ratio(r, "medium", "fastbp-numpy", "torch-cpu"), "<=", 0.6),
    ("small: fastbp-numpy epoch <= 0.25 x sklearn", lambda r: _ratio(r, "small", "fastbp-numpy", "sklearn"), "<=", 0.25),
    ("small: per-example loop >= 10 x fastbp-numpy epoch", lambda r: _ratio(r, "small", "per-example", "fastbp-numpy"), ">=", 10),
    ("large: fastbp-numpy >= 85% of the GEMM ceiling", lambda r: _get(r, "large", "fastbp-numpy", "ceiling_fraction"), ">=", 0.85),
    ("large: fastbp-numpy epoch <= 1.1 x torch-cpu", lambda r: _ratio(r, "large", "fastbp-numpy", "torch-cpu"), "<=", 1.1),
    ("time-to-98: fastbp-numpy <= 4 s", lambda r: _to98(r, "fastbp-numpy"), "<=", 4.0),
    ("time-to-98: fastbp-numpy faster than every CPU peer (ratio to the best)", _vs_peers, "<", 1.0),
    # GPU issue (one H200); measured only where a GPU is usable
    ("GPU medium: fastbp-cupy epoch <= 0.66 x torch-cuda", lambda r: _ratio(r, "medium", "fastbp-cupy", "torch-cuda"), "<=", 0.66),
    ("GPU large: fastbp-cupy >= 70% of cuBLAS alone", lambda r: _get(r, "large", "fastbp-cupy", "ceiling_fraction"), ">=", 0.70),
    ("GPU large: fastbp-cupy samples/s over fastbp-numpy on the same host", lambda r: _speedup(r, "large", "fastbp-cupy", "fastbp-numpy"), ">=", 50),
    ("GPU time-to-98: fastbp-cupy <= 0.5 s", lambda r: _to98(r, "fastbp-cupy"), "<=", 0.5),
]


def check_targets(report):
    """[{target, value, limit, pass}] for the targets whose cases ran; pass None = not measured."""
    out = []
    for text, get, op, limit in TARGETS:
        value = get(report)
        ok = None if value is None else (value <= limit if op == "<=" else value >= limit if op == ">=" else value < limit)
        out.append({"target": text, "value": value, "op": op, "limit": limit, "pass": ok})
    return out


def targets_markdown(results):
    lines = ["## Targets (CPU ones for a 2-core CPU; GPU ones for one H200)\n"]
    for t in results:
        verdict = {True: "PASS", False: "FAIL", None: "SKIP"}[t["pass"]]
        v = t["value"]
        value = "not measured" if v is None else "98% not reached" if v == math.inf else f"{v:.3g}"
        value += "" if t["value"] is None else f" (need {t['op']} {t['limit']:g})"
        lines.append(f"- {verdict} {t['target']}: {value}")
    return "\n".join(lines)
