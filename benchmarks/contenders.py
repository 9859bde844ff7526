"""The contenders, one class each, all with the same interface:

    C(spec)          everything built: data in the form it wants, net, optimiser (untimed)
    .samples         training samples that one call of epoch() goes through
    .epoch()         one shuffled pass over them (the caller times it)
    .accuracy()      test accuracy of the current weights (time-to-98)
    .gpu_peak_mb()   peak GPU memory, None on the CPU

All train the same net: `spec.sizes`, `spec.hidden` hidden units, a softmax
output with the log-likelihood cost (categorical cross-entropy), float32.
"""

from __future__ import annotations

import importlib
import importlib.util
import random
import warnings
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from .flops import CupyGemmCeiling, GemmCeiling

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
    schedule: str = "constant"  # a fastbp schedule (torch runs the same function per step)
    epochs: int = 1  # the schedule's length; time-to-98's cap
    rep_samples: int = 0  # training samples per repetition (the first ones); 0 = all
    subset: int = 2000  # per-example loop: the samples it is timed on
    seed: int = 0
    threads: int = 2  # torch.set_num_threads, = the BLAS threads numpy uses


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


class FastbpNumpy:
    """fastbp's training loop (`build` from a config, then `loop.train_epoch`),
    timed on one epoch with no evaluation."""

    modules = ("fastbp.train.build",)
    backend = "numpy"

    def __init__(self, spec):
        from fastbp.train import config
        from fastbp.train.build import build
        from fastbp.train.loop import TrainState

        optimizer = {"name": spec.optimizer, "lr": spec.lr, "momentum": spec.momentum}
        cfg = config.merge(config.defaults(), {
            "data": {"name": spec.dataset, "validation": 0, "train_limit": spec.rep_samples},
            "model": {"sizes": list(spec.sizes), "hidden": spec.hidden, "output": "softmax",
                      "cost": "log_likelihood", "init": INIT[spec.hidden]},
            "optimizer": optimizer,
            "schedule": {"name": spec.schedule},
            "train": {"batch_size": spec.batch, "epochs": spec.epochs, "seed": spec.seed, "backend": self.backend},
            "output": {"grad_norms": False, "plots": False},
        })
        self.setup = build(config.validate(cfg), dataset(spec.dataset))
        self.samples = self.setup.data["train"].n
        self.state = TrainState()

    def epoch(self):
        from fastbp.train import loop

        s = self.setup
        loop.train_epoch(s.net, s.opt, s.lr_at, s.batches, self.state)
        self.state.next_epoch()

    def accuracy(self):
        from fastbp.train import loop

        return loop.evaluate(self.setup.net, self.setup.data["test"])[1]

    def gpu_peak_mb(self):
        return None


class FastbpCupy(FastbpNumpy):
    modules = ("fastbp.train.build", "cupy")
    backend = "cupy"

    def gpu_peak_mb(self):
        import cupy

        return cupy.get_default_memory_pool().total_bytes() / 2**20


class Sklearn:
    """MLPClassifier, one epoch per partial_fit call; no early stopping, no
    tolerance stop (partial_fit runs exactly one epoch), shuffling on."""

    modules = ("sklearn.neural_network",)

    def __init__(self, spec):
        from sklearn.neural_network import MLPClassifier

        if spec.schedule != "constant":
            raise ValueError("scikit-learn has no learning-rate schedule of fastbp's kinds")
        self.X, self.y, self.X_test, self.y_test = floats(spec)
        self.samples, self.classes = len(self.y), np.arange(dataset(spec.dataset).n_classes)
        if spec.optimizer == "adam":
            solver = {"solver": "adam"}
        else:
            mu = spec.momentum if spec.optimizer == "momentum" else 0.0
            solver = {"solver": "sgd", "momentum": mu, "nesterovs_momentum": False, "learning_rate": "constant"}
        self.model = MLPClassifier(
            hidden_layer_sizes=tuple(spec.sizes[1:-1]), activation={"relu": "relu", "sigmoid": "logistic"}[spec.hidden],
            batch_size=spec.batch, learning_rate_init=spec.lr, alpha=0.0, shuffle=True, random_state=spec.seed,
            tol=0.0, n_iter_no_change=10**9, early_stopping=False, max_iter=1, **solver,
        )

    def epoch(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model.partial_fit(self.X, self.y, classes=self.classes)

    def accuracy(self):
        return float(self.model.score(self.X_test, self.y_test))

    def gpu_peak_mb(self):
        return None


class FastbpEstimator(Sklearn):
    """FastBPClassifier with the very parameters of the sklearn row, one epoch
    per partial_fit call (the path fit takes, epoch by epoch): the one-line swap."""

    modules = ("fastbp.estimator",)
    backend = "numpy"

    def __init__(self, spec):
        from fastbp.estimator import FastBPClassifier

        super().__init__(spec)
        self.model = FastBPClassifier(**self.model.get_params(), backend=self.backend)


class FastbpEstimatorCupy(FastbpEstimator):
    modules = ("fastbp.estimator", "cupy")
    backend = "cupy"

    def gpu_peak_mb(self):
        import cupy

        return cupy.get_default_memory_pool().total_bytes() / 2**20


class TorchCPU:
    """An nn.Linear stack; the data already float tensors on the device; a
    torch.randperm per epoch sliced into index batches (no DataLoader)."""

    modules = ("torch",)
    device = "cpu"

    def __init__(self, spec):
        import torch

        self.torch, self.batch = torch, spec.batch
        torch.set_num_threads(spec.threads)
        torch.manual_seed(spec.seed)
        X, y, X_test, y_test = floats(spec)
        self.X, self.y, self.X_test, self.y_test = (torch.from_numpy(a).to(self.device) for a in (X, y, X_test, y_test))
        self.samples = len(y)
        layers = []
        for n_in, n_out in zip(spec.sizes[:-1], spec.sizes[1:]):
            layers += [torch.nn.Linear(n_in, n_out), torch.nn.ReLU() if spec.hidden == "relu" else torch.nn.Sigmoid()]
        self.net = torch.nn.Sequential(*layers[:-1]).to(self.device)
        if spec.optimizer == "adam":
            self.opt = torch.optim.Adam(self.net.parameters(), lr=spec.lr)
        else:
            mu = spec.momentum if spec.optimizer == "momentum" else 0.0
            self.opt = torch.optim.SGD(self.net.parameters(), lr=spec.lr, momentum=mu)
        self.loss = torch.nn.CrossEntropyLoss()  # softmax + log-likelihood, batch mean
        per_epoch = -(-self.samples // spec.batch)
        self.lr_at = None if spec.schedule == "constant" else fastbp_schedule(spec, per_epoch)
        self.step = 0

    def epoch(self):
        torch, B = self.torch, self.batch
        perm = torch.randperm(self.samples, device=self.device)
        for i in range(0, self.samples, B):
            idx = perm[i : i + B]
            if self.lr_at is not None:
                for group in self.opt.param_groups:
                    group["lr"] = self.lr_at(self.step)
            self.opt.zero_grad(set_to_none=True)
            self.loss(self.net(self.X[idx]), self.y[idx]).backward()
            self.opt.step()
            self.step += 1
        self.synchronize()

    def synchronize(self):
        pass

    def accuracy(self):
        with self.torch.no_grad():
            return float((self.net(self.X_test).argmax(1) == self.y_test).float().mean())

    def gpu_peak_mb(self):
        return None


class TorchCUDA(TorchCPU):
    device = "cuda"

    def synchronize(self):
        self.torch.cuda.synchronize()

    def gpu_peak_mb(self):
        return self.torch.cuda.max_memory_allocated() / 2**20


class PerExample:
    """Nielsen's network.py: one sample at a time as column vectors, the
    gradients summed over the mini-batch in Python lists, numpy float32.
    Timed on `spec.subset` samples; the harness scales the time to an epoch."""

    modules = ()

    def __init__(self, spec):
        from fastbp.nn import init

        if spec.optimizer == "adam":
            raise ValueError("the per-example loop does plain SGD or momentum only")
        n = min(spec.subset, spec.rep_samples or spec.subset)
        X, y, _, _ = floats(replace(spec, rep_samples=n))
        n, eye = len(y), np.eye(spec.sizes[-1], dtype=np.float32)
        self.training_data = [(X[i].reshape(-1, 1), eye[y[i]].reshape(-1, 1)) for i in range(n)]
        self.samples, self.batch, self.lr = n, spec.batch, spec.lr
        self.mu = spec.momentum if spec.optimizer == "momentum" else 0.0
        draw, rng = init.get(INIT[spec.hidden]), np.random.default_rng(spec.seed)
        drawn = [draw(rng, n_in, n_out) for n_in, n_out in zip(spec.sizes[:-1], spec.sizes[1:])]
        self.weights = [w.astype(np.float32) for w, _ in drawn]
        self.biases = [b.astype(np.float32).reshape(-1, 1) for _, b in drawn]
        self.vw = [np.zeros_like(w) for w in self.weights]
        self.vb = [np.zeros_like(b) for b in self.biases]
        self.relu = spec.hidden == "relu"

    def act(self, z):
        return np.maximum(z, 0) if self.relu else 1.0 / (1.0 + np.exp(-z))

    def act_prime(self, z):
        if self.relu:
            return (z > 0).astype(np.float32)
        s = self.act(z)
        return s * (1 - s)

    def epoch(self):
        random.shuffle(self.training_data)
        for k in range(0, self.samples, self.batch):
            self.update_mini_batch(self.training_data[k : k + self.batch])

    def update_mini_batch(self, mini_batch):
        nabla_b = [np.zeros(b.shape, np.float32) for b in self.biases]
        nabla_w = [np.zeros(w.shape, np.float32) for w in self.weights]
        for x, y in mini_batch:
            delta_nabla_b, delta_nabla_w = self.backprop(x, y)
            nabla_b = [nb + dnb for nb, dnb in zip(nabla_b, delta_nabla_b)]
            nabla_w = [nw + dnw for nw, dnw in zip(nabla_w, delta_nabla_w)]
        eta = self.lr / len(mini_batch)
        self.vw = [self.mu * v - eta * nw for v, nw in zip(self.vw, nabla_w)]
        self.vb = [self.mu * v - eta * nb for v, nb in zip(self.vb, nabla_b)]
        self.weights = [w + v for w, v in zip(self.weights, self.vw)]
        self.biases = [b + v for b, v in zip(self.biases, self.vb)]

    def backprop(self, x, y):
        nabla_b, nabla_w = [None] * len(self.biases), [None] * len(self.weights)
        activation, activations, zs = x, [x], []
        for layer, (b, w) in enumerate(zip(self.biases, self.weights)):
            z = np.dot(w, activation) + b
            zs.append(z)
            if layer == len(self.weights) - 1:  # softmax output
                e = np.exp(z - z.max())
                activation = e / e.sum()
            else:
                activation = self.act(z)
            activations.append(activation)
        delta = activations[-1] - y  # softmax + log-likelihood: δ^L = a − y
        nabla_b[-1], nabla_w[-1] = delta, np.dot(delta, activations[-2].transpose())
        for l in range(2, len(self.weights) + 1):
            delta = np.dot(self.weights[-l + 1].transpose(), delta) * self.act_prime(zs[-l])
            nabla_b[-l], nabla_w[-l] = delta, np.dot(delta, activations[-l - 1].transpose())
        return nabla_b, nabla_w

    def accuracy(self):
        raise NotImplementedError("the per-example loop is timed only")

    def gpu_peak_mb(self):
        return None


CONTENDERS = {
    "fastbp-numpy": FastbpNumpy,
    "fastbp-cupy": FastbpCupy,
    "sklearn": Sklearn,
    "fastbp-estimator": FastbpEstimator,
    "fastbp-estimator-cupy": FastbpEstimatorCupy,
    "torch-cpu": TorchCPU,
    "torch-cuda": TorchCUDA,
    "per-example": PerExample,
}
CEILINGS = {"gemm-numpy": GemmCeiling, "gemm-cupy": CupyGemmCeiling}  # reference rows, not contenders
RUNNERS = {**CONTENDERS, **CEILINGS}
GPU = ("fastbp-cupy", "torch-cuda", "gemm-cupy", "fastbp-estimator-cupy")


def on_gpu(name):
    return name in GPU


def fastbp_for(name):
    """The fastbp contender a row is compared with: the one on its device."""
    return "fastbp-cupy" if on_gpu(name) else "fastbp-numpy"


def ceiling_for(name):
    return "gemm-cupy" if on_gpu(name) else "gemm-numpy"


def unavailable(name):
    """Why a runner cannot run here, or None if it can."""
    if name not in RUNNERS:
        return f"unknown contender (choose from {', '.join(CONTENDERS)})"
    if "cupy" in name:
        from fastbp.backend import cupy_status

        usable, reason = cupy_status()
        return None if usable else reason
    if "torch" in name:
        if importlib.util.find_spec("torch") is None:
            return "torch is not installed (pip install torch)"
        if name == "torch-cuda":
            import torch

            return None if torch.cuda.is_available() else "torch sees no CUDA device"
    return None


def prepare(name, spec):
    """Import what the runner needs and load the raw data set: the baseline
    that its memory is measured from."""
    for module in RUNNERS[name].modules:
        importlib.import_module(module)
    dataset(spec.dataset)


def make(name, spec):
    return RUNNERS[name](spec)
