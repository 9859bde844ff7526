"""PNG figures of a run, one per case (needs matplotlib; skipped without it)."""

from __future__ import annotations


def available():
    try:
        import matplotlib

        matplotlib.use("Agg")
        return True
    except ImportError:
        return False


def plot_case(name, record, path):
    import matplotlib.pyplot as plt

    points = record["points"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    if record["kind"] == "target":
        rows = [r for r in points[0]["results"].values() if "median_s" in r]
        left.bar([r["name"] for r in rows], [r["median_s"] for r in rows],
                 color=["tab:blue" if r["reached"] else "tab:gray" for r in rows])
        target = record.get("target") or 0.98
        left.set_ylabel(f"training seconds to {100 * target:g}% (grey: not reached)")
        for r in rows:
            curve = r["reps"][-1]["curve"]
            right.plot([c[0] for c in curve], [c[1] for c in curve], marker="o", label=r["name"])
        right.axhline(target, color="k", lw=0.5)
        right.set(xlabel="training seconds", ylabel="test accuracy")
        right.legend()
    elif len(points) == 1:
        rows = [r for r in points[0]["results"].values() if "median_s" in r]
        names = [r["name"] for r in rows]
        left.bar(names, [r["seconds_per_epoch"] for r in rows])
        left.set(yscale="log", ylabel="seconds per epoch (median)")
        right.bar(names, [r["gflops"] for r in rows])
        right.set(ylabel="achieved GFLOP/s")
    else:
        axis = [p["spec"]["batch"] if "batch" in p["label"] else p["spec"]["sizes"][1] for p in points]
        runners = {n for p in points for n, r in p["results"].items() if "median_s" in r}
        for n in sorted(runners):
            got = [(x, p["results"][n]) for x, p in zip(axis, points) if "median_s" in p["results"].get(n, {})]
            left.plot([x for x, _ in got], [r["samples_per_s"] for _, r in got], marker="o", label=n)
            if any("ceiling_fraction" in r for _, r in got):
                right.plot([x for x, _ in got], [100 * r.get("ceiling_fraction", 0) for _, r in got], marker="o", label=n)
        xlabel = points[0]["label"].split()[0]
        left.set(xscale="log", yscale="log", xlabel=xlabel, ylabel="training samples/s")
        right.set(xscale="log", xlabel=xlabel, ylabel="% of the GEMM ceiling")
        left.legend(fontsize="small")
    for ax in (left, right):
        if record["kind"] != "target" and len(points) == 1:  # runner names under bars: slanted, ending at their bar
            ax.tick_params(axis="x", labelrotation=35)
            for label in ax.get_xticklabels():
                label.set_horizontalalignment("right")
        else:
            ax.tick_params(axis="x", labelrotation=30)
    fig.suptitle(f"{name}: {record['about']}", fontsize="medium")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
