"""What the training-health checks cost per epoch (fastbp.train.health).

    python -m benchmarks.health [--reps N] [--epochs N] [--case medium]

A is `fastbp train` with train.health = false, B with it on; each repetition
is one in-memory Trainer run of `--epochs` epochs of the case's net on the
full training set (validation 0, as the benchmark cases), A and B
interleaved. An epoch's time is the time between two consecutive epoch lines
(training, the epoch's test evaluation and, in B, the health probe), so the
run's start is not in it; medians over every epoch after the first of every
repetition, and the median of each repetition's B/A ratio (A and B ran back
to back, so a busy machine's drift cancels). The probe alone (Health.epoch)
is timed too, in the same process, against the median epoch.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

from . import cases, contenders


def _config(spec, on, epochs, threads):
    from fastbp.train import config

    return config.validate(config.merge(config.defaults(), {
        "data": {"name": spec.dataset, "validation": 0},
        "model": {"sizes": list(spec.sizes), "hidden": spec.hidden, "output": "softmax", "cost": "log_likelihood",
                  "init": contenders.INIT[spec.hidden]},
        "optimizer": {"name": spec.optimizer, "lr": spec.lr, "momentum": spec.momentum},
        "train": {"batch_size": spec.batch, "epochs": epochs, "seed": spec.seed, "backend": "numpy", "health": on,
                  "threads": threads},
        "output": {"grad_norms": False, "plots": False},
    }))


def epoch_times(cfg, ds):
    """(seconds of each epoch after the first, the trainer) of one in-memory run."""
    from fastbp.train import trainer

    stamps = []
    t = trainer.Trainer(cfg, dataset=ds, write=False, quiet=True, log=lambda msg: stamps.append(time.perf_counter()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t.run()
    stamps = stamps[1:]  # the first line is the run's header
    return [b - a for a, b in zip(stamps, stamps[1:])], t


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.health", description=__doc__.splitlines()[0])
    p.add_argument("--case", default="medium", choices=[n for n, c in cases.CASES.items() if isinstance(c, cases.Case)])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1: a second one thrashes on a busy machine)")
    args = p.parse_args(argv)
    spec = cases.CASES[args.case].spec
    ds = contenders.dataset(spec.dataset)
    print(f"{args.case}: {cases.CASES[args.case].about}; {len(ds.y_train)} training images; "
          f"{args.reps} reps A B A B, {args.epochs} epochs each; BLAS threads {args.threads}")
    times, ratios, probe = {False: [], True: []}, [], []
    for rep in range(args.reps):
        medians = {}
        for on in (False, True):
            seconds, t = epoch_times(_config(spec, on, args.epochs, args.threads), ds)
            times[on] += seconds
            medians[on] = statistics.median(seconds)
            print(f"  rep {rep + 1} health {'on ' if on else 'off'}: " + " ".join(f"{s:.3f}" for s in seconds), flush=True)
        ratios.append(medians[True] / medians[False])  # the pair ran back to back: the machine's drift cancels
        losses = [h["train_loss"] for h in t.state.history]
        with t.setup.bk.limit_threads(args.threads):
            for _ in range(3):  # the probe alone, on the trained run B left
                t0 = time.perf_counter()
                t.health.epoch(losses, t.state.history[-1]["train_accuracy"])
                probe.append(time.perf_counter() - t0)
    a, b, pr = statistics.median(times[False]), statistics.median(times[True]), statistics.median(probe)
    r = statistics.median(ratios)
    print(f"median epoch: health off {a:.3f} s, on {b:.3f} s; median of the paired ratios B/A = {r:.3f} ({100 * (r - 1):+.1f}%)")
    print(f"the probe alone: median {1000 * pr:.1f} ms = {100 * pr / a:.1f}% of the median epoch (health off)")


if __name__ == "__main__":
    main()
