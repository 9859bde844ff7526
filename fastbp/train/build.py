"""Everything a training run is made of, built from a config: the data set on
the device, the network, the optimiser and the learning-rate schedule.

`build(cfg)` is what the Trainer, `fastbp eval`, the benchmarks and training
scripts call; it reads nothing but the config (and an optional Dataset).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..backend import Backend, get_backend
from ..data import Dataset, check_input_size, load_dataset, validation_split
from ..errors import ConfigError, DataError
from ..nn import optim, schedules
from ..nn.network import Network
from .config import Config
from . import loop
from .loop import Batches


@dataclass
class Preprocess:
    """What the network is fed for a raw example x: (x · scale − mean) / std,
    with mean and std (per feature) only when the run standardised its data.
    Saved in checkpoints, so that eval, predict and export feed a model what
    it was trained on."""

    input_dtype: str
    scale: float
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    images: str = "none"  # how predict reads an image file for this run: datasets.IMAGE_PREPROCESSING

    def __call__(self, X, dtype=np.float32):
        """Raw host rows as the network's input, in its dtype; the same
        operations in the same order as the exported ONNX graph."""
        dtype = np.dtype(dtype).type
        X = np.asarray(X).astype(dtype) * dtype(self.scale)
        if self.mean is not None:
            X = (X - self.mean.astype(dtype)) / self.std.astype(dtype)
        return X


class Split:
    """One split of a data set on the backend's device: raw X (uint8 where the
    source is), the scale that maps it into the network's input range, labels,
    and one-hot targets Y."""

    def __init__(self, bk, X, labels, n_classes, scale, dtype):
        xp = bk.xp
        self.bk = bk
        self.n = int(X.shape[0])
        self.X = xp.asarray(X)
        self.scale = np.dtype(dtype).type(scale)  # a typed scalar: uint8 × float32 stays float32
        self.labels = xp.asarray(labels.astype(np.int64))
        self.Y = xp.zeros((self.n, n_classes), dtype)
        self.Y[xp.arange(self.n), self.labels] = 1

    def inputs(self, i=0, j=None, dtype=None):
        """Rows i:j as the network's input (scaled), a new device array."""
        X = self.X[i:j]
        return self.bk.xp.multiply(X, self.scale, dtype=dtype or self.scale.dtype)


def to_device(ds: Dataset, backend="auto", *, validation=0, standardize=False, train_limit=0, dtype="float32"):
    """A Dataset's train, val and test splits on the backend's device, and
    their Preprocess. val is the last `validation` rows of the training set
    (or that fraction of it); train_limit then keeps only the first rows of
    what is left for training. Splits with no rows are left out."""
    bk = get_backend(backend)
    X, y = ds.X_train, ds.y_train
    if isinstance(validation, int) and validation >= len(y):
        raise ConfigError(f"config key 'data.validation' = {validation} leaves no training data (the training set has {len(y)} rows)")
    X_tr, y_tr, X_val, y_val = validation_split(X, y, validation)
    if train_limit:
        X_tr, y_tr = X_tr[:train_limit], y_tr[:train_limit]
    splits = {"train": (X_tr, y_tr), "val": (X_val, y_val), "test": (ds.X_test, ds.y_test)}
    pre = Preprocess(np.dtype(X_tr.dtype).name, float(ds.scale), images=ds.images)
    scale = ds.scale
    if standardize:
        pre.mean = (X_tr.mean(axis=0) * ds.scale).astype(np.float32)
        std = X_tr.std(axis=0) * ds.scale
        # a feature constant in training (MNIST's border pixels) is divided by 1, as StandardScaler does:
        # dividing by ~0 blew the few held-out images with ink there up to |x| ~ 1e5
        pre.std = np.where(std > 0, std + 1e-6, 1.0).astype(np.float32)
        splits = {k: (pre(x, np.dtype(dtype).type), yy) for k, (x, yy) in splits.items()}
        scale = 1.0
    data = {k: Split(bk, x, yy, ds.n_classes, scale, dtype) for k, (x, yy) in splits.items() if len(yy)}
    return data, pre


@dataclass
class Setup:
    """The parts of a run. The last three are None when built for evaluation only."""

    cfg: Config
    bk: Backend
    dataset: Dataset
    data: dict
    preprocess: Preprocess
    net: Network
    opt: optim.Optimizer | None = None
    lr_at: object = None  # lr_at(step), the schedule
    batches: Batches | None = None  # the training split's mini-batches
    # the sums over ranks of a data-parallel run (fastbp.dist.mpi.Reducer); loop.ONE in one process
    reduce: object = loop.ONE


def build(cfg: Config, dataset: Dataset | None = None, *, train=True) -> Setup:
    """Data on the device, network, and (train=True) optimiser and schedule, from cfg.
    `dataset` replaces the one cfg.data.name names."""
    d, m, o, t = cfg.data, cfg.model, cfg.optimizer, cfg.train
    bk = get_backend(t.backend)
    reduce = None
    if train:  # started by mpiexec: this rank's device and communicator (nothing MPI is imported otherwise)
        from ..dist.mpi import from_env

        reduce = from_env(bk, cfg)
    reduce = reduce or loop.ONE
    if t.tf32 and not bk.set_tf32(True):
        warnings.warn(f"train.tf32 = true does nothing on the {bk.name} backend", stacklevel=2)
    ds = dataset or load_dataset(d.name, data_dir=d.data_dir or None)
    _check_fits(ds, m.sizes)
    validation = d.validation
    if validation == "auto":  # network2.py's 10,000 of MNIST's 60,000; 10% of a small set
        validation = 10000 if len(ds.y_train) >= 20000 else 0.1
    data, pre = to_device(ds, bk, validation=validation, standardize=d.standardize, train_limit=d.train_limit, dtype=t.dtype)
    if t.batch_size > data["train"].n:
        raise ConfigError(f"config key 'train.batch_size' = {t.batch_size} is larger than the training set ({data['train'].n} rows)")
    net = Network(m.sizes, m.hidden, m.output, m.cost, m.init, backend=bk, dtype=t.dtype, seed=t.seed,
                  leaky_slope=m.leaky_slope, dropout=m.dropout)
    setup = Setup(cfg, bk, ds, data, pre, net, reduce=reduce)
    if train:
        train_split = data["train"]
        try:
            setup.batches = Batches(train_split, t.batch_size, seed=t.seed, shuffle=t.shuffle, drop_last=t.drop_last,
                                    shift=d.shift, image_shape=ds.image_shape, share=(reduce.rank, reduce.size))
        except ValueError as exc:
            raise ConfigError(f"config key 'data.shift' = {d.shift}: {exc} (data set {ds.name!r})") from None
        params = cfg.optimizer_params()
        if "weight_decay" in params:
            params["weight_decay"] += o.l2 / train_split.n  # Nielsen's λ/n
        setup.opt = optim.make(o.name, net, **params)
        steps = len(setup.batches)
        setup.lr_at = schedules.make(cfg.schedule.name, o.lr, t.epochs * steps, steps, **cfg.schedule_params())
    return setup


def _check_fits(ds, sizes):
    check_input_size(ds, sizes[0])
    if sizes[-1] != ds.n_classes:
        names = ds.class_names
        shown = ", ".join(names if len(names) <= 12 else (*names[:10], "...", names[-1]))
        raise DataError(f"data set {ds.name} has {ds.n_classes} classes ({shown}) but the network's output layer has "
                        f"{sizes[-1]}; make the last of model.sizes {ds.n_classes}")
