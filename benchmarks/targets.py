"""The hardware targets (issue 18's for a 2-core CPU, issue 15's for one H200), checked
against a run's report: PASS, FAIL, or SKIP where a case or a row did not run."""

from __future__ import annotations

import math

from . import contenders as C


def _get(report, case, runner, key):
    try:
        return report["cases"][case]["points"][0]["results"][runner][key]
    except (KeyError, IndexError):
        return None


def _time(report, case, runner):
    """s/epoch of a timing case, training seconds of a time-to-target case (inf: not reached)."""
    if (report["cases"].get(case) or {}).get("kind") == "target":
        s = _get(report, case, runner, "median_s")
        return s if s is None or _get(report, case, runner, "reached") else math.inf
    return _get(report, case, runner, "seconds_per_epoch")


def _ratio(report, case, a, b):
    x, y = _time(report, case, a), _time(report, case, b)
    if x is None or y is None:
        return None
    return x / y if y != math.inf else (None if x == math.inf else 0.0)


def _speedup(report, case, fast, slow):
    a, b = _get(report, case, fast, "samples_per_s"), _get(report, case, slow, "samples_per_s")
    return a / b if a and b else None


def _vs_peers(report, case, mine="fastbp-numpy"):
    """fastbp's time over the fastest other contender on its device (< 1: fastbp first)."""
    me = _time(report, case, mine)
    results = ((report["cases"].get(case) or {}).get("points") or [{"results": {}}])[0]["results"]
    peers = [_time(report, case, n) for n in results
             if n != mine and n in C.CONTENDERS and C.on_gpu(n) == C.on_gpu(mine)]
    peers = [p for p in peers if p is not None]
    if me is None or not peers:
        return None
    return math.inf if me == math.inf else me / min(peers)


def _first(case, mine="fastbp-numpy"):
    return lambda r: _vs_peers(r, case, mine)


TARGETS = [
    # issue 18, a 2-core CPU, each machine's own BLAS kernel
    ("small: fastbp-numpy faster than every CPU contender (its time over the best peer's)", _first("small"), "<", 1.0),
    ("small: fastbp-numpy epoch <= 2 x its GEMMs alone", lambda r: _ratio(r, "small", "fastbp-numpy", "gemm-numpy"), "<=", 2.0),
    ("small: FastBPClassifier.fit <= 0.25 x MLPClassifier.fit", lambda r: _ratio(r, "small", "fastbp-estimator", "sklearn"), "<=", 0.25),
    ("small: per-example loop >= 10 x fastbp-numpy epoch", lambda r: _ratio(r, "small", "per-example", "fastbp-numpy"), ">=", 10),
    ("medium: fastbp-numpy faster than every CPU contender", _first("medium"), "<", 1.0),
    ("medium: fastbp-numpy epoch <= 1.3 x its GEMMs alone", lambda r: _ratio(r, "medium", "fastbp-numpy", "gemm-numpy"), "<=", 1.3),
    ("medium: FastBPClassifier.fit <= 0.5 x MLPClassifier.fit", lambda r: _ratio(r, "medium", "fastbp-estimator", "sklearn"), "<=", 0.5),
    ("large: fastbp-numpy faster than every CPU contender", _first("large"), "<", 1.0),
    ("large: fastbp-numpy >= 95% of the GEMM rate", lambda r: _get(r, "large", "fastbp-numpy", "ceiling_fraction"), ">=", 0.95),
    ("time-to-98: fastbp-numpy >= 1.5 x faster than every CPU peer", _first("time-to-98"), "<=", 1 / 1.5),
    ("time-to-99: fastbp-numpy first among the CPU contenders", _first("time-to-99"), "<", 1.0),
    # issue 15, one H200; measured only where a GPU is usable
    ("GPU medium: fastbp-cupy epoch <= 0.66 x torch-cuda", lambda r: _ratio(r, "medium", "fastbp-cupy", "torch-cuda"), "<=", 0.66),
    ("GPU large: fastbp-cupy >= 70% of cuBLAS alone", lambda r: _get(r, "large", "fastbp-cupy", "ceiling_fraction"), ">=", 0.70),
    ("GPU large: fastbp-cupy samples/s over fastbp-numpy on the same host", lambda r: _speedup(r, "large", "fastbp-cupy", "fastbp-numpy"), ">=", 50),
    ("GPU time-to-98: fastbp-cupy <= 0.5 s", lambda r: _time(r, "time-to-98", "fastbp-cupy"), "<=", 0.5),
    ("GPU time-to-98: fastbp-cupy faster than torch-cuda and jax-gpu", _first("time-to-98", "fastbp-cupy"), "<", 1.0),
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
        value = "not measured" if v is None else "target accuracy not reached" if v == math.inf else f"{v:.3g}"
        value += "" if v is None else f" (need {t['op']} {t['limit']:.3g})"
        lines.append(f"- {verdict} {t['target']}: {value}")
    return "\n".join(lines)
