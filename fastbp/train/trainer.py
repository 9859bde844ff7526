"""The training loop: data on the device, shuffled batches, metrics, progress,
checkpoints, resume, early stopping, and clean stops on Ctrl-C / SIGTERM.

`Trainer(cfg).run()` is what `fastbp train` calls; scripts can call it too.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from ..backend import get_backend
from ..data import check_input_size, load_dataset, validation_split
from ..errors import ConfigError, DataError, FastBPError, TrainingDiverged
from ..nn import optim, schedules
from ..nn.network import Network
from . import checkpoint, config as config_mod, report
from .augment import RandomShift
from .progress import Progress


class Interrupted(FastBPError):
    """Training was stopped by a signal after saving a checkpoint."""

    exit_code = 130


class DeviceSplit:
    """One split of a data set on the backend's device: raw X (uint8 where the
    source is), a scale to [0, 1], labels, and one-hot targets Y."""

    def __init__(self, bk, X, labels, n_classes, scale, dtype):
        xp = bk.xp
        self.n = int(X.shape[0])
        self.X = xp.asarray(X)
        self.scale = np.dtype(dtype).type(scale)  # typed scalar: uint8 × float32 stays float32
        self.labels = xp.asarray(labels.astype(np.int64))
        self.Y = xp.zeros((self.n, n_classes), dtype)
        self.Y[xp.arange(self.n), self.labels] = 1


class _NoProgress:
    def start_epoch(self, epoch, batch=0):
        pass

    def due(self):
        return False


_NO_PROGRESS = _NoProgress()


class Trainer:
    """cfg: a validated config (config.load). dataset: a Dataset to train on
    instead of cfg's data.name (the estimator passes its arrays this way).
    write=False keeps everything in memory: no run directory, no files."""

    def __init__(self, cfg, *, dataset=None, run_dir=None, resume=None, quiet=False, log=None, write=True, name=None):
        self.cfg = cfg
        self.name = name
        self.quiet = quiet
        self.log = log or (lambda msg: None if quiet else print(msg, flush=True))
        self.resume_ckpt = resume
        self.dataset = dataset
        self.write = write
        self.run_dir = None
        self._run_dir = run_dir
        self._stop = None
        self.net = None

    # -- set-up ------------------------------------------------------------
    def _load_data(self):
        c = self.cfg
        ds = self.dataset or load_dataset(c["data"]["name"], data_dir=c["data"]["data_dir"] or None)
        sizes = c["model"]["sizes"]
        check_input_size(ds, sizes[0])
        if sizes[-1] != ds.n_classes:
            bad = [(split, y) for split, y in (("training", ds.y_train), ("test", ds.y_test)) if y.max() >= sizes[-1]]
            where = f": {bad[0][0]} label {bad[0][1].max()} is outside 0..{sizes[-1] - 1}" if bad else ""
            raise DataError(
                f"data set {ds.name} has {ds.n_classes} classes but the network's output layer has {sizes[-1]}{where}"
            )
        X, y = ds.X_train, ds.y_train
        if c["data"]["train_limit"]:
            X, y = X[: c["data"]["train_limit"]], y[: c["data"]["train_limit"]]
        n_val = c["data"]["validation"]
        if n_val == "auto":
            n_val = 10000 if len(y) >= 20000 else 0.1
        if isinstance(n_val, int) and n_val >= len(y):
            raise ConfigError(f"config key 'data.validation' = {n_val} leaves no training data (the training set has {len(y)} rows)")
        X_tr, y_tr, X_val, y_val = validation_split(X, y, n_val)
        scale = ds.scale
        splits = {"train": (X_tr, y_tr), "val": (X_val, y_val), "test": (ds.X_test, ds.y_test)}
        if c["data"]["standardize"]:
            mean = X_tr.mean(axis=0) * scale
            std = X_tr.std(axis=0) * scale + 1e-6
            splits = {k: (((x * scale - mean) / std).astype(np.float32), yy) for k, (x, yy) in splits.items()}
            scale = 1.0
        if c["train"]["batch_size"] > len(splits["train"][1]):
            raise ConfigError(
                f"config key 'train.batch_size' = {c['train']['batch_size']} is larger than the training set ({len(splits['train'][1])} rows)"
            )
        self.dataset = ds
        dtype = c["train"]["dtype"]
        self.data = {
            k: DeviceSplit(self.bk, x, yy, ds.n_classes, scale, dtype) for k, (x, yy) in splits.items() if len(yy)
        }

    def setup(self):
        """Backend, data on the device, network, optimiser, schedule (once)."""
        if self.net is not None:
            return self
        c = self.cfg
        m, o, t = c["model"], c["optimizer"], c["train"]
        self.bk = get_backend(t["backend"])
        self._load_data()
        self.net = Network(
            m["sizes"], m["hidden"], m["output"], m["cost"], m["init"], backend=self.bk,
            dtype=t["dtype"], seed=t["seed"], leaky_slope=m["leaky_slope"], dropout=m["dropout"],
        )
        n_train = self.data["train"].n
        decay = o["weight_decay"] + o["l2"] / n_train  # Nielsen's λ/n
        kw = {"weight_decay": decay}
        if o["name"] in ("momentum", "nesterov"):
            kw["momentum"] = o["momentum"]
        elif o["name"] == "adam":
            kw.update(beta1=o["beta1"], beta2=o["beta2"], eps=o["eps"])
        self.opt = optim.make(o["name"], self.net, **kw)
        B = t["batch_size"]
        self.n_batches = n_train // B if t["drop_last"] else -(-n_train // B)
        s = dict(c["schedule"])
        self.lr_at = schedules.make(s.pop("name"), o["lr"], t["epochs"] * self.n_batches, self.n_batches, **s)
        xp, d = self.net.xp, self.data["train"]
        # Batches are gathered row by row from the stored (uint8) data through the
        # epoch's permutation: cheaper than a shuffled copy of the whole set
        # (47 MB for MNIST, copied every epoch), and no second copy in memory.
        raw, scaled = xp.empty((B, d.X.shape[1]), d.X.dtype), xp.empty((B, d.X.shape[1]), self.net.dtype)
        Y, labels = xp.empty((B, d.Y.shape[1]), d.Y.dtype), xp.empty(B, d.labels.dtype)
        spans = [(b * B, min((b + 1) * B, n_train)) for b in range(self.n_batches)]
        self.batches = [(i, j, raw[: j - i], scaled[: j - i], Y[: j - i], labels[: j - i]) for i, j in spans]
        self.shift = None
        if c["data"]["shift"]:
            shape = self.dataset.image_shape
            if shape is None or len(shape) != 2 or shape[0] * shape[1] != d.X.shape[1]:
                raise ConfigError(
                    f"config key 'data.shift' = {c['data']['shift']} needs 2-D images, "
                    f"but data set {self.dataset.name!r} has no image shape"
                )
            self.shift = RandomShift(self.bk, shape, c["data"]["shift"], B, d.X.dtype)
        self.state = {"epoch": 0, "batch": 0, "step": 0, "loss_sum": 0.0, "correct": 0, "seen": 0}
        self.history, self.best = [], None
        return self

    def _make_run_dir(self):
        out = self.cfg["output"]
        if self._run_dir is not None:
            path = Path(self._run_dir)
        else:
            stem = self.name or Path(self.cfg["data"]["name"]).stem
            name = out["name"] or f"{stem}-{datetime.now():%Y%m%d-%H%M%S}"
            path = Path(out["dir"]) / name
            k = 1
            while path.exists():
                k += 1
                path = Path(out["dir"]) / f"{name}-{k}"
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise checkpoint.WriteError(f"cannot create run directory {path}: {exc.strerror or exc}") from None
        return path

    # -- the loop ----------------------------------------------------------
    def run(self):
        try:
            self.setup()
            # numpy's overflow warnings would only add lines to the TrainingDiverged message
            with self.bk.limit_threads(self.cfg["train"]["threads"]), np.errstate(over="ignore", invalid="ignore"):
                return self._run()
        except Exception as exc:
            if type(exc).__name__ != "OutOfMemoryError":  # cupy's, not imported here
                raise
            asked = getattr(exc, "size", None)  # cupy's OutOfMemoryError(size, total)
            asked = f"{asked / 2**20:,.1f} MiB asked for" if isinstance(asked, (int, float)) else str(exc).rstrip(".")
            raise FastBPError(
                f"GPU out of memory at train.batch_size = {self.cfg['train']['batch_size']} "
                f"with network {self.cfg['model']['sizes']} ({asked}); try a smaller batch size"
            ) from None

    def _run(self):
        c = self.cfg
        self.setup()
        state = self.state
        if self.write:
            self.run_dir = self._make_run_dir()
        if self.resume_ckpt is not None:
            state = self.state = self._restore(self.resume_ckpt)
        elif self.write:
            checkpoint.atomic_write(self.run_dir / "config.toml", lambda f: f.write(config_mod.to_toml(c).encode()))
        self.log(
            f"fastbp: {self.dataset.name} {self.data['train'].n} train / "
            f"{self.data['val'].n if 'val' in self.data else 0} val / {self.data['test'].n if 'test' in self.data else 0} test, "
            f"net {c['model']['sizes']} {c['model']['hidden']}+{c['model']['output']}/{c['model']['cost']}, "
            f"{c['optimizer']['name']} lr {c['optimizer']['lr']}, batch {c['train']['batch_size']}, "
            f"backend {self.bk.name} ({self.bk.device_name()}), run dir {self.run_dir}"
        )
        old = self._install_signals()
        progress = Progress(c["train"]["epochs"], self.n_batches, disable=self.quiet)
        stopped_early = False
        try:
            while state["epoch"] < c["train"]["epochs"]:
                row = self.train_epoch(progress)
                progress.epoch_done(row)
                self.log(report.epoch_line(row, c["train"]["epochs"]))
                improved = self._track_best(row)
                every = c["output"]["checkpoint_every"]
                if improved:
                    self._save("best.npz", state)
                if every and state["epoch"] % every == 0:
                    self._save("last.npz", state)
                if self._should_stop_early():
                    self.log(f"early stopping: no {c['train']['monitor']} improvement for {c['train']['patience']} epochs")
                    stopped_early = True
                    break
        finally:
            progress.close()
            self._restore_signals(old)
        self._save("last.npz", state)
        if c["train"]["early_stopping"] and self.best is not None:
            self.net.set_params(self.best["params"])  # as scikit-learn does
        return self._finish(stopped_early)

    def train_epoch(self, progress=None, evaluate=True):
        """One epoch (or the rest of an interrupted one); returns its history row.
        evaluate=False skips validation/test/gradient-norm figures (benchmarks)."""
        state = self.state
        t0 = time.perf_counter()
        self._train_epoch(state, progress or _NO_PROGRESS)
        row = self._end_epoch(state, time.perf_counter() - t0, evaluate)
        state.update(epoch=state["epoch"] + 1, batch=0, loss_sum=0.0, correct=0, seen=0)
        return row

    def _train_epoch(self, state, progress):
        c, net, bk, xp = self.cfg, self.net, self.net.bk, self.net.xp
        d, seed, epoch = self.data["train"], c["train"]["seed"], state["epoch"]
        perm = bk.permutation(bk.rng([seed, epoch]), d.n) if c["train"]["shuffle"] else xp.arange(d.n)
        if self.shift is not None:
            self.shift.new_epoch(seed, epoch, d.n)
        net.seed_dropout([seed, epoch, 1])
        if state.get("dropout_rng") is not None and bk.name == "numpy":
            net._drop_rng.bit_generator.state = state.pop("dropout_rng")
        check_each = bk.name == "numpy"  # a float() per batch is free on the CPU, a sync on the GPU
        loss_sum, correct, seen = state["loss_sum"], state["correct"], state["seen"]
        clip = c["optimizer"]["clip_norm"]
        progress.start_epoch(state["epoch"], state["batch"])
        step, lr_at, scale = self.opt.step, self.lr_at, d.scale
        for b in range(state["batch"], self.n_batches):
            i, j, raw, xb, yb, labels = self.batches[b]
            rows = perm[i:j]
            xp.take(d.X, rows, axis=0, out=raw)
            xp.take(d.Y, rows, axis=0, out=yb)
            xp.take(d.labels, rows, axis=0, out=labels)
            if self.shift is not None:
                self.shift(raw, i)
            xp.multiply(raw, scale, out=xb)
            a = net.forward(xb, train=True)
            batch_loss = net.batch_cost(yb)
            loss_sum = loss_sum + batch_loss
            correct = correct + (a.argmax(axis=1) == labels).sum()
            seen += len(labels)
            if check_each and not math.isfinite(batch_loss):
                self._diverged(state["epoch"], b)
            net.backward(xb, yb)
            if clip:
                self._clip(clip)
            step(lr_at(state["step"]))
            state["step"] += 1
            if progress.due():
                lf = float(loss_sum) / seen
                if not math.isfinite(lf):
                    self._diverged(state["epoch"], b)
                progress.update(b + 1, lf, float(correct) / seen, seen)
            if self._stop is not None:
                state.update(batch=b + 1, loss_sum=float(loss_sum), correct=int(correct), seen=seen)
                self._interrupt(state)
        bk.synchronize()
        state.update(loss_sum=float(loss_sum), correct=int(correct), seen=seen)
        if not math.isfinite(state["loss_sum"]):
            self._diverged(state["epoch"], self.n_batches - 1)

    def _clip(self, max_norm):
        g = self.net.grads
        norm = float(self.net.xp.sqrt((g * g).sum()))
        if norm > max_norm:
            self.net.xp.multiply(g, max_norm / norm, out=g)

    def _diverged(self, epoch, batch):
        raise TrainingDiverged(
            f"training diverged: non-finite loss at epoch {epoch + 1}, batch {batch + 1}; "
            f"try a lower learning rate (optimizer.lr = {self.cfg['optimizer']['lr']}) or optimizer.clip_norm; "
            f"{self._kept()}"
        )

    def _kept(self):
        """What a diverged run leaves behind, for its message."""
        saved = [n for n in ("last.npz", "best.npz") if self.run_dir is not None and (self.run_dir / n).exists()]
        if saved:
            return f"the last good checkpoint ({', '.join(saved)}) in {self.run_dir} is kept"
        return "no checkpoint had been written yet" if self.run_dir is not None else "nothing was saved"

    def evaluate(self, split):
        """(mean cost, accuracy) of the current weights on one split."""
        net, xp, d = self.net, self.net.xp, self.data[split]
        chunk = 4096
        buf_x = xp.empty((min(chunk, d.n), d.X.shape[1]), net.dtype)
        loss, correct = 0.0, 0
        for i in range(0, d.n, chunk):
            j = min(i + chunk, d.n)
            xb = xp.multiply(d.X[i:j], d.scale, out=buf_x[: j - i])
            a = net.forward(xb)
            loss = loss + net.batch_cost(d.Y[i:j])
            correct = correct + (a.argmax(axis=1) == d.labels[i:j]).sum()
        return float(loss) / d.n, int(correct) / d.n

    def predict(self, split):
        d, xp = self.data[split], self.net.xp
        return self.net.bk.to_numpy(self.net.predict(xp.multiply(d.X, d.scale, dtype=self.net.dtype)))

    def grad_norms(self, n=1000):
        """‖∂C/∂W^l‖ and ‖∂C/∂b^l‖ per layer on the first n training rows:
        how fast each layer learns (Nielsen ch. 5's vanishing gradients)."""
        net, xp, d = self.net, self.net.xp, self.data["train"]
        n = min(n, d.n)
        x = xp.multiply(d.X[:n], d.scale, dtype=net.dtype)
        net.gradient(x, d.Y[:n], dropout=False)
        w = [float(xp.linalg.norm(g)) for g in net.grad_weights]
        b = [float(xp.linalg.norm(g)) for g in net.grad_biases]
        return w, b

    def _end_epoch(self, state, seconds, evaluate=True):
        row = {
            "epoch": state["epoch"] + 1,
            "seconds": seconds,
            "samples_per_s": state["seen"] / seconds if seconds > 0 else None,
            "lr": self.lr_at(max(0, state["step"] - 1)),
            "train_loss": state["loss_sum"] / max(1, state["seen"]),
            "train_accuracy": state["correct"] / max(1, state["seen"]),
        }
        for split in ("val", "test") if evaluate else ():
            if split in self.data:
                row[f"{split}_loss"], row[f"{split}_accuracy"] = self.evaluate(split)
        if evaluate and self.cfg["output"]["grad_norms"]:
            row["grad_norm_w"], row["grad_norm_b"] = self.grad_norms()
        self.history.append(row)
        if self.write:
            report.write_history(self.run_dir, self.history, self.cfg["output"]["history"])
        return row

    # -- best model, early stopping -----------------------------------------
    def _score(self, row):
        key = self.cfg["train"]["monitor"]
        if key not in row:
            key = key.replace("val_", "train_")  # no validation split: watch training figures
        return row[key] if key.endswith("accuracy") else -row[key]

    def _track_best(self, row):
        score = self._score(row)
        if self.best is None or score > self.best["score"] + self.cfg["train"]["min_delta"]:
            self.best = {"score": score, "epoch": row["epoch"], "params": self.net.get_params(), "since": 0}
            return True
        self.best["since"] += 1
        return False

    def _should_stop_early(self):
        t = self.cfg["train"]
        return t["early_stopping"] and self.best is not None and self.best["since"] >= t["patience"]

    # -- checkpoints, signals, resume ------------------------------------------
    def _save(self, name, state):
        if not self.write:
            return
        best = None if self.best is None else {k: v for k, v in self.best.items() if k != "params"}
        extra = {"best": best}
        params = self.net.get_params()
        if not np.isfinite(params).all():  # never replace a good checkpoint with NaNs
            e, b = state["epoch"], state["batch"]
            raise TrainingDiverged(
                f"training diverged: non-finite weights {f'at epoch {e + 1}, batch {b}' if b else f'after epoch {e}'} "
                f"(not saved to {name}); try a lower learning rate (optimizer.lr = {self.cfg['optimizer']['lr']}) "
                f"or optimizer.clip_norm; {self._kept()}"
            )
        if self.net._drop_rng is not None and self.net.bk.name == "numpy" and state["batch"]:
            extra["dropout_rng"] = self.net._drop_rng.bit_generator.state
        checkpoint.save(
            self.run_dir / name,
            params=params,
            optimizer_state=self.opt.state(),
            config=self.cfg,
            network=self.net.config(),
            history=self.history,
            counters={k: state[k] for k in ("epoch", "batch", "step", "loss_sum", "correct", "seen")},
            extra=extra,
        )

    def _restore(self, ckpt):
        checkpoint.check_compatible(ckpt, self.net.config())
        self.net.set_params(ckpt["params"])
        try:
            self.opt.load_state(ckpt["optimizer"])
        except (KeyError, ValueError) as exc:
            raise checkpoint.CheckpointError(f"checkpoint {ckpt['path']}: optimiser state does not fit ({exc})") from None
        self.history = ckpt["history"]
        best = ckpt["extra"].get("best")
        if best is not None:
            self.best = dict(best, params=self.net.get_params())
        state = dict(ckpt["counters"])
        state["dropout_rng"] = ckpt["extra"].get("dropout_rng")
        self.log(f"resuming {ckpt['path']} at epoch {state['epoch'] + 1}, batch {state['batch'] + 1}")
        return state

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

    def _restore_signals(self, old):
        for sig, h in old.items():
            signal.signal(sig, h)

    def _interrupt(self, state):
        self._save("last.npz", state)
        name = signal.Signals(self._stop).name
        raise Interrupted(
            f"{name}: stopped at epoch {state['epoch'] + 1}, batch {state['batch']}; checkpoint saved; "
            f"resume with: fastbp train --resume {self.run_dir}"
        )

    # -- the end -----------------------------------------------------------------
    def _finish(self, stopped_early):
        c = self.cfg
        skip = ("epoch", "seconds", "lr", "grad_norm_w", "grad_norm_b")
        final = {k: v for k, v in (self.history[-1] if self.history else {}).items() if k not in skip}
        if "test" in self.data:
            final["test_loss"], final["test_accuracy"] = self.evaluate("test")
            y_true, y_pred = self.data["test"].labels, self.predict("test")
            final.update(report.class_metrics(self.net.bk.to_numpy(y_true), y_pred, self.dataset.n_classes))
        summary = {
            "config": c,
            "backend": self.net.bk.describe(),
            "dataset": {"name": self.dataset.name, "source": self.dataset.source},
            "run_dir": str(self.run_dir),
            "epochs_run": len(self.history),
            "stopped_early": stopped_early,
            "best_epoch": None if self.best is None else self.best["epoch"],
            "epoch_seconds": [h["seconds"] for h in self.history],
            "train_seconds": sum(h["seconds"] for h in self.history),
            **final,
        }
        if not self.write:
            return summary
        checkpoint.atomic_write(self.run_dir / "summary.json", lambda f: f.write(json.dumps(summary, indent=1).encode()))
        if c["output"]["plots"]:
            report.plot(self.run_dir, self.history)
        return summary


def train(cfg, **kwargs):
    """Train from a validated config dict; returns the run's summary."""
    return Trainer(cfg, **kwargs).run()
