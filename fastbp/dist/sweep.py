"""Hyperparameter sweeps on Dask: every combination of a grid (times seeds) is
one normal training run, a task on a Dask cluster (a LocalCluster by
default, or an existing scheduler), and a run directory under one sweep
directory:

    fastbp sweep digits --grid optimizer.lr=0.05,0.1,0.2 --grid model.dropout=0.2,0.3 --seeds 3

Results: sweep.csv (every run), sweep.md (sorted by validation accuracy,
with test accuracy and seconds) and best.toml (the config of the best run).
Run again with the same --out, a sweep skips the runs that finished (a run
directory with a summary.json). A failed run (a bad value, divergence) is
recorded with its message; the others go on. A worker that dies mid-run has
its task retried by Dask (`retries`).

Dask is imported only here, only when a sweep runs.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, FastBPError, UsageError
from ..extras import require

CONNECT_TIMEOUT = "5s"  # an unreachable scheduler: a clear error after this


class SweepError(FastBPError):
    """The cluster could not be reached or started: exit code 1."""


@dataclass
class Run:
    """One combination of the grid and a seed: its --set overrides, the
    validated config (a dict) and its run directory."""

    name: str
    values: dict  # grid key -> TOML text of its value (and "train.seed")
    config: dict
    path: Path
    result: dict = field(default_factory=dict)


def parse_grid(items):
    """['optimizer.lr=0.05,0.1', 'model.sizes=[64,32,10],[64,64,10]'] ->
    {'optimizer.lr': ['0.05', '0.1'], 'model.sizes': ['[64,32,10]', '[64,64,10]']}:
    values split at the commas outside brackets and quotes, kept as TOML text."""
    grid = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--grid {item!r}: expected KEY=V1,V2,..., e.g. optimizer.lr=0.05,0.1")
        key, raw = (s.strip() for s in item.split("=", 1))
        values = _split_values(raw)
        if not values or any(not v for v in values):
            raise ConfigError(f"--grid {item!r}: expected one or more comma-separated values after '='")
        if key in grid:
            raise ConfigError(f"--grid {key}: given twice; list all its values in one --grid")
        grid[key] = values
    return grid


def _split_values(raw):
    values, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(raw):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            values.append(raw[start:i].strip())
            start = i + 1
    values.append(raw[start:].strip())
    return values


def _slug(text):
    return re.sub(r"[^A-Za-z0-9.=_+-]+", "-", text).strip("-")


def plan(config_path, grid, *, seeds=1, overrides=(), out):
    """Every run of the sweep, each config loaded and validated first: a
    wrong key or value anywhere stops the sweep before any run starts."""
    import itertools

    from ..train import config

    base = config.load(config_path, list(overrides))
    keys = list(grid)
    runs = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        for s in range(seeds):
            values = dict(zip(keys, combo))
            if seeds > 1 or "train.seed" in values:
                values.setdefault("train.seed", str(base.train.seed + s))
            sets = [*overrides, *(f"{k}={v}" for k, v in values.items())]
            where = ", ".join(f"{k}={v}" for k, v in values.items())
            try:
                cfg = config.load(config_path, sets)
            except ConfigError as exc:
                raise ConfigError(f"sweep combination {where}: {exc}") from None
            name = _slug("_".join(f"{k}={v}" for k, v in values.items())) or "run"
            runs.append(Run(name, values, cfg.to_dict(), Path(out) / name))
    return runs


def run_one(config_dict, path, threads):
    """Train one run into `path` (on a worker); its result row. A failure
    of the run itself is a result too (status "failed" and the message)."""
    from ..train import config, trainer

    path = Path(path)
    if path.exists():  # an interrupted earlier attempt: start it afresh
        shutil.rmtree(path)
    overrides = [f"output.dir={json.dumps(str(path.parent))}", f"output.name={json.dumps(path.name)}",
                 f"train.threads={threads}"]
    t0 = time.perf_counter()
    try:
        cfg = config.from_dict(config_dict, overrides)
        with warnings.catch_warnings():  # one line per worker about the backend would only clutter the sweep's output
            warnings.simplefilter("ignore")
            summary = trainer.Trainer(cfg, quiet=True).run()
    except FastBPError as exc:
        return {"status": "failed", "message": str(exc), "seconds": time.perf_counter() - t0}
    except Exception as exc:  # a bug or the machine: recorded, and the sweep goes on
        return {"status": "failed", "message": f"{type(exc).__name__}: {exc}", "seconds": time.perf_counter() - t0}
    return _row(summary)


def _row(summary):
    return {"status": "done", "val_accuracy": summary.get("val_accuracy"), "test_accuracy": summary.get("test_accuracy"),
            "val_loss": summary.get("val_loss"), "epochs": summary.get("epochs_run"),
            "seconds": summary.get("train_seconds")}


def finished(run):
    """The result of a run that finished in an earlier sweep, or None."""
    try:
        return _row(json.loads((run.path / "summary.json").read_text()))
    except (OSError, ValueError):
        return None


# -- the cluster --------------------------------------------------------------------------------
def connect(workers=None, scheduler=None, *, processes=True):
    """(client, cluster or None, BLAS threads per task). A LocalCluster of
    `workers` single-task workers (default: one per core), each run capped at
    cores // workers BLAS threads; or the scheduler at `scheduler`, each run
    capped at its worker's cores // the worker's task slots."""
    distributed = require("distributed", "fastbp sweep")
    import logging

    if scheduler:
        try:
            client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as exc:
            raise SweepError(f"cannot reach the Dask scheduler at {scheduler} within {CONNECT_TIMEOUT} "
                             f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
        slots = client.nthreads()
        cores = client.run(os.cpu_count)
        threads = min((max(1, (cores.get(w) or 1) // max(1, n)) for w, n in slots.items()), default=1)
        return client, None, threads
    cores = os.cpu_count() or 1
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    workers = workers or cores
    threads = max(1, cores // workers)
    # Dask starts worker processes with 1 BLAS thread (OMP_NUM_THREADS=1...): allow the share instead
    env = {k: str(threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes,
                                       dashboard_address=None, silence_logs=logging.ERROR,
                                       **({"env": env} if processes else {}))
    return distributed.Client(cluster), cluster, threads


def sweep(config_path, grid, *, seeds=1, overrides=(), out, workers=None, scheduler=None, retries=1,
          processes=True, progress=True, task=run_one, log=print):
    """Run (or finish) a sweep; returns its runs, each with its result."""
    from tqdm.auto import tqdm

    out = Path(out)
    runs = plan(config_path, grid, seeds=seeds, overrides=overrides, out=out)
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise ConfigError("two sweep combinations have the same name: give each grid value once")
    todo = []
    for run in runs:
        done = finished(run)
        if done is not None:
            run.result = done
        else:
            todo.append(run)
    client = cluster = None
    if todo:
        client, cluster, threads = connect(workers, scheduler, processes=processes)
    out.mkdir(parents=True, exist_ok=True)
    log(f"fastbp sweep: {len(runs)} runs ({len(runs) - len(todo)} finished before) in {out}")
    if todo:
        try:
            futures = {client.submit(task, run.config, str(run.path.resolve()), threads, retries=retries, pure=False): run
                       for run in todo}
            bar = tqdm(total=len(runs), initial=len(runs) - len(todo), unit="run", disable=not progress)
            from distributed import as_completed

            for future in as_completed(futures):
                run = futures[future]
                try:
                    run.result = future.result()
                except Exception as exc:  # the task's worker died more often than retries allow
                    run.result = {"status": "failed", "message": f"{type(exc).__name__}: {exc}"}
                bar.update(1)
                _write_results(out, runs)  # an interrupted sweep keeps what finished
            bar.close()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    _write_results(out, runs)
    return runs


# -- results --------------------------------------------------------------------------------------
COLUMNS = ("status", "val_accuracy", "test_accuracy", "val_loss", "epochs", "seconds", "message")


def ranked(runs):
    """Finished runs by validation accuracy (best first), then the failed ones."""
    def score(run):
        r = run.result
        return (r.get("status") != "done", -(r.get("val_accuracy") if r.get("val_accuracy") is not None else -1.0))

    return sorted([r for r in runs if r.result], key=score)


def _write_results(out, runs):
    from ..files import atomic_write

    keys = list(dict.fromkeys(k for run in runs for k in run.values))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["run", *keys, *COLUMNS])
    for run in runs:
        w.writerow([run.name, *(run.values.get(k, "") for k in keys), *(_fmt(run.result.get(c)) for c in COLUMNS)])
    atomic_write(out / "sweep.csv", buf.getvalue().encode())
    atomic_write(out / "sweep.md", markdown(runs, keys).encode())
    best = next((r for r in ranked(runs) if r.result.get("status") == "done"), None)
    if best is not None and (best.path / "config.toml").exists():
        atomic_write(out / "best.toml", f"# the best run of this sweep: {best.name}\n".encode()
                     + (best.path / "config.toml").read_bytes())


def _fmt(v):
    return "" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v)


def markdown(runs, keys=None):
    keys = keys or list(dict.fromkeys(k for run in runs for k in run.values))
    lines = ["| run | " + " | ".join(keys) + " | val acc | test acc | seconds | status |",
             "|---|" + "---|" * len(keys) + "---:|---:|---:|---|"]
    for run in ranked(runs):
        r = run.result
        pct = (lambda v: "" if v is None else f"{100 * v:.2f}%")
        status = r.get("status", "")
        if status == "failed":
            status = f"failed: {r.get('message', '').splitlines()[0] if r.get('message') else ''}".replace("|", "/")
        lines.append(f"| {run.name} | " + " | ".join(run.values.get(k, "") for k in keys)
                     + f" | {pct(r.get('val_accuracy'))} | {pct(r.get('test_accuracy'))} | "
                     + ("" if r.get("seconds") is None else f"{r['seconds']:.3g}") + f" | {status} |")
    return "\n".join(lines) + "\n"
