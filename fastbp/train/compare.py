"""`fastbp compare`: the same config trained for a few epochs on each usable
backend, side by side. The first epoch pays one-time costs (a GPU compiles its
kernels on first use), so the seconds per epoch are the median of the others."""

from __future__ import annotations

import copy
import statistics

from ..backend import cupy_status
from .trainer import Trainer


def compare(cfg, epochs=3, log=print):
    """[{backend, device, seconds_per_epoch, samples_per_s, speedup, test_accuracy}]
    for numpy and, where usable, cupy; a backend that cannot run here gets a
    row with its reason instead of figures."""
    rows = []
    for backend in ("numpy", "cupy"):
        if backend == "cupy":
            usable, why = cupy_status()
            if not usable:
                rows.append({"backend": "cupy", "skipped": why})
                continue
        c = copy.deepcopy(cfg)
        c.train.backend, c.train.epochs = backend, epochs
        c.train.early_stopping = False
        log(f"compare: {backend}, {epochs} epochs ...")
        trainer = Trainer(c, write=False, quiet=True)
        s = trainer.run()
        seconds = statistics.median(s["epoch_seconds"][1:] or s["epoch_seconds"])
        rows.append({
            "backend": backend,
            "device": s["backend"]["device"],
            "seconds_per_epoch": seconds,
            "samples_per_s": trainer.setup.data["train"].n / seconds,
            "test_accuracy": s.get("test_accuracy"),
        })
    base = rows[0]["seconds_per_epoch"]
    for row in rows:
        if "seconds_per_epoch" in row:
            row["speedup"] = base / row["seconds_per_epoch"]
    return rows


def table(rows):
    lines = [f"{'backend':<8} {'s/epoch':>9} {'samples/s':>11} {'speed-up':>9} {'test acc.':>9}  device"]
    for r in rows:
        if "skipped" in r:
            lines.append(f"{r['backend']:<8} {'-':>9} {'-':>11} {'-':>9} {'-':>9}  not run: {r['skipped']}")
            continue
        acc = f"{100 * r['test_accuracy']:.2f}%" if r["test_accuracy"] is not None else "-"
        lines.append(f"{r['backend']:<8} {r['seconds_per_epoch']:>9.3f} {r['samples_per_s']:>11,.0f} "
                     f"{r['speedup']:>8.1f}x {acc:>9}  {r['device']}")
    return "\n".join(lines)
