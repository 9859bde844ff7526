"""A training run from a config: `Trainer(cfg).run()` is what `fastbp train`
calls. It builds the parts (build.py), runs the epoch loop (loop.py), and
keeps the run's files (rundir.py): history, checkpoints, resume, early
stopping, a clean stop on Ctrl-C / SIGTERM, and the summary.
"""

from __future__ import annotations

import signal
import time
import warnings
from pathlib import Path

import numpy as np

from ..errors import ConfigError, HealthWarning, Interrupted, OutOfMemory, TrainingDiverged, TrainingUnhealthy
from . import checkpoint, health, loop, report, tensorboard
from .build import build
from .progress import Progress
from .rundir import RunDir


class Trainer:
    """cfg: a validated Config. dataset: a Dataset to train on instead of the
    one cfg.data.name names. resume: a Checkpoint to continue (its run
    directory is reused). write=False keeps everything in memory: no run
    directory, no files.

    After run(): `setup` (the parts: setup.net is the trained network),
    `state` (a loop.TrainState, with the history) and `run_dir` (a RunDir, or
    None) are there to read."""

    def __init__(self, cfg, *, dataset=None, resume=None, quiet=False, log=None, write=True, name=None):
        self.cfg, self.dataset, self.resume, self.write, self.name = cfg, dataset, resume, write, name
        self.quiet = quiet
        self.log = log or (lambda msg: None if quiet else print(msg, flush=True))
        self.setup, self.state, self.run_dir = None, loop.TrainState(), None
        self._stop = None  # the signal that asked to stop
        self._best_params = None
        self.health, self.health_said = None, []  # a health.Health while the run checks it (train.health)

    def run(self):
        """Train; returns the run's summary (a dict, also written as summary.json)."""
        self.setup = build(self.cfg, self.dataset)
        bk = self.setup.bk
        if not self.setup.reduce.writer:  # a data-parallel run's other ranks: rank 0 prints and writes
            self.quiet, self.write, self.log = True, False, lambda msg: None
        try:
            # numpy's overflow warnings would only add lines to the TrainingDiverged message
            with bk.limit_threads(self.cfg.train.threads), np.errstate(over="ignore", invalid="ignore"):
                return self._run()
        except TrainingUnhealthy as exc:
            raise TrainingUnhealthy(
                f'{exc}; stopped (train.on_unhealthy = "stop"); {self.run_dir.kept() if self.run_dir else "nothing was saved"}'
            ) from None
        except TrainingDiverged as exc:
            raise TrainingDiverged(
                f"{exc}; try a lower learning rate (optimizer.lr = {self.cfg.optimizer.lr}) or optimizer.clip_norm; "
                f"{self.run_dir.kept() if self.run_dir else 'nothing was saved'}"
            ) from None
        except Exception as exc:
            if not bk.is_out_of_memory(exc):
                raise
            raise OutOfMemory(
                f"out of {bk.memory} at train.batch_size = {self.cfg.train.batch_size} "
                f"with network {self.cfg.model.sizes} ({str(exc).rstrip('.')}); try a smaller batch size"
            ) from None

    def _run(self):
        c, s = self.cfg, self.setup
        if self.write:
            if self.resume is not None:
                self.run_dir = RunDir(Path(self.resume.path).parent)
            else:
                stem = self.name or Path(c.data.name).stem
                self.run_dir = RunDir.new(c.output.dir, c.output.name or RunDir.default_name(stem))
                self.run_dir.write_config(c)
        if self.resume is not None:
            checkpoint.check_compatible(self.resume, c)
            self.state = checkpoint.restore(self.resume, s.net, s.opt)
            if self.state.best is not None:
                self._best_params = s.net.get_params()
            self.log(f"resuming {self.resume.path} at epoch {self.state.epoch + 1}, batch {self.state.batch + 1}")
        sizes = {k: s.data[k].n if k in s.data else 0 for k in ("train", "val", "test")}
        self.log(
            f"fastbp: {s.dataset.name} {sizes['train']} train / {sizes['val']} val / {sizes['test']} test, "
            f"net {c.model.sizes} {c.model.hidden}+{c.model.output}/{c.model.cost}, "
            f"{c.optimizer.name} lr {c.optimizer.lr}, batch {c.train.batch_size}, "
            f"backend {s.bk.name} ({s.bk.device_name()}), run dir {self.run_dir}"
            + "".join(f", {d['ranks']} ranks ({d['allreduce']} all-reduce)" for d in [s.reduce.describe()] if d)
        )
        stopped_early = self._loop()
        self._save("last.npz")
        if c.train.early_stopping and self._best_params is not None:
            s.net.set_params(self._best_params)  # as scikit-learn does
        return self._finish(stopped_early)

    def _loop(self):
        """The epochs; True when early stopping ended them."""
        c, s, state = self.cfg, self.setup, self.state
        old = self._install_signals()
        progress = Progress(c.train.epochs, len(s.batches), disable=self.quiet)
        graph = None
        if c.train.cuda_graph:
            try:
                graph = loop.GraphStep(s.net, s.batches)
            except ValueError as exc:
                raise ConfigError(f"config key 'train.cuda_graph' = true: {exc}") from None
        if c.train.health:
            self._start_health()
        board = None
        if self.run_dir is not None and c.output.tensorboard:
            board = tensorboard.open_log(self.run_dir.path, c.output.histogram_every, first_epoch=state.epoch + 1)
        try:
            while state.epoch < c.train.epochs:
                t0 = time.perf_counter()
                done = loop.train_epoch(s.net, s.opt, s.lr_at, s.batches, state, clip_norm=c.optimizer.clip_norm,
                                        progress=progress, should_stop=lambda: self._stop is not None, graph=graph,
                                        reduce=s.reduce)
                if not done:
                    self._save("last.npz")
                    why = signal.Signals(self._stop).name if self._stop is not None else "stop"  # another rank's signal
                    raise Interrupted(
                        f"{why}: stopped at epoch {state.epoch + 1}, batch {state.batch}; "
                        f"checkpoint saved; resume with: fastbp train --resume {self.run_dir}"
                    )
                row = self._epoch_row(time.perf_counter() - t0)
                if self.health is not None:
                    self._unhealthy(self.health_said)
                if board is not None:
                    host = s.bk.to_numpy
                    due = board.histograms_due(row["epoch"])  # copy weights off a GPU only then
                    board.epoch(row, [host(W) for W in s.net.weights] if due else None,
                                [host(b) for b in s.net.biases] if due else None)
                state.next_epoch()
                progress.epoch_done(row)
                self.log(report.epoch_line(row, c.train.epochs))
                if self._track_best(row):
                    self._save("best.npz")
                every = c.output.checkpoint_every
                if every and state.epoch % every == 0:
                    self._save("last.npz")
                if c.train.early_stopping and state.best["since"] >= c.train.patience:
                    self.log(f"early stopping: no {c.train.monitor} improvement for {c.train.patience} epochs")
                    return True
        finally:
            progress.close()
            if board is not None:
                board.close()
            self._restore_signals(old)
        return False

    def _epoch_row(self, seconds):
        """The history row of the epoch just trained: its training figures,
        then validation and test figures and per-layer gradient norms."""
        s, state = self.setup, self.state
        row = {
            "epoch": state.epoch + 1,
            "seconds": seconds,
            "samples_per_s": state.seen / seconds if seconds > 0 else None,
            "lr": s.lr_at(max(0, state.step - 1)),
            "train_loss": state.loss_sum / max(1, state.seen),
            "train_accuracy": state.correct / max(1, state.seen),
        }
        for split in ("val", "test"):
            if split in s.data:
                row[f"{split}_loss"], row[f"{split}_accuracy"] = loop.evaluate(s.net, s.data[split], reduce=s.reduce)
        if self.cfg.output.grad_norms:
            row["grad_norm_w"], row["grad_norm_b"] = loop.grad_norms(s.net, s.data["train"])
        if self.health is not None:
            losses = [h["train_loss"] for h in state.history] + [row["train_loss"]]
            self.health_said = self.health.epoch(losses, row["train_accuracy"], row.get("grad_norm_w"), s.dataset.n_classes)
            row["health"] = self.health.figures
        state.history.append(row)
        if self.run_dir is not None:
            self.run_dir.write_history(state.history, self.cfg.output.history)
        return row

    def _start_health(self):
        """The run's health checks, and the check of its training inputs (once)."""
        c, s = self.cfg, self.setup
        train = s.data["train"]
        self.health = health.Health(s.net, train.inputs(0, health.PROBE_ROWS, dtype=s.net.dtype), train.Y,
                                    fixes=health.run_fixes(c), lr=c.optimizer.lr)
        max_abs, constant = health.input_figures(s.bk, train.X, train.scale)
        self._unhealthy(self.health.inputs(max_abs, constant=constant, rows=train.n, standardized=c.data.standardize))

    def _unhealthy(self, messages):
        """Say each new health message as a HealthWarning (the CLI prints 'fastbp: warning: ...'),
        or stop the run on the first (train.on_unhealthy)."""
        what = self.cfg.train.on_unhealthy
        for msg in messages:
            if what == "stop":
                raise TrainingUnhealthy(msg)
            if what == "warn":
                warnings.warn(msg, HealthWarning, stacklevel=2)

    def _track_best(self, row):
        """Is this epoch the best so far by train.monitor? (validation
        figures, or the training ones when there is no validation split)."""
        key, state = self.cfg.train.monitor, self.state
        if key not in row:
            key = key.replace("val_", "train_")
        score = row[key] if key.endswith("accuracy") else -row[key]
        if state.best is None or score > state.best["score"] + self.cfg.train.min_delta:
            state.best = {"score": score, "epoch": row["epoch"], "since": 0}
            self._best_params = self.setup.net.get_params()
            return True
        state.best["since"] += 1
        return False

    def _save(self, name):
        if self.run_dir is None:
            return
        s, state = self.setup, self.state
        if not np.isfinite(s.net.get_params()).all():  # never replace a good checkpoint with NaNs
            e, b = state.epoch, state.batch
            raise TrainingDiverged(
                f"training diverged: non-finite weights {f'at epoch {e + 1}, batch {b}' if b else f'after epoch {e}'} "
                f"(not saved to {name})"
            )
        self.run_dir.save(name, net=s.net, opt=s.opt, cfg=self.cfg, state=state, preprocess=s.preprocess,
                          class_names=s.dataset.class_names)

    def _install_signals(self):
        def handler(signum, frame):
            if self._stop is not None:  # second signal: stop now
                raise KeyboardInterrupt
            self._stop = signum

        old = {}
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                old[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread: no handlers
            pass
        return old

    @staticmethod
    def _restore_signals(old):
        for sig, h in old.items():
            signal.signal(sig, h)

    def _finish(self, stopped_early):
        s, state = self.setup, self.state
        skip = ("epoch", "seconds", "lr", "grad_norm_w", "grad_norm_b", "health")
        final = {k: v for k, v in (state.history[-1] if state.history else {}).items() if k not in skip}
        if "test" in s.data:
            final["test_loss"], final["test_accuracy"] = loop.evaluate(s.net, s.data["test"], reduce=s.reduce)
            y_true, y_pred = s.bk.to_numpy(s.data["test"].labels), loop.predict(s.net, s.data["test"])
            final.update(report.class_metrics(y_true, y_pred, s.dataset.class_names))
        summary = {
            "config": self.cfg.to_dict(),
            "backend": s.bk.describe(),
            **s.reduce.describe(),  # a data-parallel run: {"ranks": R, "allreduce": "mpi", "nccl" or "mpi-host"}
            "dataset": {"name": s.dataset.name, "source": s.dataset.source},
            "run_dir": str(self.run_dir),
            "epochs_run": len(state.history),
            "stopped_early": stopped_early,
            "best_epoch": None if state.best is None else state.best["epoch"],
            "epoch_seconds": [h["seconds"] for h in state.history],
            "train_seconds": sum(h["seconds"] for h in state.history),
            **final,
        }
        if self.health is not None:  # the last epoch's figures and everything said
            summary["health"] = {**self.health.inputs_figures, **self.health.figures, "messages": self.health.messages}
        if self.run_dir is not None:
            self.run_dir.write_summary(summary)
            if self.cfg.output.plots and state.history:
                self.run_dir.plot(state.history)
        return summary


def train(cfg, **kwargs):
    """Train from a validated Config; returns the run's summary."""
    return Trainer(cfg, **kwargs).run()
