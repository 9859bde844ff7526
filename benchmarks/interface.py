"""What every runner of the suite is: one class against one declared interface.

A runner (a contender, or a ceiling such as the GEMMs alone) is a subclass of
`Contender` that sets `name`; defining it registers it. The class says what
it runs on and what it needs, so that whether it can run here, which rows are
GPU rows and which fastbp row it is compared with all follow from it.

    class MyPeer(Contender):
        name = "my-peer"          # the --contenders name
        device = "cpu"            # "cpu" or "gpu"
        needs = ("mylib",)        # modules it cannot run without
        def __init__(self, spec): ...   # build from the Spec (untimed); set self.samples
        def epoch(self): ...            # one shuffled pass over self.samples (timed)
        def accuracy(self): ...         # test accuracy now (time-to-98/99)
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

INIT = {"relu": "he", "sigmoid": "normal_scaled"}  # fastbp's initialiser per hidden activation


@dataclass(frozen=True)
class Spec:
    """What to train and how: shared by every contender of a comparison."""

    dataset: str = "mnist"
    sizes: tuple = (784, 100, 10)
    hidden: str = "relu"  # relu or sigmoid
    batch: int = 128
    optimizer: str = "momentum"  # sgd, momentum or adam
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0  # L2 on the weights only (not the biases), as fastbp does
    dropout: float = 0.0  # on the hidden layers' outputs (inverted dropout)
    shift: int = 0  # random translation of each training image by up to this many pixels
    schedule: str = "constant"  # a fastbp schedule (torch and JAX run the same function per step)
    epochs: int = 1  # the schedule's length; time-to-target's cap
    rep_samples: int = 0  # training samples per repetition (the first ones); 0 = all
    subset: int = 2000  # per-example loop: the samples it is timed on
    seed: int = 0
    threads: int = 2  # torch.set_num_threads, XLA's cores, = the BLAS threads numpy uses


@lru_cache(maxsize=None)
def dataset(name):
    from fastbp.data import load_dataset

    return load_dataset(name)


def floats(spec):
    """(X_train, y_train, X_test, y_test) with X as float32 in [0, 1]."""
    ds, n = dataset(spec.dataset), spec.rep_samples or None
    scale = np.float32(ds.scale)
    return ds.X_train[:n] * scale, ds.y_train[:n], ds.X_test * scale, ds.y_test


def fastbp_schedule(spec, steps_per_epoch):
    """lr(step) from fastbp's own schedules, with its default schedule keys."""
    from fastbp.nn import schedules

    return schedules.make(spec.schedule, spec.lr, spec.epochs * steps_per_epoch, steps_per_epoch)


def fastbp_init(spec):
    """fastbp's initial (W, b) per layer for this spec, float32, W as (n_out, n_in)."""
    from fastbp.nn import init

    draw, rng = init.get(INIT[spec.hidden]), np.random.default_rng(spec.seed)
    drawn = [draw(rng, n_in, n_out) for n_in, n_out in zip(spec.sizes[:-1], spec.sizes[1:])]
    return [(w.astype(np.float32), b.astype(np.float32)) for w, b in drawn]


def refuse(name, spec, *supported):
    """One clear line when a Spec asks for what a contender does not implement."""
    asked = {"dropout": spec.dropout, "shift": spec.shift, "weight_decay": spec.weight_decay}
    missing = [k for k, v in asked.items() if v and k not in supported]
    if missing:
        raise ValueError(f"{name} does not implement {', '.join(missing)}")


def _cupy_gpu():
    from fastbp.backend import cupy_status

    usable, reason = cupy_status()
    return None if usable else reason


def _torch_gpu():
    import torch

    return None if torch.cuda.is_available() else "torch sees no CUDA device"


def _jax_gpu():
    # This probe runs in the suite's parent process: without this, jax would take 75% of
    # the card there for the whole run, beside the runners' own processes.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    try:
        import jax

        jax.devices("gpu")
        return None
    except Exception as exc:  # no GPU platform, or a plugin that fails to load
        return f"jax sees no GPU ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})"


GPU_PROBES = {"cupy": _cupy_gpu, "torch": _torch_gpu, "jax": _jax_gpu}  # the libraries that can hold a GPU row
PIP = {"sklearn": "scikit-learn", "cupy": "cupy-cuda13x"}  # where the distribution's name is not the module's

REGISTRY: dict[str, type] = {}  # name -> class, in definition order


class Contender(ABC):
    """One runner of the suite. Class attributes:

    name      the name on the command line and in the tables (setting it registers the class)
    device    "cpu" or "gpu": which fastbp row and which ceiling it is compared with
    needs     top-level modules it cannot run without: unavailable (skipped) when one is missing
    preload   modules imported before its memory baseline (default: needs)
    role      "contender", or "ceiling" for a reference row (the GEMMs alone)
    baseline  True for the fastbp row the others on its device are compared with
    recipe    which of a time-to-target case's recipes it runs ("shared": the one fastbp,
              torch and JAX share; "sklearn": MLPClassifier's own; None: left out)
    versus    another contender whose time this one's is also shown against (× versus)
    """

    name: str
    device = "cpu"
    needs: tuple = ()
    preload: tuple | None = None
    role = "contender"
    baseline = False
    recipe: str | None = "shared"
    versus: str | None = None
    samples: int  # training samples one epoch() goes through, set by __init__

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            return  # a shared base, not a runner
        if cls.device not in ("cpu", "gpu"):
            raise TypeError(f"{cls.__name__}.device = {cls.device!r}: choose cpu or gpu")
        if cls.device == "gpu" and not set(cls.needs) & set(GPU_PROBES):
            raise TypeError(f"{cls.__name__} is a GPU runner: its needs must name one of {', '.join(GPU_PROBES)}")
        if cls.name in REGISTRY and REGISTRY[cls.name].__qualname__ != cls.__qualname__:
            raise TypeError(f"two runners are named {cls.name!r}: {REGISTRY[cls.name].__name__} and {cls.__name__}")
        REGISTRY[cls.name] = cls

    @abstractmethod
    def __init__(self, spec):
        """Build everything (data in the form it wants, net, optimiser): untimed."""

    @abstractmethod
    def epoch(self):
        """One shuffled pass over self.samples training samples; the caller times it."""

    def accuracy(self):
        """Test accuracy of the current weights."""
        raise NotImplementedError(f"{self.name} is timed only")

    def gpu_peak_mb(self):
        """Peak GPU memory in MiB; None on the CPU."""
        return None

    @classmethod
    def unavailable(cls):
        """Why it cannot run here, or None if it can: from `needs` and `device`."""
        for module in cls.needs:
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed (pip install {PIP.get(module, module)})"
        if cls.device == "gpu":
            for module in cls.needs:
                why = GPU_PROBES[module]() if module in GPU_PROBES else None
                if why:
                    return why
        return None

    @classmethod
    def prepare(cls, spec):
        """In its own process, before the memory baseline: import what it needs,
        load the raw data set."""
        for module in cls.needs if cls.preload is None else cls.preload:
            importlib.import_module(module)
        dataset(spec.dataset)
