"""python -m benchmarks [CASE ...] [--reps N] [--quick] [--out DIR] [--contenders a,b,...]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fastbp.errors import FastBPError

from . import cases, contenders, harness, plots, targets, timing
from .report import case_markdown

RESULTS = Path(__file__).parent / "results"


def parse(argv):
    p = argparse.ArgumentParser(prog="python -m benchmarks", description="fastbp against its peers, side by side.")
    p.add_argument("cases", nargs="*", metavar="CASE", help=f"{', '.join(cases.CASES)} (default: all but smoke)")
    p.add_argument("--reps", type=int, default=5, help="timed repetitions per runner, after 1 warm-up (default 5)")
    p.add_argument("--quick", action="store_true", help="tiny subsets and fewer sweep points: proves the cases run")
    p.add_argument("--out", default=str(RESULTS), help=f"folder for the JSON, Markdown and PNG files (default {RESULTS})")
    p.add_argument("--contenders", default=",".join(contenders.CONTENDERS),
                   help="comma-separated subset of: " + ", ".join(contenders.CONTENDERS))
    args = p.parse_args(argv)
    args.cases = args.cases or cases.MAIN
    args.contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    for bad in [c for c in args.cases if c not in cases.CASES] + [c for c in args.contenders if c not in contenders.CONTENDERS]:
        p.error(f"unknown case or contender {bad!r}")
    if args.reps < 1:
        p.error("--reps must be >= 1")
    return args


def main(argv=None):
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.reps < 5:
        print(f"note: --reps {args.reps}: fewer than the 5 repetitions a comparison needs; for smoke tests only")
    skipped = {n: why for n in args.contenders if (why := contenders.unavailable(n))}
    names = [n for n in args.contenders if n not in skipped]
    for n, why in skipped.items():
        print(f"skipping {n}: {why}")
    threads = harness.blas_threads()
    report = {"suite": "fastbp benchmarks", "created": harness.run_stamp(), "command": harness.argv(),
              "options": {"cases": args.cases, "reps": args.reps, "warmup": 1, "quick": args.quick, "threads": threads,
                          "contenders": names},
              "skipped": skipped, "machine": harness.machine(), "versions": harness.versions(), "cases": {}}
    markdown = [harness.header(report)]
    if args.quick:
        markdown.append("**--quick: tiny subsets; the figures prove that the cases run, nothing more.**\n")
    print(markdown[0])
    for name in args.cases:
        try:
            ds = contenders.dataset(cases.CASES[name].spec.dataset)
        except FastBPError as exc:
            sys.exit(f"{name}: {exc}")
        record = timing.run_case(name, cases.CASES[name], len(ds.y_train), names, args.reps, args.quick, threads)
        report["cases"][name] = record
        md = case_markdown(name, record)
        markdown.append(md)
        print("\n" + md, flush=True)
    report["targets"] = targets.check_targets(report)
    markdown.append(targets.targets_markdown(report["targets"]))
    print(markdown[-1])
    stem = harness.write(report, "\n".join(markdown), args.out)
    print(f"\nwrote {stem}.json and {stem}.md")
    if plots.available():
        for name, record in report["cases"].items():
            plots.plot_case(name, record, f"{stem}-{name}.png")
        print(f"plots: {stem}-<case>.png")
    else:
        print("matplotlib is not installed: no plots")
    return report


if __name__ == "__main__":
    main()
