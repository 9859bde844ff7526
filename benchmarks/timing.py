"""What a repetition does (inside the runner's own process), and running a case's points
side by side (harness.interleave) into its JSON record."""

from __future__ import annotations

import time
from dataclasses import asdict, replace

from . import contenders as C
from .flops import flops_per_sample
from .harness import interleave
from .report import figures, recipe_text


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
    """A fresh net per repetition, trained until its test accuracy reaches
    `target` or the recipe's epochs run out. Only training is timed; the
    evaluation after each epoch is not. The warm-up is one epoch (it compiles
    what a JIT compiles, off the clock)."""

    def __init__(self, name, spec, target):
        super().__init__(name, spec)
        self.target = target

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
            if curve[-1][1] >= self.target:
                break
        return {"seconds": seconds, "epochs": len(curve), "accuracy": curve[-1][1], "reached": curve[-1][1] >= self.target,
                "curve": curve}


def run_case(name, case, n_train, names, reps, quick, threads, log=print):
    """Every point of a case, its runners side by side: the case's JSON record."""
    record = {"about": case.about, "kind": case.kind, "target": getattr(case, "target", None), "points": []}
    for label, spec in case.points(n_train, quick):
        spec = replace(spec, threads=threads, rep_samples=spec.rep_samples or n_train)
        tasks = case.tasks(spec, names, quick)
        log(f"{name} {label}".strip() + f": {', '.join(tasks)}")
        rows = figures(interleave(tasks, reps, log), spec, n_train)
        for row in rows.values():
            row["recipe"] = recipe_text(tasks[row["name"]].spec)
        record["points"].append({"label": label, "spec": asdict(spec), "flops_per_sample": flops_per_sample(spec.sizes),
                                 "epoch_samples": n_train, "notes": case.notes(spec, tasks, n_train), "results": rows,
                                 "recipes": {n: asdict(t.spec) for n, t in tasks.items()}})
    return record
