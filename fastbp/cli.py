"""The `fastbp` command line.

Every expected failure is a FastBPError: one line on stderr and its exit code
(2 for usage, config, data and checkpoint errors; 1 for failures while
running: divergence, a failed write or download, GPU out of memory; 130 after
Ctrl-C or SIGTERM; 141 when stdout is closed early). --debug shows tracebacks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

from . import __version__
from .backend import BACKENDS
from .errors import FastBPError, UsageError
from .predict import PREPROCESS_CHOICES

def _config_path(arg):
    from .train.config import find

    return find(arg)


# Every flag that sets a config key, and the key: the one way a flag applies, after --set, for every
# command that has it (train, compare, eval).
FLAG_KEYS = {"backend": "train.backend", "data_dir": "data.data_dir", "out": "output.dir", "tensorboard": "output.tensorboard"}


def overrides(args):
    """The config overrides a command's flags ask for, as --set strings: its own --set ones, then one for
    each flag of FLAG_KEYS given, so that a flag wins over a --set of the same key."""
    out = list(getattr(args, "set", None) or [])
    for flag, key in FLAG_KEYS.items():
        value = getattr(args, flag, None)
        if value not in (None, False):
            out.append(f"{key}={json.dumps(value if isinstance(value, bool) else str(value))}")
    return out


def _print_configs():
    from .train.config import describe_configs, named_dir

    folders = [named_dir()]
    if Path("configs").is_dir() and Path("configs").resolve() != folders[0].resolve():
        folders.insert(0, Path("configs"))  # found first by name, so listed first
    for folder in folders:
        print(f"{folder}:")
        for name, about in describe_configs(folder).items():
            print(f"  {name:<20} {about}")
    return 0


def cmd_train(args):
    from .train import checkpoint, config, trainer

    if args.list_configs:
        return _print_configs()
    resume = None
    if args.resume:
        if args.config:
            raise UsageError("--resume takes its config from the checkpoint; give no CONFIG with it")
        resume = checkpoint.load(args.resume)
        cfg = config.from_dict(resume.config.to_dict(), overrides(args))
    else:
        cfg = config.load(_config_path(args.config), overrides(args))
    name = Path(args.config).stem if args.config else None  # None: the data set's name
    summary = trainer.Trainer(cfg, resume=resume, quiet=args.quiet, name=name).run()
    from .dist.mpi import launched

    if (launched() or (0,))[0] != 0:  # a data-parallel run (mpiexec): rank 0 alone reports
        return 0
    acc = summary.get("test_accuracy")
    if not args.json:
        print(f"test accuracy: {100 * acc:.2f}%" if acc is not None else "done (no test set)")
        print(f"run directory: {summary['run_dir']}")
    else:
        print(json.dumps(summary))
    return 0


def cmd_eval(args):
    from .train import checkpoint, config, loop, report
    from .train.build import build

    ckpt = checkpoint.load(args.target, prefer=checkpoint.CHOICES[args.checkpoint])
    setup = build(config.from_dict(ckpt.config.to_dict(), overrides(args)), train=False)
    checkpoint.check_classes(ckpt, setup.dataset)
    checkpoint.restore(ckpt, setup.net)
    result = {"checkpoint": str(ckpt.path), "dataset": setup.dataset.name}
    tables = {}
    for split in ("val", "test"):
        if split in setup.data:
            data = setup.data[split]
            result[f"{split}_loss"], result[f"{split}_accuracy"] = loop.evaluate(setup.net, data)
            y_true = setup.bk.to_numpy(data.labels)
            tables[f"{split}_per_class"] = report.class_metrics(y_true, loop.predict(setup.net, data), ckpt.class_names)
    if args.json:
        print(json.dumps({**result, **tables}))
    else:
        for k, v in result.items():
            print(f"{k}: {100 * v:.2f}%" if k.endswith("accuracy") else f"{k}: {v}")
        if tables:  # the last split's (test, else validation): the lines per class of both would be many
            key, metrics = list(tables.items())[-1]
            print(f"{key.replace('_', ' ')}:\n{report.class_table(metrics)}")
    return 0


def cmd_compare(args):
    from .train import compare, config

    cfg = config.load(_config_path(args.config), overrides(args))
    rows = compare.compare(cfg, args.epochs, log=(lambda m: None) if args.json else print)
    print(json.dumps(rows) if args.json else compare.table(rows))
    return 0


def cmd_data(args):
    from . import data

    if args.action == "fetch":
        path = data.fetch(args.name, dest_root=args.dest, mirrors=args.mirror or None, log=print)
        print(f"{args.name}: ready in {path}")
        return 0
    from .data.locate import dataset_dir_in

    for label, root in data.search_roots(args.data_dir):
        print(f"{label}: {root}")
        for name in ("mnist", "fashion-mnist"):
            found = dataset_dir_in(root, name, direct=label == "data directory")
            print(f"  {name}: {found or '-'}")
    print("digits: built in (scikit-learn)")
    return 0


def cmd_info(args):
    import platform

    import numpy
    import sklearn
    import tqdm

    from . import machine
    from .backend import cupy_status, get_backend

    lines = {
        "fastbp": __version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scikit-learn": sklearn.__version__,
        "tqdm": tqdm.__version__,
    }
    usable, reason = cupy_status()
    lines["cupy"] = "usable" if usable else reason
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = get_backend("auto").describe()
    if info["backend"] == "numpy":
        info.update(machine.blas(native=True))  # the kernel this CPU gets when a variable forces another
    lines.update({f"auto {k}" if k in ("backend", "device") else k: v for k, v in info.items()})
    if usable:
        lines.update({f"gpu {k}": v for k, v in get_backend("cupy").describe().items()})
    from .train.config import describe_configs, named_dir

    lines["configs"] = f"{', '.join(describe_configs(named_dir()))} (in {named_dir()})"
    for k, v in lines.items():
        print(f"{k}: {v}")
    return 0


def cmd_gradcheck(args):
    from .nn import gradcheck

    results = gradcheck.check_all(seed=args.seed, backend=args.backend)
    worst = max(r[-1] for r in results)
    for hidden, output, cost, sizes, batch, err in results:
        if args.verbose:
            print(f"{hidden:>10} -> {output:>8} + {cost:<14} sizes {sizes} batch {batch}: {err:.2e}")
    print(f"gradcheck: {len(results)} configurations, worst relative error {worst:.2e} (limit {args.limit:.0e})")
    return 0 if worst <= args.limit else 1


def cmd_explain(args):
    from .explain import explain

    print(explain(args.example))
    return 0


def _whole(at_least):
    """An argparse type: a whole number >= at_least, else one line naming the flag."""

    def check(text):
        try:
            n = int(text)
        except ValueError:
            n = at_least - 1
        if n < at_least:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {at_least}, got {text!r}")
        return n

    return check


_positive_int = _whole(1)


def cmd_export(args):
    from .export import export_checkpoint

    model, used = export_checkpoint(args.target, args.output, checkpoint=args.checkpoint, opset=args.opset)
    graph = model.graph
    shapes = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in (*graph.input, *graph.output)}
    print(f"{args.output}: ONNX opset {model.opset_import[0].version}, from {used}; "
          + ", ".join(f"{name} {shape}" for name, shape in shapes.items()))
    return 0


def cmd_predict(args):
    from .predict import format_json, format_result, load_run, predict_files

    results = predict_files(load_run(args.target, args.checkpoint), args.files, top=args.top, images=args.preprocess)
    for r in results:
        print(format_json(r) if args.json else format_result(r))
    return 0


def _checkpoint_option(parser):
    """--checkpoint, the same for every command that reads a run directory."""
    from .train.checkpoint import CHOICES, DEFAULT

    parser.add_argument("--checkpoint", choices=tuple(CHOICES), default=DEFAULT,
                        help="of a run directory: best.npz, the best epoch's weights (the default; last.npz when the "
                             "run kept none), or last.npz, the last epoch's")


def cmd_sweep(args):
    from .dist import sweep

    # --out is the sweep's folder here, not output.dir: each run's folder is the sweep's to name
    grid = sweep.parse_grid(args.grid)
    stem = Path(args.config).stem if args.config else "digits"
    out = args.out or Path("sweeps") / stem
    runs = sweep.sweep(_config_path(args.config), grid, seeds=args.seeds,
                       overrides=overrides(argparse.Namespace(set=args.set, data_dir=args.data_dir)), out=out,
                       workers=args.workers, scheduler=args.scheduler, retries=args.retries,
                       progress=not args.quiet, log=(lambda m: None) if args.quiet else print)
    failed = [r for r in runs if r.result.get("status") != "done"]
    if not args.quiet:
        print(sweep.markdown(runs), end="")
    print(f"sweep: {len(runs) - len(failed)} of {len(runs)} runs done{f', {len(failed)} failed' if failed else ''}; "
          f"results in {out / 'sweep.md'}" + (f", best config {out / 'best.toml'}" if (out / "best.toml").exists() else ""))
    return 1 if failed and len(failed) == len(runs) else 0


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2), like every other error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser():
    p = _Parser(prog="fastbp", description="Hand-written mini-batch backprop on numpy or cupy.")
    p.add_argument("--version", action="version", version=f"fastbp {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a network (default: digits, in seconds)")
    t.add_argument("config", nargs="?", help="TOML file, or a config's name (mnist, 3b1b...: see --list-configs)")
    t.add_argument("--backend", choices=BACKENDS)
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. optimizer.lr=0.1")
    t.add_argument("--data-dir", type=Path, help="where data sets are (else $FASTBP_DATA, the cache...)")
    t.add_argument("--out", type=Path, help="parent directory for run directories (output.dir)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run saved in RUN_DIR (or a checkpoint)")
    t.add_argument("--json", action="store_true", help="print the run summary as JSON on the last line")
    t.add_argument("--quiet", action="store_true", help="no progress bars or epoch lines")
    t.add_argument("--list-configs", action="store_true", help="list the named configs and exit")
    t.add_argument("--tensorboard", action="store_true", help="also write TensorBoard event files (output.tensorboard)")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="evaluate a checkpoint on its data set")
    e.add_argument("target", metavar="RUN_DIR_OR_CHECKPOINT")
    e.add_argument("--data-dir", type=Path)
    e.add_argument("--backend", choices=BACKENDS)
    _checkpoint_option(e)
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_eval)

    c = sub.add_parser("compare", help="the same config on each usable backend (CPU, GPU), side by side")
    c.add_argument("config", nargs="?", help="TOML file, or a named config (default: digits)")
    c.add_argument("--epochs", type=_positive_int, default=3, metavar="N", help="epochs per backend (default 3)")
    c.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key")
    c.add_argument("--data-dir", type=Path)
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_compare)

    d = sub.add_parser("data", help="fetch data sets or list where they are found")
    dsub = d.add_subparsers(dest="action", required=True)
    f = dsub.add_parser("fetch", help="download and verify mnist or fashion-mnist")
    f.add_argument("name", choices=("mnist", "fashion-mnist"))
    f.add_argument("--dest", type=Path, help="root directory (default: the user cache)")
    f.add_argument("--mirror", action="append", help="mirror base URL (repeatable; tried in order)")
    l = dsub.add_parser("list", help="show where data sets are looked for and found")
    l.add_argument("--data-dir", type=Path)
    d.set_defaults(func=cmd_data)

    i = sub.add_parser("info", help="versions, backend, BLAS and GPU")
    i.set_defaults(func=cmd_info)

    g = sub.add_parser("gradcheck", help="backprop vs central finite differences, float64")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--backend", choices=("numpy", "cupy"), default="numpy")
    g.add_argument("--limit", type=float, default=1e-6)
    g.add_argument("-v", "--verbose", action="store_true")
    g.set_defaults(func=cmd_gradcheck)

    ex = sub.add_parser("export", help="write a trained network as an ONNX model (pip install 'fastbp[onnx]')")
    ex.add_argument("target", metavar="RUN_DIR_OR_CHECKPOINT")
    ex.add_argument("-o", "--output", type=Path, required=True, help="the .onnx file to write")
    _checkpoint_option(ex)
    ex.add_argument("--opset", type=int, help="ONNX opset to write (default 17)")
    ex.set_defaults(func=cmd_export)

    pr = sub.add_parser("predict", help="classify images (PNG, JPEG: pip install 'fastbp[images]') or .npy/.csv rows")
    pr.add_argument("target", metavar="RUN_DIR_OR_CHECKPOINT")
    pr.add_argument("files", metavar="FILE", nargs="+", type=Path,
                    help="an image (read as --preprocess says), or .npy/.csv rows of raw features")
    pr.add_argument("--preprocess", choices=PREPROCESS_CHOICES, default="auto",
                    help="how an image becomes the network's input: digits (MNIST's: invert dark ink, crop to it, "
                         "centre by mass), none (its grey levels as they are, resized to 28x28), or auto (the "
                         "default: as the run's data were, digits for mnist and digits, none for anything else)")
    _checkpoint_option(pr)
    pr.add_argument("--top", type=int, default=3, help="how many classes to show (default 3)")
    pr.add_argument("--json", action="store_true", help="one JSON object per input row")
    pr.set_defaults(func=cmd_predict)

    sw = sub.add_parser("sweep", help="a grid of runs on a Dask cluster (pip install 'fastbp[dask]')")
    sw.add_argument("config", nargs="?", help="TOML file, or a named config (default: digits)")
    sw.add_argument("--grid", action="append", required=True, metavar="KEY=V1,V2,...",
                    help="a config key and its values (repeatable: every combination runs)")
    sw.add_argument("--seeds", type=_positive_int, default=1, metavar="N", help="runs per combination, train.seed + 0..N-1")
    sw.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key in every run")
    where = sw.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_positive_int, metavar="N", help="a local cluster of N workers (default: one per core)")
    where.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask scheduler, e.g. tcp://host:8786")
    sw.add_argument("--retries", type=_whole(0), default=1, help="times a run whose worker died is tried again (default 1)")
    sw.add_argument("--out", type=Path, help="the sweep directory (default: sweeps/CONFIG); run again to finish a sweep")
    sw.add_argument("--data-dir", type=Path)
    sw.add_argument("--quiet", action="store_true", help="no progress bar or table")
    sw.set_defaults(func=cmd_sweep)

    x = sub.add_parser("explain", help="print a worked backprop example step by step")
    x.add_argument("example", choices=("mazur", "relu"))
    x.set_defaults(func=cmd_explain)
    return p


def _fail(exc, line, code):
    """Print an error's one line on stderr; returns its exit code. Under
    mpiexec, one line from the right rank, and a failing rank aborts the job
    (fastbp.dist.mpi.fail)."""
    from .dist.mpi import fail

    return fail(exc, line, code)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)  # _Parser exits 2 with one line on bad usage
    warnings.formatwarning = lambda msg, cat, *a, **k: f"fastbp: warning: {msg}\n"
    try:
        return args.func(args)
    except FastBPError as exc:
        if args.debug:
            raise
        return _fail(exc, f"fastbp: error: {exc}", exc.exit_code)
    except BrokenPipeError:
        # stdout was closed early (`fastbp train --json | head -1`): stop quietly with the
        # status of a program killed by SIGPIPE, 128 + 13, as `yes | head -1` does.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit's flush
        except (OSError, ValueError):
            pass
        return 141
    except OSError as exc:  # the machine, not a bug: disk full, read-only, permissions (e.g. writing plots)
        if args.debug:
            raise
        return _fail(exc, f"fastbp: error: {exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}", 1)
    except KeyboardInterrupt:
        if args.debug:
            raise
        return _fail(None, "fastbp: interrupted", 130)
    except Exception as exc:
        if args.debug:
            raise
        from .backend import is_out_of_memory

        if is_out_of_memory(exc):
            return _fail(exc, f"fastbp: error: out of memory: {exc} (try a smaller train.batch_size)", 1)
        return _fail(exc, f"fastbp: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", 1)


if __name__ == "__main__":
    sys.exit(main())
