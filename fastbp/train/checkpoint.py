"""Checkpoints: one `.npz` per save, written atomically, read without pickle.

Contents: the flat parameter buffer, the optimiser's state arrays, the class
names (a unicode array: output i is class_names[i]), and JSON strings: the
config, the network's description, the training state (`loop.TrainState`,
field by field) and the input preprocessing (its mean and std, when the run
standardised, as arrays).
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.datasets import IMAGE_PREPROCESSING
from ..errors import CheckpointError, ConfigError
from ..files import atomic_write
from ..nn.network import Network, layout
from . import config as config_mod
from .build import Preprocess
from .loop import TrainState

# 3: class names, and how predict reads images, recorded; classes of one's own data are its sorted
# distinct labels (a format-2 run's class i was label i)
FORMAT = "fastbp-checkpoint-3"
JSON_KEYS = ("config", "network", "state", "preprocess")
# The files of a run directory that eval, export and predict read for each --checkpoint choice. The
# default is best.npz, the weights a user evaluating a run expects (last.npz when the run kept none,
# stopped in its first epoch); `train --resume` reads last.npz, where training stopped.
CHOICES = {"best": ("best.npz", "last.npz"), "last": ("last.npz",)}
DEFAULT = "best"


@dataclass
class Checkpoint:
    path: Path
    config: config_mod.Config
    network: dict  # Network.config(): sizes, activations, cost, dtype...
    params: np.ndarray  # the flat buffer, as network.layout lays it out
    optimizer: dict  # Optimizer.state()
    state: TrainState
    preprocess: Preprocess
    class_names: tuple  # of str, one per output

    def make_network(self, backend="auto"):
        """A Network as saved, holding the saved weights."""
        n = self.network
        net = Network(n["sizes"], n["hidden"], n["output"], n["cost"], n["init"], backend=backend, dtype=n["dtype"],
                      leaky_slope=n["leaky_slope"], dropout=n["dropout"])
        net.set_params(self.params)
        return net


def save(path, *, net, opt=None, cfg=None, state=None, preprocess=None, class_names=None):
    """Write a checkpoint of the network's weights, the optimiser's state and
    the run's state. A script may leave out cfg (then the network's own
    description stands for the model section), state, preprocess (inputs
    fed as they are) and class_names (then '0', '1', ...)."""
    if cfg is None:
        n = net.config()
        model = {k: n[k] for k in ("sizes", "hidden", "output", "cost", "init", "dropout", "leaky_slope")}
        cfg = config_mod.merge(config_mod.defaults(), {"model": model, "train": {"dtype": n["dtype"]}})
    state = state or TrainState()
    pre = dataclasses.asdict(preprocess or Preprocess(np.dtype(net.dtype).name, 1.0))
    mean, std = pre.pop("mean"), pre.pop("std")
    arrays = {
        "format": np.array(FORMAT),
        "params": net.get_params(),
        "config": np.array(json.dumps(cfg.to_dict())),
        "network": np.array(json.dumps(net.config())),
        "state": np.array(json.dumps(dataclasses.asdict(state))),
        "preprocess": np.array(json.dumps(pre)),
        "class_names": np.array(class_names or [str(i) for i in range(net.sizes[-1])], dtype=str),
    }
    if mean is not None:
        arrays["pre_mean"], arrays["pre_std"] = mean, std
    for key, value in (opt.state() if opt is not None else {}).items():
        arrays[f"opt_{key}"] = np.asarray(value)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def find(path, prefer=("last.npz",)):
    """The checkpoint file `path` names: itself, or in a run directory the first of `prefer`."""
    path = Path(path)
    if not path.is_dir():
        return path
    for name in prefer:
        if (path / name).exists():
            return path / name
    raise CheckpointError(f"checkpoint {path}: directory holds no {' or '.join(prefer)}")


def load(path, prefer=("last.npz",)) -> Checkpoint:
    """Read a checkpoint (a file, or a run directory's first of `prefer`);
    CheckpointError for anything that is not a whole, consistent one."""
    path = find(path, prefer)
    if path.is_file() and not zipfile.is_zipfile(path):  # else np.load tries .npy or pickle
        raise CheckpointError(f"checkpoint {path}: not a readable .npz checkpoint (not a whole zip archive)")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path}: not found") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path}: not a readable .npz checkpoint ({type(exc).__name__}: {exc})") from None
    if "format" not in data or str(data["format"]) != FORMAT:
        found = str(data["format"]) if "format" in data else None
        older = f" (it is {found}: written by an older fastbp; train it again)" if found and found.startswith("fastbp-") else ""
        raise CheckpointError(f"checkpoint {path}: not a fastbp checkpoint (expected format {FORMAT}){older}")
    try:
        text = {k: json.loads(str(data[k])) for k in JSON_KEYS}
        network = text["network"]
        n_params = layout([int(n) for n in network["sizes"]])[2]
        state = TrainState(**text["state"])
        pre = Preprocess(**text["preprocess"], mean=data.get("pre_mean"), std=data.get("pre_std"))
        if pre.images not in IMAGE_PREPROCESSING:
            raise ValueError(f"preprocess images {pre.images!r} is not one of {', '.join(IMAGE_PREPROCESSING)}")
        names = data["class_names"]
        if names.dtype.kind != "U" or names.shape != (network["sizes"][-1],):
            raise ValueError(f"class_names must be {network['sizes'][-1]} strings, found {names.dtype} of shape {names.shape}")
        cfg = config_mod.from_dict(text["config"])
    except ConfigError as exc:
        raise CheckpointError(f"checkpoint {path}: its config is invalid ({exc})") from None
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path}: damaged ({type(exc).__name__}: {exc})") from None
    params = data["params"]
    if params.dtype.kind != "f" or not np.isfinite(params).all():
        raise CheckpointError(f"checkpoint {path}: its parameters are not all finite floating-point numbers (dtype {params.dtype})")
    if params.ndim != 1 or params.size != n_params:
        raise CheckpointError(f"checkpoint {path}: holds {params.size} parameters, but its network {network['sizes']} needs {n_params}")
    optimizer = {k[4:]: data[k] for k in data if k.startswith("opt_")}
    ckpt = Checkpoint(path, cfg, network, params, optimizer, state, pre, tuple(str(n) for n in names))
    check_compatible(ckpt, cfg)  # a file whose two descriptions disagree was tampered with
    return ckpt


def check_compatible(ckpt, cfg):
    """Refuse a checkpoint whose architecture disagrees with a config."""
    for key in ("sizes", "hidden", "output", "cost"):
        want = getattr(cfg.model, key)
        if ckpt.network.get(key) != want:
            raise CheckpointError(
                f"checkpoint {ckpt.path}: model.{key} is {ckpt.network.get(key)!r} there but {want!r} in the config"
            )


def check_classes(ckpt, dataset):
    """Refuse data whose classes are not the ones the checkpoint's outputs stand for."""
    if tuple(dataset.class_names) != ckpt.class_names:
        def some(names):
            return ", ".join(names if len(names) <= 8 else (*names[:6], "...", names[-1]))
        raise CheckpointError(f"checkpoint {ckpt.path}: its classes ({some(ckpt.class_names)}) are not those of "
                              f"data set {dataset.name} ({some(dataset.class_names)})")


def restore(ckpt, net, opt=None):
    """Put a checkpoint's weights (and optimiser state) into a network built
    for its config; returns its TrainState."""
    net.set_params(ckpt.params)
    if opt is not None:
        try:
            opt.load_state(ckpt.optimizer)
        except (KeyError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {ckpt.path}: optimiser state does not fit ({exc})") from None
    return dataclasses.replace(ckpt.state, history=list(ckpt.state.history))
