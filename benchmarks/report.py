"""Figures of a case's raw timings, and its Markdown."""

from __future__ import annotations

from . import contenders as C
from .flops import flops_per_sample
from .harness import fmt, median, table


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

    def time_over(row, other):
        key = "seconds_per_epoch" if "seconds_per_epoch" in row else "median_s"
        if other.get(key) and row.get("reached", True) and other.get("reached", True):
            return row[key] / other[key]
        return None

    for name, row in rows.items():
        if "median_s" not in row:
            continue
        row["ratio"] = time_over(row, rows.get(C.fastbp_for(name)) or {})
        versus = C.RUNNERS[name].versus
        if versus and versus in rows:
            row.update(versus=versus, versus_ratio=time_over(row, rows[versus]))
        top = rows.get(C.ceiling_for(name)) or {}
        if top.get("gflops") and "gflops" in row:
            row["ceiling_fraction"] = row["gflops"] / top["gflops"]
    return rows


def _mb(row):
    gpu = f" (+{row['gpu_peak_mb']:.0f} GPU)" if row.get("gpu_peak_mb") is not None else ""
    return f"{row['peak_mb']:.0f}{gpu}" if row.get("peak_mb") is not None else "–"


def _versus(row):
    return f"{row['versus_ratio']:.2f} × {row['versus']}" if row.get("versus_ratio") is not None else "–"


TIMING_COLUMNS = [
    ("runner", "name", lambda r: r["name"] + (" (ceiling)" if r["name"] in C.CEILINGS else "")),
    ("s/epoch (median)", "seconds_per_epoch", ".3g"),
    ("min–max s/rep", "", lambda r: f"{r['min_s']:.3g}–{r['max_s']:.3g}"),
    ("samples/s", "samples_per_s", ",.0f"),
    ("GFLOP/s", "gflops", ".1f"),
    ("% of GEMM ceiling", "", lambda r: fmt(r.get("ceiling_fraction") and 100 * r["ceiling_fraction"], ".0f")),
    ("peak MB", "", _mb),
    ("× fastbp (time)", "ratio", ".2f"),
    ("× its peer (time)", "", _versus),
]


def target_columns(target):
    pct = f"{100 * target:g}%"
    return [
        ("runner", "name", "s"),
        ("recipe", "", lambda r: r["recipe"]),
        (f"s to {pct} (median)", "", lambda r: f"{r['median_s']:.3g}" if r["reached"] else f"not reached in {r['median_s']:.3g}"),
        ("min–max s", "", lambda r: f"{r['min_s']:.3g}–{r['max_s']:.3g}"),
        ("epochs", "epochs", "g"),
        ("test acc. (last)", "accuracy", ".4f"),
        ("peak MB", "", _mb),
        ("× fastbp (time)", "ratio", ".2f"),
    ]


def recipe_text(spec):
    extra = [f"{spec.schedule}"] if spec.schedule != "constant" else []
    extra += [f"wd {spec.weight_decay:g}"] * bool(spec.weight_decay) + [f"dropout {spec.dropout:g}"] * bool(spec.dropout)
    extra += [f"shift {spec.shift}"] * bool(spec.shift)
    return f"{'-'.join(map(str, spec.sizes))} b{spec.batch} {spec.optimizer} lr {spec.lr:g}{''.join(', ' + e for e in extra)}, ≤{spec.epochs} ep"


def case_markdown(name, record):
    """The case's section: a table per point, its notes, the runners that failed."""
    md = [f"## {name}: {record['about']}\n"]
    for point in record["points"]:
        rows = point["results"].values()
        ok = [r for r in rows if "median_s" in r]
        columns = target_columns(record["target"]) if record["kind"] == "target" else TIMING_COLUMNS
        md.append((f"### {point['label']}\n\n" if point["label"] else "") + table(ok, columns) + "\n")
        md += [f"- {n}" for n in point["notes"]] + [f"- {r['name']} failed: {r['error']}" for r in rows if r.get("error")]
        md.append("")
    return "\n".join(md)
